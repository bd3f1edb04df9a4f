"""Run directories, confidence intervals, tables and plots (`experiments.results`, `stats`,
`tables`, `plot`), on small hand-made `SimResult`s: nothing here runs the engine."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from experiments.plot import plot_runs
from experiments.results import (
    FINAL_FILE,
    METRICS_FILE,
    SUMMARY_FILE,
    Run,
    atomic_write,
    find_runs,
    is_complete,
    write_run,
)
from experiments.simulate import SimResult
from experiments.stats import mean_ci, ratio_ci
from experiments.tables import Row, format_table, rows_from_runs

CONFIG = {"horizon": 1000, "seeds": 3, "env": {"means": [0.2, 0.5]}}


def _sim(seed: int, seeds: int = 3, rounds=(1, 10, 100, 1000)) -> SimResult:
    """Increasing cumulative curves of `seeds` seeds on a 4-point grid, from a fixed NumPy seed."""
    rng = np.random.default_rng(seed)
    g = len(rounds)
    regret = np.cumsum(rng.uniform(0, 5, (seeds, g)), axis=1)
    realized = regret + rng.normal(0, 1, (seeds, g))
    return SimResult(
        rounds=np.asarray(rounds, np.int64),
        curves={"regret": regret, "realized_regret": realized},
        final={"regret": regret[:, -1].copy(), "realized_regret": realized[:, -1].copy()},
        compile_seconds=1.5 + seed,
        run_seconds=0.25 * (seed + 1),
        steps=rounds[-1],
        seeds=seeds,
        horizon=rounds[-1],
        info={"chunk_size": 1000},
    )


@pytest.fixture
def run_dir(tmp_path) -> tuple[Path, dict[str, SimResult], dict]:
    sims = {"ucb1": _sim(0), "other": _sim(1)}
    out = tmp_path / "run"
    return out, sims, write_run(out, CONFIG, sims)


# --------------------------------------------------------------------------- write_run
def test_metrics_parquet_is_tidy(run_dir):
    out, sims, _ = run_dir
    df = pd.read_parquet(out / METRICS_FILE)
    assert list(df.columns) == ["agent", "seed", "t", "regret", "realized_regret"]
    assert isinstance(df["agent"].dtype, pd.CategoricalDtype)
    assert list(df["agent"].cat.categories) == ["ucb1", "other"]
    assert df["seed"].dtype == np.int64 and df["t"].dtype == np.int64
    assert df["regret"].dtype == np.float64 and df["realized_regret"].dtype == np.float64
    assert len(df) == 2 * 3 * 4  # agents x seeds x grid points
    for name, sim in sims.items():
        for metric, curve in sim.curves.items():
            wide = df[df.agent == name].pivot(index="seed", columns="t", values=metric)
            assert list(wide.columns) == list(sim.rounds) and list(wide.index) == [0, 1, 2]
            np.testing.assert_array_equal(wide.to_numpy(), curve)


def test_summary_json(run_dir):
    out, sims, returned = run_dir
    summary = json.loads((out / SUMMARY_FILE).read_text())
    assert summary == json.loads(json.dumps(returned))
    assert summary["config"] == CONFIG
    assert summary["horizon"] == 1000 and summary["seeds"] == 3
    assert "jax" in summary["versions"] and "numpy" in summary["versions"]
    rev = summary["git_revision"]
    assert rev is None or (len(rev) == 40 and all(c in "0123456789abcdef" for c in rev))
    for name, sim in sims.items():
        a = summary["agents"][name]
        # A round trip of the hand-made timings into summary.json, not a timing threshold.
        recorded = (a["compile_seconds"], a["run_seconds"], a["steps_per_second"])
        expected = (sim.compile_seconds, sim.run_seconds, 3 * 1000 / sim.run_seconds)
        assert recorded == pytest.approx(expected, rel=1e-12)
        for metric, values in sim.final.items():
            f = a["final"][metric]
            lo, hi = stats.t.interval(0.95, 2, loc=values.mean(), scale=stats.sem(values))
            assert f["mean"] == pytest.approx(values.mean(), rel=1e-12)
            assert (f["ci_low"], f["ci_high"]) == pytest.approx((lo, hi), rel=1e-12)
            assert f["n"] == 3


# --------------------------------------------------------------------------- atomic_write
def test_atomic_write_failure_leaves_previous_file(tmp_path):
    path = tmp_path / "summary.json"
    atomic_write(path, lambda p: p.write_text("old"))

    def broken(p: Path) -> None:
        p.write_text("half a fi")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(path, broken)
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]  # no temporary left behind


def test_atomic_write_failure_creates_nothing(tmp_path):
    def broken(p: Path) -> None:
        p.write_bytes(b"\x00" * 10)
        raise KeyboardInterrupt  # a killed run

    with pytest.raises(KeyboardInterrupt):
        atomic_write(tmp_path / "metrics.parquet", broken)
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- is_complete, find_runs
def test_is_complete(run_dir, tmp_path):
    out, _, _ = run_dir
    assert is_complete(out) and is_complete(out, CONFIG)
    assert not is_complete(out, {**CONFIG, "horizon": 2000})  # the config changed: rerun
    assert not is_complete(tmp_path / "nowhere")
    (out / METRICS_FILE).unlink()
    assert not is_complete(out)  # summary without metrics: not finished
    half = tmp_path / "half"
    half.mkdir()
    (half / METRICS_FILE).write_bytes(b"PAR1")
    (half / SUMMARY_FILE).write_text('{"agents": ')  # a truncated summary
    assert not is_complete(half)


def test_find_runs_on_a_run_dir(run_dir):
    out, _, summary = run_dir
    (runs,) = find_runs([out])
    assert runs.path == out and runs.summary == json.loads(json.dumps(summary))
    assert len(runs.metrics) == 24


def _multirun(root: Path, jobs: int) -> None:
    """A Hydra multirun layout: root/<date>/<time>/<job number>/, each with .hydra/overrides."""
    for j in range(jobs):
        d = root / "2024-01-01" / "12-00-00" / str(j)
        write_run(d, {**CONFIG, "seed": j}, {"ucb1": _sim(j)})
        (d / ".hydra").mkdir()
        (d / ".hydra" / "overrides.yaml").write_text(f"- agents=[ucb1]\n- seed={j}\n")


def test_find_runs_on_a_multirun_dir(tmp_path):
    _multirun(tmp_path / "multirun", 12)
    unfinished = tmp_path / "multirun" / "2024-01-01" / "12-00-00" / "12"
    unfinished.mkdir()
    (unfinished / SUMMARY_FILE).write_text("{}")  # no metrics: skipped
    runs = find_runs([tmp_path / "multirun"])
    assert [r.path.name for r in runs] == [str(j) for j in range(12)]  # numeric, not 0, 1, 10
    assert [r.summary["config"]["seed"] for r in runs] == list(range(12))
    assert runs[3].overrides == ["agents=[ucb1]", "seed=3"]


def test_find_runs_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such run directory"):
        find_runs([tmp_path / "missing"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no finished run"):
        find_runs([tmp_path / "empty"])


# --------------------------------------------------------------------------- stats
@pytest.mark.parametrize("level", [0.9, 0.95, 0.99])
def test_mean_ci_matches_scipy_t_interval(level):
    x = np.random.default_rng(3).exponential(2.0, size=(17, 5))
    mean, lo, hi = mean_ci(x, level)
    ref_lo, ref_hi = stats.t.interval(level, 16, loc=x.mean(0), scale=stats.sem(x, axis=0))
    np.testing.assert_allclose(mean, x.mean(0), rtol=1e-14)
    np.testing.assert_allclose(lo, ref_lo, rtol=1e-12)
    np.testing.assert_allclose(hi, ref_hi, rtol=1e-12)
    m1, lo1, hi1 = mean_ci(x, level, axis=1)  # along the other axis
    ref = stats.t.interval(level, 4, loc=x.mean(1), scale=stats.sem(x, axis=1))
    np.testing.assert_allclose([lo1, hi1], ref, rtol=1e-12)
    np.testing.assert_allclose(m1, x.mean(1), rtol=1e-14)


def test_mean_ci_one_sample_is_the_point():
    assert mean_ci(np.array([4.5])) == (4.5, 4.5, 4.5)


# --------------------------------------------------------------------------- tables
def _row(label: str, mean: float, speed: float | None = 1e6) -> Row:
    return Row(label, {"regret": {"mean": mean, "ci_low": mean - 1, "ci_high": mean + 1}}, speed)


def test_format_table_markdown_marks_lowest():
    text = format_table([_row("ucb1", 12.5), _row("kl_ucb", 7.25), _row("etc", 30.0)])
    lines = text.splitlines()
    assert lines[0] == "| agent | regret (95% CI) | agent-steps/s |"
    assert lines[1] == "|---|---|---|"
    assert lines[3] == "| kl_ucb | **7.25 [6.25, 8.25]** | 1e+06 |"
    assert lines[2] == "| ucb1 | 12.5 [11.5, 13.5] | 1e+06 |"
    assert sum("**" in line for line in lines) == 1


def test_format_table_latex_marks_highest_and_escapes():
    rows = [_row("eps_greedy", 1.0, None), _row("thompson", 2.0, None)]
    text = format_table(rows, fmt="latex", lower_is_better=False, speed=False)
    lines = text.splitlines()
    assert lines[0] == "\\begin{tabular}{lr}" and lines[-1] == "\\end{tabular}"
    assert "eps\\_greedy & 1 [0, 2] \\\\" in lines
    assert "thompson & \\textbf{2 [1, 3]} \\\\" in lines
    assert format_table([]) == ""


def test_rows_from_multirun_name_the_differing_override(tmp_path):
    _multirun(tmp_path / "m", 2)
    rows = rows_from_runs(find_runs([tmp_path / "m"]))
    assert [r.label for r in rows] == ["ucb1 (seed=0)", "ucb1 (seed=1)"]


# --------------------------------------------------------------------------- plot
def test_plot_runs_writes_png(run_dir, tmp_path):
    out, _, summary = run_dir
    png = plot_runs([Run(out, summary)], tmp_path / "regret.png", title="test")
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 1000
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


# --------------------------------------------------------------------------- per-seed finals
def test_final_parquet_holds_every_seed(run_dir):
    out, sims, _ = run_dir
    run = Run(out, json.loads((out / SUMMARY_FILE).read_text()))
    for agent, sim in sims.items():
        for metric, values in sim.final.items():
            np.testing.assert_array_equal(run.final(agent, metric), values)
    with pytest.raises(KeyError, match="no agent 'nope'"):
        run.final("nope", "regret")
    (out / FINAL_FILE).unlink()
    assert not is_complete(out)  # a run without its per-seed finals is not finished


def test_ratio_ci_against_bootstrap():
    """The paired delta-method interval of mean(a)/mean(b) matches a paired bootstrap.

    a and b share a per-seed instance effect (as agents meeting the same seeds do), so the paired
    interval is much narrower than the unpaired one; 4000 seeds make the delta method's normal
    approximation accurate, and 2000 bootstrap resamples estimate the 2.5/97.5% quantiles to about
    3% of the interval's width: a 10% agreement tolerance.
    """
    rng = np.random.default_rng(7)
    common = rng.gamma(2.0, 5.0, 4000)
    a = 0.4 * common + rng.normal(0, 0.5, 4000)
    b = common + rng.normal(0, 0.5, 4000)
    ratio, lo, hi = ratio_ci(a, b)
    assert ratio == pytest.approx(a.mean() / b.mean())
    idx = rng.integers(0, 4000, (2000, 4000))
    boot = a[idx].mean(1) / b[idx].mean(1)
    blo, bhi = np.quantile(boot, [0.025, 0.975])
    assert hi - lo == pytest.approx(bhi - blo, rel=0.1)
    assert (lo + hi) / 2 == pytest.approx((blo + bhi) / 2, abs=0.1 * (hi - lo))
    unpaired = 1.96 * ratio * np.hypot(a.std() / a.mean(), b.std() / b.mean()) / np.sqrt(4000)
    assert (hi - lo) / 2 < 0.5 * unpaired  # pairing matters
    assert ratio_ci(a[:1], b[:1])[1] == ratio_ci(a[:1], b[:1])[0]
    with pytest.raises(ValueError, match="equal shapes"):
        ratio_ci(a, b[:10])
