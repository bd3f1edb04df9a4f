"""UCB1 (Auer, Cesa-Bianchi & Fischer, 2002, "Finite-time analysis of the multiarmed bandit
problem", Machine Learning 47, Figure 1).

Play each arm once; then in round t+1 play argmax_j  xbar_j + sqrt(c ln t / n_j), with t the
number of rounds played so far and c = 2 in the paper. Ties go to the lowest arm index.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import jax
import jax.numpy as jnp

from bandits.agents.stats import ArmStats, add_reward, arm_stats, unpulled_first
from bandits.envs import BanditSpec
from experiments.config import check_float
from experiments.protocol import AgentBase


class UCB1State(NamedTuple):
    stats: ArmStats
    inv_sqrt_n: jax.Array  # (K,) cached 1/sqrt(n_j): only the pulled arm's entry changes


@dataclass(frozen=True)
class UCB1(AgentBase):
    """UCB1 with exploration constant `c` (index xbar + sqrt(c ln t / n)); c = 2 is the paper's."""

    c: float = 2.0

    def __post_init__(self):
        check_float("c", self.c, 0.0)

    def init(self, key, spec: BanditSpec) -> UCB1State:
        stats = arm_stats(spec.num_arms)
        return UCB1State(stats, jnp.zeros_like(stats.means))

    def act(self, rng, state: UCB1State, t) -> jax.Array:
        width = jnp.sqrt(self.c * jnp.log(jnp.maximum(t, 1).astype(state.stats.means.dtype)))
        index = state.stats.means + width * state.inv_sqrt_n
        return jnp.argmax(unpulled_first(index, state.stats.counts))

    def update(self, state: UCB1State, t, action, reward) -> UCB1State:
        stats, hot = add_reward(state.stats, action, reward)
        n = stats.counts.astype(stats.means.dtype)
        inv = jnp.where(hot, jax.lax.rsqrt(jnp.maximum(n, 1)), state.inv_sqrt_n)
        return UCB1State(stats, inv)
