"""Benchmark: agent-steps/s of the regretlab engine against Numba and NumPy references.

Task: K = 10 Bernoulli arms, means linspace(0.1, 0.9, 10); UCB1 and Beta-Bernoulli
Thompson sampling; agent-steps/s = N T / run seconds (engine compile time excluded and reported
separately). The implementations run in this one process, interleaved: one warm-up call each
(horizon min(T, --warmup-horizon), same N), then `--rounds` rounds round-robin; reported are the
median and min–max. Ratios are to the Numba references measured in the same run: the
single-threaded loop and the same loop with `numba.prange` over seeds (all cores). The engine
splits its seeds over the process's JAX devices (one per core by default, `experiments.devices`;
``REGRETLAB_HOST_DEVICES=1``: one); with several, `engine_1dev` is the engine with its seeds on
one device, interleaved with the rest (the A/B of the default in one process, under one load).

A fresh subprocess measures the peak RSS of the engine at T = 10^6, N = 1000 with UCB1.

    uv run --group bench python bench/bandits.py            # full run, appends to bench/results.md
    uv run --group bench python bench/bandits.py --quick    # small sizes, prints only
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
# This script shares its name with the `bandits` package: import from the repository root instead.
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]

from bench import _refs  # noqa: E402  (after the sys.path fix above)
from bench._common import ChunkClock  # noqa: E402
from bench._common import machine_facts as common_facts  # noqa: E402

MEANS = np.linspace(0.1, 0.9, 10)
AGREE_SE = 4.0  # sanity bound on |mean_i - mean_numba| in standard errors of the difference


@dataclass
class Run:
    """One timed call: wall (run) seconds, agent-steps per CPU second (None when not measurable),
    compile seconds (engine only), per-seed final regret."""

    run_s: float
    cpu_rate: float | None
    compile_s: float | None
    final: np.ndarray
    info: dict = field(default_factory=dict)


Impl = Callable[[int, int, int], Run]


# --------------------------------------------------------------------------- implementations
def engine_impl(agent_name: str, one_device: bool = False) -> Impl:
    """`experiments.simulate.simulate` with the default (log, 200 points) recording grid; with
    `one_device`, the seeds kept on one device (``REGRETLAB_SHARD_SEEDS=0`` while it compiles and
    runs: its own program, the same numbers) even where the process has several."""
    from bandits import bernoulli_bandit
    from experiments.simulate import simulate

    agent = _make_agent(agent_name)
    env = bernoulli_bandit(len(MEANS))
    params = env.default_params()

    def run(horizon: int, seeds: int, seed: int) -> Run:
        clock = ChunkClock()
        saved = os.environ.get("REGRETLAB_SHARD_SEEDS")
        if one_device:
            os.environ["REGRETLAB_SHARD_SEEDS"] = "0"
        try:
            res = simulate(env, params, agent, horizon, seeds, seed=seed, progress=clock)
        finally:
            if one_device and saved is None:
                os.environ.pop("REGRETLAB_SHARD_SEEDS")
            elif one_device:
                os.environ["REGRETLAB_SHARD_SEEDS"] = saved
        info = {"chunk_size": res.info.get("chunk_size"), "seed_devices": res.info["seed_devices"]}
        cpu = clock.cpu_rate(seeds)
        return Run(res.run_seconds, cpu, res.compile_seconds, res.final["regret"], info)

    return run


def _make_agent(name: str):
    if name == "ucb1":
        from bandits.agents import UCB1

        return UCB1()
    from bandits.agents import ThompsonSampling

    return ThompsonSampling()


def ref_impl(fn: Callable) -> Impl:
    """A reference function (means, T, N, seed) -> (mean curve, finals), timed by wall clock."""

    def run(horizon: int, seeds: int, seed: int) -> Run:
        t0, c0 = time.perf_counter(), time.process_time()
        _, final = fn(MEANS, horizon, seeds, seed)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        return Run(wall, horizon * seeds / max(cpu, 1e-12), None, np.asarray(final, np.float64))

    return run


def implementations(agent: str) -> dict[str, Impl]:
    """The engine (seeds over every device of the process), where the process has several
    devices the engine on one of them (`engine_1dev`), and the references."""
    import jax

    refs = {
        "numba": getattr(_refs, f"{agent}_numba"),
        "numba_prange": getattr(_refs, f"{agent}_numba_prange"),
        "numpy": getattr(_refs, f"{agent}_numpy"),
    }
    engines = {"engine": engine_impl(agent)}
    if len(jax.local_devices()) > 1:
        engines["engine_1dev"] = engine_impl(agent, one_device=True)
    return {**engines, **{name: ref_impl(fn) for name, fn in refs.items()}}


# --------------------------------------------------------------------------- measurement
def bench_agent(agent: str, horizon: int, seeds: int, rounds: int, warmup_horizon: int) -> dict:
    """Warm-up, then `rounds` round-robin rounds over the implementations; raw results."""
    impls = implementations(agent)
    out = {name: {"first": None, "runs": []} for name in impls}
    load = [os.getloadavg()]
    for name, fn in impls.items():
        t0 = time.perf_counter()
        fn(min(horizon, warmup_horizon), seeds, 0)
        out[name]["first"] = time.perf_counter() - t0
        print(f"[{agent}] warm-up {name}: {out[name]['first']:.2f} s", flush=True)
    for r in range(rounds):
        for name, fn in impls.items():
            res = fn(horizon, seeds, 0)
            out[name]["runs"].append(res)
            rate = horizon * seeds / res.run_s
            cpu = f"{res.cpu_rate:.3g}" if res.cpu_rate else "–"
            print(
                f"[{agent}] round {r + 1} {name}: {res.run_s:.2f} s, {rate:.3g} steps/s, "
                f"{cpu} steps/CPU-s",
                flush=True,
            )
        load.append(os.getloadavg())
    return {"agent": agent, "T": horizon, "N": seeds, "results": out, "load": load}


def summarise(raw: dict) -> list[dict]:
    """Median / min–max rates, ratios to Numba (same run), final regret mean ± SE, agreement."""
    steps = raw["T"] * raw["N"]
    res = raw["results"]
    numba_rates = np.array([steps / r.run_s for r in res["numba"]["runs"]])
    prange_rates = np.array([steps / r.run_s for r in res["numba_prange"]["runs"]])
    ref_final = res["numba"]["runs"][0].final
    rows = []
    for name, d in res.items():
        rates = np.array([steps / r.run_s for r in d["runs"]])
        final = d["runs"][0].final
        mean, se = final.mean(), final.std(ddof=1) / np.sqrt(final.size)
        se_diff = np.hypot(se, ref_final.std(ddof=1) / np.sqrt(ref_final.size))
        z = abs(mean - ref_final.mean()) / se_diff
        compile_s = [r.compile_s for r in d["runs"] if r.compile_s is not None]
        cpu = [r.cpu_rate for r in d["runs"]]
        cpu_ratio = None
        if all(cpu) and all(r.cpu_rate for r in res["numba"]["runs"]):
            numba_cpu = np.median([r.cpu_rate for r in res["numba"]["runs"]])
            cpu_ratio = float(np.median(cpu) / numba_cpu)
        rows.append(
            {
                "impl": name,
                "steps": steps,
                "median_s": float(np.median([r.run_s for r in d["runs"]])),
                "rate": float(np.median(rates)),
                "rate_min": float(rates.min()),
                "rate_max": float(rates.max()),
                "ratio": float(np.median(rates) / np.median(numba_rates)),
                "ratio_rounds": (rates / numba_rates).tolist(),
                "ratio_prange": float(np.median(rates) / np.median(prange_rates)),
                "ratio_prange_rounds": (rates / prange_rates).tolist(),
                "cpu_rate": float(np.median(cpu)) if all(cpu) else None,
                "cpu_ratio": cpu_ratio,
                "compile_s": float(np.median(compile_s)) if compile_s else None,
                "first_s": d["first"],
                "final_mean": float(mean),
                "final_se": float(se),
                "z_vs_numba": float(z),
                "agree": bool(z <= AGREE_SE),
                "info": d["runs"][0].info,
            }
        )
    return rows


def table(raw: dict, rows: list[dict]) -> str:
    """A Markdown table of one agent's results."""
    load = " | ".join(" ".join(f"{x:.2f}" for x in la) for la in raw["load"])
    lines = [
        f"### {raw['agent']}: T={raw['T']:.0e}, N={raw['N']} (K=10)",
        "",
        f"load average (1/5/15 min) before warm-up, then after each round: {load}",
        "",
        "| implementation | agent-steps/s (median) | min–max | run s (median) "
        "| compile s (median) | warm-up call s | ratio to Numba (median; per round) "
        "| ratio to Numba prange (median; per round) "
        "| agent-steps per CPU-s | CPU ratio to Numba | final regret ± SE | Δ vs Numba (SE) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        comp = f"{r['compile_s']:.2f}" if r["compile_s"] is not None else "–"
        per_round = ", ".join(f"{x:.2f}" for x in r["ratio_rounds"])
        per_round_p = ", ".join(f"{x:.2f}" for x in r["ratio_prange_rounds"])
        cpu = f"{r['cpu_rate']:.3g}" if r["cpu_rate"] else "–"
        cpu_ratio = f"**{r['cpu_ratio']:.2f}**" if r["cpu_ratio"] else "–"
        info = r["info"]
        name = r["impl"] + (
            f" (chunk {info['chunk_size']}, {info['seed_devices']} device"
            f"{'s' if info['seed_devices'] > 1 else ''})"
            if info
            else ""
        )
        lines.append(
            f"| {name} | **{r['rate']:.3g}** | {r['rate_min']:.3g}–{r['rate_max']:.3g} "
            f"| {r['median_s']:.2f} | {comp} | {r['first_s']:.2f} "
            f"| **{r['ratio']:.2f}** ({per_round}) | **{r['ratio_prange']:.2f}** ({per_round_p}) "
            f"| {cpu} | {cpu_ratio} "
            f"| {r['final_mean']:.1f} ± {r['final_se']:.1f} "
            f"| {r['z_vs_numba']:.1f}{'' if r['agree'] else ' DISAGREE'} |"
        )
    return "\n".join(lines)


# --------------------------------------------------------------------------- memory
def memory_child(horizon: int, seeds: int) -> None:
    """Run the engine once (UCB1) and print peak RSS and timings as one JSON line."""
    import jax

    from bandits import bernoulli_bandit
    from bandits.agents import UCB1
    from experiments.simulate import simulate

    env = bernoulli_bandit(len(MEANS))
    res = simulate(env, env.default_params(), UCB1(), horizon, seeds, seed=0)
    final = res.final["regret"]
    print(
        json.dumps(
            {
                "T": horizon,
                "N": seeds,
                "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                "compile_s": res.compile_seconds,
                "run_s": res.run_seconds,
                "rate": res.agent_steps_per_second,
                "chunk_size": res.info["chunk_size"],
                "final_mean": float(final.mean()),
                "final_se": float(final.std(ddof=1) / np.sqrt(final.size)),
                "jax": jax.__version__,
            }
        )
    )


def measure_memory(horizon: int, seeds: int) -> dict:
    """Peak RSS (ru_maxrss of a fresh Python process) of one engine run."""
    cmd = [sys.executable, __file__, "--memory-child", f"--horizon={horizon}", f"--seeds={seeds}"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=ROOT)
    return json.loads(out.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------- report
def machine_facts() -> dict:
    import numba

    return common_facts(ROOT, "experiments", "bandits", numba=numba.__version__)


def report(
    facts: dict, sections: list[str], memory: list[dict], argv: list[str], appended: bool
) -> str:
    """The run's Markdown: a whole file, or (`appended`) a dated section for the end of one."""
    title = "Bandit benchmark: regretlab engine vs Numba / NumPy references"
    lines = [
        f"## {facts['date']}: {title}" if appended else f"# {title}",
        "",
        f"Written by `{' '.join(['uv run --group bench python bench/bandits.py', *argv])}` on "
        f"{facts['date']}.",
        "",
        f"**Machine:** {facts['cpu']}, {facts['cores']} cores; Python {facts['python']}, "
        f"jax {facts['jax']} ({facts['backend']}, JAX devices {facts['devices']}, "
        f"REGRETLAB_HOST_DEVICES={facts['host_devices_env']}, x64 {facts['x64']}), "
        f"numba {facts['numba']}, "
        f"numpy {facts['numpy']}; git {facts['git']}.",
        "",
        "Other processes share the cores; compare only within one table. agent-steps/s = N T / run "
        "seconds; the engine's compile time is excluded and reported apart. agent-steps per CPU-s: "
        "per second of process CPU time, summed over threads (the engine and Numba prange use "
        "every core, Numba and NumPy one; for the engine from the end of its first chunk to the "
        "end of its last), the measure least disturbed by other processes. Each implementation: "
        "one warm-up call, then rounds round-robin; median and min–max over rounds. Final regret: "
        "pseudo-regret at T, mean ± standard error over seeds (engine: seed 0 → its own streams; "
        "references: their own RNGs), Δ = |mean − Numba mean| / SE of the difference.",
        "",
        *sections,
    ]
    if memory:
        lines += [
            "",
            "### Peak memory of the engine (UCB1, fresh subprocess, `ru_maxrss`)",
            "",
            "| T | N | chunk | peak RSS MB | run s | agent-steps/s | compile s "
            "| final regret ± SE |",
            "|---|---|---|---|---|---|---|---|",
        ]
    for m in memory:
        lines.append(
            f"| {m['T']:.0e} | {m['N']} | {m['chunk_size']} | **{m['maxrss_mb']:.0f}** "
            f"| {m['run_s']:.1f} | {m['rate']:.3g} | {m['compile_s']:.1f} "
            f"| {m['final_mean']:.1f} ± {m['final_se']:.1f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true", help="small sizes (T=1e4, N=100; TS T=500)")
    p.add_argument("--agents", default="ucb1,thompson", help="comma list: ucb1, thompson")
    p.add_argument("--horizon", type=int, default=None, help="UCB1 T (default 1e5)")
    p.add_argument("--seeds", type=int, default=None, help="N for both agents (default 1000)")
    p.add_argument("--ts-horizon", type=int, default=None, help="Thompson T (default 1e4)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--warmup-horizon", type=int, default=10_000)
    p.add_argument("--mem-horizon", type=int, default=None, help="memory run T (default 1e6)")
    p.add_argument("--mem-seeds", type=int, default=None, help="memory run N (default 1000)")
    p.add_argument("--no-memory", action="store_true")
    p.add_argument(
        "--out",
        default=None,
        help="Markdown to append to (default bench/results.md; --quick: no file)",
    )
    p.add_argument("--memory-child", action="store_true", help=argparse.SUPPRESS)
    a = p.parse_args(argv)

    if a.memory_child:
        memory_child(a.horizon, a.seeds)
        return
    quick = a.quick
    horizon = a.horizon or (10_000 if quick else 100_000)
    seeds = a.seeds or (100 if quick else 1000)
    # Thompson: every implementation runs at ~1e5-1e6 agent-steps/s here, so T=1e5, N=1000 would
    # take 2-7 minutes per call (hours in all) on the loaded 2-core machine.
    ts_horizon = a.ts_horizon or (500 if quick else 10_000)
    out = a.out or (None if quick else str(ROOT / "bench" / "results.md"))

    facts = machine_facts()
    print(json.dumps(facts), flush=True)
    sections, failed = [], []
    for agent in a.agents.split(","):
        T = horizon if agent == "ucb1" else ts_horizon
        raw = bench_agent(agent, T, seeds, a.rounds, a.warmup_horizon)
        rows = summarise(raw)
        sections += [table(raw, rows), ""]
        print("\n" + sections[-2] + "\n", flush=True)
        failed += [
            f"{agent}/{r['impl']} (Δ={r['z_vs_numba']:.1f} SE)" for r in rows if not r["agree"]
        ]

    memory = []
    if not a.no_memory:
        mem_T = a.mem_horizon or (100_000 if quick else 1_000_000)
        mem_N = a.mem_seeds or (100 if quick else 1000)
        print(f"memory: engine UCB1 T={mem_T} N={mem_N} in a subprocess ...", flush=True)
        memory.append(measure_memory(mem_T, mem_N))
        print(json.dumps(memory[-1]), flush=True)

    facts["load_end"] = os.getloadavg()
    if out:  # an existing file (bench/results.md: the record of earlier runs) is appended to
        path = Path(out)
        appended = path.exists()
        with path.open("a") as f:
            f.write(("\n" if appended else "") + report(facts, sections, memory, argv, appended))
        print(f"{'appended to' if appended else 'wrote'} {out}")
    if failed:
        print("SANITY CHECK: final regrets disagree beyond 4 SE: " + ", ".join(failed))


if __name__ == "__main__":
    main()
