"""Benchmark: the engine on an accelerator — agent-steps/s against the seed count N.

UCB1 and Thompson sampling on the 10-armed Bernoulli bandit (means linspace(0.1, 0.9, 10)), as in
bench/bandits.py, for growing N: the seed axis is one `vmap`, so an accelerator pays off once N
fills it. The reference is the same engine on the same machine's CPU backend, measured in the
same run (a subprocess with JAX_PLATFORMS=cpu), so the printed ratio is GPU / CPU on one machine.

    python bench/gpu.py [--horizon 100000] [--seeds 1000 10000 100000] [--out FILE]
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


def measure(agent_name: str, horizon: int, seeds: int) -> dict:
    """One warm run (compile excluded by the engine): rate, compile and run seconds, regret."""
    import jax
    import numpy as np

    from bandits import bernoulli_bandit
    from bandits.agents import UCB1, ThompsonSampling
    from experiments.simulate import simulate

    agent = {"ucb1": UCB1(), "thompson": ThompsonSampling()}[agent_name]
    env = bernoulli_bandit(10)
    r = simulate(env, env.default_params(), agent, horizon, seeds, seed=0)
    reg = r.final["regret"]
    return {
        "backend": jax.default_backend(),
        "device": str(jax.devices()[0].device_kind),
        "agent": agent_name,
        "T": horizon,
        "N": seeds,
        "steps_per_s": r.agent_steps_per_second,
        "compile_s": r.compile_seconds,
        "run_s": r.run_seconds,
        "regret": float(reg.mean()),
        "regret_se": float(reg.std(ddof=1) / np.sqrt(seeds)),
        "chunk": r.info["chunk_size"],
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--horizon", type=int, default=100_000)
    ap.add_argument("--ts-horizon", type=int, default=10_000)
    ap.add_argument("--seeds", type=int, nargs="+", default=[1000, 10_000, 100_000])
    ap.add_argument("--cpu-seeds", type=int, nargs="+", default=[1000, 10_000])
    ap.add_argument("--one", help=argparse.SUPPRESS)  # internal: agent,T,N for a subprocess
    ap.add_argument("--out")
    args = ap.parse_args()
    if args.one:
        agent, t, n = args.one.split(",")
        print(json.dumps(measure(agent, int(t), int(n))), flush=True)
        return
    rows = []
    for agent, horizon in (("ucb1", args.horizon), ("thompson", args.ts_horizon)):
        for platform, seed_list in (("default", args.seeds), ("cpu", args.cpu_seeds)):
            for n in seed_list:
                env = dict(os.environ)
                if platform == "cpu":
                    env["JAX_PLATFORMS"] = "cpu"
                cmd = [sys.executable, __file__, "--one", f"{agent},{horizon},{n}"]
                out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
                if out.returncode:
                    print(out.stderr[-2000:], file=sys.stderr)
                    continue
                row = json.loads(out.stdout.strip().splitlines()[-1])
                rows.append(row)
                print(json.dumps(row), flush=True)
    cpu = {(r["agent"], r["N"]): r["steps_per_s"] for r in rows if r["backend"] == "cpu"}
    lines = [
        "| agent | backend | device | T | N | agent-steps/s | vs CPU (same N, same machine) |"
        " compile s | run s | regret ± SE |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        ref = cpu.get((r["agent"], r["N"]))
        ratio = f"{r['steps_per_s'] / ref:.2f}" if ref else "–"
        lines.append(
            f"| {r['agent']} | {r['backend']} | {r['device']} | {r['T']:.0e} | {r['N']} |"
            f" {r['steps_per_s']:.3g} | {ratio} | {r['compile_s']:.1f} | {r['run_s']:.1f} |"
            f" {r['regret']:.1f} ± {r['regret_se']:.1f} |"
        )
    table = "\n".join(lines)
    print(table)
    if args.out:
        Path(args.out).write_text(table + "\n")


if __name__ == "__main__":
    main()
