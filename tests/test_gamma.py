"""The Gamma / Beta sampler of Thompson sampling (`bandits.agents.gamma`), tested on its own.

* Random words: the unrolled threefry-2x32 is bit-identical to JAX's (`jax.extend.random`), and
  `key_words` to `jax.random.bits` under the non-partitionable scheme, so the words inherit JAX's
  generator; the uniforms lie exactly on the midpoint grid (m + 1/2) 2^-p.
* Candidates: normals and uniforms against scipy (Kolmogorov-Smirnov), and the normal and the
  uniform of one candidate (two words of one threefry block) independent (chi-square on a 10 x 10
  table), in float32 and float64.
* Marsaglia & Tsang (2000): the rewritten acceptance bound equals the paper's in float64, and in
  float32 it decides like float64 where the paper's form cancels (shape 10^5); the rounds take
  the candidates in order (batched = unbatched, bit for bit); Gamma and Beta variates against
  scipy through the first round, the second and the keyed fallback; the Beta argmax.

Statistical tests use fixed seeds, so they are deterministic; each threshold (p > 1e-3) is the
false-alarm rate the test would have over random seeds for an exact sampler, and a wrong shape,
a lost candidate or a biased acceptance at these sample sizes gives p-values far below it.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.extend.random import threefry_2x32
from scipy import stats

from bandits.agents import gamma

P_MIN = 1e-3
# compiled: one program per dtype and shape instead of one per operation (speed only)
mt_candidates = jax.jit(gamma.mt_candidates)


def _candidates(n_keys: int, per_key: int, dtype, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    keys = jax.random.split(jax.random.key(seed), n_keys)
    x, u = jax.jit(jax.vmap(lambda k: gamma.candidates(k, per_key, dtype)))(keys)
    return np.asarray(x, np.float64).ravel(), np.asarray(u, np.float64).ravel()


# --------------------------------------------------------------------------- random words
def test_threefry_matches_jax():
    rng = np.random.default_rng(0)
    k = rng.integers(0, 2**32, 2, dtype=np.uint32)
    x = rng.integers(0, 2**32, (2, 1000), dtype=np.uint32)
    ours = jax.jit(gamma.threefry2x32)(*map(jnp.asarray, (k[0], k[1], x[0], x[1])))
    ref = threefry_2x32((jnp.asarray(k[0]), jnp.asarray(k[1])), jnp.asarray(x.ravel()))
    np.testing.assert_array_equal(np.concatenate([np.asarray(o) for o in ours]), np.asarray(ref))


@pytest.mark.parametrize("n", [1, 7, 40])
def test_key_words_are_jax_bits(n):
    key = jax.random.key(n)
    with jax.threefry_partitionable(False):
        ref = jax.random.bits(key, (2 * n,), jnp.uint32)
    hi, lo = jax.jit(gamma.key_words, static_argnums=1)(key, n)
    np.testing.assert_array_equal(np.concatenate([hi, lo]), np.asarray(ref))


def test_unit_interval_is_the_midpoint_grid():
    words = jnp.asarray([0, 1, 2**9, 2**32 - 1], jnp.uint32)
    u = np.asarray(gamma.unit_interval(words, None, jnp.float32), np.float64)
    np.testing.assert_array_equal(u * 2**23 - 0.5, [0, 0, 1, 2**23 - 1])
    with jax.enable_x64(True):
        hi = jnp.asarray([0, 0, 2**32 - 1], jnp.uint32)
        lo = jnp.asarray([0, 2**12, 2**32 - 1], jnp.uint32)
        u64 = np.asarray(gamma.unit_interval(hi, lo, jnp.float64))
    np.testing.assert_array_equal(u64 * 2.0**52 - 0.5, [0, 1, 2**52 - 1])
    assert (u > 0).all() and (u < 1).all() and (u64 > 0).all() and (u64 < 1).all()


# --------------------------------------------------------------------------- candidates
@pytest.mark.parametrize("x64", [False, True])
def test_candidates_match_scipy(x64):
    """200,000 candidates from 1000 keys: x ~ N(0,1), u ~ U(0,1), x independent of u."""
    with jax.enable_x64(x64):
        x, u = _candidates(1000, 200, jnp.float64 if x64 else jnp.float32, seed=int(x64))
    assert stats.kstest(x, stats.norm.cdf).pvalue > P_MIN
    assert stats.kstest(u, stats.uniform.cdf).pvalue > P_MIN
    table = np.histogram2d(stats.norm.cdf(x), u, bins=10, range=[[0, 1], [0, 1]])[0]
    assert stats.chi2_contingency(table).pvalue > P_MIN


# --------------------------------------------------------------------------- Marsaglia-Tsang
def test_acceptance_bound_is_the_papers():
    """x^2/6 - c x^3/9 + 3 d (log1p(c x) - c x) = x^2/2 + d - d v + d ln v (float64)."""
    with jax.enable_x64(True):
        x = np.linspace(-2.5, 6.0, 101)
        for a in (1.5, 3.0, 100.0, 1e5):
            d, c = a - 1 / 3, 1 / np.sqrt(9 * (a - 1 / 3))
            v = (1 + c * x) ** 3
            bound = 0.5 * x * x + d - d * v + d * np.log(v)
            # u = exp(bound) sits on the boundary: nudged below it is accepted, above rejected
            for nudge, expected in ((-1e-9, True), (1e-9, False)):
                u = jnp.exp(bound + nudge)
                ok = np.asarray(mt_candidates(jnp.float64(a), jnp.asarray(x), u)[1])
                np.testing.assert_array_equal(ok[u < 1], expected, err_msg=f"a={a}")
            value = mt_candidates(jnp.float64(a), jnp.asarray(x), jnp.full_like(x, 0.5))[0]
            np.testing.assert_allclose(np.asarray(value), d * v, rtol=1e-12)


@pytest.mark.parametrize(("a", "most"), [(1e5, 5), (1e6, 5), (1e7, 20), (1e8, 20)])
def test_float32_acceptance_agrees_with_float64(a, most):
    """The paper's form d - d v + d ln v cancels in float32 at large shapes (136 of 10^5
    decisions differ from float64 at a = 10^5, 1075 at 10^6); the rewritten one differs on
    about 1e-5 of the candidates up to 10^8 (on 4e6 candidates: 2.8e-6 at 10^5, 2.2e-5 at
    10^7, 7.7e-5 at 10^8, so ~8 of these 10^5 expected at 10^8; here 0, 2, 3, 6)."""
    x, u = _candidates(10, 10_000, jnp.float32, seed=3)
    ok32 = mt_candidates(jnp.float32(a), jnp.asarray(x, jnp.float32), jnp.asarray(u))[1]
    with jax.enable_x64(True):
        ok64 = mt_candidates(jnp.float64(a), jnp.asarray(x), jnp.asarray(u))[1]
    assert int((np.asarray(ok32) != np.asarray(ok64)).sum()) <= most


def test_rejection_rate_at_shape_1_5():
    """Shape 1.5 rejects ~2.68% of candidates (Marsaglia & Tsang 2000; numerical integral)."""
    x, u = _candidates(20, 1000, jnp.float32, seed=2)
    _, ok = mt_candidates(jnp.float32(1.5), jnp.asarray(x), jnp.asarray(u))
    assert 0.02 < 1 - float(ok.mean()) < 0.035  # SE 0.0011


def _sample_gamma(shapes: np.ndarray, n: int, rounds: int, seed: int) -> np.ndarray:
    """n draws of each shape, one `gamma.gamma_keyed` call per key (R rounds of candidates, then
    the per-lane fallback keyed by step_key(fallback key, t = 0, tag = 0, i)), vmapped over keys
    as the engine runs it (`cond_any` / `cond_lanes` and the lanes-minor `custom_vmap`)."""
    a = jnp.asarray(shapes, jnp.float32)

    def one(key):
        key, fallback = jax.random.split(key)
        return gamma.gamma_keyed(a, key, rounds, fallback, jnp.int32(0))

    keys = jax.random.split(jax.random.key(seed), n)
    return np.asarray(jax.jit(jax.vmap(one))(keys), np.float64)


def test_gamma_fallback_in_blocks_of_lanes_is_bit_identical(monkeypatch):
    """The keyed fallback one lane after another (the CPU's `lane_block`) and in blocks of lanes
    vmapped (an accelerator's; forced by ``REGRETLAB_LANE_BLOCK``): the same variates bit for
    bit. One round of candidates, 3000 keys: ~1.8% of the shape-2 variates (~50 lanes) and a
    few of the others take the fallback, so the blocks of 7 fill and the last is shifted."""
    shapes = np.array([1.5, 2.0, 3.0, 10.0])
    draws = {}
    for block in ("1", "7", "4096"):
        monkeypatch.setenv("REGRETLAB_LANE_BLOCK", block)
        draws[block] = _sample_gamma(shapes, 3000, rounds=1, seed=11)
    np.testing.assert_array_equal(draws["1"], draws["7"])
    np.testing.assert_array_equal(draws["1"], draws["4096"])


@pytest.mark.parametrize("rounds", [1, 2])
def test_gamma_sampler_matches_scipy(rounds):
    """KS test against scipy.stats.gamma for each shape, 20,000 draws per shape.

    With one round, every rejected candidate (1.8% at shape 2, ~360 variates) is finished by the
    keyed fallback; with two, a second candidate finishes most of them. The means must also lie
    within 4 standard errors.
    """
    shapes = np.array([1.0, 1.5, 2.0, 3.0, 10.0, 1000.0, 1e5])
    n = 20_000
    draws = _sample_gamma(shapes, n, rounds=rounds, seed=rounds)
    assert np.isfinite(draws).all() and (draws > 0).all()
    for j, a in enumerate(shapes):
        assert stats.kstest(draws[:, j], stats.gamma(a).cdf).pvalue > P_MIN, a
        assert abs(draws[:, j].mean() - a) < 4 * np.sqrt(a / n), a


@pytest.mark.parametrize("x64", [False, True])
def test_gamma_below_shape_one_is_boosted(x64):
    """Shapes 0 < a < 1, where Marsaglia-Tsang's test alone is wrong (a < 1/3: d < 0, NaN), are
    Gamma(a + 1) times U^(1/a) (Marsaglia & Tsang 2000, §6): KS against scipy, 20,000 draws per
    shape, mixed in one call with shapes >= 1 (those lanes take no boost). Float64 too: its
    candidates use twice the counters, the boost's uniforms must still be fresh ones."""
    shapes = np.array([0.15, 0.5, 0.9, 1.0, 2.0, 0.999])
    n = 20_000
    with jax.enable_x64(x64):
        dt = jnp.float64 if x64 else jnp.float32

        def one(key):
            key, fallback = jax.random.split(key)
            return gamma.gamma_keyed(jnp.asarray(shapes, dt), key, 2, fallback, jnp.int32(0))

        keys = jax.random.split(jax.random.key(21 + x64), n)
        draws = np.asarray(jax.jit(jax.vmap(one))(keys), np.float64)
    assert np.isfinite(draws).all() and (draws >= 0).all()
    for j, a in enumerate(shapes):
        assert stats.kstest(draws[:, j], stats.gamma(a).cdf).pvalue > P_MIN, a
        assert abs(draws[:, j].mean() - a) < 4 * np.sqrt(a / n), a


def test_boost_is_the_sampler_at_a_plus_one_times_a_uniform_power():
    """Shape 0.5 is the shape-1.5 variate of the same candidates times U^2 <= 1, and the other
    variates of the call are those of a call without a shape below 1, bit for bit (the boost
    runs only in steps where some lane needs it and touches only the shapes below 1)."""

    @jax.jit
    @functools.partial(jax.vmap, in_axes=(None, 0))
    def sample(a, key):
        key, fallback = jax.random.split(key)
        return gamma.gamma_keyed(a, key, 1, fallback, jnp.int32(3))

    def run(first):
        a = jnp.asarray([first, 2.0, 3.0, 1.0], jnp.float32)
        return np.asarray(sample(a, jax.random.split(jax.random.key(5), 2000)))

    boosted, plain = run(0.5), run(1.5)
    np.testing.assert_array_equal(boosted[:, 1:], plain[:, 1:])
    assert np.all(boosted[:, 0] <= plain[:, 0])
    ratio = boosted[:, 0] / plain[:, 0]  # U^2 for U ~ U(0, 1): P(U^2 <= x) = sqrt(x)
    assert stats.kstest(ratio, lambda x: np.sqrt(np.clip(x, 0, 1))).pvalue > P_MIN


def test_gamma_fallback_only_matches_scipy():
    """Shape 1.01 rejects ~4.7% per candidate: with one round and 32 variates per lane nearly
    every lane takes the fallback, several variates of a lane in turn (first unfinished first),
    so the fallback's own candidates make up a visible part of the sample. KS per variate index
    and on the pooled sample (64,000 draws)."""
    shapes = np.full(32, 1.01)
    draws = _sample_gamma(shapes, 2000, rounds=1, seed=11)
    assert stats.kstest(draws.ravel(), stats.gamma(1.01).cdf).pvalue > P_MIN
    for j in (0, 31):  # the first variate is offered fallback draws first, the last one last
        assert stats.kstest(draws[:, j], stats.gamma(1.01).cdf).pvalue > P_MIN, j


def test_rounds_use_the_candidates_in_order():
    """Batched (lanes-minor) and unbatched rounds agree bit for bit, and a variate's value is its
    first accepted candidate among `candidates(key, R V)` (round r: candidate r V + j)."""
    a = jnp.asarray([1.0, 1.3, 2.0, 5.0, 40.0, 1.0, 7.0, 1e4], jnp.float32)
    v_n, rounds = a.shape[0], 3
    keys = jax.random.split(jax.random.key(3), 300)
    data = jax.vmap(jax.random.key_data)(keys)
    batched = np.asarray(jax.jit(jax.vmap(gamma._rounds(rounds), in_axes=(None, 0)))(a, data))
    single = np.stack([np.asarray(jax.jit(gamma._rounds(rounds))(a, d)) for d in data[:20]])
    np.testing.assert_array_equal(batched[:20], single)
    x, u = jax.jit(jax.vmap(lambda k: gamma.candidates(k, rounds * v_n, jnp.float32)))(keys)
    v, ok = mt_candidates(jnp.tile(a, rounds), x, u)
    v, ok = np.asarray(v).reshape(-1, rounds, v_n), np.asarray(ok).reshape(-1, rounds, v_n)
    first = np.where(ok.any(1), ok.argmax(1), -1)
    expected = np.where(
        first >= 0, np.take_along_axis(v, np.maximum(first, 0)[:, None], 1)[:, 0], -1
    )
    exp1 = -np.log(np.asarray(u).reshape(-1, rounds, v_n)[:, 0])
    expected = np.where(np.asarray(a) == 1, exp1, expected)
    # float32: the fused (lanes-minor) program may round erfinv/log/cube a few ulp (1.2e-7) apart
    np.testing.assert_allclose(batched, expected, rtol=2e-6)
    assert (ok[:, 1] & ~ok[:, 0]).any()  # later rounds are exercised


def test_beta_sampler_matches_scipy():
    """Beta(a, b) = G_a / (G_a + G_b): KS test for the shapes Thompson sampling meets."""
    a = jnp.asarray([1.0, 2.0, 30.0, 1.0, 2000.0], jnp.float32)
    b = jnp.asarray([1.0, 7.0, 5.0, 400.0, 3.0], jnp.float32)

    def one(key):
        key, fallback = jax.random.split(key)
        g = gamma.gamma_keyed(jnp.concatenate([a, b]), key, 2, fallback, jnp.int32(0))
        return g[: a.size] / (g[: a.size] + g[a.size :])

    draws = jax.jit(jax.vmap(one))(jax.random.split(jax.random.key(7), 20_000))
    draws = np.asarray(draws, np.float64)
    for j in range(a.size):
        dist = stats.beta(float(a[j]), float(b[j]))
        assert stats.kstest(draws[:, j], dist.cdf).pvalue > P_MIN, j


def test_beta_argmax_is_the_argmax_of_the_beta_variates():
    """argmax G_a / G_b = argmax G_a / (G_a + G_b), batched (lanes-minor) and unbatched; and the
    index's law matches P(arm i has the largest Beta) estimated from scipy's Beta draws
    (chi-square homogeneity test of the two 4-cell count tables, 20,000 draws each)."""
    rng = np.random.default_rng(0)
    g = jnp.asarray(rng.gamma([[3.0, 1.0, 2.0, 9.0, 4.0, 1.0]], size=(5000, 6)), jnp.float32)
    ga, gb = g[:, :3], g[:, 3:]
    ref = np.argmax(np.asarray(ga / (ga + gb)), axis=1)
    np.testing.assert_array_equal(np.asarray(jax.vmap(gamma.beta_argmax)(ga, gb)), ref)
    np.testing.assert_array_equal(
        [int(gamma.beta_argmax(ga[i], gb[i])) for i in range(50)], ref[:50]
    )
    a = jnp.asarray([3.0, 5.0, 1.0, 20.0], jnp.float32)
    b = jnp.asarray([4.0, 6.0, 1.0, 30.0], jnp.float32)

    def one(key):
        key, fallback = jax.random.split(key)
        g = gamma.gamma_keyed(jnp.concatenate([a, b]), key, 2, fallback, jnp.int32(0))
        return gamma.beta_argmax(g[:4], g[4:])

    ours = np.asarray(jax.jit(jax.vmap(one))(jax.random.split(jax.random.key(9), 20_000)))
    theirs = stats.beta(np.asarray(a), np.asarray(b)).rvs((20_000, 4), random_state=1).argmax(1)
    table = np.stack([np.bincount(ours, minlength=4), np.bincount(theirs, minlength=4)])
    assert stats.chi2_contingency(table).pvalue > P_MIN
