"""UCB1 (Auer, Cesa-Bianchi & Fischer, 2002, "Finite-time analysis of the multiarmed bandit
problem", Machine Learning 47, Figure 1).

Play each arm once; then in round t+1 play argmax_j  xbar_j + sqrt(c ln t / n_j), with t the
number of rounds played so far and c = 2 in the paper. Ties go to the lowest arm index.

c = 2 is the paper's constant for rewards in [0, 1] (Hoeffding's bound: a [0, 1] reward is
1/2-sub-Gaussian, and c = 8 sigma^2 with sigma = 1/2). For sigma-sub-Gaussian rewards (e.g.
N(mu, sigma^2)) the same index needs c = 8 sigma^2, for rewards in [a, b] c = 2 (b - a)^2. UCB1
runs on any rewards (a scaled c is a legitimate choice), so an env whose rewards may leave
[0, 1] with c left at 2 gets a warning, once per process, in the log, not an error.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import NamedTuple

import jax
import jax.numpy as jnp

from bandits.agents.stats import ArmStats, add_reward, arm_stats, unpulled_first, write_arm
from bandits.envs import BanditSpec
from experiments.config import check_float
from experiments.protocol import AgentBase

log = logging.getLogger(__name__)
PAPER_C = 2.0  # Auer et al.'s constant, for rewards in [0, 1]
_warned: set[tuple[float, float]] = set()  # reward ranges already warned about (once each)


def warn_unscaled_width(spec: BanditSpec, c) -> None:
    """Log one warning (once per reward range and process) when `c` is the paper's 2 and the
    env's rewards may leave [0, 1] (module docstring). Nothing when the env does not say where
    its rewards lie (no or a None `reward_range`: any env with `num_arms` may run UCB1), or
    when c is a tracer (a swept value: it was chosen)."""
    reward_range = getattr(spec, "reward_range", None)
    if reward_range is None or not isinstance(c, int | float) or c != PAPER_C:
        return
    low, high = (float(x) for x in reward_range)
    if (low >= 0.0 and high <= 1.0) or (low, high) in _warned:
        return
    _warned.add((low, high))
    hint = (
        "for N(mu, sigma^2) rewards use agents.ucb1.c = 8 sigma^2"
        if math.isinf(high - low)
        else f"for rewards in [a, b] use agents.ucb1.c = 2 (b - a)^2 = {2 * (high - low) ** 2:g}"
    )
    log.warning(
        "ucb1: c = 2 is Auer et al.'s width for rewards in [0, 1], this env's lie in [%g, %g];"
        " %s (running with c = 2)",
        low,
        high,
        hint,
    )


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
        warn_unscaled_width(spec, self.c)
        stats = arm_stats(spec.num_arms)
        return UCB1State(stats, jnp.zeros_like(stats.means))

    def act(self, rng, state: UCB1State, t) -> jax.Array:
        width = jnp.sqrt(self.c * jnp.log(jnp.maximum(t, 1).astype(state.stats.means.dtype)))
        index = state.stats.means + width * state.inv_sqrt_n
        return jnp.argmax(unpulled_first(index, state.stats.counts))

    def update(self, state: UCB1State, t, action, reward) -> UCB1State:
        stats, arm, count = add_reward(state.stats, action, reward)
        fresh = jax.lax.rsqrt(jnp.maximum(count, 1).astype(stats.means.dtype))
        return UCB1State(stats, write_arm(state.inv_sqrt_n, arm, fresh))
