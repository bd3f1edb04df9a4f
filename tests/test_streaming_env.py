"""Streaming bandit environment: rules enforcement, instances, exact batched sampling, bad input."""

from __future__ import annotations

import functools
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from bandits.streaming import StreamUniform, streaming_bandit
from bandits.streaming.common import action
from bandits.streaming.sampling import CANDIDATES, bernoulli_sum
from experiments.config import ConfigError
from experiments.protocol import AgentBase, IllegalActionError
from experiments.simulate import simulate


def _env(**kw):
    base = dict(
        K=3,
        horizon=100,
        memory=2,
        instance="explicit",
        means=[0.2, 0.5, 0.9],
        order="given",
        reward="gaussian",
        sigma=1e-9,
    )
    base.update(kw)
    return streaming_bandit(**base)


@functools.cache
def _jit_step(env):
    return jax.jit(env.step)


def _step(env, state, a):
    rng = {"z": jnp.zeros(()), "key": jax.random.key(0), "u": jnp.full((CANDIDATES, 2), 0.5)}
    return _jit_step(env)(rng, state, a, env.default_params())


# --------------------------------------------------------------------------- rules
@pytest.mark.parametrize(
    "first, second",
    [
        (action(pull=0, n=1), None),  # pull an empty slot
        (action(read=2, pull=2, n=1), None),  # slot outside memory M = 2
        (action(read=0, pull=0, n=101), None),  # more than T pulls
        (action(read=0, pull=0, n=-1), None),  # negative pulls
        (action(drop=1), None),  # drop an empty slot
        (action(read=0, pull=0, n=1), action(drop=0, pull=0, n=1)),  # pull a discarded arm
    ],
)
def test_illegal_actions_are_flagged(first, second):
    env = _env()
    s = env.init(jax.random.key(0), env.default_params())
    s, _, m = _step(env, s, first)
    if second is not None:
        assert not bool(m["illegal"])
        s, _, m = _step(env, s, second)
    assert bool(m["illegal"])
    assert int(m["rounds"]) == 0  # nothing is pulled; the engine records the step number


def test_single_pass_no_read_past_end_and_peak_memory():
    env = _env()
    s = env.init(jax.random.key(0), env.default_params())
    for slot in (0, 1, 0):  # read all three arms (the third overwrites, i.e. discards, arm 0)
        s, _, m = _step(env, s, action(read=slot, pull=slot, n=1))
        assert not bool(m["illegal"])
    s, _, m = _step(env, s, action(read=1))
    assert bool(m["illegal"])  # the stream is exhausted
    assert int(s.peak) == 2
    # regret of the pulls: one pull each of 0.2, 0.5, 0.9 against mu* = 0.9
    fin = env.final_metrics(s, jnp.asarray(2), env.default_params())
    assert float(fin["chosen_gap"]) == 0.0 and float(fin["arms_read"]) == 3


class _PullEmpty(AgentBase):
    """Pulls slot 0 without ever reading an arm: illegal in its first (0-round) step."""

    def init(self, key, spec):
        return jnp.zeros(())

    def act(self, rng, state, obs):
        return action(read=-1, pull=0, n=0 * obs.rounds + 0, drop=0)

    def update(self, state, obs, a, fb):
        return state


def test_engine_raises_on_illegal_action():
    env = _env()
    with pytest.raises(IllegalActionError):
        simulate(env, env.default_params(), _PullEmpty(), 100, 2, chunk_size=100)


# --------------------------------------------------------------------------- instances
def test_clear_cut_instance_and_orders():
    env = streaming_bandit(K=200, horizon=10**6, instance="clear_cut")
    m = np.asarray(env.all_means(jax.random.key(3)))
    assert np.sum(m == np.float32(0.82)) == 1 or np.sum(np.isclose(m, 0.82)) == 1
    others = m[~np.isclose(m, 0.82)]
    assert others.min() >= 0.0 and others.max() <= 0.8
    # TruncNormal(0.5, 0.1, [0, 0.8]) has mean 0.5 - 0.1 phi(3)/Phi(3) ~ 0.4996; 199 draws: sd 0.007
    assert abs(others.mean() - 0.4996) < 0.03
    last = streaming_bandit(K=200, horizon=10**6, instance="mix_in", order="best_last")
    ml = np.asarray(last.all_means(jax.random.key(4)))
    assert np.argmax(ml) == 199
    # lazily generated means match what the environment reads arm by arm
    s = env.init(jax.random.key(3), env.default_params())
    read = []
    for i in range(5):
        s, _, _ = _step(env, s, action(read=i % 2))
        read.append(float(s.slot_mean[i % 2]))
    # same draws; the jitted step and eager all_means may round differently by 1 ulp (fusion)
    np.testing.assert_allclose(read, m[:5], rtol=1e-6)


def test_explicit_permutation_given_order():
    env = streaming_bandit(
        K=3,
        horizon=10,
        instance="explicit",
        means=[0.1, 0.2, 0.3],
        order="given",
        permutation=[2, 0, 1],
    )
    np.testing.assert_allclose(np.asarray(env.all_means(jax.random.key(0))), [0.3, 0.1, 0.2])


def test_lower_bound_family_inferred_construction():
    K, T = 100, 10**6
    env = streaming_bandit(K=K, horizon=T, instance="lower_bound", lb_p_special=1.0)
    m = np.asarray(env.all_means(jax.random.key(1)))
    eps = (K / T) ** (1 / 3)  # special arm at 1/2 + eps (c = 1)
    assert np.sum(np.isclose(m[:-1], 0.5 + eps)) == 1 and np.sum(np.isclose(m[:-1], 0.5)) == K - 2
    assert m[-1] in (0.0, 1.0)


# --------------------------------------------------------------------------- sampling
def test_batched_binomial_matches_one_by_one():
    """Binomial(n, p) batch sums vs sums of n single Bernoulli pulls: same distribution
    (the sampler's own exactness checks are in tests/test_streaming_sampling.py)."""
    n, p, reps = 40, 0.3, 4000
    ku, kk = jax.random.split(jax.random.key(0))
    rng = {
        "u": jax.random.uniform(ku, (reps, CANDIDATES, 2)),
        "key": jax.random.split(kk, reps),
    }
    batched = np.asarray(
        jax.jit(jax.vmap(lambda r: bernoulli_sum(r, jnp.asarray(n), jnp.asarray(p), False)))(rng)
    )
    singles = np.asarray((jax.random.uniform(jax.random.key(1), (reps, n)) < p).sum(1))
    # two-sample chi-square on the pooled histogram (fixed seeds; p-value threshold 1e-3)
    edges = np.arange(-0.5, n + 1.5)
    h1, h2 = np.histogram(batched, edges)[0], np.histogram(singles, edges)[0]
    keep = (h1 + h2) >= 10
    assert stats.chi2_contingency(np.stack([h1[keep], h2[keep]])).pvalue > 1e-3


def test_faithful_sd_above_threshold():
    n, p, reps = 10**9, 0.82, 2000
    rng = {
        "u": jnp.full((reps, CANDIDATES, 2), 0.5),
        "key": jax.random.split(jax.random.key(2), reps),
        "z": jax.random.normal(jax.random.key(3), (reps,)),
    }
    faithful = np.asarray(
        jax.jit(jax.vmap(lambda r: bernoulli_sum(r, jnp.asarray(n), jnp.asarray(p), True)))(rng)
    )
    # the authors' approximation: sum = n p + 2 sqrt(n) Z (sd 2 sqrt(n) = 63246); the sample sd of
    # 2000 normals is within 10% with overwhelming probability (sd of the ratio ~1.6%)
    assert abs(np.std(faithful.astype(np.float64) - n * p) / (2 * np.sqrt(n)) - 1) < 0.1


# --------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "kw, field",
    [
        (dict(K=1), "env.K"),
        (dict(memory=0), "env.memory"),
        (dict(K=10, horizon=5), "env.horizon"),
        (dict(alpha=0.0, beta=2.0), "env.alpha"),
        (dict(alpha=1000.0, beta=2.0, horizon=999), "horizon"),
        (
            dict(instance="explicit", means=[0.1, 0.2], K=2, order="given", permutation=[0, 0]),
            "env.permutation",
        ),
        (dict(order="sideways"), "env.order"),
        (dict(mode="approx"), "env.mode"),
    ],
)
def test_bad_config_names_the_field(kw, field):
    base = dict(K=10, horizon=1000)
    base.update(kw)
    with pytest.raises(ConfigError, match=rf"^{re.escape(field)}:"):
        streaming_bandit(**base)


def test_memory_below_algorithm_bound_is_config_error():
    env = streaming_bandit(K=10, horizon=1000, memory=1)
    with pytest.raises(ConfigError, match=r"^env\.memory:"):
        StreamUniform().init(jax.random.key(0), env.spec(env.default_params(), 1000))
