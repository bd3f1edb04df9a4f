"""Single-arm-memory eps-best king/challenger with doubling tests, + commit: the stand-in for the
Jin, Huang, Tang, Xiao single-arm eps-best routine (ICML 2021, PMLR v139 jin21a, Algorithm 1)
that Wang (ICML 2023, arXiv:2306.02208, abstract) commits to for O(K^{1/3} T^{2/3}) regret with
high constant probability (Wang, abstract; Jin et al.'s paper is arXiv:2410.17835).

**Reconstructed, not Jin et al.'s Algorithm 1.** Its pseudo-code and constants could not be read
(we have not retrieved the text of Algorithm 1). What is known (Jin et al.'s abstract): one pass,
single-arm memory, O((n/eps^2) log(1/delta)) samples; recalled, unverified: a king/challenger
scheme where each arriving arm is sampled in rounds of increasing size and compared with the
stored arm's fixed estimate. This module implements such a scheme, with constants from the
argument below; call it the *doubling king/challenger* (`DoublingKingChallenger`, config
``stream_jin``).

Scheme (eps = (K/T)^{1/3}, confidence delta, scale c):
  s_l = c 2^l ln(4/delta) / eps^2 pulls at test level l = 0..L-1, with L - 1 the least l such that
  2^l ln(4/delta) >= ln(4 (2/eps + 1)/delta) (then every crowning estimate is within eps/4);
  the first arm is pulled s_{L-1} times and crowned: king estimate theta = its empirical mean;
  each next arm x: at levels l = 0, 1, ..., pull x s_l fresh times (empirical mean m_l); discard x
  as soon as m_l < theta + eps/2; if x passes level L-1 it is crowned (theta = m_{L-1});
  after the stream, commit the remaining pulls to the king.
Memory: king + arriving arm = 2 slots.

Why (rewards in [0, 1], Hoeffding P(|m - mu| >= x) <= 2 exp(-2 s x^2); the proof needs c = 8):
each crowning raises theta by >= eps/2, so there are <= N = 2/eps + 1 crownings; s_{L-1} makes
each crowning estimate eps/4-accurate (two-sided) except with probability
2 exp(-s_{L-1} eps^2/8) <= 2 exp(-ln(4N/delta)) = delta/(2N), so all of them with probability
>= 1 - delta/2; then a crowned arm's mean is >= theta_old + eps/4 >= the old king's mean (the
king never gets worse). When the best arm i* arrives while the king is worse than mu* - eps,
theta + eps/2 < mu* - eps/4, and i* is discarded at some level (its mean m_l falls eps/4 below
mu*, one-sided) with probability <= sum_l exp(-s_l eps^2/8) = sum_l (delta/4)^(2^l) <= delta/3.
So the final king is eps-best with probability >= 1 - delta/2 - delta/3 > 1 - delta. (Before
2026-12-05 the crowning level used ln(2N/delta), which only gives delta for the crownings.)
Samples: an arm with mean <= theta + eps/4 stops at level l >= 1 with probability
<= 2 exp(-s_{l-1} eps^2 / 8), so it costs O(s_0) = O(log(1/delta)/eps^2) in expectation;
crownings add O(eps^-3 log(1/(eps delta))). The default c = 1 is a practical constant (the
authors' tests use 1/eps^2-scale batches); c = 8 is the proof's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import jax
import jax.numpy as jnp

from bandits.streaming.common import StreamAgent, action, eps_of
from bandits.streaming.env import StreamSpec
from experiments.config import check_float

ARRIVE, TEST, COMMIT = 0, 1, 2


class KCState(NamedTuple):
    sizes: jax.Array  # (L,) pulls per test level
    K: jax.Array
    T: jax.Array
    margin: jax.Array  # eps / 2
    used: jax.Array
    read: jax.Array
    king: jax.Array  # slot, -1 before the first crowning
    king_pos: jax.Array
    theta: jax.Array  # king's estimate
    x: jax.Array  # challenger's slot
    x_pos: jax.Array
    ell: jax.Array  # challenger's level
    phase: jax.Array


@dataclass(frozen=True)
class DoublingKingChallenger(StreamAgent):
    """Doubling king/challenger eps-best + commit (module docstring; our reconstructed stand-in for
    Jin et al. ICML 2021 Algorithm 1, not the paper's algorithm)."""

    delta: float = 0.1
    scale: float = 1.0

    def __post_init__(self):
        check_float("delta", self.delta, 0.0, 1.0, low_open=True, high_open=True)
        check_float("scale", self.scale, 0.0, low_open=True)

    def memory_needed(self, spec: StreamSpec) -> int:
        return 2

    def sizes(self, K: int, T: int) -> list[int]:
        """s_l = ceil(c 2^l ln(4/delta) / eps^2), l = 0..L-1 (module docstring)."""
        eps = eps_of(K, T)
        base = math.log(4.0 / self.delta)
        need = math.log(4.0 * (2.0 / eps + 1.0) / self.delta)  # 2 exp(-need) N = delta/2
        top = max(0, math.ceil(math.log2(need / base) - 1e-12))
        size = lambda lv: math.ceil(self.scale * 2**lv * base / eps**2 - 1e-9)
        return [min(T, size(lv)) for lv in range(top + 1)]

    def init(self, key, spec) -> KCState:
        spec = self.check_spec(spec)
        K, T = spec.num_arms, spec.horizon
        sizes = self.sizes(K, T)
        it, ft = jnp.result_type(int), jnp.result_type(float)
        z = jnp.zeros((), it)
        i32 = lambda v: jnp.asarray(v, jnp.int32)
        return KCState(
            jnp.asarray(sizes, it),
            jnp.asarray(K, it),
            jnp.asarray(T, it),
            jnp.asarray(eps_of(K, T) / 2, ft),
            z,
            z,
            i32(-1),
            z,
            jnp.zeros((), ft),
            i32(0),
            z,
            i32(len(sizes) - 1),  # the first arm goes straight to the crowning level
            i32(ARRIVE),
        )

    def act(self, rng, s: KCState, obs):
        left = s.T - s.used
        free = jnp.where(s.king == 0, 1, 0).astype(jnp.int32)
        arriving = s.phase == ARRIVE
        pull = jnp.where(s.phase == COMMIT, s.king, jnp.where(arriving, free, s.x))
        n = jnp.where(s.phase == COMMIT, left, jnp.minimum(s.sizes[s.ell], left))
        return action(read=jnp.where(arriving, free, -1), pull=pull, n=n)

    def update(self, s: KCState, obs, a, reward) -> KCState:
        r = reward / jnp.maximum(a.n, 1).astype(reward.dtype)
        arriving = a.read >= 0
        s = s._replace(
            used=s.used + a.n,
            read=s.read + arriving.astype(s.read.dtype),
            x=jnp.where(arriving, a.read, s.x).astype(jnp.int32),
            x_pos=jnp.where(arriving, s.read, s.x_pos),
        )
        testing = s.phase != COMMIT
        passes = (s.king < 0) | (r >= s.theta + s.margin)
        crowned = testing & passes & (s.ell == s.sizes.shape[0] - 1)
        up = testing & passes & ~crowned
        leaves = testing & ~up  # crowned or discarded: on to the next arm
        more = s.read < s.K
        return s._replace(
            king=jnp.where(crowned, s.x, s.king).astype(jnp.int32),
            king_pos=jnp.where(crowned, s.x_pos, s.king_pos),
            theta=jnp.where(crowned, r, s.theta),
            ell=jnp.where(up, s.ell + 1, jnp.where(leaves, 0, s.ell)).astype(jnp.int32),
            phase=jnp.where(
                up, TEST, jnp.where(leaves, jnp.where(more, ARRIVE, COMMIT), s.phase)
            ).astype(jnp.int32),
        )

    def output(self, s: KCState):
        return s.king_pos
