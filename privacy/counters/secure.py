"""The secure noise backend: exact discrete node noise drawn on the host; nothing released
depends on floating-point noise.

The privacy statement of the counters (`privacy.counters.agent`) is about real-valued noise; this
backend makes it hold for what is actually released, with the integer strategy's exact
sensitivities in place of sens² and sens1. The argument:

1. Inputs are snapped to the grid 2^-k (k = `grid_k`): n_t = min(max(round(x_t 2^k), 0), Δ_g)
   with Δ_g = round(bound 2^k) >= 1 (the clamp is a no-op for values within the declared bound;
   it makes the next line hold whatever the floats). This is a per-element map into {0..Δ_g}, so
   neighbouring streams give integer streams n, n' that differ in one element by at most Δ_g per
   coordinate. The counter counts the snapped values, which are the values themselves: a stream
   value off the grid is refused at load time (`privacy.counters.agent`, "Input grid"), unless
   the user asked for rounding (``snap: true``, counted and reported). Exact for bit streams at
   k = 0.
2. Node values are integers: the strategy's integer form (`Strategy.integer_strategies`) has an
   integer C̃ (trees: C is 0/1; Toeplitz strategies: c̃_k = round(2^q c_k), `QuantisedToeplitz`).
   Integer sums are exact (the int32 / int64 range is checked at init, with the noise bound of
   item 3).
3. Node noise is exact integer noise drawn on the host by `privacy.noise` (rational arithmetic,
   Python integers; Canonne, Kamath & Steinke, NeurIPS 2020, Algorithms 1-3): the discrete
   Gaussian N_Z(0, σ²) with σ² = (k Δ_g)² d sens²/(2ρ) exactly (a Fraction), or the discrete
   Laplace P(y) ∝ exp(-|y|/b), b = k Δ_g d sens1/ε, with C̃'s exact integer sensitivities. Privacy:
   for integer shifts Δ, the Rényi divergence of order α between N_Z(0, σ²) and N_Z(Δ, σ²) is at
   most α Δ²/(2σ²) (Canonne, Kamath & Steinke 2020, §2, Thm 14 for independent coordinates
   [theorem number recalled]); summed over the independent node coordinates, with
   Σ Δ² <= (k Δ_g)² d sens², this is α ρ: ρ-zCDP (Bun & Steinke, TCC 2016). For the discrete
   Laplace, P(y)/P(y - Δ) <= exp(|Δ|/b) and the product over nodes is <= exp(ε): pure ε-DP. A
   draw beyond 40 σ (Gaussian) or 720 b (Laplace), probability < 2^-1000, aborts the run instead
   of wrapping.
4. The release is computed from the noisy integer nodes only (`Strategy.secure_release`).
   Binary tree and smooth binary: release = S_t + Σ_nodes z in integer arithmetic, which *is* the
   integer Σ_nodes (count + z); it is then multiplied by 2^-k (post-processing). Honaker: the
   online estimates are float combinations of the noisy integer node values y = count + z
   (post-processing), not of S_t and z separately. Toeplitz (square root, BLT):
   y_t = (C̃ n)_t + z_t (integers) and Ŝ_t = 2^-k Σ_s b̃_{t-s} y_s with B̃ = A C̃^{-1} (floats;
   post-processing). Float rounding in post-processing costs accuracy, never privacy.
5. Bits come from `source`: ``os`` (the OS CSPRNG, `os.urandom`; for releases) or ``key``
   (BLAKE2b in counter mode keyed by (tag, key data, t): reproducible from the run seed, so for
   simulations and tests only). Each (stream, step) gets its own keyed stream or fresh OS bits;
   every node's draw is a separate sample (no reuse).

Timing side channel (not covered). The guarantee is about the released values only, not about the
running time. The CKS20 samplers are rejection samplers (`privacy.noise`): how many Bernoulli
trials and loop iterations a draw takes, hence its time on the host and the time of each step's
`io_callback`, depends on the value drawn (a large |z| takes longer). An observer who can time
the releases learns something about the noise, and so about the data; OpenDP documents the same
limitation for its samplers. Deployments that expose timing should pad each step to a fixed time
or pre-draw the noise before the data is seen (not done here).

Cost. The exact samplers are Python: ~50-70 µs per draw on a 2-core machine (either source); the
draws of step t + 1 are made in `update` of step t (and at `init` for step 1) through one
`jax.experimental.io_callback` per step for the whole vmapped batch (a custom_vmap rule batches
it; ~0.3 ms per call), and kept in the state (`pending`), so memory stays O(log T) for the trees.
Draws per stream and step: binary d, Honaker ~2d (levels 0..tz(t)), smooth ~2d (new nodes),
Toeplitz d, plus O(T d) memory and work per step for the Toeplitz strategies.
"""

from __future__ import annotations

import functools
import hashlib
import math
import os
import struct
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import custom_batching
from jax.experimental import io_callback

from privacy.continual import ContinualSpec
from privacy.counters.state import CounterState
from privacy.noise import PoolSource, discrete_gaussian, discrete_laplace

GAUSS_TAIL = 40  # |N_Z(0, σ²)| > 40 σ has probability < 2 exp(-800) < 2^-1000
LAPLACE_TAIL = 720  # |Lap_Z(b)| > 720 b has probability < 2 exp(-720) < 2^-1000
_SEED_TAG = 0x636F756E  # separates the counters' host seeds from other uses of a key

# exact samplers used on the host, looked up at call time (tests swap in a tracer)
SAMPLERS = {"gaussian": discrete_gaussian, "laplace": discrete_laplace}


class SecureNoise(NamedTuple):
    """Exact parameters of the host-side node noise (static, hashable)."""

    distribution: str
    param: Fraction  # σ² (gaussian) or scale b (laplace), in grid units
    zmax: int  # a draw with |z| > zmax aborts (probability < 2^-1000)
    source: str  # os | key


def discrete_gaussian_variance(sigma2: float) -> float:
    """Var of N_Z(0, σ²) = Σ y² e^{-y²/2σ²} / Σ e^{-y²/2σ²} (< σ², Canonne, Kamath & Steinke
    2020, Prop. 19 [recalled]).

    By Poisson summation the gap σ² - Var is about 8π²σ⁴ e^{-2π²σ²} (< 1e-300 σ² for σ² >= 36),
    so larger σ² return σ² itself; smaller ones sum the series over |y| <= 40σ + 40.
    """
    if sigma2 >= 36:
        return float(sigma2)
    y = np.arange(-(int(40 * math.sqrt(sigma2)) + 40), int(40 * math.sqrt(sigma2)) + 41)
    w = np.exp(-(y.astype(float) ** 2) / (2 * sigma2))
    return float(np.sum(y**2 * w) / np.sum(w))


def discrete_laplace_variance(scale: float) -> float:
    """Var of Lap_Z(b), P(y) ∝ q^|y| with q = e^{-1/b}: 2q/(1-q)² (a two-sided geometric)."""
    q = math.exp(-1.0 / scale)
    return 2 * q / math.expm1(-1.0 / scale) ** 2


def noise_variance(noise: SecureNoise) -> float:
    """Variance of one node's exact noise, in grid units²."""
    if noise.distribution == "gaussian":
        return discrete_gaussian_variance(float(noise.param))
    return discrete_laplace_variance(float(noise.param))


# --------------------------------------------------------------------------- host draws
# PoolSource (privacy.noise): uniform bits from 64-byte blocks. `os_source()`: blocks from
# `os.urandom` (the OS CSPRNG, as `secrets`; buffered, so one system call serves many draws).
# `keyed_source(seed)`: block i = BLAKE2b-512(seed, i), a pseudorandom function in counter mode:
# reproducible from the seed, distinct seeds give unrelated streams.
def os_source() -> PoolSource:
    return PoolSource(lambda: os.urandom(64))


def keyed_source(seed: bytes) -> PoolSource:
    counter = iter(range(1 << 62))
    return PoolSource(
        lambda: hashlib.blake2b(struct.pack("<Q", next(counter)), key=seed, digest_size=64).digest()
    )


def host_draws(noise: SecureNoise, key_data, t, mask, dtype=np.int32) -> np.ndarray:
    """Exact integer node noise for the entries of `mask` (zero elsewhere), on the host.

    Leading batch dims are those of `t`; `key_data` has one more (the key words), `mask` the
    draw shape. Source ``key``: one `keyed_source` per (stream, step), keyed by (tag, key words,
    t); ``os``: `os_source`. Masked entries are drawn in C order, one sample each.
    """
    t = np.asarray(t)
    mask = np.asarray(mask, bool)
    batch = t.shape
    kd = np.asarray(key_data).reshape(int(np.prod(batch, dtype=np.int64)), -1)
    flat_t, flat_m = t.reshape(-1), mask.reshape(kd.shape[0], -1)
    out = np.zeros(flat_m.shape, dtype)
    sampler = SAMPLERS[noise.distribution]
    shared = os_source() if noise.source == "os" else None
    for i in range(flat_t.size):
        if shared is not None:
            src = shared
        else:
            words = [int(w) for w in kd[i]]
            src = keyed_source(
                struct.pack(f"<{len(words) + 2}Q", _SEED_TAG, *words, int(flat_t[i]))
            )
        for j in np.flatnonzero(flat_m[i]).tolist():
            z = sampler(noise.param, src)
            if abs(z) > noise.zmax:  # probability < 2^-1000; never wrap or clip silently
                raise RuntimeError(
                    f"secure counter: node noise {z} beyond the checked {noise.zmax}"
                )
            out[i, j] = z
    return out.reshape(mask.shape)


@functools.cache
def _drawer(noise: SecureNoise, dtype_name: str):
    """`draw(key_data, t, mask)` calling `host_draws` once per step for a whole vmapped batch."""
    dtype = np.dtype(dtype_name)

    def host(kd, t, mask):
        return host_draws(noise, kd, t, mask, dtype)

    @custom_batching.custom_vmap
    def draw(kd, t, mask):
        shape = jax.ShapeDtypeStruct(mask.shape, dtype)
        return io_callback(host, shape, kd, t, mask, ordered=False)

    @draw.def_vmap
    def _batched(axis_size, in_batched, kd, t, mask):
        args = [
            x if b else jnp.broadcast_to(x, (axis_size, *x.shape))
            for x, b in zip((kd, t, mask), in_batched, strict=True)
        ]
        return draw(*args), True

    return draw


# --------------------------------------------------------------------------- the backend
@jax.tree_util.register_static
@dataclass(frozen=True)
class SecurePlan:
    """What secure mode fixes at init (static, hashable; a pytree without leaves)."""

    noise: SecureNoise  # exact node-noise parameters, grid units
    strategy: Any  # the integer strategy (item 2)


class SecureState(NamedTuple):
    grid: jax.Array  # () the grid step 2^-k: a release in grid units times it is in value units
    pending: jax.Array  # int noise of step t + 1's nodes (`draw_shape`, zero where unused)
    plan: SecurePlan  # static


@dataclass(frozen=True)
class Secure:
    """Exact integer node noise on the host, snapped integer inputs (module docstring)."""

    grid_k: int = 0
    grid_bound: int = 1  # Δ_g = round(bound 2^k): the largest snapped input

    def snap(self, x: jax.Array) -> jax.Array:
        """n_t = min(max(round(x 2^k), 0), Δ_g) as integers (item 1)."""
        it = jnp.result_type(int)
        g = jnp.clip(jnp.round(x * 2.0**self.grid_k), 0, None).astype(it)
        return jnp.minimum(g, self.grid_bound)

    def draw(self, plan: SecurePlan, key: jax.Array, s: Any, t: jax.Array) -> jax.Array:
        """Exact noise for the nodes of step t (the integer strategy's `draw_mask`), on the host."""
        mask = plan.strategy.draw_mask(s, t)
        draw = _drawer(plan.noise, np.dtype(jnp.result_type(int)).name)
        return draw(jax.random.key_data(key), t, mask)

    def init(
        self, plan: SecurePlan, spec: ContinualSpec, key: jax.Array
    ) -> tuple[Any, SecureState]:
        """The integer strategy's state before step 1, and step 1's noise drawn."""
        s = plan.strategy.init_secure(spec)
        grid = jnp.asarray(2.0**-self.grid_k, jnp.result_type(float))
        pending = self.draw(plan, key, s, jnp.ones((), jnp.int32))
        return s, SecureState(grid=grid, pending=pending, plan=plan)

    def _step(self, state: CounterState, n: jax.Array):
        ints = state.noise.plan.strategy
        return ints.secure_release(state.strategy, state.t + 1, n, state.noise.pending, state.total)

    def release(self, state: CounterState, x: jax.Array) -> jax.Array:
        """2^-k times the release in grid units, from the noisy integer nodes (item 4)."""
        release = self._step(state, self.snap(x))[1]
        return release.astype(state.noise.grid.dtype) * state.noise.grid

    def update(self, strategy: Any, state: CounterState, x: jax.Array) -> CounterState:
        """Count n_t, and draw step t + 2's node noise (t = state.t + 1 completed)."""
        n = self.snap(x)
        s, _ = self._step(state, n)
        t = state.t + 1
        pending = self.draw(state.noise.plan, state.key, s, t + 1)
        noise = state.noise._replace(pending=pending)
        return state._replace(t=t, total=state.total + n, strategy=s, noise=noise)
