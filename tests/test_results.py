"""Run directories, confidence intervals, tables and plots (`experiments.results`, `stats`,
`tables`, `plot`), on small hand-made `SimResult`s: nothing here runs the engine."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from experiments.plot import agent_color, agent_colors, config_value, final_points, plot_runs
from experiments.protocol import FINAL, INDICATOR, NONNEGATIVE, REAL, MetricInfo
from experiments.results import (
    FINAL_FILE,
    METRICS_FILE,
    SUMMARY_FILE,
    Run,
    atomic_write,
    config_differences,
    current_prng,
    find_runs,
    is_complete,
    mark_unfinished,
    metrics_frame,
    mismatch,
    reuse_conflicts,
    self_check,
    summarize_values,
    unfinished_runs,
    write_run,
)
from experiments.simulate import SimResult
from experiments.stats import mean_ci, ratio_ci
from experiments.tables import Row, format_table, infos_from_runs, rows_from_runs

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
    head = rev and rev.removesuffix("-dirty")  # -dirty: tracked files differ from HEAD
    assert rev is None or (len(head) == 40 and all(c in "0123456789abcdef" for c in head))
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


def test_rewrite_killed_half_way_is_not_a_finished_run(run_dir, monkeypatch):
    """Recomputing a finished directory (its config changed) and being killed after the new
    metrics but before the new summary must leave an unfinished run, not the old summary beside
    the new metrics: the summary (the finished marker) goes first."""
    import experiments.results as results

    out, sims, _ = run_dir
    assert is_complete(out)

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(results, "final_frame", killed)
    with pytest.raises(KeyboardInterrupt):
        write_run(out, {**CONFIG, "horizon": 2000}, sims)
    assert (out / METRICS_FILE).is_file() and not (out / SUMMARY_FILE).exists()
    assert not is_complete(out)
    assert unfinished_runs([out]) == [out]


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


def test_a_run_of_another_random_bit_generator_is_not_complete(run_dir):
    """`engine.prng` (chosen by REGRETLAB_RNG) decides every draw: a run finished under another
    generator is not the run this process would compute; one without the record is taken as
    this generator's (runs written before it was recorded)."""
    out, _, _ = run_dir
    summary = json.loads((out / SUMMARY_FILE).read_text())
    assert mismatch(out, CONFIG) is None  # no engine.prng recorded
    for agent in summary["agents"].values():
        agent["engine"]["prng"] = current_prng()
    (out / SUMMARY_FILE).write_text(json.dumps(summary))
    assert mismatch(out, CONFIG) is None and is_complete(out, CONFIG)
    summary["agents"]["other"]["engine"]["prng"] = "another generator"
    (out / SUMMARY_FILE).write_text(json.dumps(summary))
    why = mismatch(out, CONFIG)
    assert why.startswith("another random bit generator (finished with another generator; ")
    assert not is_complete(out, CONFIG) and is_complete(out)  # still a finished run to tabulate
    assert mismatch(out, {**CONFIG, "horizon": 2000}) == (
        "another config (differs in: horizon)"  # the config is named first
    )
    assert mismatch(out.parent / "nowhere", CONFIG) == ""


def test_config_differences_name_the_dotted_paths():
    old = {"horizon": 1, "env": {"K": 3, "means": None}, "agents": {"ucb1": {"c": 2}}}
    new = {"horizon": 1, "env": {"K": 4, "means": None}, "agents": {"ucb1": {"c": 2}, "etc": {}}}
    assert config_differences(old, new) == ["env.K", "agents.etc"]
    many = {f"k{i}": i for i in range(6)}
    assert config_differences(many, {}) == ["k0", "k1", "k2", "k3", "..."]


def test_mark_unfinished_removes_the_summary_and_the_old_figures(run_dir):
    out, _, _ = run_dir
    for name in ("regret.png", "regret_compare.png"):
        (out / name).write_bytes(b"\x89PNG")
    mark_unfinished(out)
    assert not (out / SUMMARY_FILE).exists() and not list(out.glob("*.png"))
    assert (out / METRICS_FILE).is_file()  # replaced by the recomputation, not removed
    mark_unfinished(out / "nowhere")  # nothing to do, no error


def test_reuse_conflicts_name_what_belongs_to_another_command(run_dir, tmp_path):
    out, sims, _ = run_dir
    root = tmp_path / "sweep"
    for n, horizon in ((0, 1000), (1, 1000), (3, 1000)):
        write_run(root / str(n), {**CONFIG, "horizon": horizon}, sims)
    (root / "7").mkdir()  # an empty numbered directory holds no run: not a job
    (root / "multirun.yaml").write_text("{}")
    same = {**CONFIG, "horizon": 1000}
    assert reuse_conflicts(root, [same, same, same, same]) == []  # a resume, and an extension
    assert reuse_conflicts(root, [same, {**CONFIG, "horizon": 5}]) == [
        "job 1: a finished run of another config (differs in: horizon)",
        "job 3, beyond this sweep's 2 jobs",
    ]
    assert reuse_conflicts(root, None) == ["the jobs of a sweep (0/, 1/, 3/)"]
    assert reuse_conflicts(out, None) == []  # a single run into a single run's directory
    assert reuse_conflicts(out, [CONFIG]) == ["the results of a single run"]


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


def test_mean_ci_one_sample_has_no_interval():
    mean, lo, hi = mean_ci(np.array([4.5]))  # no spread to estimate: undefined, not zero width
    assert mean == 4.5 and np.isnan(lo) and np.isnan(hi)


# --------------------------------------------------------------------------- tables
def _row(label: str, mean: float, speed: float | None = 1e6) -> Row:
    return Row(label, {"regret": {"mean": mean, "ci_low": mean - 1, "ci_high": mean + 1}}, speed)


def test_all_equal_values_give_no_interval_in_summary_and_table():
    """20 equal values (a simple regret of 0 in every seed, an agent whose regret is the same in
    every seed): no spread seen, so no interval (null ends, as for one seed) and the table says
    so, never the point as a zero-width "95% interval"; an indicator keeps its exact interval
    (no error in 20: [0, 0.1684]). A summary written before (ends equal, std 0) reads the same."""
    for support in (REAL, NONNEGATIVE):
        s = summarize_values(np.zeros(20), MetricInfo("simple_regret", FINAL, support=support))
        assert (s["mean"], s["ci_low"], s["ci_high"], s["std"], s["n"]) == (0.0, None, None, 0, 20)
    s = summarize_values(np.zeros(20), MetricInfo("error", FINAL, support=INDICATOR))
    assert s["ci_low"] == 0.0 and s["ci_high"] == pytest.approx(1 - 0.025 ** (1 / 20), rel=1e-12)
    flat = summarize_values(np.zeros(20), MetricInfo("simple_regret", FINAL, support=NONNEGATIVE))
    old = {**flat, "ci_low": 0.0, "ci_high": 0.0}
    for final in (flat, old):
        text = format_table([Row("a", {"simple_regret": final, "error": s})], speed=False)
        assert "| 0 [no interval: all 20 equal] |" in text and "0 [0, 0.1684]" in text
        assert "[0, 0]" not in text


def test_self_check_z_with_zero_standard_error():
    """Every seed the same (se = 0): z is 0 at the oracle and +-inf away from it, not None (n/a),
    which the table shows only when there is no standard error at all (one seed)."""
    rounds = np.array([1, 2, 4])
    same = np.tile([1.0, 2.0, 4.0], (3, 1))  # 1 per step in every seed
    assert self_check(rounds, same, 1.0, 1.0, [1, 1])["mean"]["z"] == 0.0
    c = self_check(rounds, same, 0.5, 0.5, [1, 1])
    assert c["mean"]["se"] == 0.0 and c["mean"]["z"] == np.inf and c["max"]["z"] == np.inf
    assert self_check(rounds, same, 2.0, 2.0, [1, 1])["mean"]["z"] == -np.inf
    assert self_check(rounds, same[:1], 0.5, 0.5, [1, 1])["mean"]["z"] is None  # one seed


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
    assert np.isnan(ratio_ci(a[:1], b[:1])[1])  # one seed: no interval
    with pytest.raises(ValueError, match="equal shapes"):
        ratio_ci(a, b[:10])


# --------------------------------------------------------------------------- metric semantics
class _FinalOnlyEnv:
    """Stands in for a final-answer env: declares its metrics, headline and x-axis."""

    primary_metric = "error"
    x_label = "episode k"

    def metric_info(self) -> dict[str, MetricInfo]:
        return {
            "error": MetricInfo(label="P(error)", kind=FINAL, scale="log", support=INDICATOR),
            "simple_regret": MetricInfo(label="simple regret", kind=FINAL, support=NONNEGATIVE),
            "score": MetricInfo(label="", kind=FINAL, lower_is_better=False),
        }


def _final_sim(seed: int, seeds: int = 40, p: float = 0.2) -> SimResult:
    """A final-only result (no curves): an indicator, a non-negative and a real metric."""
    rng = np.random.default_rng(seed)
    error = (rng.uniform(size=seeds) < p).astype(np.float64)
    return SimResult(
        rounds=np.array([100], np.int64),
        curves={},
        final={"error": error, "simple_regret": 0.1 * error, "score": rng.normal(size=seeds)},
        compile_seconds=1.0,
        run_seconds=0.5,
        steps=100,
        seeds=seeds,
        horizon=100,
    )


@pytest.fixture
def final_dir(tmp_path) -> tuple[Path, dict[str, SimResult], dict]:
    sims = {"a": _final_sim(0), "b": _final_sim(1, p=0.0)}
    out = tmp_path / "final"
    return out, sims, write_run(out, CONFIG, sims, {"metric": "error"}, env=_FinalOnlyEnv())


def test_final_only_run_has_an_empty_valid_metrics_table(final_dir):
    out, sims, _ = final_dir
    df = pd.read_parquet(out / METRICS_FILE)
    assert list(df.columns) == ["agent", "seed", "t"] and len(df) == 0
    assert df["seed"].dtype == np.int64 and df["t"].dtype == np.int64
    assert list(metrics_frame(sims).columns) == ["agent", "seed", "t"]
    assert is_complete(out)  # the same three files as any run
    (run,) = find_runs([out])
    assert run.final("b", "error").tolist() == [0.0] * 40


def test_summary_records_semantics_and_support_aware_intervals(final_dir):
    out, sims, _ = final_dir
    s = json.loads((out / SUMMARY_FILE).read_text())
    assert s["primary_metric"] == "error" and s["x_label"] == "episode k"
    assert s["metrics"]["error"] == {
        "label": "P(error)",
        "kind": "final",
        "scale": "log",
        "support": "indicator",
        "lower_is_better": True,
    }
    assert s["metrics"]["score"]["label"] == "score"  # "" -> the metric's name
    b = s["agents"]["b"]["final"]
    # 0 errors in 40: the exact Clopper–Pearson interval [0, 1 - 0.025^(1/40)], not [0, 0]
    assert (b["error"]["mean"], b["error"]["ci_low"]) == (0.0, 0.0)
    assert b["error"]["ci_high"] == pytest.approx(1 - 0.025 ** (1 / 40), rel=1e-12)
    a = s["agents"]["a"]["final"]
    k = int(sims["a"].final["error"].sum())
    ref = stats.binomtest(k, 40).proportion_ci(0.95, method="exact")
    assert (a["error"]["ci_low"], a["error"]["ci_high"]) == pytest.approx((ref.low, ref.high))
    assert a["error"]["interval"] == "clopper-pearson"
    sr = a["simple_regret"]
    assert sr["interval"] == "bca-bootstrap" and sr["ci_low"] >= 0
    assert sr["median"] == pytest.approx(np.median(sims["a"].final["simple_regret"]))
    assert "median" not in a["score"] and a["score"]["interval"] == "student-t"
    for key in ("mean", "ci_low", "ci_high", "std", "n"):  # the keys older readers use
        assert key in a["score"]


def test_run_metric_info_reads_the_summary_or_falls_back(final_dir, run_dir):
    out, _, summary = final_dir
    run = Run(out, summary)
    assert run.metric_info("error") == MetricInfo(
        label="P(error)", kind=FINAL, scale="log", support=INDICATOR
    )
    assert run.headline == "error" and run.x_label == "episode k"
    old_out, _, old = run_dir  # written without an env: defaults, as before
    legacy = {k: v for k, v in old.items() if k not in ("metrics", "primary_metric", "x_label")}
    old_run = Run(old_out, legacy)
    assert old_run.metric_info("regret") == MetricInfo(label="regret")
    assert old_run.metric_info("nope").kind == FINAL
    assert old_run.headline == "regret" and old_run.x_label == "round t"


def test_table_uses_declared_direction_median_and_reference_ratio(final_dir):
    out, sims, _ = final_dir
    runs = find_runs([out])
    rows = rows_from_runs(runs, reference="a")
    text = format_table(rows, infos=infos_from_runs(runs), reference="a", speed=False)
    header, _, row_a, row_b = (ln.strip("|").split(" | ") for ln in text.splitlines())
    header = [h.strip() for h in header]
    assert header == [
        "agent",
        "error (95% CI)",
        "error / a (95% CI)",
        "score (95% CI)",
        "score / a (95% CI)",
        "simple_regret (95% CI)",
        "simple_regret median",
        "simple_regret / a (95% CI)",
    ]
    cells_a = dict(zip(header, (c.strip() for c in row_a), strict=True))
    cells_b = dict(zip(header, (c.strip() for c in row_b), strict=True))
    assert cells_b["error (95% CI)"].startswith("**0 [0, ")  # lower error is better
    score = [sims[n].final["score"].mean() for n in ("a", "b")]
    best = "a" if score[0] > score[1] else "b"  # score: higher is better (declared)
    assert {"a": cells_a, "b": cells_b}[best]["score (95% CI)"].startswith("**")
    assert cells_b["error / a (95% CI)"] == "0 [0, 0]"  # b made no error on the same seeds
    r, lo, hi = ratio_ci(sims["b"].final["score"], sims["a"].final["score"])
    assert cells_b["score / a (95% CI)"] == f"{r:.4g} [{lo:.4g}, {hi:.4g}]"
    assert cells_b["simple_regret median"] == "0"
    with pytest.raises(KeyError, match="no agent 'zz'"):
        rows_from_runs(runs, reference="zz")
    ratio_b = rows_from_runs(runs, reference="b")[0].ratios["error"]
    assert all(np.isnan(ratio_b))  # reference with mean 0: undefined, printed as n/a
    assert "n/a" in format_table(rows_from_runs(runs, reference="b"), ["error"], reference="b")


def test_plot_a_final_metric_as_points_and_against_a_field(tmp_path):
    """No KeyError for a final metric: one point per agent; with x, error against the horizon
    on a log axis, where b's zero error rate is drawn as its interval's upper end."""
    root = tmp_path / "multi"
    for j, horizon in enumerate((10, 40, 160)):
        d = root / str(j)
        write_run(d, {**CONFIG, "horizon": horizon}, {"a": _final_sim(j), "b": _final_sim(j, p=0)},
                  {"metric": "error"}, env=_FinalOnlyEnv())  # fmt: skip
        (d / ".hydra").mkdir()
        (d / ".hydra" / "overrides.yaml").write_text(f"- horizon={horizon}\n")
    runs = find_runs([root])
    points = final_points(runs, "error", "horizon")
    assert list(points) == ["a", "b"]
    xs, mean, lo, hi = points["b"]
    assert xs.tolist() == [10, 40, 160] and mean.tolist() == lo.tolist() == [0, 0, 0]
    assert np.all(hi > 0)
    for png in (
        plot_runs(runs[:1], tmp_path / "points.png"),  # headline "error", a final metric
        plot_runs(runs, tmp_path / "vs.png", "error", x="horizon"),
        plot_runs(runs, tmp_path / "sr.png", "simple_regret", x="horizon"),
    ):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match=r"no config field 'env\.budget'"):
        final_points(runs, "error", "env.budget")
    with pytest.raises(ValueError, match="must be a number"):
        final_points(runs, "error", "env.means")
    assert config_value({"env": {"budget": 7}}, "env.budget") == 7


def test_agent_colours_are_fixed_by_name_and_distinct_in_a_figure():
    assert agent_color("ucb1") == agent_color("ucb1 (env.K=3)")
    names = ["ucb1", "kl_ucb", "thompson", "epsilon_greedy", "etc", "moss"]
    colors = agent_colors(names)
    assert len(set(colors.values())) == len(names)
    assert agent_colors(reversed(names)) == colors  # independent of order
    assert colors["ucb1"] == agent_color("ucb1")  # no collision here: its own colour
