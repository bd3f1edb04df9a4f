"""Multi-round steps (`Pull(arm, n)`) of the K-armed bandit envs: the law of a Bernoulli arm's
reward sum at large n in float32, the float32 horizon limit, and what the envs print.

Distribution test: N = 10^6 sums of n = 10^7 pulls, per mean, through `BernoulliBandit.step`,
compared with scipy's Binomial(n, mu) (mu the float32 mean the env uses) by the randomized
probability integral transform: for a discrete X with cdf F, F(X - 1) + U f(X) with U ~ U(0, 1)
independent is exactly U(0, 1) (Brockwell, "Universal residuals", Stat. Probab. Lett. 77 (2007)),
so a one-sample KS test against U(0, 1) tests the whole law.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from bandits.envs import BernoulliBandit, GaussianBandit, Pull, bernoulli_bandit
from experiments.config import ConfigError
from experiments.protocol import KEY, NORMAL, UNIFORM

N_SUMS, N_PULLS, ALPHA = 10**6, 10**7, 1e-3


ENV = BernoulliBandit((0.0, 1.0, 0.25, 0.5, 0.97))  # arms 3, 4: the KS test's means


def _rng(env, params, action, key) -> dict:
    """The step's declared draws (`env.randomness`), each from its own key."""
    draws = env.randomness(params, action)
    out = {}
    for (name, d), k in zip(sorted(draws.items()), jax.random.split(key, len(draws)), strict=True):
        dt = params.means.dtype
        if d.kind == KEY:
            out[name] = k
        elif d.kind == UNIFORM:
            out[name] = jax.random.uniform(k, d.shape, dt)
        else:
            assert d.kind == NORMAL
            out[name] = jax.random.normal(k, d.shape, dt)
    return out


@jax.jit
def _sums(params, arms, ns, key):
    """One reward sum of Pull(arms[i], ns[i]) from a fresh state per lane i (one program for
    every test here: the arrays have N_SUMS lanes)."""
    state = ENV.init(None, params)

    def one(arm, n, k):
        action = Pull(arm, n)
        return ENV.step(_rng(ENV, params, action, k), state, action, params)[1]

    return jax.vmap(one)(arms, ns, jax.random.split(key, arms.shape[0]))


def _pull_sums(arms, ns, seed: int) -> np.ndarray:
    """Sums of Pull(arms[i], ns[i]) (broadcast to N_SUMS lanes), as float64."""
    it = jnp.result_type(int)
    arms = jnp.broadcast_to(jnp.asarray(arms, jnp.int32), (N_SUMS,))
    ns = jnp.broadcast_to(jnp.asarray(ns, it), (N_SUMS,))
    out = _sums(ENV.default_params(), arms, ns, jax.random.key(seed))
    return np.asarray(out, np.float64)


def _randomized_pit(x: np.ndarray, law, seed: int) -> np.ndarray:
    """F(x - 1) + U f(x), the cdf evaluated once per distinct value (scipy's is slow)."""
    values, inverse = np.unique(x, return_inverse=True)
    u = np.random.default_rng(seed).random(x.size)
    return law.cdf(values - 1)[inverse] + u * law.pmf(values)[inverse]


@pytest.mark.parametrize("arm", [3, 4], ids=["mu=0.5", "mu=0.97"])
def test_pull_sum_is_binomial_at_ten_million_pulls_in_float32(arm):
    """Pull(arm, 10^7) sums against scipy's Binomial(10^7, mu) (module docstring).

    Tolerance: with the exact law the KS p-value is uniform, so each case fails with
    probability ALPHA = 1e-3 (and, the seeds being fixed, deterministically). Power: the
    float32 `jax.random.binomial` the env used before is at KS distance D ~ 0.004 from the exact
    law at these n and mu (with 4e5 draws: KS p ~ 1e-6), while the critical distance at
    N = 10^6 and level 1e-3 is 1.95 / sqrt(N) = 0.002: it fails this test by far. At n <= 10^5
    the old sampler was indistinguishable at this N: the large n is the point.
    """
    assert not jax.config.jax_enable_x64, "another test left jax_enable_x64 on"
    sums = _pull_sums(arm, N_PULLS, seed=arm)
    assert np.all(sums == np.round(sums)) and sums.min() >= 0 and sums.max() <= N_PULLS
    mu32 = float(np.float32(ENV.means[arm]))  # the env's float32 mean
    pit = _randomized_pit(sums, stats.binom(N_PULLS, mu32), seed=arm)
    assert stats.kstest(pit, "uniform").pvalue > ALPHA


def test_pull_sum_edges():
    """Means 0 and 1 give 0 and n; one pull is a Bernoulli draw; small n q is inverted
    (Binomial(3, 0.25): every outcome appears, none beyond 3, the mean within 5 sd)."""
    quarter = N_SUMS // 4
    arms = np.repeat([0, 1, 2, 2], quarter)
    ns = np.repeat([1000, 1000, 1, 3], quarter)
    zero, full, one, three = _pull_sums(arms, ns, seed=1).reshape(4, quarter)
    assert np.all(zero == 0) and np.all(full == 1000)
    assert set(np.unique(one)) == {0.0, 1.0}
    assert set(np.unique(three)) == {0.0, 1.0, 2.0, 3.0}
    for x, n in ((one, 1), (three, 3)):
        sd = np.sqrt(n * 0.25 * 0.75 / quarter)
        assert abs(x.mean() - 0.25 * n) < 5 * sd


def test_float32_pull_past_2_24_is_illegal_and_halving_refuses_such_horizons():
    """float32 counts are exact to 2^24 only (2^24 + 1 rounds to 2^24). One-round runs need no
    such count (the engine's sums are exact), so the env's spec accepts any T; a Pull(arm, n)
    with n > 2^24 is an illegal action without x64, and Sequential Halving, whose last step
    pulls up to T rounds, refuses T > 2^24 in one line at set-up."""
    from privacy.halving import SequentialHalving

    assert np.float32(2**24 + 1) == np.float32(2**24)
    env = bernoulli_bandit(K=3)
    params = env.default_params()
    assert env.spec(params, 2**24 + 1).horizon == 2**24 + 1
    state = env.init(None, params)

    @jax.jit
    def flagged(n):  # one compile per float type (n traced)
        action = Pull(jnp.int32(1), n)
        rng = _rng(env, env.default_params(), action, jax.random.key(0))
        return env.step(rng, state, action, env.default_params())[2]["illegal"]

    def illegal(n: int) -> bool:
        return bool(flagged(jnp.asarray(n, jnp.result_type(int))))

    assert not illegal(2**24) and illegal(2**24 + 1)
    with pytest.raises(ConfigError, match=r"^horizon: T = 16777217 > 2\^24 .*use x64=true"):
        SequentialHalving().horizon_inputs(env.spec(params, 2**24 + 1))
    SequentialHalving().horizon_inputs(env.spec(params, 2**24))
    with jax.enable_x64(True):
        state = env.init(None, env.default_params())
        assert not illegal(2**24 + 1)
        SequentialHalving().horizon_inputs(env.spec(env.default_params(), 2**24 + 1))


def test_bernoulli_has_no_sigma():
    """Bernoulli arms have no noise scale: none in the printed env (run logs use the dataclass
    fields), none accepted; the Gaussian env keeps its sigma."""
    import dataclasses

    env = BernoulliBandit((0.2, 0.4))
    assert "sigma" not in repr(env)
    assert "sigma" not in [f.name for f in dataclasses.fields(env)]
    with pytest.raises(TypeError):
        BernoulliBandit((0.2, 0.4), sigma=2.0)  # type: ignore[call-arg]
    gauss = GaussianBandit((0.2, 0.4), sigma=2.5)
    assert "sigma=2.5" in repr(gauss)
    assert float(gauss.default_params().sigma) == 2.5
    assert float(env.default_params().sigma) == 1.0  # a placeholder in the shared params
