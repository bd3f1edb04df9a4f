"""Continual counters: R1 exact oracles (dp.md §3.3), factorisation identities, streaming code
against the factorisation, R2 Monte Carlo, prefix dependence, the engine run, bad input."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments.config import ConfigError
from experiments.simulate import simulate
from privacy import factorization as fz
from privacy.continual import ContinualSpec, continual_bernoulli, continual_fixed
from privacy.counters import COUNTERS, noise_streams

# dp.md §3.3 [C]: (binary max, mean, Honaker max, mean, sqrt max, mean, lower bound, smooth)
TABLE = {
    2**4: (20.00, 10.31, 13.86, 7.09, 3.779, 3.229, 2.652, 9.0),
    2**8: (72.00, 36.04, 43.21, 21.62, 8.015, 7.122, 6.108, 36.0),
    2**10: (110.00, 55.01, 63.83, 31.92, 10.710, 9.671, 8.466, 49.0),
    2**12: (156.00, 78.00, 88.44, 44.22, 13.793, 12.612, 11.222, 64.0),
    2**16: (272.00, 136.00, 149.66, 74.83, 21.127, 19.664, 17.911, 100.0),
    2**20: (420.00, 210.00, 226.87, 113.44, 30.019, 28.275, 26.159, 144.0),
}


def _check_row(T):
    row = TABLE[T]
    got = []
    for m in ("binary", "honaker", "sqrt"):
        loss = fz.loss(m, T)
        got += [loss.max(), loss.mean()]
    got += [fz.nuclear_lower_bound(T), fz.loss("smooth", T).max()]
    # 3 significant digits: the table prints 4-5 digits, rounded
    np.testing.assert_allclose(got, row, rtol=5e-3)


@pytest.mark.parametrize("T", [2**4, 2**8, 2**10, 2**12, 2**16])
def test_r1_table(T):
    _check_row(T)


@pytest.mark.slow
def test_r1_table_2_20():
    _check_row(2**20)


def test_per_step_patterns():
    T = 16
    L = fz.binary_depth(T)
    t = np.arange(1, T + 1)
    np.testing.assert_allclose(fz.loss("binary", T) / L, np.bitwise_count(t))
    h = fz.loss("honaker", T) / L
    assert h[3] == pytest.approx(4 / 7) and h[7] == pytest.approx(8 / 15)
    assert h[6] == pytest.approx(4 / 7 + 2 / 3 + 1)
    assert np.all(fz.loss("honaker", 60) <= fz.loss("binary", 60) * (1 + 1e-6))
    assert np.ptp(fz.loss("smooth", 1000)) == 0


@pytest.mark.parametrize("n", [1, 2, 10, 100])
def test_sqrt_factor_squares_to_prefix(n):
    C = fz.sqrt_factorisation(n).C
    np.testing.assert_allclose(C @ C, fz.prefix_matrix(n), atol=1e-6)
    np.testing.assert_allclose(C @ np.linalg.inv(C), np.eye(n), atol=1e-6)


@pytest.mark.parametrize("mech", fz.MECHANISMS)
@pytest.mark.parametrize("T", [1, 2, 5, 16, 37])
def test_dense_factorisation_matches_oracle(mech, T):
    """B C = A, and the dense loss equals the scalable oracle (smooth: calibrated bound D/2)."""
    F = fz.factorisation(mech, T)
    np.testing.assert_allclose(F.B @ F.C, fz.prefix_matrix(T), atol=1e-12)
    if mech == "smooth":
        D = fz.smooth_depth(T)
        assert F.sens2 <= D / 2
        np.testing.assert_allclose(np.sum(F.B**2, 1), D / 2)
    else:
        np.testing.assert_allclose(F.loss(), fz.loss(mech, T), rtol=1e-12)


def test_nuclear_bound_is_a_lower_bound():
    A = fz.prefix_matrix(64)
    nuc = np.linalg.svd(A, compute_uv=False).sum()
    assert fz.nuclear_lower_bound(64) == pytest.approx((nuc / 64) ** 2, rel=1e-12)
    for T in (16, 100, 1024):
        lb = fz.nuclear_lower_bound(T)
        assert all(fz.loss(m, T).mean() >= lb for m in fz.MECHANISMS)


def _noise_from_draws(counter, spec, Z):
    """The streaming code's noise when step t's draws are Z[t] (replaces the key draws)."""
    state = counter.init(jax.random.key(0), spec)

    def body(s, z):
        leaf, buf, n = counter.advance(s, z)
        return s._replace(t=s.t + 1, leaf=leaf, buf=buf), n

    return jax.lax.scan(body, state, Z)[1]


@pytest.mark.parametrize("name", list(COUNTERS))
@pytest.mark.parametrize("T", [7, 16, 21])
def test_streaming_equals_factorisation_and_draws_feed_one_node(name, T):
    """d noise/d draws is linear: each draw that is used must be exactly one node column of B
    (a draw reused by two nodes would give a sum of columns), and every node gets a draw."""
    counter = COUNTERS[name]()
    spec = ContinualSpec(T, 1, 1.0)
    shape = counter.draw_shape(counter.init(jax.random.key(0), spec))
    Z = jnp.zeros((T, *shape))
    J = jax.jacfwd(lambda z: _noise_from_draws(counter, spec, z)[:, 0])(Z)
    J = np.asarray(J).reshape(T, -1)
    used = J[:, np.any(J != 0, axis=0)]
    B = fz.factorisation(name, T).B
    key = lambda M: sorted(map(tuple, np.round(M.T.astype(np.float64), 5)))  # float32: 5 digits
    assert key(used) == key(B[:, np.any(B != 0, axis=0)])


@pytest.mark.parametrize("name", list(COUNTERS))
def test_r2_small(name):
    """Default tier: N = 20000 streams, T = 64. The per-step variance estimate has relative
    SE sqrt(2/N) = 1%; over 64 steps the max deviation stays < 5% (5 SE)."""
    counter = COUNTERS[name](rho=0.5)
    spec = ContinualSpec(64, 1, 1.0)
    e = np.asarray(noise_streams(counter, spec, jax.random.split(jax.random.key(1), 20_000)))
    var = (e[..., 0].astype(np.float64) ** 2).mean(0)
    np.testing.assert_allclose(var, counter.variance(spec), rtol=0.05)
    np.testing.assert_allclose(counter.variance(spec), fz.loss(name, 64))  # ρ = 1/2: σ² = loss


@pytest.mark.slow
@pytest.mark.parametrize("name", list(COUNTERS))
def test_r2_monte_carlo(name):
    """R2: N = 10^5 streams at T = 2^10, ρ = 1/2: per-step variance within ±3% of the oracle at
    every t (relative SE 0.45%; 3% is 6.7 SE, so 1024 steps give no false failures)."""
    counter = COUNTERS[name](rho=0.5)
    spec = ContinualSpec(1024, 1, 1.0)
    f = jax.jit(lambda k: jnp.sum(noise_streams(counter, spec, k)[..., 0] ** 2, 0))
    total = sum(
        np.asarray(f(jax.random.split(jax.random.key(b), 10_000)), np.float64) for b in range(10)
    )
    np.testing.assert_allclose(total / 100_000, fz.loss(name, 1024), rtol=0.03)


@pytest.mark.parametrize("name", list(COUNTERS))
def test_outputs_depend_only_on_the_prefix(name):
    T, cut = 32, 13
    rng = np.random.default_rng(0)
    x = rng.integers(0, 2, T).astype(float)
    y = x.copy()
    y[cut:] = 1 - y[cut:]
    counter = COUNTERS[name]()
    spec = ContinualSpec(T, 1, 1.0)

    def releases(stream):
        def body(s, xt):
            out = counter.act({}, s, xt[None])
            return counter.update(s, xt[None], out, ()), out[0]

        return np.asarray(jax.lax.scan(body, counter.init(jax.random.key(5), spec), stream)[1])

    rx, ry = releases(jnp.asarray(x)), releases(jnp.asarray(y))
    np.testing.assert_array_equal(rx[:cut], ry[:cut])
    assert np.all(rx[cut:] != ry[cut:])
    # exact counts plus noise: subtracting the prefix sums leaves the data-independent noise
    np.testing.assert_allclose(rx - np.cumsum(x), ry - np.cumsum(y), atol=1e-4)


def test_engine_run_and_final_max_error():
    env = continual_bernoulli(0.5)
    counter = COUNTERS["binary"](rho=0.5)
    res = simulate(env, env.default_params(), counter, 100, 300, seed=0, grid=[50, 100])
    spec = env.spec(env.default_params(), 100)
    mse = res.final["sq_error"].mean() / 100
    # mean per-step variance of the oracle; SE of the mean over 300 x 100 correlated terms < 5%
    assert mse == pytest.approx(counter.variance(spec).mean(), rel=0.1)
    assert np.all(res.final["max_abs_error"] ** 2 >= res.final["sq_error"] / 100)


def test_bad_input():
    with pytest.raises(ConfigError, match=r"^horizon:"):
        fz.loss("binary", 0)
    with pytest.raises(ConfigError, match=r"^env.d:"):
        continual_bernoulli(0.5, d=0)
    with pytest.raises(ConfigError, match=r"^rho:"):
        COUNTERS["binary"](rho=0.0)
    with pytest.raises(ConfigError, match=r"^env.sequence:"):
        continual_fixed([0, 1, 2])  # outside the declared bound 1
    env = continual_fixed([0, 2, 1], bound=2.0)
    with pytest.raises(ConfigError, match=r"^bound:"):
        simulate(env, env.default_params(), COUNTERS["binary"](), 3, 2)
    with pytest.raises(ConfigError, match=r"^horizon:"):
        simulate(env, env.default_params(), COUNTERS["binary"](bound=2.0), 5, 2)


def test_clipping_only_when_asked():
    env = continual_fixed([0, 2, 1], bound=2.0)
    counter = COUNTERS["binary"](clip=True, rho=1e6)  # nearly noiseless
    res = simulate(env, env.default_params(), counter, 3, 1, grid=[3])
    # the clipped counter counts 0 + 1 + 1 = 2 while S_3 = 3: error 1 at steps 2 and 3
    assert res.final["sq_error"][0] == pytest.approx(2.0, abs=1e-2)
