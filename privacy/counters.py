"""Continual counters as agents of `privacy.continual.ContinualCounting`.

Each counter observes x_t in [0, bound]^d and releases Ŝ_t = S_t + σ (B z)_t, where B z is the
noise of its factorisation A = B C (`privacy.factorization`): the tree counters keep the
identity Σ_nodes (count + σ z) = S_t + σ Σ_nodes z (the used nodes partition the prefix), as TF
Privacy's `tree_aggregation` returns cumulative noise added to the exact sum.

Privacy (all counters): ρ-zCDP (Bun & Steinke 2016) of the whole sequence of releases, for
streams fixed in advance and for adaptively chosen ones (Gaussian noise is independent of the
data, and the release is post-processing of Cx + z; Jain et al. 2023 §2 discuss the adaptive
model), under the `neighbouring` relation:

* ``event``: streams differing in one element, which changes by at most `bound` in each of the
  d coordinates: ℓ2-sensitivity² of Cx = bound² d sens²(C);
* ``user``: up to `participations` = k elements: ℓ2-sensitivity <= k bound sqrt(d sens²(C))
  (triangle inequality; an upper bound, exact for k = 1).

Per-node noise: σ = sqrt(bound² d sens²) k / sqrt(2ρ), standard N(0, σ²) in floating point
(research mode; `noise="research"` is recorded in the run's config). The draws of step t come
from the counter-based key fold_in(agent_key, t) (one per stream and step; the update recomputes
them instead of storing them); row b of step t's draws feeds only the node created at step t on
level b, and a node keeps its noise while it is in use (checked in tests/test_privacy_counters).

Memory per stream: O(log T) for the trees; the square-root factorisation has no exact streaming
form with o(T) memory (that is what BLT approximates, Dvijotham et al. 2024), so it keeps the
T past node noises.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from experiments.config import ConfigError, check_float, check_int
from experiments.protocol import AgentBase
from privacy.accounting import Neighbouring
from privacy.continual import ContinualSpec
from privacy.factorization import (
    binary_depth,
    honaker_weights,
    smooth_depth,
    sqrt_coefficients,
)


class CounterState(NamedTuple):
    key: jax.Array  # the counter's noise key (one per stream)
    t: jax.Array  # steps completed
    total: jax.Array  # (d,) exact prefix sum S_t
    leaf: jax.Array  # tree position (smooth: w_t; others: unused)
    buf: jax.Array  # buffer; its static shape carries the tree depth or T (see each counter)
    sigma: jax.Array  # per-node noise std, fixed at init


def _bit(x: jax.Array, b) -> jax.Array:
    return (jnp.right_shift(x, b) & 1).astype(bool)


@dataclass(frozen=True)
class _Counter(AgentBase):
    rho: float = 0.5
    neighbouring: str = "event"
    participations: int = 1
    bound: float = 1.0
    clip: bool = False
    noise: str = "research"

    def __post_init__(self):
        check_float("rho", self.rho, 0.0, low_open=True)
        check_float("bound", self.bound, 0.0, low_open=True)
        Neighbouring(self.neighbouring, check_int("participations", self.participations, 1))
        if not isinstance(self.clip, bool):
            raise ConfigError(f"clip: must be true or false (got {self.clip!r})")
        if self.noise != "research":
            raise ConfigError(
                f"noise: the JAX counters sample float noise, 'research' only (got {self.noise!r});"
                " exact discrete noise is in privacy.noise"
            )

    # ------------------------------------------------------------------ per-mechanism pieces
    def sens2(self, T: int) -> float:
        """sens² of C for unit-bounded scalar streams, event level."""
        raise NotImplementedError

    def init_buffers(self, spec: ContinualSpec) -> tuple[jax.Array, jax.Array]:
        raise NotImplementedError

    def draw_shape(self, state: CounterState) -> tuple[int, ...]:
        """Shape of the fresh N(0, 1) draws of one step (one row per node created)."""
        raise NotImplementedError

    def advance(self, state: CounterState, z: jax.Array):
        """(leaf, buf, noise) at step t = state.t + 1 given its draws z (noise in σ units)."""
        raise NotImplementedError

    def draws(self, state: CounterState) -> jax.Array:
        """Step t's draws from the key fold_in(key, t): each (step, row) feeds at most one node."""
        return jax.random.normal(jax.random.fold_in(state.key, state.t + 1), self.draw_shape(state))

    # ------------------------------------------------------------------ shared
    def sigma(self, spec: ContinualSpec) -> float:
        """Per-node noise std: k bound sqrt(d sens²) / sqrt(2ρ)."""
        l2 = self.participations * self.bound * math.sqrt(spec.d * self.sens2(spec.horizon))
        return l2 / math.sqrt(2 * self.rho)

    def variance(self, spec: ContinualSpec) -> np.ndarray:
        """Exact per-step, per-coordinate error variance σ² ‖B[t]‖², t = 1..T."""
        from privacy.factorization import loss

        return loss(self.mechanism, spec.horizon) / self.sens2(spec.horizon) * self.sigma(spec) ** 2

    def _check(self, spec: ContinualSpec) -> None:
        if spec.bound > self.bound and not self.clip:
            raise ConfigError(
                f"bound: stream values may reach {spec.bound:g} > the counter's bound"
                f" {self.bound:g}; raise bound or set clip=true (values are never clipped silently)"
            )

    def randomness(self, spec: ContinualSpec) -> dict:
        self._check(spec)
        return {}

    def init(self, key: jax.Array, spec: ContinualSpec) -> CounterState:
        self._check(spec)
        leaf, buf = self.init_buffers(spec)
        dt = jnp.result_type(float)
        zero_t = jnp.zeros((), jnp.int32)
        sigma = jnp.asarray(self.sigma(spec), dt)
        return CounterState(key, zero_t, jnp.zeros((spec.d,), dt), leaf, buf.astype(dt), sigma)

    def _x(self, obs: jax.Array) -> jax.Array:
        return jnp.clip(obs, 0.0, self.bound) if self.clip else obs

    def act(self, rng, state: CounterState, obs: jax.Array) -> jax.Array:
        _, _, noise = self.advance(state, self.draws(state))
        return state.total + self._x(obs) + state.sigma * noise

    def update(self, state: CounterState, obs, action, feedback) -> CounterState:
        leaf, buf, _ = self.advance(state, self.draws(state))
        total = state.total + self._x(obs)
        return CounterState(state.key, state.t + 1, total, leaf, buf, state.sigma)


@dataclass(frozen=True)
class BinaryTreeCounter(_Counter):
    """Binary tree mechanism (Dwork, Naor, Pitassi & Rothblum, STOC 2010; Chan, Shi & Song,
    ACM TISSEC 2011, Alg. 2 "binary mechanism"): output t sums the noisy p-sums of the nodes
    (b, t >> b) over the set bits b of t; sens² = L = ⌊log2 T⌋ + 1; Var_t = popcount(t) σ²."""

    mechanism = "binary"

    def sens2(self, T: int) -> float:
        return float(binary_depth(T))

    def init_buffers(self, spec):
        return jnp.zeros((), jnp.int32), jnp.zeros((binary_depth(spec.horizon), spec.d))

    def draw_shape(self, state):
        return state.buf.shape[1:]  # one new node per step

    def advance(self, state, z):
        t = state.t + 1
        top = jax.lax.population_count((t & -t) - 1)  # node (top, t >> top) completes at t
        buf = state.buf.at[top].set(z)  # buf[b]: noise of node (b, t >> b) while bit b is set
        levels = jnp.arange(buf.shape[0])
        return state.leaf, buf, jnp.sum(jnp.where(_bit(t, levels)[:, None], buf, 0.0), 0)


@dataclass(frozen=True)
class SmoothBinaryCounter(_Counter):
    """Smooth binary mechanism (Andersson & Pagh, NeurIPS 2023, arXiv:2306.09666, §3): the
    binary tree of depth D (smallest even D with C(D, D/2) > T) read only at leaves of Hamming
    weight D/2, so every output sums D/2 nodes: Var_t = D σ²/2 at every t, sens² = D/2.
    Leaf order by Gosper's hack as in the authors' code; placement of inputs is [I], see
    `privacy.factorization`."""

    mechanism = "smooth"

    def sens2(self, T: int) -> float:
        return smooth_depth(T) / 2

    def init_buffers(self, spec):
        D = smooth_depth(spec.horizon)
        return jnp.asarray((1 << (D // 2)) - 1, jnp.int32), jnp.zeros((D, spec.d))

    def draw_shape(self, state):
        return state.buf.shape  # up to D new nodes per step

    def advance(self, state, z):
        w = state.leaf
        lsb = w & -w
        y = w + lsb
        e = y + (y & -y) // (2 * lsb) - 1  # next integer of the same weight (HAKMEM 175)
        levels = jnp.arange(state.buf.shape[0])
        on = _bit(e, levels)[:, None]
        new = (jnp.right_shift(e, levels) != jnp.right_shift(w, levels))[:, None]
        buf = jnp.where(on, jnp.where(new, z, state.buf), 0.0)  # node (b, e >> b) for bits b
        return e, buf, jnp.sum(buf, 0)


@dataclass(frozen=True)
class HonakerCounter(_Counter):
    """Honaker's variance-reduced tree, online variant (Honaker, TPDP 2015; TF Privacy
    `EfficientTreeAggregator`): every completed node gets noise σ z; a level-j node's estimate
    is a_j (own noisy sum) + (1 - a_j)(left child + right child estimates), a_j = 2^j/(2^{j+1}-1)
    (inverse-variance weights); output t sums the estimates of nodes (j, t >> j), bits j of t.
    sens² = L; Var_t = σ² Σ_{bits j of t} 2^j/(2^{j+1} - 1)."""

    mechanism = "honaker"

    def sens2(self, T: int) -> float:
        return float(binary_depth(T))

    def init_buffers(self, spec):
        return jnp.zeros((), jnp.int32), jnp.zeros((binary_depth(spec.horizon), spec.d))

    def draw_shape(self, state):
        return state.buf.shape  # row j: the level-j node ending at t (used if j <= top)

    def advance(self, state, z):
        t, L = state.t + 1, state.buf.shape[0]  # buf: (L, d) noise of the last left nodes
        a = honaker_weights(L)
        top = jax.lax.population_count((t & -t) - 1)  # trailing zeros: levels 0..top end at t
        n = z[0]
        for j in range(1, L):  # estimates of the nodes ending at t, bottom-up
            cand = a[j] * z[j] + (1 - a[j]) * (state.buf[j - 1] + n)
            n = jnp.where(j <= top, cand, n)
        buf = state.buf.at[top].set(n)  # node (top, t >> top) is a left child: keep it
        levels = jnp.arange(L)
        return state.leaf, buf, jnp.sum(jnp.where(_bit(t, levels)[:, None], buf, 0.0), 0)


@dataclass(frozen=True)
class SqrtToeplitzCounter(_Counter):
    """Square-root Toeplitz factorisation (Fichtenberger, Henzinger & Upadhyay, ICML 2023, §3):
    B = C = Toeplitz(f), f_k = C(2k, k)/4^k; release S_t + σ Σ_{s<=t} f_{t-s} z_s.
    sens² = s_T = Σ_{k<T} f_k²; Var_t = σ² s_t. Keeps the T node noises z_s (O(T) memory)."""

    mechanism = "sqrt"

    def sens2(self, T: int) -> float:
        return float(np.sum(sqrt_coefficients(T) ** 2))

    def init_buffers(self, spec):
        return jnp.zeros((), jnp.int32), jnp.zeros((spec.horizon, spec.d))

    def draw_shape(self, state):
        return state.buf.shape[1:]  # z_t

    def advance(self, state, z):
        t, T = state.t + 1, state.buf.shape[0]  # buf: (T, d) node noises z_1..z_t
        buf = state.buf.at[t - 1].set(z)
        f = jnp.asarray(sqrt_coefficients(T), buf.dtype)
        lag = t - 1 - jnp.arange(T)
        coef = jnp.where(lag >= 0, f[jnp.clip(lag, 0, T - 1)], 0.0)
        return state.leaf, buf, coef @ buf


COUNTERS = {
    "binary": BinaryTreeCounter,
    "smooth": SmoothBinaryCounter,
    "honaker": HonakerCounter,
    "sqrt": SqrtToeplitzCounter,
}


def noise_streams(counter: _Counter, spec: ContinualSpec, keys: jax.Array) -> jax.Array:
    """Release errors Ŝ_t - S_t, (N, T, d), of N independent streams (vmap over `keys`).

    Runs the counter's own act/update over an all-zero stream (the error does not depend on the
    data), so it checks the streaming code, not the factorisation.
    """
    zero = jnp.zeros((spec.d,), jnp.result_type(float))

    def one(key):
        state = counter.init(key, spec)

        def body(s, _):
            out = counter.act({}, s, zero)
            return counter.update(s, zero, out, ()), out - s.total

        return jax.lax.scan(body, state, None, length=spec.horizon)[1]

    return jax.vmap(one)(keys)
