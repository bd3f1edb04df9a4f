"""MOSS, "Minimax Optimal Strategy in the Stochastic case" (Audibert & Bubeck, 2009, "Minimax
policies for adversarial and stochastic bandits", COLT, Section 4 / Theorem 5).

Play each arm once; then, for horizon T and K arms, play the arm maximising

    xbar_a + sqrt( max(ln(T / (K n_a)), 0) / n_a ),

n_a its pull count. The bonus depends on n_a alone, so it is cached per arm and recomputed only
for the pulled arm. Ties go to the lowest arm index. The bonus is the paper's for rewards in
[0, 1]: an env whose rewards may leave [0, 1] is refused (`check_unit_rewards`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import jax
import jax.numpy as jnp

from bandits.agents.stats import ArmStats, add_reward, arm_stats, unpulled_first, write_arm
from bandits.envs import BanditSpec, check_unit_rewards
from experiments.protocol import AgentBase


class MOSSState(NamedTuple):
    stats: ArmStats
    bonus: jax.Array  # (K,) cached sqrt(max(ln(T/(K n)), 0) / n)
    horizon_per_arm: jax.Array  # () T / K


@dataclass(frozen=True)
class MOSS(AgentBase):
    """MOSS (Audibert & Bubeck 2009): index xbar + sqrt(max(ln(T/(K n)), 0)/n); T from the spec."""

    def init(self, key, spec: BanditSpec) -> MOSSState:
        check_unit_rewards(spec, "MOSS")
        stats = arm_stats(spec.num_arms)
        per_arm = jnp.asarray(spec.horizon / spec.num_arms, stats.means.dtype)
        return MOSSState(stats, jnp.zeros_like(stats.means), per_arm)

    def act(self, rng, state: MOSSState, t) -> jax.Array:
        index = state.stats.means + state.bonus
        return jnp.argmax(unpulled_first(index, state.stats.counts))

    def update(self, state: MOSSState, t, action, reward) -> MOSSState:
        stats, arm, count = add_reward(state.stats, action, reward)
        n = jnp.maximum(count, 1).astype(stats.means.dtype)  # the pulled arm's: only it changes
        bonus = jnp.sqrt(jnp.maximum(jnp.log(state.horizon_per_arm / n), 0.0) / n)
        return MOSSState(stats, write_arm(state.bonus, arm, bonus), state.horizon_per_arm)
