"""Hyperparameters as arguments (`experiments.lift`) and the engine's program cache.

The float attributes of an env or agent object are inputs of its compiled programs, so objects
that differ only in those numbers share one program: the second run of a sweep is a cache hit.
Every check compares a cached run with a fresh compile of the same object: results must be
bit-identical (the same program computes both; only the numbers it is called with differ).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

import jax.numpy as jnp
import numpy as np
import pytest

from bandits.agents import UCB1, EpsilonGreedy
from bandits.envs import BernoulliBandit, GaussianBandit
from experiments.lift import Lifted, lift
from experiments.protocol import AgentBase, EnvBase
from experiments.simulate import _PROGRAMS, simulate

T, N, GRID = 500, 4, [10, 500]


def run(env, agent, **kw):
    return simulate(env, env.default_params(), agent, T, N, grid=GRID, seed=3, **kw)


def fresh(env, agent):
    _PROGRAMS.clear()
    return run(env, agent)


def same(a, b):
    for k in a.curves:
        np.testing.assert_array_equal(a.curves[k], b.curves[k])
    for k in a.final:
        np.testing.assert_array_equal(a.final[k], b.final[k])


def test_lift_splits_numbers_from_the_rest():
    a, b = lift(UCB1(0.5)), lift(UCB1(2))  # an int given to a float field is its float
    assert a.key == b.key and a.numbers == (0.5,) and b.numbers == (2.0,)
    assert a.rebuild((3.0,)) == UCB1(3.0)
    e, f = lift(BernoulliBandit((0.1, 0.9))), lift(BernoulliBandit((0.3, 0.4)))
    assert e.key == f.key and f.numbers == (0.3, 0.4)  # the means (Bernoulli arms have no sigma)
    assert lift(BernoulliBandit((0.1, 0.5, 0.9))).key != e.key  # another number of arms
    assert Lifted.static(UCB1(0.5)).mode == "constants" and a.mode == "arguments"


def test_a_sweep_over_an_agent_number_compiles_once_and_matches_fresh_compiles():
    env = BernoulliBandit((0.2, 0.5, 0.7))
    _PROGRAMS.clear()
    swept = [run(env, UCB1(c)) for c in (2.0, 0.5, 1.0)]
    assert [r.info["program_cache"] for r in swept] == ["compiled", "hit", "hit"]
    assert swept[1].info["hyperparameters"] == {"env": "arguments", "agent": "arguments"}
    for c, r in zip((2.0, 0.5, 1.0), swept, strict=True):
        same(r, fresh(env, UCB1(c)))
    assert swept[1].final["regret"].mean() < swept[0].final["regret"].mean()  # less exploration


def test_a_sweep_over_env_numbers_shares_the_program():
    _PROGRAMS.clear()
    a = run(GaussianBandit((0.1, 0.5), sigma=1.0), EpsilonGreedy())
    b = run(GaussianBandit((0.3, 0.2), sigma=0.5), EpsilonGreedy())
    assert b.info["program_cache"] == "hit"
    same(b, fresh(GaussianBandit((0.3, 0.2), sigma=0.5), EpsilonGreedy()))
    assert not np.array_equal(a.final["regret"], b.final["regret"])


@dataclass(frozen=True)
class Branchy(AgentBase):
    """Uses its number in Python control flow: it cannot be traced, so it stays a constant."""

    threshold: float = 0.5

    def init(self, key, spec):
        return jnp.zeros((), jnp.int32)

    def act(self, rng, state, obs):
        arm = 1 if self.threshold > 0.5 else 0  # Python branch on the number
        return jnp.asarray(arm, jnp.int32)

    def update(self, state, obs, action, feedback):
        return state


def test_a_number_used_in_python_falls_back_to_a_constant():
    env = BernoulliBandit((0.2, 0.7))
    lo, hi = run(env, Branchy(0.1)), run(env, Branchy(0.9))
    assert lo.info["hyperparameters"]["agent"] == "constants"
    # always arm 0 (gap 0.5): T / 2 up to the float32 rounding of the gap (1e-6 relative)
    np.testing.assert_allclose(lo.final["regret"], [0.5 * T] * N, rtol=1e-6)
    assert hi.final["regret"].tolist() == [0.0] * N  # always the best arm: no regret at all


@dataclass(frozen=True)
class Derived(AgentBase):
    """A number derived in __post_init__ is an attribute too, so it is lifted with its source."""

    p: float = 0.5

    def __post_init__(self):
        object.__setattr__(self, "q", 1.0 - self.p)

    def randomness(self, spec):
        from experiments.protocol import UNIFORM, Draw

        return {"u": Draw(UNIFORM)}

    def init(self, key, spec):
        return jnp.zeros((), jnp.int32)

    def act(self, rng, state, obs):
        return (rng["u"] < self.q).astype(jnp.int32)  # arm 1 with probability q = 1 - p

    def update(self, state, obs, action, feedback):
        return state


@pytest.mark.parametrize("p", [0.1, 0.8])
def test_derived_numbers_follow_their_object(p):
    env = BernoulliBandit((0.2, 0.7))
    _PROGRAMS.clear()
    run(env, Derived(0.5))
    cached = run(env, Derived(p))
    assert cached.info["program_cache"] == "hit"
    same(cached, fresh(env, Derived(p)))


@dataclass(frozen=True)
class SpecEnv(EnvBase):
    """An env whose spec (static, given to the agent's init) carries one of its numbers."""

    scale: float = 1.0
    primary_metric = "score"

    def default_params(self):
        return ()

    def spec(self, params, horizon):
        return (horizon, self.scale)

    def init(self, key, params):
        return jnp.zeros((), jnp.int32)

    def observe(self, state, params):
        return state

    def step(self, rng, state, action, params):
        return state + 1, (), {"score": action}


class SpecReader(AgentBase):
    def init(self, key, spec):
        return jnp.asarray(spec[1], jnp.float32)

    def act(self, rng, state, obs):
        return state

    def update(self, state, obs, action, feedback):
        return state


def test_a_number_in_the_spec_is_part_of_the_program_key():
    """The spec is fixed when a program is traced, so a number that reaches it must not be
    shared: scale 2 after scale 1 compiles again and scores 2 T, not T."""
    _PROGRAMS.clear()
    one = simulate(SpecEnv(1.0), (), SpecReader(), T, N, grid=[T])
    two = simulate(SpecEnv(2.0), (), SpecReader(), T, N, grid=[T])
    assert two.info["program_cache"] == "compiled"
    assert one.final["score"].tolist() == [T] * N and two.final["score"].tolist() == [2 * T] * N


TRACES: list[str] = []  # one entry per trace of CountingUCB1.act (Python runs only when traced)


@dataclass(frozen=True)
class CountingUCB1(UCB1):
    """UCB1 that records every time its `act` is traced (never when a compiled program runs)."""

    def act(self, rng, state, t):
        TRACES.append("act")
        return super().act(rng, state, t)


def test_a_repeated_simulate_call_traces_nothing_again():
    # a repeat with the same shapes (another seed) must reuse the probe and the compiled
    # programs: no trace of the agent at all (counted, not timed)
    sim = importlib.import_module("experiments.simulate")  # the module, not the function

    def probes_traced() -> int:
        return sim.PROBE_TRACES

    env, agent = BernoulliBandit((0.2, 0.5, 0.8)), CountingUCB1(1.5)
    params = env.default_params()
    TRACES.clear()
    first = simulate(env, params, agent, T, N, seed=1, grid=GRID)
    traced, probes = len(TRACES), probes_traced()
    assert traced > 0
    again = simulate(env, params, CountingUCB1(1.5), T, N, seed=2, grid=GRID)
    assert len(TRACES) == traced and probes_traced() == probes
    assert again.info["program_cache"] == "hit"
    same_seed = simulate(env, params, agent, T, N, seed=1, grid=GRID)
    assert len(TRACES) == traced
    same(first, same_seed)  # the cached probe and program give the fresh results bit for bit
    # another number of the same shapes: the program is shared, only the probe traces again
    simulate(env, params, CountingUCB1(0.5), T, N, seed=1, grid=GRID)
    assert probes_traced() == probes + 1
