"""Benchmark: the engine on an accelerator — agent-steps/s against the seed count N.

UCB1 and Thompson sampling on the 10-armed Bernoulli bandit (means linspace(0.1, 0.9, 10)), as in
bench/bandits.py, and the binary tree counter (research noise) on a Bernoulli(1/2) bit stream,
for growing N: the seed axis is one `vmap`, so an accelerator pays off once N fills it. UCB1
is also measured with the scan body unrolled (`--unroll`, REGRETLAB_SCAN_UNROLL: fewer loop
iterations of small kernels, the lever on a GPU) and as an in-program sweep of 8 values of its
`c` (`simulate_sweep`: configs x seeds lanes). The reference is the same engine on the same
machine's CPU backend, measured in the same run (subprocesses with JAX_PLATFORMS=cpu), so the
printed ratio is GPU / CPU on one machine. Each measurement is one subprocess: a warm-up
(compile) call is excluded by the engine's own compile/run split.

    python bench/gpu.py [--horizon 100000] [--seeds 1000 10000 100000 1000000] [--out FILE]
    python bench/gpu.py --quick          # a dry run of every row at small sizes (any machine)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]


SWEEP_C = (0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0)  # the in-program sweep's values of UCB1's c


def measure(agent_name: str, horizon: int, seeds: int) -> dict:
    """One run (compile excluded by the engine): rate, compile and run seconds, final metric.

    `agent_name`: ucb1, thompson, ucb1_sweep (8 values of c in one program; the rate counts
    every config's agent-steps) or counter_tree (binary tree counter, research noise, on a
    Bernoulli(1/2) stream; its metric is the squared error of the release)."""
    import jax
    import numpy as np

    from bandits import bernoulli_bandit
    from bandits.agents import UCB1, ThompsonSampling
    from experiments.simulate import simulate, simulate_sweep

    metric = "regret"
    if agent_name == "ucb1_sweep":
        env = bernoulli_bandit(10)
        variants = [(env, env.default_params(), UCB1(c=c)) for c in SWEEP_C]
        runs = simulate_sweep({"ucb1": variants}, horizon, seeds, seed=0)["ucb1"]
        r, configs = runs[0], len(runs)
    else:
        if agent_name == "counter_tree":
            from privacy.continual import continual_bernoulli
            from privacy.counters import BinaryTreeCounter

            env, agent, metric = continual_bernoulli(p=0.5), BinaryTreeCounter(rho=0.5), "sq_error"
        else:
            env = bernoulli_bandit(10)
            agent = {"ucb1": UCB1(), "thompson": ThompsonSampling()}[agent_name]
        r, configs = simulate(env, env.default_params(), agent, horizon, seeds, seed=0), 1
    final = r.final[metric]
    return {
        "backend": jax.default_backend(),
        "device": str(jax.devices()[0].device_kind),
        "agent": agent_name,
        "unroll": int(os.environ.get("REGRETLAB_SCAN_UNROLL", "1")),
        "T": horizon,
        "N": seeds,
        "configs": configs,
        # run_seconds of a swept config is 1/C of the program's: C x N x T agent-steps in C x it
        "steps_per_s": r.agent_steps_per_second,
        "compile_s": r.compile_seconds,
        "run_s": r.run_seconds * configs,
        "metric": metric,
        "final": float(final.mean()),
        "final_se": float(final.std(ddof=1) / np.sqrt(seeds)),
        "chunk": r.info["chunk_size"],
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--horizon", type=int, default=100_000)
    ap.add_argument("--ts-horizon", type=int, default=10_000)
    ap.add_argument("--counter-horizon", type=int, default=4096)
    ap.add_argument("--seeds", type=int, nargs="+", default=[1000, 10_000, 100_000, 1_000_000])
    ap.add_argument("--cpu-seeds", type=int, nargs="+", default=[1000, 10_000])
    ap.add_argument("--unroll", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--quick", action="store_true", help="every row at small sizes (dry run)")
    ap.add_argument("--one", help=argparse.SUPPRESS)  # internal: agent,T,N for a subprocess
    ap.add_argument("--out")
    args = ap.parse_args()
    if args.one:
        agent, t, n = args.one.split(",")
        print(json.dumps(measure(agent, int(t), int(n))), flush=True)
        return
    if args.quick:
        args.horizon, args.ts_horizon, args.counter_horizon = 1000, 200, 256
        args.seeds, args.cpu_seeds = [100, 1000], [100]
    plan = [("ucb1", args.horizon, u) for u in args.unroll]
    plan += [("ucb1_sweep", args.horizon, 1), ("thompson", args.ts_horizon, 1)]
    plan += [("counter_tree", args.counter_horizon, 1)]
    rows, cpu_only = [], _cpu_only()
    for agent, horizon, unroll in plan:
        for platform, seed_list in (("default", args.seeds), ("cpu", args.cpu_seeds)):
            for n in seed_list:
                env = dict(os.environ, REGRETLAB_SCAN_UNROLL=str(unroll))
                if platform == "cpu":
                    env["JAX_PLATFORMS"] = "cpu"
                elif cpu_only:
                    continue  # no accelerator: the CPU rows are the whole table
                cmd = [sys.executable, __file__, "--one", f"{agent},{horizon},{n}"]
                out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
                if out.returncode:
                    print(out.stderr[-2000:], file=sys.stderr)
                    continue
                row = json.loads(out.stdout.strip().splitlines()[-1])
                rows.append(row)
                print(json.dumps(row), flush=True)
    cpu = {
        (r["agent"], r["N"], r["unroll"]): r["steps_per_s"] for r in rows if r["backend"] == "cpu"
    }
    lines = [
        "| agent | unroll | backend | device | T | N | configs | agent-steps/s |"
        " vs CPU (same N, same machine) | compile s | run s | final metric ± SE |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        ref = cpu.get((r["agent"], r["N"], r["unroll"]))
        ratio = f"{r['steps_per_s'] / ref:.2f}" if ref else "–"
        lines.append(
            f"| {r['agent']} | {r['unroll']} | {r['backend']} | {r['device']} | {r['T']:.0e} |"
            f" {r['N']} | {r['configs']} | {r['steps_per_s']:.3g} | {ratio} |"
            f" {r['compile_s']:.1f} | {r['run_s']:.1f} |"
            f" {r['metric']} {r['final']:.4g} ± {r['final_se']:.2g} |"
        )
    table = "\n".join(lines)
    print(table)
    if args.out:
        Path(args.out).write_text(table + "\n")


def _cpu_only() -> bool:
    """Whether this machine has no accelerator (asked in a subprocess: JAX stays unloaded here)."""
    cmd = [sys.executable, "-c", "import jax; print(jax.default_backend())"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    return out.stdout.strip() == "cpu"


if __name__ == "__main__":
    main()
