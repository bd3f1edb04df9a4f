"""The engine's per-step draws (`experiments.rollout.draw`): `jax.random`'s threefry in its
non-partitionable layout, checked bit for bit against `jax.random` itself, then for the laws and
the independence the engine relies on (across steps, blocks, seeds and draw names).

Tolerances: a KS p-value is uniform under the null, so each `> 1e-3` check fails by chance with
probability 1e-3; correlations are checked within 5 standard errors (1/sqrt(M)).
"""

from __future__ import annotations

import jax
import numpy as np
from scipy import stats

from experiments.protocol import NORMAL, UNIFORM, Draw
from experiments.rollout import GENERATOR, draw, draw_steps
from experiments.simulate import PRNG_NAMES, simulate


def test_draws_are_jax_random_non_partitionable():
    assert GENERATOR == "threefry"  # the default
    key = jax.random.key(4)
    with jax.threefry_partitionable(False):
        u = jax.random.uniform(key, (100, 3))
        z = jax.random.normal(key, (100, 3))
    np.testing.assert_array_equal(draw(key, Draw(UNIFORM, (3,)), 100), u)
    np.testing.assert_array_equal(draw(key, Draw(NORMAL, (3,)), 100), z)
    with jax.threefry_partitionable(True):  # JAX's default layout gives other numbers
        assert not np.array_equal(jax.random.uniform(key, (100, 3)), u)


def test_engine_draws_are_independent_across_steps_seeds_and_names():
    """Thompson-like draws of 20 numbers per step for 2000 seeds: sums over a step and over
    steps are exactly N(0, n) when the numbers are independent N(0, 1)."""
    spec = {"x": Draw(NORMAL, (20,)), "u": Draw(UNIFORM, (20,))}
    keys = jax.random.split(jax.random.key(0), 2000)
    draws = jax.jit(jax.vmap(lambda k: draw_steps(k, 0, 300, {}, spec)[1]))(keys)
    x, u = np.asarray(draws["x"]), np.asarray(draws["u"])  # (2000, 300, 20)
    assert stats.kstest(x.ravel()[: 10**6], "norm").pvalue > 1e-3
    assert stats.kstest(u.ravel()[: 10**6], "uniform").pvalue > 1e-3
    across_numbers = x.sum(axis=2).ravel() / np.sqrt(20)
    across_steps = x.sum(axis=1).ravel() / np.sqrt(300)  # across blocks of 100 steps, too
    for s in (across_numbers, across_steps):
        assert stats.kstest(s, "norm").pvalue > 1e-3
    m = x[:, :-1].size
    assert abs(np.corrcoef(x[:, :-1].ravel(), x[:, 1:].ravel())[0, 1]) < 5 / np.sqrt(m)
    assert abs(np.corrcoef(x[:-1].ravel(), x[1:].ravel())[0, 1]) < 5 / np.sqrt(m)  # seeds
    assert abs(np.corrcoef(x.ravel(), u.ravel())[0, 1]) < 5 / np.sqrt(x.size)  # two names
    again = jax.jit(jax.vmap(lambda k: draw_steps(k, 0, 300, {}, spec)[1]))(keys)
    np.testing.assert_array_equal(np.asarray(again["x"]), x)  # deterministic


def test_summary_records_the_generator():
    from bandits.agents import UCB1
    from bandits.envs import BernoulliBandit

    env = BernoulliBandit((0.4, 0.5))
    r = simulate(env, env.default_params(), UCB1(), 100, 2, chunk_size=100)
    assert r.info["prng"] == PRNG_NAMES["threefry"]
