"""The exact Binomial sampler (BTRS + inversion from pre-drawn uniforms) against scipy.stats.binom.

Every distribution check bins the samples by the exact Binomial CDF (scipy's regularised
incomplete beta, no normal approximation): bin edges are integer quantiles, the expected count of
a bin is reps x (F(hi) - F(lo)), and a chi-square goodness-of-fit test must not reject at
p = 1e-3 (fixed seeds, so a pass is deterministic; 1e-3 keeps the chance that a correct sampler
fails a new seed small over the handful of cases). Mean and variance are checked against n p and
n p (1-p) within 4.5 standard errors. n = 1e15 (x64) exercises the precision of the acceptance test
(Loader's form), where a log-ratio with terms of size n would lose ~0.1 in log space.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from bandits.streaming.sampling import CANDIDATES, binomial, log_pmf

REPS = 20_000


@jax.jit
def _draw(u, keys, n, p):
    return jax.vmap(binomial, in_axes=(0, 0, None, None))(u, keys, n, p)


def _sample(n: int, p: float, seed: int, force_fallback: bool = False) -> np.ndarray:
    """REPS samples, in x64 (the precision of paper-scale runs; one compile for every case)."""
    with jax.enable_x64(True):
        ku, kk = jax.random.split(jax.random.key(seed))
        u = jax.random.uniform(ku, (REPS, CANDIDATES, 2), jnp.float64)
        if force_fallback:  # every pre-drawn candidate lands outside [0, n]: all rejected
            u = jnp.full_like(u, 1e-12)
        keys = jax.random.split(kk, REPS)
        n_, p_ = jnp.asarray(n, jnp.float64), jnp.asarray(p, jnp.float64)
        return np.asarray(_draw(u, keys, n_, p_), np.float64)


def _chi2_pvalue(x: np.ndarray, n: int, p: float, bins: int = 30) -> float:
    """Chi-square p-value of the samples against Binomial(n, p), bins from the exact CDF."""
    dist = stats.binom(n, p)
    edges = np.unique(dist.ppf(np.linspace(0, 1, bins + 1)[1:-1]))  # integer upper edges
    F = np.concatenate([[0.0], dist.cdf(edges), [1.0]])
    expected = np.diff(F) * x.size
    observed = np.bincount(np.searchsorted(edges, x, side="left"), minlength=edges.size + 1)
    keep = expected > 0
    chi = ((observed[keep] - expected[keep]) ** 2 / expected[keep]).sum()
    return float(stats.chi2.sf(chi, keep.sum() - 1))


def _check(x: np.ndarray, n: int, p: float) -> None:
    assert np.all(x == np.round(x)) and x.min() >= 0 and x.max() <= n
    mean, var = n * p, n * p * (1 - p)
    assert abs(x.mean() - mean) < 4.5 * np.sqrt(var / x.size)
    # sd of a sample variance ~ var sqrt(2 / reps) (near-normal counts; 4.5 of them)
    assert abs(x.var() / var - 1) < 4.5 * np.sqrt(2 / x.size) + 1e-12
    assert _chi2_pvalue(x, n, p) > 1e-3


@pytest.mark.parametrize(
    "n, p",
    [
        (30, 0.1),  # inversion (n p = 3)
        (1000, 0.009),  # inversion near the switch (n p = 9)
        (40, 0.3),  # BTRS at small n (n p = 12)
        (200, 0.9),  # BTRS on 1 - p (n q = 20), sample flipped
        (10**6, 0.5),  # BTRS, large n
    ],
)
def test_binomial_matches_exact_pmf(n, p):
    _check(_sample(n, p, seed=n % 97), n, p)


@pytest.mark.parametrize("n, p", [(40, 0.3), (10**6, 0.82)])
def test_fallback_loop_alone_is_exact(n, p):
    # all pre-drawn candidates rejected: every sample comes from the key-driven while_loop
    _check(_sample(n, p, seed=5, force_fallback=True), n, p)


def test_binomial_huge_n_x64():
    with jax.enable_x64(True):
        for n, p in [(10**15, 0.3), (10**12, 0.82)]:
            _check(_sample(n, p, seed=11), n, p)
            # log pmf: scipy's logpmf loses ~8 nats at n = 1e15 (cancellation), so check the
            # local expansion instead: log f(mode) = -log(2 pi n p q)/2 + O(1/(npq)) and
            # log f(np + z sd) - log f(mode) = -z^2/2 + O(|z|^3 / sd) (sd >= 4e5: error < 1e-4)
            q = min(p, 1 - p)
            sd = np.sqrt(n * q * (1 - q))
            z = np.array([0.0, 3.0, -3.0])
            k = np.floor(n * q + z * sd)
            lp = lambda k, n=n, q=q: np.asarray(
                jax.jit(log_pmf)(jnp.asarray(k), jnp.asarray(float(n)), jnp.asarray(q))
            )
            mode = np.floor((n + 1) * q)
            assert abs(lp(mode) + 0.5 * np.log(2 * np.pi * sd**2)) < 1e-6
            zk = (k - n * q) / sd
            np.testing.assert_allclose(lp(k) - lp(mode), -(zk**2) / 2, atol=1e-4)


def test_degenerate_cases():
    assert np.all(_sample(0, 0.4, seed=1) == 0)
    assert np.all(_sample(17, 0.0, seed=1) == 0)
    assert np.all(_sample(17, 1.0, seed=1) == 17)


def test_bits_match_jax_random():
    # experiments.threefry writes jax.random's threefry draws out without its per-hash loops:
    # the same values, bit for bit (fold_in, uniform in float32 and float64, truncated normal)
    from experiments import threefry as bits

    fold_in = jax.jit(bits.fold_in)  # the unrolled hash in one program (speed only)
    key = jax.random.key(42)
    kd = jax.random.key_data(key)
    js = jnp.arange(0, 2**32 - 1, 2**22, dtype=jnp.uint32)  # includes large positions
    folded = jax.vmap(lambda j: jax.random.fold_in(key, j))(js)
    np.testing.assert_array_equal(fold_in(kd, js), jax.random.key_data(folded))
    with jax.enable_x64(True):
        for dtype, shape in [(jnp.float64, ()), (jnp.float64, (4, 2)), (jnp.float32, (3,))]:
            draw = lambda k, shape=shape, dtype=dtype: jax.random.uniform(k, shape, dtype, 0.25, 2)
            want = jax.vmap(draw)(folded)
            # compiled, as jax.random.uniform is (op by op the unrolled hash takes ~1 s)
            uniform = jax.jit(lambda kd, s=shape, d=dtype: bits.uniform(kd, s, d, 0.25, 2))
            got = uniform(fold_in(kd, js))
            np.testing.assert_array_equal(got, want)
        # the same float operations: equal when both are compiled (eagerly, jax.random's jitted
        # transform may contract a multiply-add that op-by-op execution rounds twice)
        want = jax.jit(
            jax.vmap(lambda k: jax.random.truncated_normal(k, -5.0, 3.0, (), jnp.float64))
        )(folded)
        got = jax.jit(lambda kd: bits.truncated_normal(kd, -5.0, 3.0, jnp.float64))(fold_in(kd, js))
        np.testing.assert_array_equal(got, want)
