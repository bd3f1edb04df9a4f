"""DP-BAI benchmark: the engine against a vectorised NumPy implementation (issue 12, Performance).

    uv run python bench/dpbai.py            # K = 64, d = 10, T = 10^5, 10^4 repetitions
    uv run python bench/dpbai.py --quick    # 1000 repetitions, prints only

One grid point: DP-BAI (Chen, Karthik, Chee & Tan, ICLR 2024; our reconstruction,
`privacy.dpbai`) with ε = 1 on the unit-sphere instance K = 64, d = 10 (lifted to 11 so that the
means lie in [0, 1]; `bandits.linear_bai`), T = 10^5, through `experiments.simulate.simulate`
(float32, x64 off, chunks of 100 steps: a run takes 5 multi-round steps, one per phase, each a
`bandits.linear_bai.PullAll` of the 11, 6, 3, 2 basis arms, and one for the unused budget;
`privacy.fixed_budget.next_phase`; the phase ends run in the 4 phase steps,
`privacy.fixed_budget.where_some`, and the seeds idle after step 5). Timed: the second
call (the program cached), wall and process CPU seconds, beside the vectorised NumPy
implementation below in the same process; the ratio is reported per CPU second (the machine is
shared). The headline call records only round T (``grid=[T]``: the problem has no curve
metric, only the final `error`); the call with the engine's default 200-point record grid is
timed beside it (its host-side curve interpolation has nothing to write here but still costs).
The engine's error rate and the reference's must agree (two-proportion z-test, |z| <= 3.29,
independent draws).

NumPy reference (float64, PCG64), vectorised over repetitions: phase 1's Max-Det collection B_1
and coefficients α (public: `privacy.dpbai.max_det_subset` / `coefficients`) once; per phase the
reward sums of the basis arms as Binomial(n_p, μ_j) draws (an n-round pull's sum, as the engine
samples it), the released means + Laplace(1/(ε n_p)), μ̂ = α μ̃, the top ⌈d/2^p⌉ by a stable
sort. In phases p >= 2 the active arms (at most 6 here) are linearly independent in every
repetition (checked; they are in general position), so B_p = A_p and μ̂ = μ̃ there, as
`privacy.dpbai` computes them.

Two NumPy references, the same code but for the reward sums: "Binomial sums" draws each arm's
phase sum as one Binomial(n_p, μ_j) (the shortcut the engine also takes: its cost is a handful of
draws per arm and phase, independent of T), "one reward per pull" draws the n_p Bernoulli
rewards of every pull and sums them (Algorithm 1 as written: T draws per repetition). The
ratio to each is printed; the first is the strong peer.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._common import machine_facts  # noqa: E402


def binomial_sums(rng, n: int, mu: np.ndarray) -> np.ndarray:
    """Each arm's sum of n rewards as one Binomial(n, μ) draw (the engine's shortcut)."""
    return rng.binomial(n, mu)


def per_round_sums(rng, n: int, mu: np.ndarray, block: int = 1 << 24) -> np.ndarray:
    """Each arm's sum of n Bernoulli(μ) rewards drawn round by round (the algorithm as written:
    one reward per pull), in blocks of at most `block` draws (memory stays bounded)."""
    flat = mu.reshape(-1)
    out = np.empty(flat.size, np.int64)
    rows = max(1, block // max(n, 1))
    for lo in range(0, flat.size, rows):
        m = flat[lo : lo + rows]
        out[lo : lo + rows] = (rng.random((m.size, n)) < m[:, None]).sum(axis=1)
    return out.reshape(mu.shape)


def numpy_dpbai(features, means, T, R, epsilon, rng, sums_of=binomial_sums) -> np.ndarray:
    """Recommended arms of R independent DP-BAI runs (module docstring); `sums_of(rng, n, μ)`
    draws the phase's reward sums."""
    from privacy.dpbai import coefficients, make_plan

    pl = make_plan(features)
    K = features.shape[0]
    B = np.asarray(pl.first_basis)
    alpha = coefficients(features, B)  # (K, |B|)
    active = np.broadcast_to(np.arange(K), (R, K))
    for p in range(pl.phases):
        if p == 0:
            arms = np.broadcast_to(B, (R, B.size))
        else:
            arms = active
            sub = features[arms]  # (R, s, d)
            if np.any(np.linalg.matrix_rank(sub) < arms.shape[1]):
                raise RuntimeError("dependent active arms: the vectorised reference assumes none")
        n = T // (pl.phases * arms.shape[1])
        sums = sums_of(rng, n, means[arms])
        mu = sums / n
        if math.isfinite(epsilon):
            mu = mu + rng.laplace(0.0, 1.0 / (epsilon * n), size=mu.shape)
        est = mu @ alpha[active[0]].T if p == 0 else mu  # (R, |A_p|), columns = active arms
        order = np.argsort(-est, axis=1, kind="stable")[:, : pl.keep[p]]
        active = np.sort(np.take_along_axis(active, order, axis=1), axis=1)
    return active[:, 0]


def engine_dpbai(env, params, T, R, epsilon, grid=None):
    """(result, compile s, CPU s, wall s) of the second of two identical calls (`grid`: the
    rounds recorded; None: the engine's default 200 log-spaced points)."""
    from experiments.simulate import simulate
    from privacy.dpbai import DPBAI

    agent = DPBAI(epsilon=epsilon)
    first = simulate(env, params, agent, T, R, seed=0, chunk_size=100, grid=grid)
    c0, w0 = time.process_time(), time.perf_counter()
    res = simulate(env, params, agent, T, R, seed=1, chunk_size=100, grid=grid)
    cpu, wall = time.process_time() - c0, time.perf_counter() - w0
    return res, first.compile_seconds, cpu, wall


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--reps", type=int, default=None)
    args = ap.parse_args(argv)
    R = args.reps or (1000 if args.quick else 10_000)
    T, K, d, epsilon = 100_000, 64, 10, 1.0

    from bandits.linear_bai import instance_arrays, linear_bai

    env = linear_bai("sphere", K=K, d=d, alpha=0.1, instance_seed=0)
    params = env.default_params()
    features, _, means = instance_arrays(env)
    best = int(np.argmax(means))

    res, compile_s, e_cpu, e_wall = engine_dpbai(env, params, T, R, epsilon, grid=[T])
    e_err = res.final["error"]
    _, _, g_cpu, g_wall = engine_dpbai(env, params, T, R, epsilon)  # default record grid
    rng = np.random.default_rng(0)
    numpy_dpbai(features, means, T, min(R, 100), epsilon, rng)  # warm-up (imports, plan)
    c0, w0 = time.process_time(), time.perf_counter()
    rec = numpy_dpbai(features, means, T, R, epsilon, rng)
    n_cpu, n_wall = time.process_time() - c0, time.perf_counter() - w0
    n_err = (rec != best).astype(float)
    c0, w0 = time.process_time(), time.perf_counter()
    rec_rounds = numpy_dpbai(features, means, T, R, epsilon, rng, per_round_sums)
    r_cpu, r_wall = time.process_time() - c0, time.perf_counter() - w0
    r_err = (rec_rounds != best).astype(float)

    p1, p2 = e_err.mean(), n_err.mean()
    z = two_proportion_z(p1, p2, R)
    z_rounds = two_proportion_z(p1, float(r_err.mean()), R)
    # agreement where errors happen (not timed): T = 1000, where about a third of the runs err
    from experiments.simulate import simulate
    from privacy.dpbai import DPBAI

    small = simulate(env, params, DPBAI(epsilon=epsilon), 1000, R, seed=2, chunk_size=100)
    q1 = small.final["error"].mean()
    q2 = (numpy_dpbai(features, means, 1000, R, epsilon, rng) != best).mean()
    z_small = two_proportion_z(q1, q2, R)
    facts = machine_facts(ROOT, "privacy", "bench", "experiments")
    rows = [
        ("engine (DP-BAI, simulate, grid=[T])", e_wall, e_cpu, p1),
        ("engine, default record grid (200 points)", g_wall, g_cpu, math.nan),
        ("NumPy, vectorised, Binomial sums", n_wall, n_cpu, p2),
        ("NumPy, vectorised, one reward per pull", r_wall, r_cpu, r_err.mean()),
    ]
    lines = [
        f"DP-BAI, ε = {epsilon:g}, sphere K = {K}, d = {d} (lifted {d + 1}), T = {T}, "
        f"{R} repetitions; engine compile {compile_s:.1f} s (wall, not timed below)",
        "",
        "| implementation | wall s | CPU s | error rate |",
        "|---|---|---|---|",
        *[f"| {n} | {w:.3f} | {c:.3f} | {_rate(e)} |" for n, w, c, e in rows],
        "",
        f"engine / NumPy speed ratio per CPU second: {n_cpu / e_cpu:.3g} (target >= 10); "
        f"per wall second: {n_wall / e_wall:.3g}; with the default grid: {n_cpu / g_cpu:.3g}",
        f"engine / NumPy with one reward per pull: per CPU second {r_cpu / e_cpu:.3g}, per wall "
        f"second {r_wall / e_wall:.3g}",
        f"error rates agree: z = {z:+.2f} (one reward per pull: {z_rounds:+.2f}) at T = {T}; "
        f"at T = 1000: engine {q1:.4f}, NumPy "
        f"{q2:.4f}, z = {z_small:+.2f} (|z| <= 3.29)",
        "",
        "machine: " + ", ".join(f"{k} {v}" for k, v in facts.items()),
    ]
    print("\n".join(lines))
    return 0 if max(abs(z), abs(z_rounds), abs(z_small)) <= 3.29 else 1


def _rate(e: float) -> str:
    return "–" if math.isnan(e) else f"{e:.4f}"


def two_proportion_z(p1: float, p2: float, n: int) -> float:
    """z of p1 - p2 for two independent samples of n each (pooled variance; 0 when both 0)."""
    pool = (p1 + p2) / 2
    return 0.0 if pool in (0.0, 1.0) else (p1 - p2) / math.sqrt(pool * (1 - pool) * 2 / n)


if __name__ == "__main__":
    sys.exit(main())
