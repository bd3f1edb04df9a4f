"""Epsilon-greedy with a constant rate, and the epsilon_n-greedy schedule of Auer,
Cesa-Bianchi & Fischer (2002), "Finite-time analysis of the multiarmed bandit problem", Machine
Learning 47, Section 3, Figure 3 and Theorem 3.

In round n = t + 1 (t rounds played): with probability epsilon_n play an arm drawn uniformly at
random, otherwise the greedy arm argmax_a xbar_a (arms never pulled count as +inf, so the greedy
branch tries each arm once; ties go to the lowest index).

* `EpsilonGreedy`: epsilon_n = epsilon.
* `DecayingEpsilonGreedy`: epsilon_n = min(1, c K / (d^2 n)), with 0 < d <= min gap (Auer et
  al., Fig. 3); their Theorem 3 needs c > 5. The defaults (c = 5, d = 0.1) are the boundary
  and a guess: set c above 5 and d at most the instance's smallest gap for the theorem to
  apply (the default instance linspace(0.1, 0.9, 10) has gaps 0.089 < 0.1).

Each round uses two pre-drawn uniforms: u_0 < epsilon_n decides to explore, floor(K u_1)
(clipped to K - 1 against float rounding) is the random arm.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import jax
import jax.numpy as jnp

from bandits.agents.stats import ArmStats, add_reward, arm_stats, unpulled_first
from bandits.envs import BanditSpec
from experiments.config import check_float
from experiments.protocol import UNIFORM, AgentBase, Draw


class GreedyState(NamedTuple):
    stats: ArmStats


def _explore_or_exploit(rng, stats: ArmStats, epsilon: jax.Array) -> jax.Array:
    u = rng["u"]
    k = stats.counts.shape[0]
    random_arm = jnp.minimum(jnp.floor(u[1] * k).astype(stats.counts.dtype), k - 1)
    greedy = jnp.argmax(unpulled_first(stats.means, stats.counts)).astype(stats.counts.dtype)
    return jnp.where(u[0] < epsilon, random_arm, greedy)


class _Greedy(AgentBase):
    def randomness(self, spec: BanditSpec) -> dict[str, Draw]:
        return {"u": Draw(UNIFORM, (2,))}

    def init(self, key, spec: BanditSpec) -> GreedyState:
        return GreedyState(arm_stats(spec.num_arms))

    def update(self, state: GreedyState, t, action, reward) -> GreedyState:
        return GreedyState(add_reward(state.stats, action, reward)[0])


@dataclass(frozen=True)
class EpsilonGreedy(_Greedy):
    """Explore uniformly with constant probability `epsilon`, else play the empirical best."""

    epsilon: float = 0.1

    def __post_init__(self):
        check_float("epsilon", self.epsilon, 0.0, 1.0)

    def act(self, rng, state: GreedyState, t) -> jax.Array:
        return _explore_or_exploit(rng, state.stats, jnp.asarray(self.epsilon))


@dataclass(frozen=True)
class DecayingEpsilonGreedy(_Greedy):
    """epsilon_n-greedy (Auer et al. 2002, Fig. 3): epsilon_n = min(1, c K / (d^2 n))."""

    c: float = 5.0
    d: float = 0.1

    def __post_init__(self):
        check_float("c", self.c, 0.0, low_open=True)
        check_float("d", self.d, 0.0, 1.0, low_open=True)

    def act(self, rng, state: GreedyState, t) -> jax.Array:
        k = state.stats.counts.shape[0]
        n = (t + 1).astype(state.stats.means.dtype)
        epsilon = jnp.minimum(1.0, self.c * k / (self.d**2 * n))
        return _explore_or_exploit(rng, state.stats, epsilon)
