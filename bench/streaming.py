"""Streaming-MAB benchmark: the six algorithms of Wang (ICML 2023) at paper scale, plus a NumPy
reference of streaming uniform exploration (docs/streaming.md, bench/README.md).

    uv run python bench/streaming.py            # K = 50 000, T = 1000 K^3 = 1.25e17, 50 seeds
    uv run python bench/streaming.py --quick    # K = 1000, T = 1e9, 10 seeds; prints only

Corrected mode, clear-cut instance, x64. The six are run as `regretlab` runs them
(`simulate_agents`: programs compiled concurrently, then each run); per agent: compile and run
seconds, mean regret and its ratio to uniform exploration; total wall and CPU seconds and the load
average (the machine is shared). The NumPy reference draws the same instance family
(TruncNormal(0.5, 0.1, [0, 0.8]) + one arm at 0.82, random position), pulls each arm b =
ceil((T/K)^{2/3} (ln T)^{1/3}) times with exact `Generator.binomial`, keeps the first empirical
maximum (the king is replaced only by a strictly larger mean) and commits; vectorised over seeds
and arms. The head to head also times it with the truncated normal drawn by rejection instead of
scipy's `truncnorm` (whose time dominates the reference and varies several-fold between calls).
Its regret must agree with the engine's uniform exploration (different random streams: compared
within standard errors). Then the uniform run and the NumPy reference are timed head
to head, interleaved, best of `--reps` (the uniform program is reused from the process's program
cache, so compile is excluded): wall and CPU seconds (`time.process_time`, all threads) and
their ratios, since the machine is shared and the engine uses every core while NumPy uses one.
The engine splits the seeds over the process's JAX devices (one per core by default,
`experiments.devices`); with several, the head to head also times the engine with its seeds on
one device (`REGRETLAB_SHARD_SEEDS=0` while it compiles), interleaved. `--head-to-head` times
only that (about a minute: two compiles and the runs). Writes bench/streaming_results.md unless
--quick or --head-to-head.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import sys
import time
from pathlib import Path

# bench/bandits.py would shadow the `bandits` package: import from the repository root instead
sys.path[0] = str(Path(__file__).resolve().parents[1])

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)

import numpy as np  # noqa: E402
from scipy import stats  # noqa: E402

import bandits.streaming as bs  # noqa: E402
from experiments.simulate import compile_simulation, simulate_agents  # noqa: E402

AGENTS = (
    "StreamUniform",
    "StreamNaive",
    "StreamLog",
    "StreamLogLog",
    "StreamLogStar",
    "GameOfArms",
)


def load() -> float:
    return os.getloadavg()[0]


def numpy_uniform(
    K: int, T: int, seeds: int, seed: int = 0, truncnorm: str = "scipy"
) -> tuple[np.ndarray, float]:
    """Streaming uniform exploration in NumPy, vectorised over seeds x arms: regrets, seconds.
    `truncnorm`: the instance's TruncNormal(0.5, 0.1, [0, 0.8]) means by ``scipy``
    (`scipy.stats.truncnorm.rvs`) or by ``rejection`` (`truncated_normal_rejection`)."""
    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    if truncnorm == "scipy":
        lo, hi = (0.0 - 0.5) / 0.1, (0.8 - 0.5) / 0.1
        means = 0.5 + 0.1 * stats.truncnorm.rvs(lo, hi, size=(seeds, K), random_state=rng)
    else:
        means = truncated_normal_rejection(rng, 0.5, 0.1, 0.0, 0.8, (seeds, K))
    best_at = rng.integers(0, K, seeds)
    means[np.arange(seeds), best_at] = 0.82
    b = math.ceil((T / K) ** (2 / 3) * math.log(T) ** (1 / 3) - 1e-9)
    r = rng.binomial(b, means) / b  # empirical means in stream order
    king = np.argmax(r, axis=1)  # first maximum: a challenger must be strictly better
    best = means.max(axis=1, keepdims=True)
    chosen = means[np.arange(seeds), king][:, None]
    regret = b * (best - means).sum(axis=1) + (T - K * b) * (best - chosen)[:, 0]
    return regret, time.perf_counter() - t0


def truncated_normal_rejection(rng, mean, sd, lo, hi, shape) -> np.ndarray:
    """TruncNormal(mean, sd, [lo, hi]) exactly: normals, those outside redrawn until none is
    (acceptance 0.9987 for [mean - 5 sd, mean + 3 sd]: one redraw pass of ~0.1% of them)."""
    x = rng.normal(mean, sd, shape)
    out = (x < lo) | (x > hi)
    while out.any():
        x[out] = rng.normal(mean, sd, int(out.sum()))
        out = (x < lo) | (x > hi)
    return x


def run(K: int, T: int, seeds: int) -> tuple[list[dict], float]:
    """All six through `simulate_agents` (concurrent compilation, as `regretlab` runs them)."""
    env = bs.streaming_bandit(K=K, horizon=T, memory=16, instance="clear_cut")
    agents = {name: getattr(bs, name)() for name in AGENTS}
    t0 = time.perf_counter()
    sims = simulate_agents(env, env.default_params(), agents, T, seeds)
    total = time.perf_counter() - t0
    rows = []
    for name, res in sims.items():
        reg = res.final["regret"]
        rows.append(
            dict(
                agent=name,
                compile_s=res.compile_seconds,
                run_s=res.run_seconds,
                steps=res.steps,
                regret=reg.mean(),
                se=reg.std(ddof=1) / math.sqrt(seeds),
                load=load(),
            )
        )
        r = rows[-1]
        print(
            f"{name:14s} compile {r['compile_s']:6.1f} s  run {r['run_s']:6.1f} s  "
            f"steps {r['steps']:6d}  regret {r['regret']:.4g} ± {r['se']:.2g}  "
            f"ratio {r['regret'] / rows[0]['regret']:.3f}",
            flush=True,
        )
    return rows, total


def head_to_head(K: int, T: int, seeds: int, reps: int) -> dict[str, tuple[float, float]]:
    """Best-of-`reps` (wall, CPU) seconds of the engine's uniform run and the NumPy reference,
    interleaved; the uniform program comes from the process's program cache (no compile)."""
    env = bs.streaming_bandit(K=K, horizon=T, memory=16, instance="clear_cut")
    sim = compile_simulation(env, env.default_params(), bs.StreamUniform(), T, seeds)
    jobs = {"engine": lambda: sim.run(0)}
    if len(jax.local_devices()) > 1:  # the engine with its seeds on one device, for the A/B
        os.environ["REGRETLAB_SHARD_SEEDS"] = "0"  # read when the program is compiled
        try:
            one = compile_simulation(env, env.default_params(), bs.StreamUniform(), T, seeds)
        finally:
            os.environ.pop("REGRETLAB_SHARD_SEEDS")
        jobs["engine_1dev"] = lambda: one.run(0)
    jobs["numpy"] = lambda: numpy_uniform(K, T, seeds)
    jobs["numpy_rejection"] = lambda: numpy_uniform(K, T, seeds, truncnorm="rejection")
    best = {name: (math.inf, math.inf) for name in jobs}
    for _ in range(reps):
        for name, job in jobs.items():
            w0, c0 = time.perf_counter(), time.process_time()
            job()
            w, c = time.perf_counter() - w0, time.process_time() - c0
            best[name] = (min(best[name][0], w), min(best[name][1], c))
    return best


def head_to_head_line(h2h: dict[str, tuple[float, float]], reps: int) -> str:
    """The head-to-head figures as one sentence (with the one-device engine where it ran)."""
    (e_w, e_c), (n_w, n_c) = h2h["engine"], h2h["numpy"]
    devices = len(jax.local_devices())
    line = (
        f"Head to head (best of {reps}, interleaved, compile excluded): engine uniform run "
        f"({devices} device{'s' if devices > 1 else ''}) {e_w:.2f} s wall / {e_c:.2f} CPU s, "
        f"NumPy {n_w:.2f} s wall / {n_c:.2f} CPU s: engine / NumPy = {e_w / n_w:.2f}x per wall "
        f"second, {e_c / n_c:.2f}x per CPU second"
    )
    if "numpy_rejection" in h2h:
        r_w, r_c = h2h["numpy_rejection"]
        line += (
            f"; NumPy with the truncated normal by rejection (not scipy) {r_w:.2f} s wall / "
            f"{r_c:.2f} CPU s: engine / it = {e_w / r_w:.2f}x per wall second"
        )
    if "engine_1dev" in h2h:
        o_w, o_c = h2h["engine_1dev"]
        line += (
            f"; the engine on one device {o_w:.2f} s wall / {o_c:.2f} CPU s ({o_w / n_w:.2f}x "
            f"NumPy per wall second)"
        )
    return line + f"; load {load():.1f}."


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="K=1000, T=1e9, 10 seeds; no file")
    ap.add_argument("--seeds", type=int, default=None)
    ap.add_argument("--reps", type=int, default=3, help="head-to-head repetitions (best of)")
    ap.add_argument(
        "--head-to-head",
        action="store_true",
        help="only the engine's uniform run against NumPy (compile excluded); no file",
    )
    args = ap.parse_args()
    K, seeds = (1000, 10) if args.quick else (50_000, 50)
    seeds = args.seeds or seeds
    T = 1000 * K ** (2 if args.quick else 3)
    print(f"K = {K}, T = {T:.3g}, {seeds} seeds, corrected mode, x64; load {load():.1f}")
    if args.head_to_head:
        print(head_to_head_line(head_to_head(K, T, seeds, args.reps), args.reps))
        return
    load_start = load()
    cpu0 = time.process_time()
    rows, total = run(K, T, seeds)
    cpu = time.process_time() - cpu0
    np_reg, np_s = numpy_uniform(K, T, seeds)
    np_load = load()
    h2h_line = head_to_head_line(head_to_head(K, T, seeds, args.reps), args.reps)
    print(h2h_line)
    uni = rows[0]
    np_se = np_reg.std(ddof=1) / math.sqrt(seeds)
    z = (uni["regret"] - np_reg.mean()) / math.hypot(uni["se"], np_se)
    run_s = sum(r["run_s"] for r in rows)
    print(
        f"all six: {total:.1f} s wall, {cpu:.0f} CPU s (runs {run_s:.1f} s; compiling, concurrent "
        f"in {min(len(rows), os.cpu_count() or 1)} threads, {total - run_s:.1f} s); "
        f"load {load():.1f}"
    )
    print(
        f"numpy uniform: {np_s:.2f} s, regret {np_reg.mean():.4g} ± {np_se:.2g} "
        f"(engine - numpy: {z:+.1f} SE); engine uniform run / numpy: "
        f"{uni['run_s'] / np_s:.1f}x; load {np_load:.1f}"
    )
    if args.quick:
        return
    lines = [
        "# Streaming MAB benchmark (`uv run python bench/streaming.py`)",
        "",
        f"K = {K}, T = 1000 K^3 = {T:.3g}, {seeds} seeds, clear-cut, corrected mode, x64; "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"jax {jax.__version__}; 1-minute load average {load_start:.1f} at the start (shared "
        "machine).",
        "",
        "| agent | compile s (concurrent) | run s | steps | mean regret ± SE | ratio to uniform |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['agent']} | {r['compile_s']:.1f} | {r['run_s']:.1f} | {r['steps']} | "
            f"{r['regret']:.4g} ± {r['se']:.2g} | {r['regret'] / uni['regret']:.3f} |"
        )
    lines += [
        f"| numpy uniform (reference) | – | {np_s:.2f} | – | {np_reg.mean():.4g} ± {np_se:.2g} | "
        f"{np_reg.mean() / uni['regret']:.3f} |",
        "",
        f"All six: {total:.1f} s wall ({cpu:.0f} CPU s), of which runs {run_s:.1f} s and "
        f"compiling (six programs in {min(len(rows), os.cpu_count() or 1)} threads) "
        f"{total - run_s:.1f} s; load average {load():.1f} at the end (NumPy row: "
        f"{np_load:.1f}). Engine uniform run / NumPy: {uni['run_s'] / np_s:.1f}x. "
        f"Engine vs NumPy regret: {z:+.1f} SE.",
        "",
        h2h_line,
        "",
    ]
    out = Path(__file__).with_name("streaming_results.md")
    out.write_text("\n".join(lines))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
