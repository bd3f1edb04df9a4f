"""A final-answer problem end to end (examples/fixed_budget.py): the env and its agents against a
NumPy loop and the closed form, then `regretlab` (run and multirun), `regretlab-table`,
`regretlab-plot --x horizon` and `regretlab-reproduce`, checking files and values.

The CLI runs in subprocesses (``python -m experiments.<module>``, as tests/test_cli.py does) with
``examples`` on PYTHONPATH and ``examples/conf`` on Hydra's search path, writing only under
pytest's temporary directories.
"""

from __future__ import annotations

import json
import subprocess
import sys
import types
from pathlib import Path

import jax
import numpy as np
import pandas as pd
import pytest
from fixed_budget import FixedBudgetBAI, RoundRobin, UniformAllocation, round_robin_error
from scipy import stats
from test_cli import EXAMPLES, ROOT, ok, tool
from test_cli import cli as run_cli

from experiments import reproduce as rp
from experiments.rollout import draw_steps
from experiments.simulate import simulate

SEARCH = f"hydra.searchpath=[file://{EXAMPLES / 'conf'}]"
AGENTS = "agents=[round_robin,uniform_allocation]"
PNG = b"\x89PNG\r\n\x1a\n"


# --------------------------------------------------------------------------- the example itself
def _numpy_bai(u_env: np.ndarray, u_agent: np.ndarray | None, means: np.ndarray) -> int:
    """The arm recommended after len(u_env) rounds: round robin (u_agent None) or uniform
    allocation (arm = floor(u K)); rewards 1[u < mu]; empirical best, ties to the lowest arm,
    unpulled arms never."""
    K = means.size
    counts, sums = np.zeros(K), np.zeros(K)
    for t, u in enumerate(u_env):
        arm = t % K if u_agent is None else min(int(u_agent[t] * K), K - 1)
        counts[arm] += 1
        sums[arm] += float(u < means[arm])
    emp = np.where(counts > 0, sums / np.maximum(counts, 1), -np.inf)
    return int(np.argmax(emp))


@pytest.mark.parametrize(
    "agent", [RoundRobin(), UniformAllocation()], ids=["round_robin", "uniform_allocation"]
)
def test_engine_matches_a_numpy_loop_on_the_same_draws(agent):
    """Per seed, bit for bit: the engine's draws of seed s come from its run key
    split(key(seed), N)[s] -> (init key, step key) -> `experiments.rollout.draw_steps`. T = 41 is
    odd, so round robin pulls the arms 21 and 20 times."""
    env, T, n, seed = FixedBudgetBAI((0.45, 0.55)), 41, 48, 3
    params = env.default_params()
    sim = simulate(env, params, agent, T, n, seed=seed)
    assert sim.curves == {} and set(sim.final) == {"error", "simple_regret"}
    means = np.asarray(params.means)
    u_spec = env.randomness(params, None)
    a_spec = dict(agent.randomness(None))
    for s, run_key in enumerate(jax.random.split(jax.random.key(seed), n)):
        step_key = jax.random.split(run_key)[1]
        rng_env, rng_agent = draw_steps(step_key, 0, T, u_spec, a_spec)
        u_agent = np.asarray(rng_agent["u"]) if a_spec else None
        arm = _numpy_bai(np.asarray(rng_env["u"]), u_agent, means)
        assert sim.final["error"][s] == float(arm != 1), s
        assert sim.final["simple_regret"][s] == pytest.approx(means[1] - means[arm], abs=1e-7)


def test_round_robin_error_closed_form_and_engine():
    """Hand value at T = 2 (one pull each; ties go to the worse arm 0): P(error) = 1 - P(S1 = 1,
    S0 = 0) = 1 - 0.6 * 0.5 = 0.7. At T = 40 the engine's error frequency over 4000 seeds lies in
    its 99.9% Clopper–Pearson interval around the exact value (a fixed seed; a failure would be a
    1-in-1000 event for a correct engine)."""
    assert round_robin_error((0.5, 0.6), 2) == pytest.approx(0.7, rel=1e-12)
    assert round_robin_error((0.5, 0.6), 1) == 1.0  # arm 1 unpulled: arm 0, the worse, chosen
    env = FixedBudgetBAI((0.5, 0.6))
    sim = simulate(env, env.default_params(), RoundRobin(), 40, 4000, seed=11)
    k = int(sim.final["error"].sum())
    ci = stats.binomtest(k, 4000).proportion_ci(0.999, method="exact")
    assert ci.low <= round_robin_error((0.5, 0.6), 40) <= ci.high


def test_bad_means_and_a_regret_agent_fail_in_one_line():
    from experiments.config import ConfigError

    with pytest.raises(ConfigError, match=r"env\.means: the best arm must be unique"):
        FixedBudgetBAI((0.5, 0.5))
    with pytest.raises(ConfigError, match="output"):
        FixedBudgetBAI().final_metrics(None, (), FixedBudgetBAI().default_params())


# --------------------------------------------------------------------------- the command line
def cli(module: str, *args: str, cache: Path) -> subprocess.CompletedProcess:
    """`tests/test_cli.py`'s subprocess runner with the examples on the path and a JAX
    compilation cache shared by this module's subprocesses (speed only)."""
    return run_cli(
        module, *args, path=(EXAMPLES,), extra_env={"JAX_COMPILATION_CACHE_DIR": str(cache)}
    )


def table(text: str) -> dict[str, dict[str, str]]:
    """{row label: {header: cell}} of a Markdown table."""
    rows = [[c.strip() for c in ln.strip("|").split("|")] for ln in text.splitlines()]
    rows = [r for r in rows if len(r) > 1 and not set("".join(r)) <= {"-"}]
    header, *body = rows
    return {r[0]: dict(zip(header[1:], r[1:], strict=True)) for r in body}


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> tuple[Path, Path, subprocess.CompletedProcess]:
    base = tmp_path_factory.mktemp("final")
    d = base / "sweep"
    proc = ok(
        cli(
            "run", "-m", SEARCH, "env=fixed_budget", AGENTS, "horizon=10,40,160", "seeds=200",
            "reference=round_robin", "progress=false", f"hydra.sweep.dir={d}",
            cache=base / "jax",
        )
    )  # fmt: skip
    return d, base / "jax", proc


def test_multirun_writes_final_only_runs_with_exact_intervals(sweep):
    d, _, proc = sweep
    for job, horizon in zip(("0", "1", "2"), (10, 40, 160), strict=True):
        run = d / job
        s = json.loads((run / "summary.json").read_text())
        assert s["config"]["horizon"] == horizon and s["metric"] == "error"
        assert s["primary_metric"] == "error"
        assert s["metrics"]["error"]["support"] == "indicator"
        assert s["metrics"]["error"]["scale"] == "log"
        assert s["metrics"]["simple_regret"]["support"] == "nonnegative"
        metrics = pd.read_parquet(run / "metrics.parquet")
        assert list(metrics.columns) == ["agent", "seed", "t"] and metrics.empty
        finals = pd.read_parquet(run / "final.parquet")
        for agent in ("round_robin", "uniform_allocation"):
            err = finals[finals.agent == agent].sort_values("seed")["error"].to_numpy()
            assert err.size == 200 and set(np.unique(err)) <= {0.0, 1.0}
            f = s["agents"][agent]["final"]["error"]
            ref = stats.binomtest(int(err.sum()), 200).proportion_ci(0.95, method="exact")
            assert f["mean"] == pytest.approx(err.mean(), rel=1e-12)
            assert (f["ci_low"], f["ci_high"]) == pytest.approx((ref.low, ref.high), rel=1e-9)
            assert f["ci_high"] > 0
            sr = s["agents"][agent]["final"]["simple_regret"]
            assert sr["ci_low"] >= 0 and "median" in sr
        assert (run / "error.png").read_bytes()[:8] == PNG  # per-agent points, no KeyError
    # the run's own table: the headline with its exact interval and the ratio to the reference
    assert proc.stdout.count("| error (95% CI) | error / round_robin (95% CI) |") == 3
    # round robin's error falls with the budget (exact values 0.62, 0.31, 0.10 at T = 10, 40, 160)
    rr = [
        json.loads((d / j / "summary.json").read_text())["agents"]["round_robin"]["final"]["error"]
        for j in ("0", "1", "2")
    ]
    for f, horizon in zip(rr, (10, 40, 160), strict=True):
        assert f["ci_low"] <= round_robin_error((0.5, 0.6), horizon) <= f["ci_high"]


def test_table_and_plot_of_the_sweep(sweep, tmp_path):
    """In process (`test_cli.tool`: the tools' own `main`; test_cli runs them as subprocesses)."""
    d = sweep[0]
    out = ok(tool("tables", str(d), "--reference", "round_robin")).stdout
    t = table(out)
    assert list(t) == [f"{a} (horizon={h})" for h in (10, 40, 160) for a in ("round_robin",
                       "uniform_allocation")]  # fmt: skip
    s = json.loads((d / "2" / "summary.json").read_text())
    f = s["agents"]["uniform_allocation"]["final"]["error"]
    cell = t["uniform_allocation (horizon=160)"]["error (95% CI)"].strip("*")
    assert cell == f"{f['mean']:.4g} [{f['ci_low']:.4g}, {f['ci_high']:.4g}]"
    assert t["round_robin (horizon=40)"]["error / round_robin (95% CI)"] == "1 [1, 1]"
    assert "simple_regret median" in next(iter(t.values()))

    png = ok(tool("plot", str(d), "--x", "horizon", "-o", str(tmp_path / "e.png")))
    assert png.stdout.strip() == str(tmp_path / "e.png")
    assert (tmp_path / "e.png").read_bytes()[:8] == PNG
    default = ok(tool("plot", str(d), "--x", "horizon", "--metric", "simple_regret"))
    assert Path(default.stdout.strip()) == d / "simple_regret_vs_horizon.png"
    for args, says in (
        (["--x", "agents"], "--x: agents must be a number"),
        (["--x", "env.budget"], "has no config field 'env.budget'"),
        (["--metric", "nope"], "--metric 'nope' is not a metric of"),
    ):
        proc = tool("plot", str(d), *args)
        assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
        assert says in proc.stderr, proc.stderr
    bad = tool("tables", str(d), "--reference", "nope")
    assert bad.returncode == 2 and "--reference:" in bad.stderr


def test_bad_reference_is_one_line_naming_the_field(sweep, tmp_path):
    run_dir = tmp_path / "run"
    proc = cli(
        "run", SEARCH, "env=fixed_budget", AGENTS, "reference=ucb1", f"hydra.run.dir={run_dir}",
        cache=sweep[1],
    )  # fmt: skip
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1
    assert lines[0] == (
        "regretlab: error: reference: must be one of round_robin, uniform_allocation (got 'ucb1')"
    )
    files = [p for p in run_dir.rglob("*") if p.is_file()] if run_dir.exists() else []
    assert files == []  # validated before anything ran: no run directory left behind


# --------------------------------------------------------------------------- reproduce
def _item(r: rp.Reproduction) -> None:
    run = r.run("bai", [SEARCH, "env=fixed_budget", "agents=[round_robin]", "horizon=40",
                        "seeds=300", "compile_cache=null"])  # fmt: skip
    f = run.summary["agents"]["round_robin"]["final"]["error"]
    exact = round_robin_error((0.5, 0.6), 40)
    ours = rp.fmt_ci(f["mean"], f["ci_low"], f["ci_high"])
    # within 4 binomial standard errors of the closed form (a false failure has probability
    # 6e-5; a 95% interval's own coverage would fail one random stream in 20)
    se = (exact * (1 - exact) / 300) ** 0.5
    r.check("R1", "round robin P(error), T = 40", ours, f"{exact:.3f}", "closed form",
            abs(f["mean"] - exact) <= 4 * se)  # fmt: skip


def test_reproduce_runs_a_final_only_experiment(tmp_path, monkeypatch):
    mod = types.ModuleType("fake_bai_paper")
    mod.TITLE = "fixed-budget BAI (example)"
    mod.ITEMS = {"R1": _item}
    monkeypatch.setitem(sys.modules, "fake_bai_paper", mod)
    monkeypatch.setitem(rp.PAPERS, "bai", "fake_bai_paper")
    monkeypatch.chdir(ROOT)
    r = rp.reproduce("bai", tmp_path / "repro", quick=True, progress=False)
    assert [c.ok for c in r.checks] == [True]
    run = tmp_path / "repro" / "runs" / "bai"
    assert pd.read_parquet(run / "metrics.parquet").empty
    assert "Checks (1/1 ok)" in (tmp_path / "repro" / "report.md").read_text()


# --------------------------------------------------------------------------- oracle self-check
def test_self_check_against_a_declared_oracle_matches_numpy(tmp_path):
    """`results.write_run` with an oracle (`Env.oracle`'s per-step expectations) records the
    self-check, and `tables.check_rows` recomputes it from metrics.parquet; both equal a direct
    NumPy computation: per-step mean C_s(T)/T over seeds with its standard error, the means per
    recorded interval (t_{i-1}, t_i] of the run and of the oracle, their maxima and the run's
    value at the oracle's argmax. Synthetic cumulative curves (no engine run)."""
    from experiments import results, tables
    from experiments.simulate import SimResult, make_grid

    T, n = 50, 7
    rounds = make_grid(T, "log", 12)
    rng = np.random.default_rng(3)
    oracle = 1.0 + np.sin(np.arange(1, T + 1)) ** 2  # any per-step expectation
    steps = oracle * rng.chisquare(1, (n, T))
    cum = np.cumsum(steps, axis=1)[:, rounds - 1]
    sim = SimResult(rounds, {"err": cum}, {"err": cum[:, -1]}, 0.0, 1.0, T, n, T)
    summary = results.write_run(tmp_path, {}, {"a": sim}, oracles={"a": {"err": oracle}},
                                infos={"a": {"note": {"message": "hello"}}})  # fmt: skip
    check = summary["agents"]["a"]["oracle"]["err"]
    assert summary["agents"]["a"]["info"] == {"note": {"message": "hello"}}

    starts = np.concatenate([[0], rounds[:-1]])
    width = rounds - starts
    o_int = np.array([oracle[a:b].mean() for a, b in zip(starts, rounds, strict=True)])
    r_int = np.stack([steps[:, a:b].mean(axis=1) for a, b in zip(starts, rounds, strict=True)], 1)
    i, j = int(np.argmax(o_int)), int(np.argmax(r_int.mean(0)))
    per_seed = steps.sum(axis=1) / T
    assert not check["per_step"] and width.max() > 1
    assert check["mean"]["value"] == pytest.approx(per_seed.mean(), rel=1e-12)
    assert check["mean"]["se"] == pytest.approx(per_seed.std(ddof=1) / np.sqrt(n), rel=1e-12)
    assert check["mean"]["oracle"] == pytest.approx(oracle.mean(), rel=1e-12)
    assert check["max"]["oracle"] == pytest.approx(o_int[i], rel=1e-12)
    assert check["max"]["oracle_t"] == [int(starts[i]) + 1, int(rounds[i])]
    assert check["max"]["value"] == pytest.approx(r_int.mean(0)[j], rel=1e-12)
    assert check["max"]["t"] == [int(starts[j]) + 1, int(rounds[j])]
    assert check["max"]["at_oracle_t"] == pytest.approx(r_int[:, i].mean(), rel=1e-12)
    se_i = r_int[:, i].std(ddof=1) / np.sqrt(n)
    assert check["max"]["z"] == pytest.approx((r_int[:, i].mean() - o_int[i]) / se_i, rel=1e-9)

    ((_, metric, recomputed),) = tables.check_rows(results.find_runs([tmp_path]))
    assert metric == "err" and recomputed == {
        k: v for k, v in check.items() if k in ("per_step", "mean", "max")
    }
    text = tables.format_checks([("a", "err", recomputed)])
    assert "record.grid=every gives per-step values" in text
    assert f"| {check['mean']['z']:.2f} |" in text
