"""One run directory (docs/usage.md, "Where results go"): ``metrics.parquet``, ``summary.json``,
figures.

* ``metrics.parquet`` is tidy: one row per agent x seed x recorded round, columns ``agent``,
  ``seed``, ``t`` (rounds completed) and one column per metric (``regret`` is the cumulative
  pseudo-regret for bandits).
* ``final.parquet``: one row per agent x seed, one column per final metric (per-seed values, for
  paired comparisons such as ratios between agents that met the same seeds);
* ``summary.json`` holds per agent the final metrics (``mean``, ``ci_low``, ``ci_high``: null
  where the values show no spread, one seed or all equal, except for indicators; ``std``,
  ``n``, ``interval``: the method, and ``median`` for non-negative metrics), ``compile_seconds``,
  ``run_seconds`` and ``steps_per_second`` (seeds x rounds / run seconds); the metric semantics
  declared by the environment (``metrics``: name -> `MetricInfo` fields, ``primary_metric``,
  ``x_label``); the resolved config, package versions and the git revision;
* where the environment declares an exact oracle for a curve metric (``Env.oracle``: the expected
  per-step increment, t = 1..T, for a given agent), per agent ``oracle``: metric -> the run's
  self-check (`self_check`): the per-step mean (mean over t and seeds) and the maximum over t of
  the mean over seeds, each beside its oracle value, with a z-score or ratio; and where an agent
  declares facts about its run (``Agent.info(spec)``, e.g. inputs it rounded), per agent ``info``.

An environment with final metrics only (a final-answer problem) has an empty metrics table: a
valid ``metrics.parquet`` with the columns ``agent``, ``seed``, ``t`` and no rows, so a finished
run always has the same three files.

Every file is written to a temporary name in the same directory and renamed into place, so a
killed run leaves no half-written file. ``summary.json`` is written last: its presence marks a
finished run, which a resumed sweep skips.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import subprocess
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from experiments.protocol import CURVE, FINAL, INDICATOR, NONNEGATIVE, MetricInfo, metric_info
from experiments.simulate import SimResult
from experiments.stats import METHODS, interval

METRICS_FILE = "metrics.parquet"
FINAL_FILE = "final.parquet"
SUMMARY_FILE = "summary.json"
PACKAGES = ("regretlab", "jax", "jaxlib", "numpy", "hydra-core", "gymnasium", "pandas", "scipy")


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call `write(tmp)` on a temporary file beside `path`, flush it to disk, then rename it to
    `path` and flush the directory: after a crash `path` is the old file or the whole new one
    (without the fsyncs a filesystem may keep the rename and lose the data)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual permissions
        _fsync(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    with contextlib.suppress(OSError):  # directories cannot be opened for fsync everywhere
        _fsync(path.parent)


def _fsync(path: Path | str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def mark_unfinished(out_dir: Path) -> None:
    """Remove `out_dir`'s summary.json (the finished-run marker, written last) before anything
    else of a recomputation is written there, so that a run killed half-way through rewriting
    a finished directory is never taken for finished (old summary beside new files); then the
    old run's figures (``*.png`` in the directory: its ``<metric>.png``, a
    ``<metric>_compare.png`` that ``regretlab-plot`` drew there), which the recomputation may
    not draw again (another metric, ``plot=false``) and which must not sit beside its results."""
    out_dir = Path(out_dir)
    path = out_dir / SUMMARY_FILE
    changed = path.exists()
    if changed:
        path.unlink()
    if out_dir.is_dir():
        for figure in out_dir.glob("*.png"):
            if figure.is_file():
                figure.unlink(missing_ok=True)
                changed = True
    if changed:
        with contextlib.suppress(OSError):
            _fsync(out_dir)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def metrics_frame(sims: dict[str, SimResult]) -> pd.DataFrame:
    """The tidy table of recorded cumulative metrics of all agents (no rows without curves)."""
    frames = []
    for name, sim in sims.items():
        n, g = sim.seeds, (sim.rounds.size if sim.curves else 0)
        cols = {
            "agent": np.repeat(name, n * g),
            "seed": np.repeat(np.arange(n, dtype=np.int64), g),
            "t": np.tile(sim.rounds.astype(np.int64)[:g], n),
        }
        cols.update({k: np.asarray(v, np.float64).reshape(-1) for k, v in sim.curves.items()})
        frames.append(pd.DataFrame(cols))
    df = pd.concat(frames, ignore_index=True)
    df["agent"] = pd.Categorical(df["agent"], categories=list(sims))
    return df


def final_frame(sims: dict[str, SimResult]) -> pd.DataFrame:
    """Per-seed final metrics of all agents: columns ``agent``, ``seed``, one per metric."""
    frames = []
    for name, sim in sims.items():
        n = sim.seeds
        cols = {"agent": np.repeat(name, n), "seed": np.arange(n, dtype=np.int64)}
        cols.update({k: np.asarray(v, np.float64) for k, v in sim.final.items()})
        frames.append(pd.DataFrame(cols))
    df = pd.concat(frames, ignore_index=True)
    df["agent"] = pd.Categorical(df["agent"], categories=list(sims))
    return df


def metric_infos(env: Any, sims: dict[str, SimResult]) -> dict[str, MetricInfo]:
    """The declared `MetricInfo` of every metric the runs produced (defaults where undeclared).

    A metric with a recorded curve defaults to a curve, any other to a final value.
    """
    first = next(iter(sims.values()))
    names = [*first.curves, *(k for k in first.final if k not in first.curves)]
    return {k: metric_info(env, k, final=k not in first.curves) for k in names}


def summarize_values(values: np.ndarray, info: MetricInfo, level: float = 0.95) -> dict[str, Any]:
    """Per-seed values of one metric -> mean, support-aware interval, std, n (+ median if >= 0).

    No interval (``ci_low``/``ci_high`` None, null in summary.json) where the values show no
    spread: one seed, or all n values equal (Student t and the bootstrap would give the point as
    a zero-width "95% interval"). An indicator keeps its exact interval in both cases
    (Clopper–Pearson: 0 errors in n is [0, 1 - 0.025^(1/n)])."""
    v = np.asarray(values, np.float64)
    mean, lo, hi = interval(v, info.support, level)
    flat = v.size < 2 or bool(np.all(v == v[0]))  # one seed, or all equal: no spread seen
    undefined = flat and info.support != INDICATOR
    out = {
        "mean": float(mean),
        "ci_low": None if undefined else float(lo),  # null in summary.json: no interval
        "ci_high": None if undefined else float(hi),
        "std": float(np.std(v, ddof=1)) if v.size > 1 else None,
        "n": int(v.size),
        "interval": METHODS[info.support],
    }
    if info.support == NONNEGATIVE:
        out["median"] = float(np.median(v))
    return out


def summarize(
    sim: SimResult, level: float = 0.95, infos: dict[str, MetricInfo] | None = None
) -> dict[str, Any]:
    """One agent's summary: every final metric by `summarize_values`, timings, engine facts.

    `infos` gives each metric's support (default: real-valued, Student t).
    """
    infos = infos or {}
    final = {
        k: summarize_values(v, infos.get(k, MetricInfo(k, FINAL)), level)
        for k, v in sim.final.items()
    }
    return {
        "final": final,
        "compile_seconds": sim.compile_seconds,
        "run_seconds": sim.run_seconds,
        "steps_per_second": sim.agent_steps_per_second,
        "steps": sim.steps,
        "engine": sim.info,
    }


def declared(env: Any, params: Any, agents: dict[str, Any], horizon: int) -> tuple[dict, dict]:
    """({agent: {metric: exact expected per-step increments, (T,)}}, {agent: info dict}) from
    the optional hooks ``env.oracle(params, agent, horizon)`` and ``agent.info(spec)``; agents or
    envs without them give nothing."""
    oracles, infos = {}, {}
    hook = getattr(env, "oracle", None)
    spec = None
    for name, agent in agents.items():
        if hook is not None:
            found = {k: np.asarray(v, np.float64) for k, v in hook(params, agent, horizon).items()}
            if found:
                oracles[name] = found
        if hasattr(agent, "info"):
            spec = env.spec(params, horizon) if spec is None else spec
            info = agent.info(spec)
            if info:
                infos[name] = info
    return oracles, infos


def oracle_summary(rounds: np.ndarray, per_step: np.ndarray) -> dict[str, Any]:
    """The oracle's figures on the recorded grid: its per-step mean over t = 1..T, and the
    largest of its means over the recorded intervals (t_{i-1}, t_i] (per step when every round
    is recorded) with that interval (1-based, inclusive)."""
    per_step = np.asarray(per_step, np.float64)
    cum = np.concatenate([[0.0], np.cumsum(per_step)])
    ends = np.asarray(rounds, np.int64)
    starts = np.concatenate([[0], ends[:-1]])
    means = (cum[ends] - cum[starts]) / (ends - starts)
    i = int(np.argmax(means))
    return {
        "oracle_mean": float(cum[-1] / per_step.size),
        "oracle_max": float(means[i]),
        "oracle_t": [int(starts[i]) + 1, int(ends[i])],
    }


def self_check(
    rounds: np.ndarray, cumulative: np.ndarray, oracle_mean: float, oracle_max: float, oracle_t
) -> dict[str, Any]:
    """A run's curve metric against its exact oracle (`oracle_summary`), from the recorded
    cumulative values `cumulative` (seeds x rounds, the last round = T):

    * ``mean``: the per-step mean over t and seeds, C_s(T)/T averaged over seeds, its standard
      error over seeds, the oracle mean, z = (value - oracle)/se and the ratio;
    * ``max``: the largest mean over seeds of the per-step values (per recorded interval when
      not every round is recorded), where it is, the oracle's largest, and the ratio (a max of
      noisy means: above 1 by the noise, more so with few seeds); and at the oracle's argmax
      interval the mean over seeds with its standard error and z (no selection bias there).

    z is None with one seed (no standard error); with a zero standard error (every seed the
    same) it is 0 where the value equals the oracle, else +-inf.
    """
    c = np.asarray(cumulative, np.float64)
    n = c.shape[0]
    ends = np.asarray(rounds, np.int64)
    starts = np.concatenate([[0], ends[:-1]])
    per_seed = c[:, -1] / ends[-1]
    steps = np.diff(np.concatenate([np.zeros((n, 1)), c], axis=1), axis=1) / (ends - starts)
    means = steps.mean(axis=0)
    j = int(np.argmax(means))
    i = int(np.searchsorted(ends, oracle_t[1]))

    def se(x):
        return float(np.std(x, ddof=1) / np.sqrt(n)) if n > 1 else None

    def z(value, oracle, err):
        if err is None:  # one seed: no standard error
            return None
        if err == 0:  # every seed the same: any difference is infinitely many se
            return 0.0 if value == oracle else float(np.copysign(np.inf, value - oracle))
        return (value - oracle) / err

    def ratio(value, oracle):
        return value / oracle if oracle else None

    mean, mean_se = float(per_seed.mean()), se(per_seed)
    at, at_se = float(means[i]), se(steps[:, i])
    return {
        "per_step": bool(np.all(ends - starts == 1)),
        "mean": {
            "value": mean,
            "se": mean_se,
            "oracle": oracle_mean,
            "z": z(mean, oracle_mean, mean_se),
            "ratio": ratio(mean, oracle_mean),
        },
        "max": {
            "value": float(means[j]),
            "t": [int(starts[j]) + 1, int(ends[j])],
            "oracle": oracle_max,
            "oracle_t": list(oracle_t),
            "ratio": ratio(float(means[j]), oracle_max),
            "at_oracle_t": at,
            "se": at_se,
            "z": z(at, oracle_max, at_se),
        },
    }


def versions() -> dict[str, str]:
    out = {}
    for p in PACKAGES:
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[p] = metadata.version(p)
    return out


@functools.cache
def git_revision() -> str | None:
    """HEAD's commit, with ``-dirty`` appended when tracked files differ from it (the results
    then come from code no commit holds); None outside a git checkout. Asked once per process
    (two git calls): the code a process runs does not change while it runs."""
    here = Path(__file__).resolve().parent
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5
        ).stdout.strip()
        if not head:
            return None
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=here, capture_output=True, text=True, timeout=5,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{head}-dirty" if dirty else head


def write_run(
    out_dir: Path,
    config: dict,
    sims: dict[str, SimResult],
    extra: dict | None = None,
    env: Any = None,
    oracles: dict[str, dict[str, np.ndarray]] | None = None,
    infos: dict[str, dict] | None = None,
) -> dict:
    """Write metrics.parquet, final.parquet, then summary.json (atomically); return the summary.

    `env` supplies the metric semantics (``metric_info``, ``primary_metric``, ``x_label``);
    without it every metric is real-valued and the defaults of `protocol.EnvBase` apply.
    `oracles` and `infos` (`declared`) add each agent's ``oracle`` self-check and ``info``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    mark_unfinished(out_dir)
    df = metrics_frame(sims)
    atomic_write(out_dir / METRICS_FILE, lambda p: df.to_parquet(p, index=False))
    finals = final_frame(sims)
    atomic_write(out_dir / FINAL_FILE, lambda p: finals.to_parquet(p, index=False))
    semantics = metric_infos(env, sims)
    first = next(iter(sims.values()))
    agents = {name: summarize(sim, infos=semantics) for name, sim in sims.items()}
    for name, per_metric in (oracles or {}).items():
        sim = sims[name]
        checks = {}
        for metric, per_step in per_metric.items():
            if metric in sim.curves and np.size(per_step) == sim.horizon:
                o = oracle_summary(sim.rounds, per_step)
                checks[metric] = {**o, **self_check(sim.rounds, sim.curves[metric], **o)}
        if checks:
            agents[name]["oracle"] = checks
    for name, info in (infos or {}).items():
        agents[name]["info"] = info
    summary = {
        "agents": agents,
        "horizon": first.horizon,
        "seeds": first.seeds,
        "metrics": {k: info._asdict() for k, info in semantics.items()},
        "primary_metric": getattr(env, "primary_metric", "regret"),
        "x_label": getattr(env, "x_label", "round t"),
        "config": config,
        "versions": versions(),
        "git_revision": git_revision(),
        **(extra or {}),
    }
    text = json.dumps(summary, indent=2, default=_json_default)
    atomic_write(out_dir / SUMMARY_FILE, lambda p: p.write_text(text))
    return summary


def _json_default(x):
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    raise TypeError(f"not JSON serialisable: {type(x).__name__}")


# Settings that change how a run is shown or compiled, never its results: a finished run whose
# config differs from the requested one only in these is not recomputed.
DISPLAY_SETTINGS = ("progress", "plot", "compile_cache", "metric", "reference")


def result_config(config: dict) -> dict:
    """The part of a run's config that determines its results (JSON-normalised)."""
    return {k: v for k, v in json.loads(json.dumps(config)).items() if k not in DISPLAY_SETTINGS}


def remove_stray_temporaries(out_dir: Path) -> list[Path]:
    """Delete the temporary files `atomic_write` leaves when killed before its rename."""
    stray = [p for p in Path(out_dir).glob(".*.tmp") if p.is_file()]
    for p in stray:
        p.unlink(missing_ok=True)
    return stray


def finished_summary(out_dir: Path) -> dict | None:
    """The summary of the finished run in `out_dir` (summary.json readable, beside
    metrics.parquet and final.parquet), else None."""
    path = Path(out_dir) / SUMMARY_FILE
    if not all((Path(out_dir) / f).is_file() for f in (METRICS_FILE, FINAL_FILE)):
        return None
    if not path.is_file():
        return None
    try:
        summary = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return summary if isinstance(summary, dict) else None


def current_prng() -> str:
    """The engine's random bit generator in this process, as summary.json records it
    (``engine.prng``; chosen by ``REGRETLAB_RNG``)."""
    from experiments.simulate import GENERATOR, PRNG_NAMES

    return PRNG_NAMES[GENERATOR]


def mismatch(out_dir: Path, config: dict) -> str | None:
    """Why `out_dir` does not hold the finished run of `config`: None when it does (up to the
    display and cache settings of `DISPLAY_SETTINGS`), ``""`` when it holds no finished run,
    else one phrase: ``another config (differs in: horizon, agents)``, or ``another random bit
    generator (...)`` where the run was computed under another ``REGRETLAB_RNG`` (its
    ``engine.prng``; a run that did not record one is taken as this generator's)."""
    summary = finished_summary(out_dir)
    if summary is None:
        return ""
    old, new = result_config(summary.get("config") or {}), result_config(config)
    if old != new:
        return f"another config (differs in: {', '.join(config_differences(old, new))})"
    now = current_prng()
    used = sorted(
        {
            a["engine"]["prng"]
            for a in (summary.get("agents") or {}).values()
            if isinstance(a, dict) and isinstance(a.get("engine"), dict) and "prng" in a["engine"]
        }
    )
    if used and used != [now]:
        return (
            f"another random bit generator (finished with {'; '.join(used)}; REGRETLAB_RNG"
            f" now selects {now})"
        )
    return None


def config_differences(old: Any, new: Any, prefix: str = "", limit: int = 4) -> list[str]:
    """The dotted paths where two resolved configs differ (at most `limit`, then ``...``)."""
    out: list[str] = []

    def walk(a: Any, b: Any, path: str) -> None:
        if isinstance(a, dict) and isinstance(b, dict):
            for k in [*a, *(k for k in b if k not in a)]:
                walk(a.get(k, _MISSING), b.get(k, _MISSING), f"{path}.{k}" if path else str(k))
        elif a != b:
            out.append(path or "(the whole config)")

    walk(old, new, prefix)
    return out[:limit] + (["..."] if len(out) > limit else [])


_MISSING = object()


def holds_run(directory: Path) -> bool:
    """Whether `directory` holds a run, finished or not: Hydra's ``.hydra/overrides.yaml`` of a
    job, or any of the result files."""
    d = Path(directory)
    return (d / ".hydra" / "overrides.yaml").is_file() or any(
        (d / f).is_file() for f in (SUMMARY_FILE, METRICS_FILE, FINAL_FILE)
    )


def job_dirs(root: Path) -> dict[int, Path]:
    """The job directories of a sweep in `root` (a multirun's or an in-program sweep's): its
    numbered subdirectories holding a run (`holds_run`), by number."""
    root = Path(root)
    if not root.is_dir():
        return {}
    return {
        int(d.name): d
        for d in root.iterdir()
        if d.is_dir() and d.name.isdigit() and str(int(d.name)) == d.name and holds_run(d)
    }


def reuse_conflicts(root: Path, configs: list[dict | None] | None) -> list[str]:
    """What in `root` belongs to another command, one phrase each ([] when nothing does).

    `configs`: a sweep's jobs in order (job i in ``root/i``; None for a job whose own directory
    is not compared, e.g. the root of an in-program sweep run as a multirun job): a job
    directory holding a finished run of another config (`mismatch`; another random bit
    generator is not a conflict, the job is recomputed), a job directory beyond the sweep's
    jobs, a single run's results in `root` itself. `configs` None (a single run into `root`):
    job directories of a sweep below it."""
    root = Path(root)
    found = job_dirs(root)
    if configs is None:
        if found:
            names = ", ".join(f"{n}/" for n in sorted(found)[:3])
            names += ", ..." if len(found) > 3 else ""
            return [f"the jobs of a sweep ({names})"]
        return []
    out = []
    if any((root / f).is_file() for f in (SUMMARY_FILE, METRICS_FILE, FINAL_FILE)):
        out.append("the results of a single run")
    for n, config in enumerate(configs):
        if n in found and config is not None:
            why = mismatch(found[n], config)
            if why and why.startswith("another config"):
                out.append(f"job {n}: a finished run of {why}")
    stale = sorted(n for n in found if n >= len(configs))
    if stale:
        what = ", ".join(map(str, stale[:3])) + (", ..." if len(stale) > 3 else "")
        n = len(configs)
        out.append(
            f"job{'s' if len(stale) > 1 else ''} {what}, beyond this sweep's {n} job"
            + ("s" if n > 1 else "")
        )
    return out


def is_complete(out_dir: Path, config: dict | None = None) -> bool:
    """True when `out_dir` holds a finished run (of `config`, when given, up to the display
    and cache settings of `DISPLAY_SETTINGS`, computed with this process's random bit
    generator: `mismatch`)."""
    if config is None:
        return finished_summary(out_dir) is not None
    return mismatch(out_dir, config) is None


@dataclass
class Run:
    """A finished run directory, loaded without recomputation."""

    path: Path
    summary: dict
    _metrics: pd.DataFrame | None = None

    @property
    def metrics(self) -> pd.DataFrame:
        if self._metrics is None:
            self._metrics = pd.read_parquet(self.path / METRICS_FILE)
        return self._metrics

    @property
    def finals(self) -> pd.DataFrame:
        """Per-seed final metrics (`final.parquet`): columns agent, seed, one per metric."""
        return pd.read_parquet(self.path / FINAL_FILE)

    def final(self, agent: str, metric: str) -> np.ndarray:
        """One agent's per-seed values of a final metric, ordered by seed."""
        df = self.finals
        rows = df[df["agent"] == agent].sort_values("seed")
        if rows.empty:
            raise KeyError(f"{self.path}: no agent {agent!r} (has {list(self.summary['agents'])})")
        return rows[metric].to_numpy(np.float64)

    @property
    def headline(self) -> str:
        """The run's headline metric: the CLI's ``metric`` choice, else the env's primary one."""
        return self.summary.get("metric") or self.primary_metric

    @property
    def primary_metric(self) -> str:
        return self.summary.get("primary_metric", "regret")

    @property
    def x_label(self) -> str:
        """The x-axis of the run's curves (e.g. "round t", "episode k")."""
        return self.summary.get("x_label", "round t")

    def metric_info(self, name: str) -> MetricInfo:
        """The `MetricInfo` recorded for `name`; for runs written before semantics were
        recorded: a real-valued curve if the metrics table has it, else a final value."""
        recorded = self.summary.get("metrics", {}).get(name)
        if recorded is not None:
            return MetricInfo(**recorded)
        return MetricInfo(name, CURVE if name in self.metrics.columns else FINAL)

    def final_names(self) -> list[str]:
        """Names of the final metrics in the summary (curves' final values included)."""
        agents = self.summary.get("agents", {})
        return list(next(iter(agents.values()))["final"]) if agents else []

    @property
    def overrides(self) -> list[str]:
        """The Hydra overrides of this job (from .hydra/overrides.yaml), if recorded."""
        f = self.path / ".hydra" / "overrides.yaml"
        if not f.is_file():
            return []
        from omegaconf import OmegaConf

        return [str(o) for o in OmegaConf.load(f)]


def find_runs(paths: Iterable[str | Path]) -> list[Run]:
    """Finished runs in `paths`: run directories, or multirun directories searched recursively.

    Raises FileNotFoundError naming the first path that does not exist or holds no finished run.
    """
    runs = []
    for p in map(Path, paths):
        if not p.exists():
            raise FileNotFoundError(f"{p}: no such run directory")
        found = sorted(
            {s.parent for s in p.rglob(SUMMARY_FILE)} if p.is_dir() else set(), key=_natural_key
        )
        found = [d for d in found if is_complete(d)]
        if not found:
            raise FileNotFoundError(f"{p}: holds no finished run ({SUMMARY_FILE} + {METRICS_FILE})")
        runs += [Run(d, json.loads((d / SUMMARY_FILE).read_text())) for d in found]
    return runs


def unfinished_runs(paths: Iterable[str | Path]) -> list[Path]:
    """Run directories in `paths` that are not finished runs (`is_complete`): a job killed or
    still running (Hydra's ``.hydra/overrides.yaml`` without ``summary.json``) or a half-written
    one (some of the result files only). A directory holding runs below it (a sweep's root) is
    not itself a run."""
    out: set[Path] = set()
    for p in map(Path, paths):
        if not p.is_dir():
            continue
        marks = [
            *p.rglob(".hydra/overrides.yaml"),
            *(f for name in (SUMMARY_FILE, METRICS_FILE, FINAL_FILE) for f in p.rglob(name)),
        ]
        dirs = {m.parent.parent if m.name == "overrides.yaml" else m.parent for m in marks}
        for d in dirs:
            if is_complete(d) or any(o != d and d in o.parents for o in dirs):
                continue
            out.add(d)
    return sorted(out, key=_natural_key)


def _natural_key(p: Path):
    return [int(s) if s.isdigit() else s for s in p.parts]
