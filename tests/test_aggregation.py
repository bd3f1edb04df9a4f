"""Aggregation over multirun directories: `regretlab-table --by`, the results index,
`regretlab-plot --by`, figure titles, never overwriting a run's own figure, and bad input.

One synthetic multirun (hand-made `SimResult`s written by `results.write_run`, nothing runs the
engine) serves every test: env.K in {2, 3} x agents.ucb1.c in {0.5, 1}, agents ucb1 and
thompson, 4 seeds each. Pooled rows are checked against an independent computation (NumPy mean,
SciPy's Student-t interval on the concatenated per-seed values: the metrics here are undeclared,
hence real-valued, hence t-intervals).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from scipy import stats

from experiments import plot, tables
from experiments.results import find_runs, unfinished_runs, write_run
from experiments.simulate import SimResult

SEEDS = 4
JOBS = [(K, c) for K in (2, 3) for c in (0.5, 1)]  # Hydra's order: the first field slowest


def _sim(seed: int) -> SimResult:
    rng = np.random.default_rng(seed)
    rounds = np.array([1, 10, 100], np.int64)
    regret = np.cumsum(rng.uniform(0, 5, (SEEDS, 3)), axis=1)
    return SimResult(
        rounds=rounds,
        curves={"regret": regret},
        final={"regret": regret[:, -1].copy()},
        compile_seconds=1.0,
        run_seconds=0.5,
        steps=100,
        seeds=SEEDS,
        horizon=100,
    )


def _job(root: Path, number: int, K: int, c: float) -> Path:
    d = root / str(number)
    config = {
        "horizon": 100,
        "seeds": SEEDS,
        "seed": number,  # distinct draws: every (run, seed index) its own cluster
        "env": {"K": K},
        "agents": {"ucb1": {"c": c}, "thompson": {}},
    }
    sims = {"ucb1": _sim(10 * number), "thompson": _sim(10 * number + 1)}
    write_run(d, config, sims)
    (d / ".hydra").mkdir()
    (d / ".hydra" / "overrides.yaml").write_text(f"- env.K={K}\n- agents.ucb1.c={c}\n")
    return d


@pytest.fixture(scope="module")
def multirun(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("agg") / "multirun"
    for number, (K, c) in enumerate(JOBS):
        _job(root, number, K, c)
    return root


@pytest.fixture
def copy(multirun, tmp_path) -> Path:
    """A private copy of the multirun, for tests that add or change files."""
    return Path(shutil.copytree(multirun, tmp_path / "m"))


def _pooled(runs, agent: str, keep=lambda run: True) -> np.ndarray:
    return np.concatenate([r.final(agent, "regret") for r in runs if keep(r)])


def _t_interval(v: np.ndarray) -> tuple[float, float, float]:
    m = float(v.mean())
    half = stats.t.ppf(0.975, v.size - 1) * v.std(ddof=1) / np.sqrt(v.size)
    return m, m - half, m + half


def test_by_pools_the_seeds_of_each_group(multirun):
    runs = find_runs([multirun])
    rows = tables.grouped_rows(runs, ["agent", "env.K"])
    assert [r.label for r in rows] == [
        "thompson (env.K=2)",
        "thompson (env.K=3)",
        "ucb1 (env.K=2)",
        "ucb1 (env.K=3)",
    ]
    for r in rows:
        agent, K = r.keys["agent"], int(r.keys["env.K"])
        want = _pooled(runs, agent, lambda run, K=K: run.summary["config"]["env"]["K"] == K)
        assert r.runs == 2 and r.final["regret"]["n"] == 2 * SEEDS == want.size
        got = r.final["regret"]
        np.testing.assert_allclose(
            [got["mean"], got["ci_low"], got["ci_high"]], _t_interval(want), rtol=1e-12
        )
    # a group of one (run, agent) keeps its summary's numbers exactly
    (one,) = [
        r
        for r in tables.grouped_rows(runs, ["agent", "env.K", "agents.ucb1.c"])
        if r.label == "ucb1 (env.K=3, agents.ucb1.c=0.5)"
    ]
    assert one.final == runs[2].summary["agents"]["ucb1"]["final"]


def _run(root: Path, name: str, seed: int, finals: dict, extra: dict | None = None) -> Path:
    """A run of `finals` ({agent: per-seed regret}) with master `seed`; its curves end there."""
    sims = {}
    for agent, v in finals.items():
        v = np.asarray(v, np.float64)
        curve = np.stack([v / 4, v / 2, v], axis=1)
        sims[agent] = SimResult(np.array([1, 10, 100]), {"regret": curve}, {"regret": v.copy()},
                                1.0, 0.5, 100, v.size, 100)  # fmt: skip
    config = {"horizon": 100, "seeds": len(v), "seed": seed, "env": {"K": 2}, **(extra or {})}
    write_run(root / name, config, sims)
    return root / name


def test_by_counts_copies_of_a_run_once(tmp_path):
    """Runs that met the same draws give the same values: (a) runs that differ only in a setting
    that does not change results (chunk_size), (b) the same master seed with more seeds (the
    first n run keys of split(key(seed), 2n) are those of split(key(seed), n)), (c) an agent of
    two jobs that differ only in another agent's setting (once refused). Pooled, each seed
    counts once: the numbers of the largest copy, n = its seeds, in the table and the plot."""
    rng = np.random.default_rng(0)
    v = rng.uniform(0, 5, 2 * SEEDS)
    root = tmp_path / "copies"
    a = _run(root, "0", 7, {"ucb1": v[:SEEDS]}, {"chunk_size": 100})
    _run(root, "1", 7, {"ucb1": v[:SEEDS]}, {"chunk_size": 200})
    b = _run(root, "2", 7, {"ucb1": v}, {"chunk_size": 100})
    runs = find_runs([root])
    (row,) = tables.grouped_rows(runs, ["agent"])
    want = find_runs([b])[0].summary["agents"]["ucb1"]["final"]["regret"]
    got = row.final["regret"]
    assert got["n"] == 2 * SEEDS  # not 4 * SEEDS: each seed once
    assert (got["values"], got["runs"], row.runs) == (4 * SEEDS, 3, 3)
    for k in ("mean", "ci_low", "ci_high", "std"):
        assert got[k] == pytest.approx(want[k], rel=1e-12)
    text = tables.format_table([row], ["regret"], speed=False)
    assert "averaged into one before the interval" in text
    curves = plot.grouped_curves(runs, "regret", ["agent"])
    np.testing.assert_allclose(curves["ucb1"][1:], plot.curves(find_runs([b])[0])["ucb1"][1:])
    (one,) = tables.grouped_rows(find_runs([a]), ["agent"])  # a single run: no note
    assert "averaged" not in tables.format_table([one], ["regret"], speed=False)
    # (c) thompson of two jobs of a sweep over ucb1's c: the same values, counted once
    root = tmp_path / "sweep"
    for c in (0.5, 1.0):
        _run(root, str(int(2 * c)), 3, {"ucb1": v[:SEEDS] * c, "thompson": v[SEEDS:]},
             {"agents": {"ucb1": {"c": c}, "thompson": {}}})  # fmt: skip
    runs = find_runs([root])
    rows = {r.label: r.final["regret"] for r in tables.grouped_rows(runs, ["agent"])}
    assert rows["thompson"]["n"] == SEEDS
    assert rows["thompson"]["mean"] == pytest.approx(v[SEEDS:].mean(), rel=1e-12)
    assert plot.grouped_curves(runs, "regret", ["agent"])["thompson"][1][-1] == pytest.approx(
        v[SEEDS:].mean(), rel=1e-12
    )


def test_by_treats_jobs_of_one_seed_as_correlated(tmp_path):
    """Jobs of one sweep share the master seed, so seed i of every job met the same env draws:
    their values are correlated, not independent. The pooled interval is the t-interval of the
    per-seed means over the jobs (n = seeds, not jobs x seeds); a job with another master seed
    brings independent clusters. Values here: a shared per-seed part plus job noise."""
    rng = np.random.default_rng(1)
    n = 12
    common = rng.uniform(0, 10, n)
    jobs = [common + rng.normal(0, 1, n) for _ in range(3)]
    root = tmp_path / "sweep"
    for j, x in enumerate(jobs):
        _run(root, str(j), 0, {"ucb1": x}, {"agents": {"ucb1": {"c": j}}})
    runs = find_runs([root])
    (row,) = tables.grouped_rows(runs, ["agent"])
    got = row.final["regret"]
    cluster = np.mean(jobs, axis=0)
    assert got["n"] == n  # not 3 n: one value per seed index
    assert got["values"] == 3 * n
    np.testing.assert_allclose(
        [got["mean"], got["ci_low"], got["ci_high"]], _t_interval(cluster), rtol=1e-12
    )
    naive = _t_interval(np.concatenate(jobs))
    assert got["ci_high"] - got["ci_low"] > 1.4 * (naive[2] - naive[1])  # naive: too narrow
    _, mean, lo, hi = plot.grouped_curves(runs, "regret", ["agent"])["ucb1"]
    np.testing.assert_allclose([mean[-1], lo[-1], hi[-1]], _t_interval(cluster), rtol=1e-12)
    # another master seed: independent draws, clusters of their own
    _run(root, "3", 1, {"ucb1": jobs[0]}, {"agents": {"ucb1": {"c": 0}}})
    (row,) = tables.grouped_rows(find_runs([root]), ["agent"])
    assert row.final["regret"]["n"] == 2 * n


def test_engine_run_keys_of_fewer_seeds_are_a_prefix():
    """What the cluster rule relies on for (b): the engine's run keys split(key(seed), seeds)
    (experiments/simulate.py, under JAX's default key layout) of n seeds are the first n of 2n.
    (Under the non-partitionable layout they are not; the clusters are then merely coarser.)"""
    import jax

    k = jax.random.key(5)
    few = jax.random.key_data(jax.random.split(k, 10))
    more = jax.random.key_data(jax.random.split(k, 20))
    np.testing.assert_array_equal(np.asarray(few), np.asarray(more)[:10])


def test_by_counts_each_metric_over_the_runs_that_have_it(tmp_path):
    """A metric only some runs of a group record (true_regret of faithful-mode streaming runs)
    is pooled over those runs only, and its cell says how many: `runs` counts the group."""
    root = tmp_path / "mixed"
    rng = np.random.default_rng(2)
    for j in range(2):
        x = rng.uniform(0, 5, SEEDS)
        final = {"regret": x, **({"true_regret": x + 1} if j == 0 else {})}
        sim = SimResult(np.array([100]), {}, final, 1.0, 0.5, 100, SEEDS, 100)
        write_run(root / str(j), {"horizon": 100, "seeds": SEEDS, "seed": j}, {"a": sim})
    (row,) = tables.grouped_rows(find_runs([root]), ["agent"])
    text = tables.format_table([row], ["regret", "true_regret"], speed=False)
    cells = text.splitlines()[2].split(" | ")
    assert cells[1] == "2" and "(1 of 2 runs)" in cells[3] and "runs)" not in cells[2]
    assert row.runs == 2 and row.final["regret"]["runs"] == 2
    assert row.final["true_regret"]["runs"] == 1 and row.final["true_regret"]["n"] == SEEDS


def test_by_pools_an_indicator_over_clusters(tmp_path):
    """An error indicator pooled over jobs of one seed: a cluster's value is an error rate (0,
    1/2 or 1), not 0 or 1, so no exact binomial interval: the bootstrap of the cluster means;
    clusters that agree keep Clopper–Pearson on n = clusters."""
    from experiments.protocol import FINAL, INDICATOR, MetricInfo

    class Env:
        primary_metric = "error"

        def metric_info(self):
            return {"error": MetricInfo("P(error)", FINAL, support=INDICATOR)}

    def write(root, runs):
        for j, e in enumerate(runs):
            sim = SimResult(np.array([100]), {}, {"error": np.asarray(e, np.float64)}, 1.0, 0.5,
                            100, len(e), 100)  # fmt: skip
            write_run(root / str(j), {"horizon": 100, "seeds": len(e), "seed": 0,
                                      "env": {"T": j}}, {"a": sim}, env=Env())  # fmt: skip
        (row,) = tables.grouped_rows(find_runs([root]), ["agent"])
        return row.final["error"]

    e = [0, 1, 0, 0, 1, 0, 0, 0]
    same = write(tmp_path / "same", [e, e])
    ref = stats.binomtest(2, 8).proportion_ci(0.95, method="exact")
    assert same["interval"] == "clopper-pearson" and same["n"] == 8
    assert (same["ci_low"], same["ci_high"]) == pytest.approx((ref.low, ref.high), rel=1e-9)
    mixed = write(tmp_path / "mixed", [e, [1, 1, 0, 0, 0, 0, 0, 0]])
    assert mixed["interval"] == "bca-bootstrap" and mixed["n"] == 8 and "median" not in mixed
    assert mixed["mean"] == pytest.approx(4 / 16) and 0 <= mixed["ci_low"] < mixed["ci_high"]


def test_best_is_marked_only_among_rows_of_one_environment(multirun):
    runs = find_runs([multirun])
    text = tables.format_table(tables.rows_from_runs(runs), ["regret"], speed=False)
    lines = [ln for ln in text.splitlines() if ln.startswith("| ucb1") or ln.startswith("| thom")]
    for K in (2, 3):  # exactly one bold cell among the 4 rows of each env.K
        block = [ln for ln in lines if f"env.K={K}" in ln]
        assert len(block) == 4 and sum("**" in ln for ln in block) == 1
        best = min(
            r.summary["agents"][a]["final"]["regret"]["mean"]
            for r in runs
            if r.summary["config"]["env"]["K"] == K
            for a in ("ucb1", "thompson")
        )
        (bold,) = [ln for ln in block if "**" in ln]
        assert f"**{tables._num(best)} [" in bold
    assert "best marked only among rows of the same environment" in text
    # pooled over both environments: no row is compared with another
    pooled = tables.format_table(tables.grouped_rows(runs, ["agent"]), ["regret"], speed=False)
    assert "**" not in pooled and "rows pooling several environments are not compared" in pooled
    # one environment: the usual table, no note
    one = [r for r in runs if r.summary["config"]["env"]["K"] == 2]
    text = tables.format_table(tables.rows_from_runs(one), ["regret"], speed=False)
    assert text.count("**") == 2 and "best marked only" not in text


def test_results_index_is_queryable_parquet(copy, tmp_path, capsys):
    unfinished = copy / "4"  # a job killed before it wrote anything but Hydra's files
    (unfinished / ".hydra").mkdir(parents=True)
    (unfinished / ".hydra" / "overrides.yaml").write_text("- env.K=4\n- agents.ucb1.c=2\n")
    out = tmp_path / "index.parquet"
    assert tables.main([str(copy), "--index", str(out)]) == 0
    assert "1 unfinished run(s) left out" in capsys.readouterr().err
    df = pd.read_parquet(out)
    assert len(df) == len(JOBS) * 2 + 1  # one row per run and agent, one per unfinished run
    assert df["env.K"].dtype == np.int64 and df["agents.ucb1.c"].dtype == np.float64
    done = df.query("status == 'finished' and agent == 'ucb1' and `env.K` == 3")
    assert sorted(done["agents.ucb1.c"]) == [0.5, 1.0]
    for _, row in done.iterrows():
        summary = json.loads((Path(row["run"]) / "summary.json").read_text())
        final = summary["agents"]["ucb1"]["final"]["regret"]
        assert (row["regret"], row["regret_ci_low"], row["regret_ci_high"]) == (
            final["mean"],
            final["ci_low"],
            final["ci_high"],
        )
        copied = row["run_seconds"]  # the fixture summary's value (0.5), copied, not a timing
        assert copied == 0.5 and row["seeds"] == SEEDS
        assert row["overrides"] == f"env.K=3 agents.ucb1.c={row['agents.ucb1.c']:g}"
    (row,) = df.query("status == 'unfinished'").itertuples()
    assert row.run == str(unfinished) and pd.isna(row.regret)
    assert unfinished_runs([copy]) == [unfinished]


@pytest.mark.parametrize("tool", [tables.main, plot.main])
def test_bad_input_is_one_line_exit_2(tool, copy, tmp_path, capsys):
    def error(*args: str) -> str:
        assert tool([*args]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1, err
        return err

    (tmp_path / "empty").mkdir()
    assert "holds no finished run" in error(str(tmp_path / "empty"))
    assert "'env.KK' is not a field of the runs' config" in error(str(copy), "--by", "env.KK")
    (copy / "1" / "summary.json").unlink()  # a half-written run: results without summary
    assert f"{copy / '1'}: an unfinished run" in error(str(copy))


def test_table_of_a_half_written_run_needs_partial(copy, capsys):
    (copy / "2" / "summary.json").unlink()
    assert tables.main([str(copy)]) == 2
    err = capsys.readouterr().err
    assert f"{copy / '2'}: an unfinished run" in err and "--partial" in err
    assert tables.main([str(copy), "--partial"]) == 0
    assert "ucb1 (env.K=3, agents.ucb1.c=1)" in capsys.readouterr().out


def _title(png: Path) -> str | None:
    with Image.open(png) as im:
        return im.text.get("Title")


def test_plots_keep_titles_and_never_overwrite_a_runs_figure(copy, tmp_path, capsys):
    a, b = copy / "0", copy / "1"
    assert plot.main([str(a)]) == 0  # a re-plot of one run: its own figure, its own title
    assert _title(a / "regret.png") == "T = 100, 4 seeds"
    own = (a / "regret.png").read_bytes()
    assert plot.main([str(a), str(b)]) == 0  # A and B: beside A's figure, not over it
    assert capsys.readouterr().out.split()[-1] == str(a / "regret_compare.png")
    assert (a / "regret.png").read_bytes() == own
    assert plot.main([str(a), str(b), "-o", str(a / "regret.png")]) == 2
    assert "is the figure of the run" in capsys.readouterr().err
    assert (a / "regret.png").read_bytes() == own
    assert plot.main([str(a), str(b), "-o", str(a / "regret.png"), "--overwrite"]) == 0
    # --by: one curve per group; --x with --by: one line per agent; both titled
    out = tmp_path / "by.png"
    assert plot.main([str(copy), "--by", "agent", "--by", "env.K", "-o", str(out)]) == 0
    assert _title(out) == "T = 100, 4 seeds"
    runs = find_runs([copy])
    curves = plot.grouped_curves(runs, "regret", ["agent", "env.K"])
    assert list(curves) == ["ucb1 (env.K=2)", "thompson (env.K=2)", "ucb1 (env.K=3)",
                            "thompson (env.K=3)"]  # fmt: skip
    _, mean, _, _ = curves["ucb1 (env.K=3)"]
    wide = [r.metrics.query("agent == 'ucb1'").pivot(index="seed", columns="t", values="regret")
            for r in runs if r.summary["config"]["env"]["K"] == 3]  # fmt: skip
    np.testing.assert_allclose(mean, np.concatenate([w.to_numpy() for w in wide]).mean(axis=0))
    points = plot.final_points(runs, "regret", "env.K", ["agent"])
    xs, m, _, _ = points["ucb1"]
    assert list(xs) == [2.0, 3.0]
    assert m[1] == pytest.approx(_pooled(runs[2:], "ucb1").mean(), rel=1e-12)
    assert (
        plot.main([str(copy), "--x", "env.K", "--by", "agent", "-o", str(tmp_path / "x.png")]) == 0
    )
    # a sweep job's figure is titled with its values, as `regretlab` titles it
    summary = json.loads((b / "summary.json").read_text())
    summary["sweep_job"] = {"number": 1, "values": {"agents.ucb1.c": 1}}
    (b / "summary.json").write_text(json.dumps(summary))
    assert plot.figure_title(find_runs([b])) == "T = 100, 4 seeds, agents.ucb1.c=1"
