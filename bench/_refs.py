"""Reference implementations for the bandit benchmark: Numba loops and NumPy vectorised over seeds.

Both compute, for N seeds of a K-armed Bernoulli bandit, the mean cumulative pseudo-regret curve
(every round, float64) and the final pseudo-regret of each seed. Pseudo-regret increment of a
round = mu* - mu_a for the arm a played (Lattimore & Szepesvári, "Bandit Algorithms", 2020, §4.5).

* UCB1 (Auer, Cesa-Bianchi & Fischer, 2002, Figure 1): play each arm once, then in round t + 1
  play argmax_j S_j / n_j + sqrt(2 ln t / n_j), t = rounds played so far; ties go to the lowest arm.
* Thompson sampling, Beta-Bernoulli (Agrawal & Goyal, 2012, Algorithm 1): draw
  theta_j ~ Beta(1 + S_j, 1 + F_j) for every arm and play argmax_j theta_j.

The Numba loops are the straightforward per-seed, per-round programs (no cached per-arm index
terms), which is what "the Numba reference" of the issue means: one thread (`*_numba`), or the
same per-seed loop over all cores with `numba.prange` over blocks of seeds (`*_numba_prange`, the
peer of an engine that uses every core). Rewards are 1[u < mu_a].
"""

from __future__ import annotations

import numpy as np
from numba import get_num_threads, njit, prange


# --------------------------------------------------------------------------- Numba
@njit(cache=False)
def _ucb1_seed(means: np.ndarray, gaps: np.ndarray, horizon: int, curve: np.ndarray) -> float:
    """One seed of UCB1 on Numba's global RNG; adds its cumulative regret to `curve`."""
    k = means.shape[0]
    counts = np.zeros(k)
    sums = np.zeros(k)
    regret = 0.0
    for t in range(horizon):
        if t < k:
            arm = t
        else:
            two_log_t = 2.0 * np.log(t)
            arm = 0
            best = -np.inf
            for j in range(k):
                v = sums[j] / counts[j] + np.sqrt(two_log_t / counts[j])
                if v > best:  # strict: ties keep the lowest index
                    best = v
                    arm = j
        if np.random.random() < means[arm]:
            sums[arm] += 1.0
        counts[arm] += 1.0
        regret += gaps[arm]
        curve[t] += regret
    return regret


@njit(cache=False)
def _thompson_seed(means: np.ndarray, gaps: np.ndarray, horizon: int, curve: np.ndarray) -> float:
    """One seed of Beta-Bernoulli Thompson sampling; as `_ucb1_seed`."""
    k = means.shape[0]
    succ = np.zeros(k)
    fail = np.zeros(k)
    regret = 0.0
    for t in range(horizon):
        arm = 0
        best = -np.inf
        for j in range(k):
            v = np.random.beta(1.0 + succ[j], 1.0 + fail[j])
            if v > best:
                best = v
                arm = j
        if np.random.random() < means[arm]:
            succ[arm] += 1.0
        else:
            fail[arm] += 1.0
        regret += gaps[arm]
        curve[t] += regret
    return regret


@njit(cache=False)
def ucb1_numba(means: np.ndarray, horizon: int, seeds: int, seed: int):
    """UCB1 over `seeds` seeds, one thread; returns (mean cumulative regret per round (T,),
    final (N,))."""
    np.random.seed(seed)
    gaps = means.max() - means
    curve = np.zeros(horizon)
    final = np.empty(seeds)
    for s in range(seeds):
        final[s] = _ucb1_seed(means, gaps, horizon, curve)
    return curve / seeds, final


@njit(cache=False)
def thompson_numba(means: np.ndarray, horizon: int, seeds: int, seed: int):
    """Beta-Bernoulli Thompson sampling, one thread; same outputs as `ucb1_numba`."""
    np.random.seed(seed)
    gaps = means.max() - means
    curve = np.zeros(horizon)
    final = np.empty(seeds)
    for s in range(seeds):
        final[s] = _thompson_seed(means, gaps, horizon, curve)
    return curve / seeds, final


@njit(cache=False, parallel=True)
def _over_seeds_parallel(agent: int, means: np.ndarray, horizon: int, seeds: int, seed: int):
    """`prange` over blocks of seeds, one block per thread, each with its own curve row.

    Seed s reseeds the running thread's generator with seed * 1_000_003 + s (Numba keeps one
    generator per thread), so the results do not depend on how the blocks are scheduled.
    """
    gaps = means.max() - means
    blocks = min(get_num_threads(), seeds)
    curves = np.zeros((blocks, horizon))
    final = np.empty(seeds)
    for b in prange(blocks):
        for s in range(b * seeds // blocks, (b + 1) * seeds // blocks):
            np.random.seed((seed * 1_000_003 + s) % 2**32)
            if agent == 0:
                final[s] = _ucb1_seed(means, gaps, horizon, curves[b])
            else:
                final[s] = _thompson_seed(means, gaps, horizon, curves[b])
    return curves.sum(axis=0) / seeds, final


def ucb1_numba_prange(means: np.ndarray, horizon: int, seeds: int, seed: int):
    """`ucb1_numba` with the seeds spread over all Numba threads (`prange`)."""
    return _over_seeds_parallel(0, means, horizon, seeds, seed)


def thompson_numba_prange(means: np.ndarray, horizon: int, seeds: int, seed: int):
    """`thompson_numba` with the seeds spread over all Numba threads (`prange`)."""
    return _over_seeds_parallel(1, means, horizon, seeds, seed)


# --------------------------------------------------------------------------- NumPy
_UNIFORM_BLOCK = 1000  # rounds of uniforms drawn per numpy call (amortises per-call overhead)


def ucb1_numpy(means: np.ndarray, horizon: int, seeds: int, seed: int):
    """UCB1 vectorised over seeds, a Python loop over rounds; outputs as `ucb1_numba`."""
    rng = np.random.default_rng(seed)
    k = means.shape[0]
    gaps = means.max() - means
    rows = np.arange(seeds)
    counts = np.zeros((seeds, k))
    sums = np.zeros((seeds, k))
    regret = np.zeros(seeds)
    curve = np.empty(horizon)
    u = rng.random((_UNIFORM_BLOCK, seeds))
    for t in range(horizon):
        if t % _UNIFORM_BLOCK == 0 and t:
            u = rng.random((_UNIFORM_BLOCK, seeds))
        if t < k:
            arm = np.full(seeds, t)
        else:
            index = sums / counts + np.sqrt((2.0 * np.log(t)) / counts)
            arm = index.argmax(axis=1)  # first maximum: ties go to the lowest arm
        sums[rows, arm] += u[t % _UNIFORM_BLOCK] < means[arm]
        counts[rows, arm] += 1.0
        regret += gaps[arm]
        curve[t] = regret.mean()
    return curve, regret


def thompson_numpy(means: np.ndarray, horizon: int, seeds: int, seed: int):
    """Beta-Bernoulli Thompson sampling vectorised over seeds; outputs as `ucb1_numba`."""
    rng = np.random.default_rng(seed)
    k = means.shape[0]
    gaps = means.max() - means
    rows = np.arange(seeds)
    succ = np.zeros((seeds, k))
    fail = np.zeros((seeds, k))
    regret = np.zeros(seeds)
    curve = np.empty(horizon)
    u = rng.random((_UNIFORM_BLOCK, seeds))
    for t in range(horizon):
        if t % _UNIFORM_BLOCK == 0 and t:
            u = rng.random((_UNIFORM_BLOCK, seeds))
        arm = rng.beta(1.0 + succ, 1.0 + fail).argmax(axis=1)
        win = u[t % _UNIFORM_BLOCK] < means[arm]
        succ[rows, arm] += win
        fail[rows, arm] += ~win
        regret += gaps[arm]
        curve[t] = regret.mean()
    return curve, regret
