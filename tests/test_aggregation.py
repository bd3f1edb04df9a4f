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
        "seed": number,  # distinct draws: pooling a (run, agent) twice is refused
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


def test_by_refuses_to_pool_a_run_twice(multirun, tmp_path):
    """Two jobs that differ only in another agent's setting ran thompson on the same draws (same
    seed): pooling its seeds twice would narrow the interval as if they were independent."""
    root = tmp_path / "same_seed"
    for number, c in enumerate((0.5, 1.0)):
        d = _job(root, number, 2, c)
        summary = json.loads((d / "summary.json").read_text())
        summary["config"]["seed"] = 7
        (d / "summary.json").write_text(json.dumps(summary))
    runs = find_runs([root])
    with pytest.raises(ValueError, match=r"^--by: group 'thompson' holds thompson of .* same run"):
        tables.grouped_rows(runs, ["agent"])
    with pytest.raises(ValueError, match=r"^--by: group 'thompson' holds thompson of .* same run"):
        plot.grouped_curves(runs, "regret", ["agent"])
    assert [r.runs for r in tables.grouped_rows(runs, ["agent", "agents.ucb1.c"])] == [1, 1, 1, 1]


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
