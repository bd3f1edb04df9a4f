"""The command line, end to end, in subprocesses: `regretlab`, `regretlab-plot`, `regretlab-table`.

The console scripts are `experiments.run:main`, `experiments.plot:main` and
`experiments.tables:main`; the tests run the same code as `python -m experiments.<module>` with
this interpreter (no nested `uv`), on tiny horizons and seed counts, writing only under pytest's
temporary directories (`hydra.run.dir` / `hydra.sweep.dir`). Expected numbers are recomputed
from `metrics.parquet` with numpy/scipy, not read back through the package's own statistics.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy import stats

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
TINY = ["horizon=300", "seeds=4", "progress=false"]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


_CACHES: dict[str, str] = {}  # environment for the subprocesses, set once per session


@pytest.fixture(scope="session", autouse=True)
def _caches(tmp_path_factory):
    """Speed only: bytecode and XLA executables cached across this session's subprocesses.

    Where PYTHONDONTWRITEBYTECODE is set, every interpreter would recompile JAX's sources (~8 s
    of CPU each); PYTHONPYCACHEPREFIX keeps the bytecode in pytest's temporary directory instead
    of the source tree. JAX's persistent cache lets runs of the same shapes skip XLA compilation.
    """
    d = tmp_path_factory.mktemp("caches")
    _CACHES.update(
        PYTHONPYCACHEPREFIX=str(d / "pycache"),
        JAX_COMPILATION_CACHE_DIR=str(d / "jax"),
        JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
        JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="-1",
    )
    yield
    _CACHES.clear()


def subprocess_env(extra_env: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a command-line subprocess: this one's, with the session's caches
    (`_caches`; bytecode written there even where PYTHONDONTWRITEBYTECODE is set) and without
    HYDRA_FULL_ERROR (the one-line error messages are what the tests read)."""
    drop = ("HYDRA_FULL_ERROR", "PYTHONDONTWRITEBYTECODE")
    return {k: v for k, v in os.environ.items() if k not in drop} | _CACHES | (extra_env or {})


def cli(
    module: str,
    *args: str,
    cwd: Path = ROOT,
    path: tuple[Path, ...] = (),
    extra_env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess:
    """`python -m experiments.<module> ARGS` with the repository (and `path`) on PYTHONPATH."""
    env = subprocess_env(extra_env)
    env["PYTHONPATH"] = os.pathsep.join(str(p) for p in (*path, ROOT))
    return subprocess.run(
        [sys.executable, "-m", f"experiments.{module}", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def regretlab(*args: str) -> subprocess.CompletedProcess:
    """In process: the `regretlab` console script's own function (`experiments.run.cli`, Hydra's
    run included) on ARGS from the repository root, as the subprocess's (exit status, stdout,
    stderr). Only for command lines that stop with an error before anything is compiled (speed
    only: no interpreter start-up; each test list here keeps one case that runs through `cli`).

    The process-wide state the command changes is restored: argv, the SIGINT and SIGTERM
    handlers (and `experiments.interrupt`'s flag), logging
    (Hydra's handlers, the levels `main` sets), JAX's x64 and cache settings, Hydra's globals.
    Hydra's `logging.config.dictConfig` closes every live handler (pytest's own among them): they
    are hidden from it (logging's private registries) for the call and restored after.
    """
    import logging
    import signal

    import jax
    from hydra.core.global_hydra import GlobalHydra

    from experiments import interrupt
    from experiments.run import cli as entry

    root = logging.getLogger()
    root_handlers, level = root.handlers[:], root.level
    registry, named = logging._handlerList[:], dict(logging._handlers)  # type: ignore[attr-defined]
    del logging._handlerList[:]  # type: ignore[attr-defined]
    levels = {n: logging.getLogger(n).level for n in ("jax", "jax._src.xla_bridge", "matplotlib")}
    flags = ("jax_enable_x64", "jax_compilation_cache_dir")
    flags += ("jax_persistent_cache_min_compile_time_secs",)
    config = {k: getattr(jax.config, k) for k in flags}
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    argv, full_error = sys.argv, None
    out, err, code = io.StringIO(), io.StringIO(), 0
    try:
        full_error = os.environ.pop("HYDRA_FULL_ERROR", None)  # as `cli` drops it
        sys.argv = ["regretlab", *args]
        with (
            contextlib.chdir(ROOT),
            contextlib.redirect_stdout(out),
            contextlib.redirect_stderr(err),
        ):
            entry()
    except SystemExit as e:
        code = e.code
    finally:
        sys.argv = argv
        if full_error is not None:
            os.environ["HYDRA_FULL_ERROR"] = full_error
        for number, handler in handlers.items():
            signal.signal(number, handler)
        interrupt._pending = False
        for ref in logging._handlerList[:]:  # type: ignore[attr-defined]  # Hydra's
            if (h := ref()) is not None:
                h.close()
        logging._handlerList[:] = registry  # type: ignore[attr-defined]
        logging._handlers.clear()  # type: ignore[attr-defined]
        logging._handlers.update(named)  # type: ignore[attr-defined]
        root.handlers[:] = root_handlers
        root.setLevel(level)
        for name, lv in levels.items():
            logging.getLogger(name).setLevel(lv)
        for k, v in config.items():
            jax.config.update(k, v)
        GlobalHydra.instance().clear()
    return subprocess.CompletedProcess(["regretlab", *args], code, out.getvalue(), err.getvalue())


def tool(module: str, *args: str) -> subprocess.CompletedProcess:
    """In process: `regretlab-plot` / `regretlab-table` ARGS (`experiments.<module>.main`, the
    console script's entry), as the subprocess's (exit status, stdout, stderr).

    Speed only (no interpreter start-up); tests here run each tool once through `cli` too.
    """
    import importlib

    entry = importlib.import_module(f"experiments.{module}").main
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = entry(list(args))
        except SystemExit as e:  # argparse's own errors
            code = e.code
    return subprocess.CompletedProcess([module, *args], code or 0, out.getvalue(), err.getvalue())


def ok(proc: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


def files_under(path: Path) -> list[Path]:
    return [p for p in path.rglob("*") if p.is_file()] if path.exists() else []


def summary(run_dir: Path) -> dict:
    return json.loads((run_dir / "summary.json").read_text())


def regret_cell(final: dict) -> str:
    """A final metric as the tables print it: `mean [ci_low, ci_high]`, 4 significant digits."""
    return f"{final['mean']:.4g} [{final['ci_low']:.4g}, {final['ci_high']:.4g}]"


def parse_table(text: str, fmt: str = "markdown") -> dict[str, dict[str, str]]:
    """{row label: {column header: cell}} of a Markdown or LaTeX table printed by the tools."""
    if fmt == "markdown":
        lines = [ln.strip() for ln in text.splitlines() if ln.startswith("|")]
        rows = [[c.strip() for c in ln.strip("|").split("|")] for ln in lines]
        rows = [r for r in rows if r and not set("".join(r)) <= {"-"}]
    else:
        lines = [ln.strip().removesuffix("\\\\") for ln in text.splitlines() if "&" in ln]
        rows = [[c.strip() for c in ln.split("&")] for ln in lines]
    header, *body = rows
    return {r[0]: dict(zip(header[1:], r[1:], strict=True)) for r in body}


# ------------------------------------------------------------------ one run, one sweep
@pytest.fixture(scope="module")
def run(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    d = tmp_path_factory.mktemp("cli") / "run"
    proc = ok(cli("run", "agents=[ucb1]", *TINY, f"hydra.run.dir={d}"))
    return d, proc


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("cli") / "sweep"
    ok(cli("run", "-m", "env.K=3,4", "agents=[ucb1]", *TINY, f"hydra.sweep.dir={d}"))
    return d


def test_run_writes_metrics_summary_figure_and_prints_table(run):
    d, proc = run
    df = pd.read_parquet(d / "metrics.parquet")
    assert {"agent", "seed", "t", "regret"} <= set(df.columns)
    assert set(df.agent) == {"ucb1"} and sorted(set(df.seed)) == [0, 1, 2, 3]
    rounds = np.sort(df.t.unique())
    assert rounds[-1] == 300 and len(df) == 4 * rounds.size
    wide = df.pivot(index="seed", columns="t", values="regret").to_numpy()
    # cumulative pseudo-regret: non-decreasing, and at most t * max gap (0.8 for linspace(.1,.9))
    assert np.all(np.diff(wide, axis=1) >= 0)
    assert np.all(wide <= rounds * 0.8 + 1e-3) and np.all(wide >= 0)

    s = summary(d)
    final = s["agents"]["ucb1"]["final"]["regret"]
    # Pseudo-regret is declared non-negative (bandits.envs): its interval is scipy's BCa
    # bootstrap of the mean (4000 resamples, generator seeded 0), which never goes below 0.
    x = wide[:, -1].astype(np.float64)
    mean = x.mean()
    lo, hi = stats.bootstrap(
        (x,),
        np.mean,
        method="BCa",
        n_resamples=4000,
        rng=np.random.default_rng(0),
        vectorized=True,
    ).confidence_interval
    assert final["median"] == pytest.approx(np.median(x), rel=1e-5) and lo >= 0
    # float32 metrics summed over 300 rounds: agreement to 1e-5 relative is float32 rounding
    got = [final["mean"], final["ci_low"], final["ci_high"]]
    np.testing.assert_allclose(got, [mean, lo, hi], rtol=1e-5)
    assert (s["horizon"], s["seeds"], final["n"]) == (300, 4, 4)
    assert s["agents"]["ucb1"]["steps_per_second"] > 0

    assert (d / "regret.png").read_bytes()[:8] == PNG_MAGIC
    table = parse_table(proc.stdout)
    assert list(table) == ["ucb1"]
    assert table["ucb1"]["regret (95% CI)"] == regret_cell(final)
    assert float(table["ucb1"]["agent-steps/s"]) > 0
    assert f"run directory: {d}" in proc.stdout


def test_run_files_are_readable_like_the_rest_of_the_run_directory(run):
    """Results are shared (clusters, collaborators): they must get the umask's permissions, like
    the files Hydra writes, not tempfile.mkstemp's private 0600 (see the report for the fix)."""
    d = run[0]
    want = (d / ".hydra" / "config.yaml").stat().st_mode & 0o777
    for name in ("metrics.parquet", "summary.json", "regret.png"):
        assert (d / name).stat().st_mode & 0o777 == want, name


def test_multirun_writes_one_run_directory_per_job(sweep):
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir())
    assert [p.name for p in jobs] == ["0", "1"]
    for job, k in zip(jobs, (3, 4), strict=True):
        s = summary(job)
        assert s["config"]["env"]["K"] == k
        df = pd.read_parquet(job / "metrics.parquet")
        assert len(df.seed.unique()) == 4 and df.t.max() == 300
        assert (job / "regret.png").read_bytes()[:8] == PNG_MAGIC
        assert f"env.K={k}" in yaml.safe_load((job / ".hydra/overrides.yaml").read_text())


def test_rerun_skips_a_finished_run_and_recomputes_a_changed_config(run, tmp_path):
    d = tmp_path / "run"
    shutil.copytree(run[0], d)
    before = (d / "summary.json").read_bytes()
    again = ok(cli("run", "agents=[ucb1]", *TINY, f"hydra.run.dir={d}"))
    assert "finished run found, not recomputed" in again.stdout
    assert (d / "summary.json").read_bytes() == before

    (d / "regret_compare.png").write_bytes((d / "regret.png").read_bytes())  # regretlab-plot's
    changed = [o if o != "seeds=4" else "seeds=5" for o in TINY]
    proc = ok(cli("run", "agents=[ucb1]", *changed, "plot=false", f"hydra.run.dir={d}"))
    assert "not recomputed" not in proc.stdout
    line = f"{d}: holds a finished run of another config (differs in: seeds): recomputed, replacing"
    assert line in proc.stdout  # a finished run of another config is never replaced silently
    assert summary(d)["seeds"] == 5
    assert sorted(pd.read_parquet(d / "metrics.parquet").seed.unique()) == [0, 1, 2, 3, 4]
    assert not list(d.glob("*.png"))  # the old run's figures went with it (plot=false now)


def test_resume_prints_the_table_in_the_display_settings_asked_for(run, tmp_path):
    """`metric` and `reference` are display settings: a finished run found on resume is not
    recomputed, and its table is printed from the saved results in those settings."""
    d = tmp_path / "run"
    shutil.copytree(run[0], d)
    before = (d / "summary.json").read_bytes()
    args = ("metric=realized_regret", "reference=ucb1")
    proc = ok(cli("run", "agents=[ucb1]", *TINY, *args, f"hydra.run.dir={d}"))
    assert "finished run found, not recomputed" in proc.stdout
    table = parse_table(proc.stdout)
    final = summary(d)["agents"]["ucb1"]["final"]["realized_regret"]
    assert table["ucb1"]["realized_regret (95% CI)"] == regret_cell(final)
    assert table["ucb1"]["realized_regret / ucb1 (95% CI)"] == "1 [1, 1]"
    assert f"run directory: {d}" in proc.stdout
    assert (d / "summary.json").read_bytes() == before


def test_a_run_of_another_random_bit_generator_is_recomputed_with_a_line(run, tmp_path):
    """`REGRETLAB_RNG` changes every draw: a run finished under another generator (its
    `engine.prng`) is not taken for finished."""
    d = tmp_path / "run"
    shutil.copytree(run[0], d)
    env = {"REGRETLAB_RNG": "threefry-partitionable"}
    proc = ok(cli("run", "agents=[ucb1]", *TINY, f"hydra.run.dir={d}", extra_env=env))
    assert "not recomputed" not in proc.stdout
    assert (
        f"{d}: holds a finished run of another random bit generator (finished with" in proc.stdout
    )
    assert "partitionable (jax default)" in summary(d)["agents"]["ucb1"]["engine"]["prng"]
    again = ok(cli("run", "agents=[ucb1]", *TINY, f"hydra.run.dir={d}", extra_env=env))
    assert "finished run found, not recomputed" in again.stdout


def test_interrupted_sweep_resumes_only_the_unfinished_job(sweep, tmp_path):
    d = tmp_path / "sweep"
    shutil.copytree(sweep, d)
    (d / "1" / "summary.json").unlink()  # written last: a job killed before it is unfinished
    job0 = (d / "0" / "summary.json").read_bytes()
    proc = ok(cli("run", "-m", "env.K=3,4", "agents=[ucb1]", *TINY, f"hydra.sweep.dir={d}"))
    assert proc.stdout.count("finished run found, not recomputed") == 1
    assert f"{d / '0'}: finished run found" in proc.stdout
    assert (d / "0" / "summary.json").read_bytes() == job0
    # the recomputed job is bit-identical to the original (same config, same seed)
    pd.testing.assert_frame_equal(
        pd.read_parquet(d / "1" / "metrics.parquet"),
        pd.read_parquet(sweep / "1" / "metrics.parquet"),
    )


# ------------------------------------------------------------------ plot and table
def test_plot_a_run_directory(run, tmp_path):
    out = tmp_path / "again.png"
    proc = ok(cli("plot", str(run[0]), "-o", str(out)))
    assert proc.stdout.strip() == str(out)
    assert out.read_bytes()[:8] == PNG_MAGIC


def test_plot_a_multirun_directory(sweep, tmp_path):
    d = tmp_path / "sweep"
    shutil.copytree(sweep, d)
    proc = ok(tool("plot", str(d)))  # in process; through the interpreter above
    assert proc.stdout.strip() == str(d / "regret.png")
    assert (d / "regret.png").read_bytes()[:8] == PNG_MAGIC


def test_table_of_a_run_directory(run):
    table = parse_table(ok(cli("tables", str(run[0]))).stdout)
    final = summary(run[0])["agents"]["ucb1"]["final"]
    assert list(table) == ["ucb1"]
    for metric in ("regret", "realized_regret"):
        assert table["ucb1"][f"{metric} (95% CI)"] == regret_cell(final[metric])


@pytest.mark.parametrize("fmt", ["markdown", "latex"])
def test_table_of_a_multirun_directory(sweep, fmt: str):
    out = ok(tool("tables", str(sweep), "--format", fmt)).stdout  # in process; see the above
    table = parse_table(out, fmt)
    finals = [summary(sweep / j)["agents"]["ucb1"]["final"]["regret"] for j in ("0", "1")]
    column = "regret (95% CI)" if fmt == "markdown" else "regret (95\\% CI)"
    assert list(table) == ["ucb1 (env.K=3)", "ucb1 (env.K=4)"]
    for f, label in zip(finals, table, strict=True):
        assert table[label][column] == regret_cell(f)  # env.K differs: not compared, no bold
    assert "best marked only among rows of the same environment" in out
    if fmt == "latex":
        # lrrrr: agent, regret, its median, steps/s (and one more column per extra metric)
        assert out.startswith("\\begin{tabular}{lrrrr}")
        assert "\\end{tabular}\n% best marked only among rows" in out


@pytest.mark.parametrize("module", ["plot", "tables"])
def test_plot_and_table_of_a_missing_directory_fail_in_one_line(module: str):
    proc = cli(module, "/missing/dir")
    assert proc.returncode != 0
    assert len(proc.stderr.strip().splitlines()) == 1 and "/missing/dir" in proc.stderr


# ------------------------------------------------------------------ bad input
BAD_INPUT = [  # (override, field named first in the one-line error)
    ("env.K=0", "env.K"),
    ("env.means=[0.5,1.5]", "env.means"),
    ("horizon=-5", "horizon"),
    ("seeds=0", "seeds"),
    ("record.grid=foo", "record.grid"),
    ("chunk_size=150", "chunk_size"),
    ("metric=foo", "metric"),
]


@pytest.mark.parametrize(("override", "field"), BAD_INPUT)
def test_bad_input_exits_with_one_line_and_no_run_directory(override, field, tmp_path):
    """The first through the interpreter, the others in process (`regretlab`: speed only)."""
    d = tmp_path / "run"
    run = cli if (override, field) == BAD_INPUT[0] else lambda _, *args: regretlab(*args)
    proc = run("run", "agents=[ucb1]", "progress=false", override, f"hydra.run.dir={d}")
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"regretlab: error: {field}: "), lines
    assert not d.exists(), files_under(d)  # no run directory, not even an empty one


def test_unknown_agent_exits_naming_the_config(tmp_path):
    d = tmp_path / "run"
    proc = regretlab("agents=[nope]", f"hydra.run.dir={d}")  # in process
    assert proc.returncode == 2
    assert proc.stderr.startswith("regretlab: error: agents: no config 'nope' (one of: ")
    assert not d.exists(), files_under(d)  # no run directory, not even an empty one


# ------------------------------------------------------------------ Hydra's own flags
def test_help_lists_the_config_groups():
    """Through the installed console script itself, which must exist beside the interpreter."""
    script = Path(sys.executable).parent / "regretlab"
    env = subprocess_env()
    proc = ok(subprocess.run([str(script), "--help"], capture_output=True, text=True, env=env))
    envs = ", ".join(sorted(p.stem for p in (ROOT / "conf/env").glob("*.yaml")))
    assert "== Configuration groups ==" in proc.stdout
    assert f"env: {envs}\n" in proc.stdout
    assert "agents: " in proc.stdout and "ucb1" in proc.stdout


def test_cfg_job_prints_the_composed_config_and_runs_nothing(tmp_path):
    proc = ok(cli("run", "--cfg", "job", "agents=[ucb1,thompson]", "horizon=7", cwd=tmp_path))
    cfg = yaml.safe_load(proc.stdout)
    assert cfg["horizon"] == 7 and list(cfg["agents"]) == ["ucb1", "thompson"]
    assert cfg["env"]["_target_"] == "bandits.envs.bernoulli_bandit"
    assert list(tmp_path.iterdir()) == []  # no outputs/ directory


# ------------------------------------------------------------------ a user's own agent
def test_own_agent_runs_end_to_end_with_and_without_yaml(tmp_path):
    """docs/usage.md's two ways, in one run from the repository root with PYTHONPATH=examples:
    the YAML on the search path (`hydra.searchpath=[file://examples/conf] agents=[...,my_agent]`)
    and no YAML (`+agents.<name>._target_=my_agent.SoftmaxExploration`).

    The second copy runs at tau = 1000, where softmax exploration is uniform play up to factors
    exp(+-1/tau) on the probabilities, so E[regret_T] = T mean_a(gap_a) (closed form)."""
    d = tmp_path / "run"
    T, n = 300, 100
    proc = ok(
        cli(
            "run",
            "hydra.searchpath=[file://examples/conf]",
            "agents=[ucb1,my_agent]",
            "+agents.hot._target_=my_agent.SoftmaxExploration",
            "+agents.hot.tau=1000",
            f"horizon={T}",
            f"seeds={n}",
            "progress=false",
            f"hydra.run.dir={d}",
            path=(EXAMPLES,),
        )
    )
    s = summary(d)
    assert list(s["agents"]) == ["ucb1", "my_agent", "hot"]
    assert s["config"]["agents"]["my_agent"]["_target_"] == "my_agent.SoftmaxExploration"
    assert s["config"]["agents"]["hot"] == {"_target_": "my_agent.SoftmaxExploration", "tau": 1000}
    assert set(pd.read_parquet(d / "metrics.parquet").agent) == {"ucb1", "my_agent", "hot"}
    assert list(parse_table(proc.stdout)) == ["ucb1", "my_agent", "hot"]

    gaps = 0.9 - np.linspace(0.1, 0.9, 10)
    got = s["agents"]["hot"]["final"]["regret"]["mean"]
    # Sampling sd of the mean over n seeds: sqrt(T var(gap) / n) ~= 0.49; the softmax bias is at
    # most T max(gap) (e^{2/tau} - 1) ~= 0.48. Tolerance: 5 sd + bias.
    tol = 5 * np.sqrt(T * gaps.var() / n) + T * gaps.max() * np.expm1(2 / 1000)
    assert abs(got - T * gaps.mean()) < tol, (got, T * gaps.mean(), tol)


# ------------------------------------------------------------------ the default experiment
def test_readme_lists_every_env_and_agent_config():
    """The README's list of config groups names every file of conf/env/ and conf/agents/ (the
    families it names by a prefix, ``stream_*``, cover theirs)."""
    readme = (ROOT / "README.md").read_text()
    listed = set(re.findall(r"`([a-z0-9_]+\*?)`", readme))
    prefixes = [name[:-1] for name in listed if name.endswith("*")]
    for group in ("env", "agents"):
        for path in sorted((ROOT / "conf" / group).glob("*.yaml")):
            name = path.stem
            assert name in listed or any(name.startswith(p) for p in prefixes), (group, name)


@pytest.mark.slow
def test_default_experiment_runs_all_five_agents(tmp_path):
    """`regretlab` with no arguments: 10 Bernoulli arms, T = 10^4, 100 seeds, five agents."""
    script = Path(sys.executable).parent / "regretlab"
    d = tmp_path / "run"
    env = subprocess_env()
    cmd = [str(script), "progress=false", f"hydra.run.dir={d}"]
    proc = ok(subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800))
    s = summary(d)
    names = ["ucb1", "kl_ucb", "thompson", "epsilon_greedy", "etc"]
    assert list(s["agents"]) == names and (s["horizon"], s["seeds"]) == (10_000, 100)
    gaps = 0.9 - np.linspace(0.1, 0.9, 10)
    T = 10_000
    assert list(parse_table(proc.stdout)) == names
    for name in names:
        # every agent beats uniform play, whose expected regret is T mean(gap) = 4000
        assert s["agents"][name]["final"]["regret"]["mean"] < T * gaps.mean()
    # UCB1's expected regret is below Auer et al. (2002), Theorem 1:
    # sum_{gap>0} 8 ln T / gap + (1 + pi^2 / 3) sum gap  (~= 2370 here)
    bound = sum(8 * np.log(T) / g for g in gaps[gaps > 0]) + (1 + np.pi**2 / 3) * gaps.sum()
    assert s["agents"]["ucb1"]["final"]["regret"]["ci_high"] < bound
    assert (d / "regret.png").read_bytes()[:8] == PNG_MAGIC
