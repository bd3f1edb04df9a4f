"""Single-arm king/challenger explore-then-commit: streaming uniform exploration and the naive
eps-best algorithm (Wang, ICML 2023, arXiv:2306.02208, abstract; `uniform_exploration_algorithm` and
`naive_eps_best_algorithm` of the authors' released code).

Each arriving arm is pulled b times; it replaces the stored arm ("king") when its empirical mean is
strictly larger than the king's (the king's estimate is not refreshed); after the stream the
remaining T - K b pulls go to the king. Memory: the king plus the arriving arm = 2 slots.

* uniform exploration (the paper's baseline, O(K^{1/3} T^{2/3} log^{1/3} T) regret, abstract):
  b = (T/K)^{2/3} (ln T)^{1/3} (authors' `uniform_exploration_algorithm`);
* naive eps-best + commit (the single-arm O(K^{1/3} T^{2/3} log K) algorithm, abstract; authors'
  `naive_eps_best_algorithm`): b = ln K / eps^2 with eps = (K/T)^{1/3}.

Modes: ``faithful`` keeps the authors' benchmark of 0 for the first arm (its estimate is computed
but unused, so the second arm always takes over); ``corrected`` uses the first arm's estimate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import jax
import jax.numpy as jnp

from bandits.streaming.common import StreamAgent, action, count, eps_of
from bandits.streaming.env import StreamSpec


class KingState(NamedTuple):
    b: jax.Array  # pulls per arm
    K: jax.Array
    T: jax.Array
    used: jax.Array  # pulls so far
    read: jax.Array  # arms read so far
    king: jax.Array  # slot of the king (0 or 1)
    king_pos: jax.Array  # its stream position
    bench: jax.Array  # king's empirical mean (the benchmark)


@dataclass(frozen=True)
class _KingChallenger(StreamAgent):
    mode: str = "corrected"

    def __post_init__(self):
        self._check_mode()

    def batch(self, K: int, T: int) -> float:  # pragma: no cover - overridden
        raise NotImplementedError

    def memory_needed(self, spec: StreamSpec) -> int:
        return 2

    def init(self, key, spec) -> KingState:
        spec = self.check_spec(spec)
        K, T = spec.num_arms, spec.horizon
        it = jnp.result_type(int)
        z = jnp.zeros((), it)
        b = jnp.asarray(count(self.batch(K, T), self.mode), it)
        return KingState(
            b,
            jnp.asarray(K, it),
            jnp.asarray(T, it),
            z,
            z,
            jnp.zeros((), jnp.int32),
            z,
            jnp.zeros((), jnp.result_type(float)),
        )

    def act(self, rng, s: KingState, obs):
        exploring = s.read < s.K
        left = s.T - s.used
        challenger = jnp.where(s.read == 0, 0, 1 - s.king).astype(jnp.int32)
        slot = jnp.where(exploring, challenger, s.king)
        n = jnp.where(exploring, jnp.minimum(s.b, left), left)
        return action(read=jnp.where(exploring, challenger, -1), pull=slot, n=n)

    def update(self, s: KingState, obs, a, reward) -> KingState:
        read = a.read >= 0
        r = reward / jnp.maximum(a.n, 1).astype(reward.dtype)
        first = s.read == 0
        bench0 = 0.0 if self.mode == "faithful" else r
        wins = read & ~first & (r > s.bench)
        king = jnp.where(first | wins, a.read, s.king).astype(jnp.int32)
        king_pos = jnp.where(first | wins, s.read, s.king_pos)
        bench = jnp.where(first & read, bench0, jnp.where(wins, r, s.bench))
        return s._replace(
            used=s.used + a.n,
            read=s.read + read.astype(s.read.dtype),
            king=king,
            king_pos=king_pos,
            bench=bench,
        )

    def output(self, s: KingState):
        return s.king_pos


@dataclass(frozen=True)
class StreamUniform(_KingChallenger):
    """Streaming uniform exploration: b = (T/K)^{2/3} (ln T)^{1/3} pulls per arm (authors' code)."""

    def batch(self, K: int, T: int) -> float:
        return (T / K) ** (2.0 / 3.0) * math.log(T) ** (1.0 / 3.0)


@dataclass(frozen=True)
class StreamNaive(_KingChallenger):
    """Naive eps-best + commit: b = ln K / eps^2, eps = (K/T)^{1/3} (authors' code)."""

    def batch(self, K: int, T: int) -> float:
        return math.log(K) / eps_of(K, T) ** 2
