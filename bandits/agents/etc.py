"""Explore-then-commit (Lattimore & Szepesvári, 2020, "Bandit Algorithms", Chapter 6,
Algorithm 1).

Pull each of the K arms m times, round-robin (arm t mod K in round t + 1, t = 0..mK-1); then
commit for the rest of the horizon to the arm with the highest empirical mean after the
exploration, argmax_a xbar_a(mK) (ties to the lowest index). The committed arm is frozen in the
state when exploration ends; later rewards do not change it. If m K exceeds the horizon the run
simply ends while exploring.

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


@dataclass(frozen=True)
class ExploreThenCommit(AgentBase):
    """Explore-then-commit with `m` pulls per arm (Lattimore & Szepesvári 2020, Alg. 1)."""

    m: int = 50

    def __post_init__(self):
        check_int("m", self.m, 1)

    def init(self, key, spec: BanditSpec) -> ETCState:
        stats = arm_stats(spec.num_arms)
        return ETCState(stats, jnp.full((), -1, stats.counts.dtype))

    def act(self, rng, state: ETCState, t) -> jax.Array:
        explore = jnp.argmin(state.stats.counts).astype(state.committed.dtype)
        return jnp.where(state.committed >= 0, state.committed, explore)

    def update(self, state: ETCState, t, action, reward) -> ETCState:
        stats, _ = add_reward(state.stats, action, reward)
        best = jnp.argmax(stats.means).astype(state.committed.dtype)
        ends_now = (state.committed < 0) & (jnp.min(stats.counts) >= self.m)
        return ETCState(stats, jnp.where(ends_now, best, state.committed))
