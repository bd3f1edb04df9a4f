"""KL-UCB for Bernoulli rewards (Garivier & Cappé, 2011, "The KL-UCB algorithm for bounded
stochastic bandits and beyond", COLT, Algorithm 1 and Theorem 1).

Play each arm once; then in round t+1, with t rounds played, play the arm maximising

    u_a(t) = max{ q in [xbar_a, 1] : N_a(t) kl(xbar_a, q) <= ln t + c ln ln t },

kl(p, q) = p ln(p/q) + (1-p) ln((1-p)/(1-q)) the Bernoulli relative entropy. c = 0 is what the
paper recommends in practice, c = 3 is the constant of its Theorem 1. We take ln ln t = 0 while
ln t < 1 (t <= 2, rounds in which the ln ln t term would be negative or undefined).

The index is computed for all arms at once by a fixed number of safeguarded Newton steps on
f(q) = N kl(xbar, q) - thr (jit-friendly). f is convex and increasing on [xbar, 1), so Newton
from a point right of the root never overshoots it. The start is the smaller of two points where
f >= 0: Pinsker's bound xbar + sqrt(thr / (2 N)) (kl(p, q) >= 2 (q - p)^2) and
1 - exp(-(thr / N + H(xbar)) / (1 - xbar)) (kl(p, q) >= -(1-p) ln(1-q) - H(p), H the entropy).
Each step keeps a bracket [lo, hi] around the root, clips the Newton point into it and bisects
when the Newton point is not finite (at q = 1); a last Newton step gives the returned value. kl
is evaluated as p log1p((p-q)/q) + (1-p) log1p((q-p)/(1-q)), well conditioned for q near p.
Measured against scipy's brentq on xbar in [0, 1], N in [1, 1e7], t in [2, 1e7] (300 values of
xbar): iters = 6 gives max |error| 1e-7 in float32 (~1.6 float32 ulp), iters = 8 gives 7e-16 in
float64, where 6 are not enough (2.3e-9 at xbar = 0.9999, N = 1e7, t = 2, against a 50-digit
root). So ``iters = None`` (the default) means 6 for float32 statistics and 8 for float64 (x64),
resolved when the step is traced, from the dtype; an explicit count is used as given. Ties go to
the lowest arm index.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import jax
import jax.numpy as jnp

from bandits.agents.stats import ArmStats, add_reward, arm_stats, unpulled_first
from bandits.envs import BanditSpec, check_unit_rewards
from experiments.config import check_float, check_int
from experiments.protocol import AgentBase


def kl_bernoulli(p: jax.Array, q: jax.Array) -> jax.Array:
    """kl(p, q) for 0 <= p <= q <= 1, with 0 ln 0 = 0 (inf at q = 1 > p)."""
    head = jnp.where(p > 0, p * jnp.log1p((p - q) / q), 0.0)
    tail = jnp.where(p < 1, (1 - p) * jnp.log1p((q - p) / (1 - q)), 0.0)
    return head + tail


def _entropy(p: jax.Array) -> jax.Array:
    """H(p) = -p ln p - (1-p) ln(1-p), in nats."""
    return -jnp.where(p > 0, p * jnp.log(p), 0.0) - jnp.where(p < 1, (1 - p) * jnp.log1p(-p), 0.0)


def kl_ucb_index(means: jax.Array, counts: jax.Array, threshold: jax.Array, iters: int):
    """max{q in [p, 1] : n kl(p, q) <= threshold} per arm, by `iters` safeguarded Newton steps.

    Arms with n = 0 give 1 (and so do arms with p = 1).
    """
    p = means
    n = jnp.maximum(counts, 1).astype(p.dtype)
    rate = threshold / n
    pinsker = p + jnp.sqrt(rate / 2)
    entropic = -jnp.expm1(-(rate + _entropy(p)) / jnp.where(p < 1, 1 - p, 1.0))
    hi = jnp.minimum(1.0, jnp.minimum(pinsker, entropic))

    def f(q):
        return n * kl_bernoulli(p, q) - threshold

    def newton(x, fx, lo, hi):
        step = x - fx * x * (1 - x) / (n * (x - p))  # f'(q) = n (q - p) / (q (1 - q))
        return jnp.where(jnp.isfinite(step), jnp.clip(step, lo, hi), 0.5 * (lo + hi))

    def refine(_, carry):
        lo, hi, x, fx = carry
        x = newton(x, fx, lo, hi)
        fx = f(x)
        right = ~(fx < 0)
        return jnp.where(right, lo, x), jnp.where(right, x, hi), x, fx

    lo, hi, x, fx = jax.lax.fori_loop(0, iters, refine, (p, hi, hi, f(hi)), unroll=True)
    last = x - fx * x * (1 - x) / (n * (x - p))
    index = jnp.where(jnp.isfinite(last), jnp.clip(last, lo, hi), hi)
    return jnp.where((counts > 0) & (p < 1), index, 1.0)


ITERS_BY_DTYPE = {4: 6, 8: 8}  # default Newton steps by float size in bytes (docstring)


class KLUCBState(NamedTuple):
    stats: ArmStats


@dataclass(frozen=True)
class KLUCB(AgentBase):
    """KL-UCB (Garivier & Cappé 2011, Alg. 1) with threshold ln t + c ln ln t, Bernoulli kl."""

    c: float = 0.0
    iters: int | None = None  # Newton steps; None: ITERS_BY_DTYPE of the statistics' float

    def __post_init__(self):
        check_float("c", self.c, 0.0)
        if self.iters is not None:
            check_int("iters", self.iters, 1, 64)

    def newton_steps(self, dtype) -> int:
        """`iters`, or for None the count that reaches the accuracy of `dtype` (docstring)."""
        if self.iters is not None:
            return int(self.iters)
        return ITERS_BY_DTYPE[jnp.dtype(dtype).itemsize]

    def index(self, stats: ArmStats, t) -> jax.Array:
        """The KL-UCB index u_a(t) of every arm (1 for unpulled arms)."""
        log_t = jnp.log(jnp.maximum(t, 1).astype(stats.means.dtype))
        threshold = log_t + self.c * jnp.log(jnp.maximum(log_t, 1.0))
        steps = self.newton_steps(stats.means.dtype)
        return kl_ucb_index(stats.means, stats.counts, threshold, steps)

    def init(self, key, spec: BanditSpec) -> KLUCBState:
        check_unit_rewards(spec, "KL-UCB with the Bernoulli divergence")
        return KLUCBState(arm_stats(spec.num_arms))

    def act(self, rng, state: KLUCBState, t) -> jax.Array:
        index = self.index(state.stats, t)
        return jnp.argmax(unpulled_first(index, state.stats.counts))

    def update(self, state: KLUCBState, t, action, reward) -> KLUCBState:
        return KLUCBState(add_reward(state.stats, action, reward)[0])
