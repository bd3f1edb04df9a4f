"""The Hydra app ``regretlab``: compose and validate a config, simulate every agent, save the run.

    regretlab                                   # the default experiment
    regretlab env.means=[0.5,0.6] agents=[ucb1,thompson] horizon=100000 seeds=1000
    regretlab -m env.K=10,100 agents=[ucb1]     # one run directory per job
    regretlab hydra.run.dir=some/dir            # put the run where you say
    regretlab sweep.agents.ucb1.c=[0.5,1,2]     # a sweep in one program: one job directory each

Flow: compose -> validate (types by the structured schema, ranges by the domain classes) ->
instantiate env and agents (``_target_``) -> compile every agent's program (concurrently) and
simulate each -> ``results.write_run`` (with the env's metric semantics) -> summary table and
figure. The table shows the headline metric (``metric``, default the env's ``primary_metric``)
with the interval its support calls for, its median when it is non-negative, and with
``reference=AGENT`` each agent's ratio of means to that agent, paired over the seeds. Nothing
is compiled before the whole config has been validated; a bad value exits with status 2 and
one line naming the field, and leaves the run directory as it was (none, or what it held: Hydra's
files rewritten before validation are put back, `preflight.protect_run_dir`). A finished run of
the same config is not recomputed (its table is printed from its saved results); a finished run
of another config (or another random bit generator) is recomputed with a line saying so; a
directory holding another sweep's jobs is refused (`results.reuse_conflicts`). Ctrl-C and
SIGTERM stop with one line, exit 130 and 143. After the table come the agents'
notes (``Agent.info``, e.g. inputs rounded on request) and, where the env declares an exact
oracle (``Env.oracle``), the self-check: the per-step mean and the maximum over t of the curve
metric, each beside its oracle value.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hydra
from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from omegaconf import MISSING, DictConfig, OmegaConf

from experiments import interrupt
from experiments.config import ConfigError, check_choice, check_int, one_line
from experiments.sweep import expand as expand_sweep

MAX_RECORDED_VALUES = 50_000_000  # agents x seeds x grid points kept in memory and on disk


def _conf_dir() -> str:
    here = Path(__file__).resolve().parent
    packaged = here / "conf"  # where the wheel puts conf/
    return str(packaged if packaged.is_dir() else here.parent / "conf")


# --------------------------------------------------------------------------- schema
@dataclass
class RecordConfig:
    grid: str = "log"  # every | linear | log
    points: int = 200


@dataclass
class RunConfig:
    """Top-level settings; `env` and `agents` are `_target_` nodes of their config groups."""

    horizon: int = 10_000
    seeds: int = 100
    seed: int = 0
    record: RecordConfig = field(default_factory=RecordConfig)
    chunk_size: int | None = None
    x64: bool = False
    progress: bool = True
    plot: bool = True
    metric: str | None = None  # headline metric of table and figure; None: the env's choice
    reference: str | None = None  # an agent: the summary prints every agent's ratio to it
    compile_cache: str | None = "~/.cache/regretlab/jax"  # JAX's persistent cache; null/false: off
    env: Any = MISSING
    agents: dict[str, Any] = field(default_factory=dict)
    sweep: Any = field(default_factory=lambda: OmegaConf.create({}, flags={"struct": False}))


ConfigStore.instance().store(name="regretlab_schema", node=RunConfig)


# --------------------------------------------------------------------------- preparation
@dataclass
class Experiment:
    """A validated, instantiated experiment, ready to simulate."""

    env: Any
    params: Any
    agents: dict[str, Any]
    horizon: int
    seeds: int
    seed: int
    grid: Any
    chunk_size: int | None
    progress: bool
    plot: bool
    metric: str
    config: dict
    reference: str | None = None


def prepare(cfg: DictConfig, overrides: list[str] | None = None) -> Experiment:
    """Validate `cfg` and instantiate its env and agents; raise ConfigError on bad input."""
    import jax

    _check_present(cfg)
    horizon = check_int("horizon", cfg.horizon, 1)
    seeds = check_int("seeds", cfg.seeds, 1)
    seed = check_int("seed", cfg.seed, 0, 2**32 - 1)
    grid_kind = check_choice("record.grid", cfg.record.grid, ("every", "linear", "log"))
    points = check_int("record.points", cfg.record.points, 2)
    if cfg.chunk_size is not None:
        from experiments.simulate import RNG_BLOCK

        if check_int("chunk_size", cfg.chunk_size, RNG_BLOCK) % RNG_BLOCK:
            raise ConfigError(
                f"chunk_size: must be a multiple of {RNG_BLOCK} (got {cfg.chunk_size})"
            )
    if horizon > 2**63 - 1:
        raise ConfigError(f"horizon: must be an integer <= 2^63 - 1 (got {horizon})")
    _check_steps(horizon, 1, bool(cfg.x64))  # the env's steps per round: checked once built
    if not cfg.agents:
        raise ConfigError("agents: select at least one agent, e.g. agents=[ucb1]")
    if cfg.reference is not None:
        check_choice("reference", cfg.reference, tuple(cfg.agents))
    jax.config.update("jax_enable_x64", bool(cfg.x64))
    cache = compile_cache_dir(cfg.compile_cache)
    if cache is not None:
        enable_compile_cache(cache)

    from experiments.simulate import make_grid

    grid = make_grid(horizon, grid_kind, points)
    recorded = len(cfg.agents) * seeds * grid.size
    if recorded > MAX_RECORDED_VALUES:
        raise ConfigError(
            f"record: {len(cfg.agents)} agents x {seeds} seeds x {grid.size} points"
            f" = {recorded:.3g} recorded values > {MAX_RECORDED_VALUES:.0e};"
            " use record.grid=log or fewer record.points"
        )

    env_cfg = _container("env", cfg.env)
    if _user_set(overrides, "env.means") and not _user_set(overrides, "env.K") and "K" in env_cfg:
        env_cfg["K"] = None  # explicit means define the number of arms
    env = _instantiate("env", env_cfg)
    from experiments.simulate import _steps_per_round

    _check_steps(horizon, _steps_per_round(env), bool(cfg.x64))
    agents = {
        name: _instantiate(f"agents.{name}", _container(f"agents.{name}", node))
        for name, node in cfg.agents.items()
    }
    params = _finite_params(env)
    metric = cfg.metric or getattr(env, "primary_metric", "regret")
    reported = {  # trace (not compile) a step: the agent fits the env
        name: check_fit(env, params, agent, horizon, f"agents.{name}")
        for name, agent in agents.items()
    }
    metrics = set().union(*reported.values())
    if metrics and metric not in metrics:
        known = ", ".join(sorted(metrics))
        raise ConfigError(f"metric: {metric!r} is not a metric of this env (one of: {known})")
    for name, has in reported.items():  # an env may report a metric for some agents only
        if has and metric not in has:
            raise ConfigError(
                f"metric: {metric!r} is not reported for agents.{name} (its metrics:"
                f" {', '.join(sorted(has))})"
            )
    return Experiment(
        env,
        params,
        agents,
        horizon,
        seeds,
        seed,
        grid,
        cfg.chunk_size,
        bool(cfg.progress),
        bool(cfg.plot),
        metric,
        OmegaConf.to_container(cfg, resolve=True),
        cfg.reference,
    )


def _check_present(cfg: DictConfig) -> None:
    """Every field of the schema is in `cfg` and `env` is chosen: a ``~horizon`` or ``~env`` on
    the command line deletes one, which would otherwise surface as an OmegaConf traceback."""
    from omegaconf.errors import OmegaConfBaseException

    try:
        no_env = "env" not in cfg or OmegaConf.is_missing(cfg, "env") or cfg.env is None
    except OmegaConfBaseException:
        no_env = True
    if no_env:  # `~env` drops the env from the defaults list: the schema's ??? is left
        from experiments.preflight import _group_options

        options = _group_options("env")
        known = f" (one of: {', '.join(options)})" if options else ""
        raise ConfigError(
            f"env: no environment chosen (deleted with ~env?); choose one, e.g. env=bernoulli"
            f"{known}"
        )
    required = [f"{f.name}" for f in dataclasses.fields(RunConfig)]
    required += [f"record.{f.name}" for f in dataclasses.fields(RecordConfig)]
    for key in required:
        parent, _, name = key.rpartition(".")
        node = cfg if not parent else cfg.get(parent)
        if node is None or name not in node.keys():  # noqa: SIM118 (`in` is False for ???)
            raise ConfigError(
                f"{key}: missing from the config (deleted with ~{key}?); it is required: set it"
                f" instead, e.g. {key}={_example(key)}"
            )


def _example(key: str) -> str:
    """A value to show for `key` in an error line: the schema's default."""
    node: Any = OmegaConf.structured(RunConfig)
    try:
        value = OmegaConf.select(node, key, throw_on_missing=False)
    except Exception:
        value = None
    return "VALUE" if value is None or OmegaConf.is_config(value) else str(value).lower()


def _check_steps(horizon: int, per_round: int, x64: bool) -> None:
    """The engine counts steps (``horizon`` x the env's steps per round: episodes of H steps
    for an episodic env) in int32 without x64, int64 with it: refuse a count beyond that."""
    steps = horizon * per_round
    if steps > 2**63 - 1:
        raise ConfigError(
            f"horizon: {horizon:,} x {per_round} steps = {steps:.3g} steps > 2^63 - 1, beyond"
            " even 64-bit step counters; use a smaller horizon"
        )
    if steps > 2**31 - 1 and not x64:
        what = (
            f"{horizon:,} episodes x {per_round} steps = {steps:,} steps"
            if per_round > 1
            else f"{horizon:,} rounds"
        )
        raise ConfigError(
            f"horizon: {what} > 2^31 - 1 needs x64=true (64-bit round and step counters)"
        )


def compile_cache_dir(value: Any) -> str | None:
    """The ``compile_cache`` setting as a directory, or None for no cache: null, false or off
    (Hydra passes ``false`` to this str field as "False"); a number (``compile_cache=0``) or
    true/on is refused rather than taken for a relative directory named so."""
    if value is None:
        return None
    text = str(value).strip()
    if text.lower() in ("false", "off", "null", "none", ""):
        return None
    try:
        float(text)
        number = True
    except ValueError:
        number = False
    if number or text.lower() in ("true", "on"):
        raise ConfigError(
            "compile_cache: must be a directory (e.g. ~/.cache/regretlab/jax, or ./0 for one"
            f" named so), or null, false or off for no cache (got {value!r})"
        )
    return text


def _finite_params(env) -> Any:
    """`env.default_params()`, refused when a value overflows its dtype (e.g. env.sigma=1e300
    is inf in float32): one line naming the parameter, instead of NaN results later."""
    import warnings

    import jax
    import numpy as np

    with warnings.catch_warnings():  # the cast's overflow warning: reported below, in one line
        warnings.simplefilter("ignore", RuntimeWarning)
        params = env.default_params()
    for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
        value = np.asarray(leaf)
        if np.issubdtype(value.dtype, np.floating) and not np.all(np.isfinite(value)):
            name = jax.tree_util.keystr(path).lstrip(".")
            raise ConfigError(
                f"env: parameter {name} is not finite in {value.dtype} (an env value too large"
                " for it; use smaller values, or x64=true for float64)"
            )
    return params


def check_fit(env, params, agent, horizon: int, where: str) -> set[str]:
    """Trace (never compile) one whole step of `agent` on `env` and its final metrics; return
    the metric names (empty for an env with exogenous inputs, whose step is traced only at
    compile time; its agent's `init` is traced instead). Raise one ConfigError line naming
    `where`, the env and what does not fit."""
    import jax

    from experiments.rollout import rollout
    from experiments.simulate import _has_inputs

    def one_step(key):
        r = rollout(env, params, agent, key, 1, horizon=horizon)
        final = env.final_metrics(r.env_state, agent.output(r.agent_state), params)
        return r.totals, final

    def init_only(key):
        return agent.init(key, env.spec(params, horizon))

    inputs = _has_inputs(env)
    try:
        out = jax.eval_shape(init_only if inputs else one_step, jax.random.key(0))
    except ConfigError as e:
        raise ConfigError(_fit_error(where, env, str(e))) from None
    except Exception as e:  # an agent written for another env's observations or actions
        raise ConfigError(
            f"{where}: does not fit env {type(env).__name__} ({type(e).__name__}: {one_line(e)}"
            f"{_raised_at(e)})"
        ) from None
    if inputs:
        return set()
    totals, final = out
    return (set(totals) - {"rounds"}) | set(final)


def _raised_at(error: BaseException) -> str:
    """``", raised in FILE:LINE (FUNCTION)"``: the innermost frame of `error` outside JAX, NumPy
    and the engine's own modules (the env's or the agent's own code: a user's env written
    gymnax-style, sampling from a key where the engine passes its draws, fails in its own
    `step` with whichever agent), or "" when there is none."""
    import os
    import traceback

    frame = _innermost_project_frame(traceback.extract_tb(error.__traceback__))
    if frame is None:
        return ""
    return f", raised in {os.path.relpath(frame.filename)}:{frame.lineno} ({frame.name})"


def _innermost_project_frame(frames):
    """The innermost frame outside JAX, NumPy and the engine's own modules (None: none)."""
    import os

    engine = os.path.dirname(os.path.abspath(__file__))
    for f in reversed(frames):
        path = os.path.abspath(f.filename)
        if "site-packages" in path or os.path.dirname(path) == engine or path.startswith("<"):
            continue
        return f
    return None


def enable_compile_cache(path: str) -> None:
    """Turn on JAX's persistent compilation cache in `path` (programs that took >= 1 s to
    compile are stored; a rerun of the same shapes loads them instead of compiling again).
    A cache directory set in the environment (JAX_COMPILATION_CACHE_DIR) takes precedence."""
    import os

    import jax

    if os.environ.get("JAX_COMPILATION_CACHE_DIR"):
        return
    directory = os.path.expanduser(path)
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"compile_cache: cannot create {directory} ({e.strerror})") from None
    jax.config.update("jax_compilation_cache_dir", directory)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)


def _user_set(overrides: list[str] | None, key: str) -> bool:
    return any(o.lstrip("+~").split("=", 1)[0] == key for o in overrides or [])


def _fit_error(where: str, env: Any, msg: str) -> str:
    """A ConfigError raised while `check_fit` traced agent `where` on `env`, as one line naming
    the field to change: a top-level field or an env field it names (``horizon: 100 requests >
    the trace's 50``) as it is; the env refusing the agent (``env: fixed-budget BAI needs ...``)
    as the agent not fitting the env; anything else as the agent's own field."""
    head, sep, rest = msg.partition(": ")
    name = head if sep and " " not in head else ""
    top = {f.name for f in dataclasses.fields(RunConfig)} - {"agents"}
    if name.split(".")[0] in top and name != "env":
        return msg
    if name == "env":
        return f"{where}: does not fit env {type(env).__name__} ({rest})"
    return _prefixed(where, msg)


def _prefixed(where: str, msg: str) -> str:
    """`msg` with the config path `where` in front, unless it already names its group."""
    if msg.startswith(where.split(".")[0] + "."):
        return msg
    names_a_field = msg.split(" ", 1)[0].endswith(":")  # "c: must be ..." vs "needs ..."
    return f"{where}.{msg}" if names_a_field else f"{where}: {msg}"


def _container(where: str, node: Any) -> Any:
    """A config node as plain Python, its interpolations resolved; a reference to a key the
    config lacks (an agent written for another env: ``${env.problem}``) is one ConfigError."""
    from omegaconf.errors import OmegaConfBaseException

    try:
        return OmegaConf.to_container(node, resolve=True)
    except OmegaConfBaseException as e:
        text = one_line(e)
        raise ConfigError(f"{where}: {text} (is it meant for another env?)") from None


def _instantiate(where: str, node: Any):
    if not isinstance(node, dict) or "_target_" not in node:
        raise ConfigError(f"{where}: needs a _target_ naming the class to build")
    _check_lists(where, node)
    try:
        return hydra.utils.instantiate(node, _convert_="all")
    except InstantiationException as e:
        cause = e.__cause__ or e
        if isinstance(cause, ConfigError):
            raise ConfigError(_prefixed(where, str(cause))) from None
        raise ConfigError(f"{where}: cannot build {node['_target_']}: {one_line(cause)}") from None


def _check_lists(where: str, node: dict) -> None:
    """A string given for a parameter that the ``_target_`` annotates as a list or sequence
    (``env.means=abc``) is refused here, naming the field: the target would iterate over its
    characters and blame one of them."""
    import collections.abc
    import inspect
    import types
    import typing

    try:
        from hydra._internal.utils import _locate

        obj = _locate(node["_target_"])
        hints = typing.get_type_hints(obj.__init__ if inspect.isclass(obj) else obj)
    except Exception:  # no annotations to go by: the target checks its own arguments
        return
    sequences = (list, tuple, collections.abc.Sequence, collections.abc.Iterable)
    for key, value in node.items():
        if key == "_target_" or not isinstance(value, str) or key not in hints:
            continue
        annotation = hints[key]
        union = typing.get_origin(annotation) in (typing.Union, types.UnionType)
        options = typing.get_args(annotation) if union else (annotation,)
        kinds = [typing.get_origin(a) or a for a in options]
        if any(k in sequences for k in kinds) and not any(k in (str, Any) for k in kinds):
            raise ConfigError(
                f"{where}.{key}: must be a list, e.g. {where}.{key}=[...] (got {value!r})"
            )


# --------------------------------------------------------------------------- execution
def execute(exp: Experiment, out_dir: Path) -> dict:
    """Simulate every agent, write the run directory, print the table; return the summary."""

    from experiments import results
    from experiments.simulate import simulate_agents

    why = results.mismatch(out_dir, exp.config)
    if why is None:
        print(f"{out_dir}: finished run found, not recomputed")
        summary = repair_finished(out_dir, exp)
        print_saved(out_dir, summary, exp.metric, exp.reference)
        return summary
    conflicts = results.reuse_conflicts(out_dir, None)  # a sweep's jobs below out_dir
    if conflicts:
        from experiments.preflight import reuse_error

        raise ConfigError(reuse_error("hydra.run.dir", out_dir, conflicts))
    if why:
        print(f"{out_dir}: holds a finished run of {why}: recomputed, replacing it")
    results.remove_stray_temporaries(out_dir)  # left by a killed attempt
    results.mark_unfinished(out_dir)  # a stale summary (and figures) must not outlive it
    _announce(exp, list(exp.agents))
    sims = simulate_agents(
        exp.env,
        exp.params,
        exp.agents,
        exp.horizon,
        exp.seeds,
        exp.seed,
        exp.grid,
        exp.chunk_size,
        exp.progress,
    )
    interrupt.check()  # never write as finished a run that was interrupted
    check_results(sims, exp.metric)
    oracles, infos = results.declared(exp.env, exp.params, exp.agents, exp.horizon)
    summary = results.write_run(
        out_dir, exp.config, sims, {"metric": exp.metric}, exp.env, oracles, infos
    )
    if exp.plot:
        from experiments.plot import plot_runs

        plot_runs(
            [results.Run(out_dir, summary)],
            out_dir / f"{exp.metric}.png",
            exp.metric,
            title=_title(exp),
        )
    table = summary_table(summary, sims, exp.metric, exp.reference)
    table += summary_notes(summary)
    print(table)
    _print_compile_seconds(summary)
    print(f"run directory: {out_dir}")
    _to_log_file(table)
    return summary


def print_saved(out_dir: Path, summary: dict, metric: str, reference: str | None) -> None:
    """The table (and notes) of a finished run found on resume, from its saved results
    (summary.json; the per-seed finals of final.parquet for ``reference`` ratios), so that the
    display settings ``metric`` and ``reference`` apply to it as to a computed run."""
    table = _format_rows(
        _saved_rows(out_dir, summary, metric, reference), summary, metric, reference
    )
    print(table + summary_notes(summary))
    print(f"run directory: {out_dir}")


def _saved_rows(out_dir: Path, summary: dict, metric: str, reference: str | None, prefix=""):
    """`_rows` of a finished run from what it saved."""
    from types import SimpleNamespace

    from experiments.results import Run

    names = list(summary["agents"])
    missing = [n for n in names if metric not in summary["agents"][n]["final"]]
    if missing:
        raise ConfigError(
            f"metric: {metric!r} is not a metric of the finished run in {out_dir} (its metrics:"
            f" {', '.join(summary['agents'][missing[0]]['final'])})"
        )
    if reference is not None and reference not in names:
        check_choice("reference", reference, tuple(names))
    run = Run(out_dir, summary)
    wanted = [n for n in names if reference is not None]
    sims = {n: SimpleNamespace(final={metric: run.final(n, metric)}) for n in wanted}
    return _rows(summary, sims, metric, reference, prefix=prefix)


def check_results(sims: dict, metric: str) -> None:
    """Refuse results that are not numbers: a NaN or infinite final metric (an overflow, e.g.
    ``env.sigma=1e300``) is an error naming the agent, the metric and a seed, never a value in
    summary.json; and the headline metric must be one the run reports."""
    import numpy as np

    first = next(iter(sims.values()))
    if metric not in first.final:
        known = ", ".join(sorted(first.final))
        raise ConfigError(f"metric: {metric!r} is not a metric of this env ({known})")
    for name, sim in sims.items():
        for k, values in sim.final.items():
            bad = ~np.isfinite(np.asarray(values, np.float64))
            if bad.any():
                seed = int(np.argmax(bad))
                raise ConfigError(
                    f"agents.{name}: final {k} is {values[seed]} for seed {seed} (an overflow or"
                    " an undefined value; check the env's and agent's parameters)"
                )


def _announce(exp: Experiment, names: list[str]) -> None:
    """A line before compiling (which is silent and can take tens of seconds), also in
    regretlab.log with the run's settings."""
    import jax

    log = logging.getLogger("regretlab")
    log.info(
        "%s; %s, seed=%d, x64=%s, backend=%s",
        _describe(exp.env),
        _title(exp),
        exp.seed,
        jax.config.jax_enable_x64,
        jax.default_backend(),
    )
    log.info("compiling %s (cached programs of these shapes load instead)", ", ".join(names))


def _describe(obj: Any) -> str:
    import dataclasses

    fields = [f.name for f in dataclasses.fields(obj)] if dataclasses.is_dataclass(obj) else []
    shown = ", ".join(f"{k}={getattr(obj, k)!r}" for k in fields if not k.startswith("_"))
    return f"{type(obj).__name__}({shown[:300]})"


def _to_log_file(text: str) -> None:
    """Append `text` to the run's log file (regretlab.log) only, not to the console."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            handler.acquire()
            try:
                handler.stream.write(text + "\n")
                handler.flush()
            finally:
                handler.release()


def _print_compile_seconds(summary: dict) -> None:
    compile_s = {n: round(a["compile_seconds"], 2) for n, a in summary["agents"].items()}
    overlap = ", compiled side by side: the times overlap" if len(compile_s) > 1 else ""
    reused = [n for n, a in summary["agents"].items() if a["engine"].get("program_cache") == "hit"]
    reused_note = f"; programs reused: {', '.join(reused)}" if reused else ""
    line = f"compile seconds (not in agent-steps/s{overlap}): {compile_s}{reused_note}"
    print(line)
    run_s = {n: round(a["run_seconds"], 2) for n, a in summary["agents"].items()}
    _to_log_file(f"{line}\nrun seconds: {run_s}")


def repair_finished(out_dir: Path, exp: Experiment) -> dict:
    """A finished run found on resume: remove temporary files a kill left, draw its figure if
    it is missing (a kill between summary.json and the figure); return its summary."""
    import json

    from experiments import results

    results.remove_stray_temporaries(out_dir)
    summary = json.loads((out_dir / results.SUMMARY_FILE).read_text())
    then, now = summary.get("git_revision"), results.git_revision()
    if then and now and then != now:  # resume compares configs, not code
        print(
            f"{out_dir}: finished at git {then[:12]}, the code is now {now[:12]}: kept as it is"
            " (delete the directory to recompute it with this code)"
        )
    figure = out_dir / f"{exp.metric}.png"
    if exp.plot and not figure.is_file():
        from experiments.plot import plot_runs

        plot_runs([results.Run(out_dir, summary)], figure, exp.metric, title=_title(exp))
        print(f"{out_dir}: missing figure drawn again: {figure.name}")
    return summary


def execute_sweep(jobs: list, exps: list[Experiment], out_dir: Path) -> list[dict]:
    """Run the jobs of a sweep (`experiments.sweep`) in as few programs as their configs allow,
    write each job's run directory as a multirun would, print one table; return the summaries.

    Finished jobs are found and skipped (resume); the others run together.
    """

    from experiments import results
    from experiments.preflight import reuse_error
    from experiments.simulate import simulate_sweep
    from experiments.sweep import write_job_config

    first = exps[0]
    conflicts = results.reuse_conflicts(out_dir, [e.config for e in exps])
    if conflicts:  # the jobs of another sweep: refused before anything is changed
        raise ConfigError(reuse_error("hydra.run.dir", out_dir, conflicts))
    why = [results.mismatch(j.directory, e.config) for j, e in zip(jobs, exps, strict=True)]
    todo = [i for i, w in enumerate(why) if w is not None]
    if len(todo) < len(jobs):
        print(
            f"{out_dir}: {len(jobs) - len(todo)} of {len(jobs)} sweep jobs finished, not recomputed"
        )
    for i in todo:  # a stale summary must not outlive the job config and results replacing it
        if why[i]:  # another random bit generator (another config was refused above)
            print(
                f"{jobs[i].directory}: holds a finished run of {why[i]}: recomputed, replacing it"
            )
        results.mark_unfinished(jobs[i].directory)
    sims: dict[str, list] = {}
    if todo:
        variants = {
            name: [(exps[i].env, exps[i].params, exps[i].agents[name]) for i in todo]
            for name in first.agents
        }
        _announce(first, [f"{n} ({len(todo)} configs)" for n in first.agents])
        sims = simulate_sweep(
            variants,
            first.horizon,
            first.seeds,
            first.seed,
            first.grid,
            first.chunk_size,
            first.progress,
        )
    summaries, rows = [], []
    for i, (job, exp) in enumerate(zip(jobs, exps, strict=True)):
        if i not in todo:
            summary = repair_finished(job.directory, exp)
            summaries.append(summary)
            label = f"{job.number}: {job.label} "
            saved = _saved_rows(job.directory, summary, exp.metric, exp.reference, prefix=label)
            rows += [dataclasses.replace(r, group=_env_group(summary)) for r in saved]
            continue
        k = todo.index(i)
        results.remove_stray_temporaries(job.directory)  # left by a killed attempt
        job_sims = {name: runs[k] for name, runs in sims.items()}
        try:
            check_results(job_sims, exp.metric)
        except ConfigError as e:
            raise ConfigError(f"sweep job {job.number} ({job.label}): {e}") from None
        write_job_config(job)
        extra = {"metric": exp.metric, "sweep_job": {"number": job.number, "values": job.values}}
        oracles, infos = results.declared(exp.env, exp.params, exp.agents, exp.horizon)
        summary = results.write_run(
            job.directory, exp.config, job_sims, extra, exp.env, oracles, infos
        )
        if exp.plot:
            from experiments.plot import plot_runs

            plot_runs(
                [results.Run(job.directory, summary)],
                job.directory / f"{exp.metric}.png",
                exp.metric,
                title=f"{_title(exp)}, {job.label}",
            )
        summaries.append(summary)
        job_rows = _rows(
            summary, job_sims, exp.metric, exp.reference, prefix=f"{job.number}: {job.label} "
        )
        group = _env_group(summary)  # best marked only among jobs of the same environment
        rows += [dataclasses.replace(r, group=group) for r in job_rows]
    if rows:
        print(_format_rows(rows, summaries[0], first.metric, first.reference))
    groups = sorted(
        {
            (s["agents"][n]["engine"].get("sweep") or {}).get("configs_in_program", 1)
            for s in summaries
            for n in s["agents"]
        }
    )
    print(f"{len(jobs)} jobs ({len(todo)} run), configs per program: {groups}")
    if len(jobs[0].values) == 1:
        field = next(iter(jobs[0].values))
        print(
            f"plot the final {first.metric} against {field}: regretlab-plot {out_dir} --x {field}"
        )
    print(f"sweep directory: {out_dir}")
    return summaries


def _env_group(summary: dict) -> str:
    """What makes two jobs' rows comparable: the same resolved env config and horizon."""
    from experiments.results import Run
    from experiments.tables import env_key

    return env_key(Run(Path("."), summary))


def summary_table(summary: dict, sims: dict, metric: str, reference: str | None = None) -> str:
    """The table printed after a run: `metric` per agent, mean with its support's interval (and
    median), agent-steps/s, and with `reference` the ratio of means to that agent paired over
    seeds (`stats.ratio_ci` on the per-seed finals)."""
    return _format_rows(_rows(summary, sims, metric, reference), summary, metric, reference)


def summary_notes(summary: dict) -> str:
    """What follows the table: each agent's ``info`` messages (e.g. inputs it rounded), and the
    self-check of the curve metrics against the env's exact oracle (`tables.format_checks`): the
    per-step mean and the maximum over t, each beside its oracle value."""
    from experiments.tables import format_checks

    lines = [
        f"{name}: {item['message']}"
        for name, a in summary["agents"].items()
        for item in (a.get("info") or {}).values()
        if isinstance(item, dict) and item.get("message")
    ]
    checks = [
        (name, metric, check)
        for name, a in summary["agents"].items()
        for metric, check in (a.get("oracle") or {}).items()
    ]
    if checks:
        lines += ["self-check against the exact oracle (mean over seeds):", format_checks(checks)]
    return "".join(f"\n{line}" for line in lines)


def _rows(summary: dict, sims: dict, metric: str, reference: str | None, prefix: str = "") -> list:
    from experiments.stats import ratio_ci
    from experiments.tables import Row

    rows = []
    for name, a in summary["agents"].items():
        ratios = {}
        if reference is not None:
            r = ratio_ci(sims[name].final[metric], sims[reference].final[metric])
            ratios[metric] = tuple(float(v) for v in r)
        rows.append(Row(prefix + name, {metric: a["final"][metric]}, a["steps_per_second"], ratios))
    return rows


def _format_rows(rows: list, summary: dict, metric: str, reference: str | None) -> str:
    from experiments.protocol import MetricInfo
    from experiments.tables import format_table

    infos = {k: MetricInfo(**v) for k, v in summary.get("metrics", {}).items()}
    return format_table(rows, [metric], infos=infos, reference=reference)


def _title(exp: Experiment) -> str:
    """``T = 10,000, 100 seeds``; episodic envs count episodes of H steps instead."""
    H = getattr(exp.env, "episode_length", None)
    if H:
        return f"{exp.horizon:,} episodes of {H} steps, {exp.seeds} seeds"
    return f"T = {exp.horizon:,}, {exp.seeds} seeds"


def _discard_run_dir(out_dir: Path) -> None:
    """Undo what Hydra wrote for a command refused after it started: what the directory held
    before (a finished run's ``.hydra/`` and log) is put back as it was
    (`preflight.restore_run_dir`, from what `preflight` kept before Hydra ran); a directory
    that was not there is removed with the empty parents Hydra made. Without a kept copy (`main`
    called other than by `cli`), Hydra's files are removed only from a directory that holds
    nothing else: never from one holding a run's results."""
    from experiments import preflight

    if preflight.restore_run_dir(out_dir):
        return
    hydra_dir = out_dir / (_output_subdir() or ".hydra")
    held = list(out_dir.iterdir()) if out_dir.is_dir() else []
    if any(p != hydra_dir and p.suffix != ".log" for p in held):
        return  # results of a run (or anything else) live here: keep everything
    shutil.rmtree(hydra_dir, ignore_errors=True)
    for log in out_dir.glob("*.log"):
        log.unlink(missing_ok=True)
    preflight.remove_empty_dirs(out_dir)


def _output_subdir() -> str | None:
    try:
        return HydraConfig.get().output_subdir
    except Exception:
        return ".hydra"


@hydra.main(version_base="1.3", config_path=_conf_dir(), config_name="config")
def main(cfg: DictConfig) -> float | None:
    for noisy in ("jax", "jax._src.xla_bridge", "matplotlib"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    hc = HydraConfig.get()
    out_dir = Path(hc.runtime.output_dir)
    overrides = list(hc.overrides.task)
    interrupt.install()
    try:
        jobs = expand_sweep(cfg, overrides, out_dir)
        if jobs:
            exps = [_prepare_job(job) for job in jobs]
        else:
            exp = prepare(cfg, overrides)
    except ConfigError as e:
        _discard_run_dir(out_dir)
        print(f"regretlab: error: {e}", file=sys.stderr)
        sys.exit(2)
    try:
        if jobs:
            execute_sweep(jobs, exps, out_dir)
            return None
        summary = execute(exp, out_dir)
    except ConfigError as e:
        _discard_run_dir(out_dir)
        print(f"regretlab: error: {e}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM. Results are renamed into place,
        # summary.json last: nothing half-written is ever taken for a finished run; a rerun
        # computes what is missing
        interrupt.ignore_further()
        print(
            f"regretlab: {interrupt.received()}; rerun the same command to finish {out_dir}",
            file=sys.stderr,
        )
        sys.exit(interrupt.exit_status())
    except OSError as e:
        print(f"regretlab: error: {out_dir}: {e.strerror or e}", file=sys.stderr)
        sys.exit(1)
    first = next(iter(summary["agents"].values()))
    return first["final"].get(exp.metric, {}).get("mean")


def _prepare_job(job) -> Experiment:
    """`prepare` for one job of a sweep; an error names the job's swept values."""
    try:
        return prepare(job.config, job.overrides)
    except ConfigError as e:
        raise ConfigError(f"sweep job {job.number} ({job.label}): {e}") from None


def cli() -> None:
    """The ``regretlab`` console script: the command line checked whole (`experiments.preflight`:
    Hydra's errors and every job of a multirun, one line each, exit 2), then `main`."""
    from experiments.preflight import run_checked

    # Ray (>= 2.43) started under `uv run` would launch its workers through `uv run` in a copy of
    # the working directory, a fresh environment without this one's packages: use this Python
    os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")
    from experiments.config import check_environment

    bad = check_environment()  # also checked when the package is imported (experiments.devices)
    if bad:
        for line in bad:
            print(f"regretlab: error: {line}", file=sys.stderr)
        sys.exit(2)
    interrupt.install()  # SIGTERM too: one line and exit 143 while the command line is checked
    try:
        run_checked(main, _conf_dir(), prepare)
    except KeyboardInterrupt:  # before or between runs (a run's own is handled in main)
        interrupt.ignore_further()
        print(
            f"regretlab: {interrupt.received()}; rerun the same command to finish",
            file=sys.stderr,
        )
        sys.exit(interrupt.exit_status())


if __name__ == "__main__":
    cli()
