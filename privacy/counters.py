"""Continual counters as agents of `privacy.continual.ContinualCounting`.

Each counter observes x_t in [0, bound]^d and releases Ŝ_t, an estimate of S_t = x_1 + ... + x_t,
through its factorisation A = B C of the prefix-sum matrix (`privacy.factorization`): the node
values C x get independent noise z and the release is B (C x + z) = S_t + (B z)_t. The tree
counters keep the identity Σ_nodes (count + z) = S_t + Σ_nodes z (the used nodes partition the
prefix), as TF Privacy's `tree_aggregation` returns cumulative noise added to the exact sum.

Privacy (all counters) of the whole sequence of releases, for streams fixed in advance and for
adaptively chosen ones (the node noise is independent of the data; a node's value is fixed once
its inputs have arrived, so the releases are an adaptive composition of per-node mechanisms
whose costs add up over the nodes that contain the differing element, and the release is
post-processing of the noisy nodes; Jain et al. 2023 §2 discuss the adaptive model), under the
`neighbouring` relation:

* ``event``: streams differing in one element, which changes by at most `bound` in each of the
  d coordinates: ℓ2-sensitivity² of Cx = bound² d sens²(C); ℓ1-sensitivity = bound d sens1(C);
* ``user``: up to `participations` = k elements: sensitivities <= k times those (triangle
  inequality; an upper bound, exact for k = 1).

``distribution``:

* ``gaussian`` (ρ-zCDP, Bun & Steinke 2016): per-node N(0, σ²), σ = k bound sqrt(d sens²)/sqrt(2ρ);
* ``laplace`` (pure ε-DP, Dwork, McSherry, Nissim & Smith 2006): per-node Laplace(b),
  b = k bound d sens1/ε (trees: sens1 = sens² = nodes containing one element, e.g. L for the
  binary tree, so b = L bound d/ε and Var_t = 2 popcount(t) b², dp.md §3.2).

``noise: research`` samples the node noise in floating point with `jax.random` (threefry): fast,
but open to floating-point attacks (Mironov, CCS 2012). The draws of step t come from the
counter-based key fold_in(agent_key, t) (one per stream and step; the state runs one step
ahead, so each step draws and advances once and `act` reads the prepared noise); row b of
step t's draws feeds only the node created at step t on level b, and a node keeps its noise
while it is in use (checked in tests/test_privacy_counters). Honaker draws two per step instead
(`HonakerCounter.step_draws`: the leaf and one level node ahead of time). The
square-root counter draws all T node noises at init from fold_in(agent_key, 0); BLT streams.

``noise: secure`` releases nothing that depends on floating-point noise. The argument:

1. Inputs are snapped to the grid 2^-k (k = `grid_k`): n_t = min(max(round(x_t 2^k), 0), Δ_g) with
   Δ_g = round(bound 2^k) >= 1 (the clamp is a no-op for values within the declared bound; it
   makes the next line hold whatever the floats). This is a per-element map into {0..Δ_g}, so
   neighbouring streams give integer streams n, n' that differ in one element by at most Δ_g per
   coordinate. The counter counts the snapped values (exact for bit streams at k = 0).
2. Node values are integers: tree nodes are integer sums of n (C is 0/1); the square-root counter
   uses integer coefficients c̃_k = round(2^q f_k) (below). Integer sums are exact (the int32 /
   int64 range is checked at init, with the noise bound of item 3).
3. Node noise is exact integer noise drawn on the host by `privacy.noise` (rational arithmetic,
   Python integers; Canonne, Kamath & Steinke, NeurIPS 2020, Algorithms 1-3): the discrete
   Gaussian N_Z(0, σ²) with σ² = (k Δ_g)² d sens²/(2ρ) exactly (a Fraction), or the discrete
   Laplace P(y) ∝ exp(-|y|/b), b = k Δ_g d sens1/ε. Privacy: for integer shifts Δ, the Rényi
   divergence of order α between N_Z(0, σ²) and N_Z(Δ, σ²) is at most α Δ²/(2σ²) (CKS20 §2,
   Thm 14 for independent coordinates [M: theorem number recalled]); summed over the independent
   node coordinates, with Σ Δ² <= (k Δ_g)² d sens², this is α ρ: ρ-zCDP. For the discrete Laplace,
   P(y)/P(y - Δ) <= exp(|Δ|/b) and the product over nodes is <= exp(ε): pure ε-DP. A draw beyond
   40 σ (Gaussian) or 720 b (Laplace), probability < 2^-1000, aborts the run instead of wrapping.
4. The release is computed from the noisy integer nodes only. Binary tree and smooth binary:
   release = S_t + Σ_nodes z in integer arithmetic, which *is* the integer Σ_nodes (count + z);
   it is then multiplied by 2^-k (post-processing). Honaker: the online estimates are float
   combinations of the noisy integer node values y = count + z (post-processing), not of S_t and
   z separately. Square root: y_t = (C̃ n)_t + z_t (integers) and Ŝ_t = 2^-k Σ_s b̃_{t-s} y_s with
   B̃ = A C̃^{-1} (floats; post-processing). Float rounding in post-processing costs accuracy, never
   privacy.
5. Bits come from `source`: ``os`` (the OS CSPRNG, `os.urandom`; for releases) or ``key``
   (BLAKE2b in counter mode keyed by (tag, key data, t): reproducible from the run seed, so for
   simulations and tests only). Each (stream, step) gets its own keyed stream or fresh OS bits;
   every node's draw is a separate sample (no reuse).

Secure square-root counter: f_k = C(2k, k)/4^k is dyadic, but exact arithmetic with it would
need 2T-bit integers, so the counter uses C̃ = Toeplitz(c̃), c̃_k = round(2^q f_k), with q <= 24
chosen at init as large as the integer range allows (q >= 8, else ConfigError). Any integer C̃ is
a valid strategy: its exact sens² = Σ_k c̃_k² (an integer) calibrates the noise, and
B̃ = A C̃^{-1} (`factorization.quantised_sqrt`) makes B̃ C̃ = A, so the release is unbiased and its
exact per-step variance is Var(z) Σ_{k<t} b̃_k² 4^-grid_k (the float oracle up to a relative
~2^-q: the rounding of c̃ only perturbs the constants).

Cost of secure mode. The exact samplers are Python: ~50-70 µs per draw on this machine (2 busy
cores; either source); the draws of step t + 1 are made in `update` of step t (and at `init` for
step 1) through one `jax.experimental.io_callback` per step for the whole vmapped batch (a
custom_vmap rule batches it; ~0.3 ms per call), and kept in the state (`pending`), so memory
stays O(log T) for the trees. Draws per stream and step: binary d, Honaker ~2d (levels
0..tz(t)), smooth ~2d (new nodes), square root d; plus O(T d) memory and O(T d) work per step
for the square root.

Memory per stream: O(log T) for the trees; the square-root factorisation has no exact streaming
form with o(T) memory (that is what BLT approximates, Dvijotham et al. 2024); it keeps the T
values of its noise path (research: computed at init by one FFT convolution, O(T log T); secure:
the past inputs and noisy nodes).
"""

from __future__ import annotations

import functools
import hashlib
import math
import os
import struct
from dataclasses import dataclass
from fractions import Fraction
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import custom_batching
from jax.experimental import io_callback

from experiments.config import ConfigError, check_choice, check_float, check_int
from experiments.protocol import AgentBase
from privacy.accounting import Neighbouring
from privacy.continual import ContinualSpec
from privacy.factorization import (
    binary_depth,
    honaker_weights,
    quantised_sqrt,
    smooth_depth,
    smooth_leaves,
    sqrt_coefficients,
    tree_sens2,
)
from privacy.noise import discrete_gaussian, discrete_laplace

MODES = ("research", "secure")
DISTRIBUTIONS = ("gaussian", "laplace")
SOURCES = ("os", "key")
GAUSS_TAIL = 40  # |N_Z(0, σ²)| > 40 σ has probability < 2 exp(-800) < 2^-1000
LAPLACE_TAIL = 720  # |Lap_Z(b)| > 720 b has probability < 2 exp(-720) < 2^-1000
_SEED_TAG = 0x636F756E  # separates the counters' host seeds from other uses of a key

# exact samplers used on the host, looked up at call time (tests swap in a tracer)
SAMPLERS = {"gaussian": discrete_gaussian, "laplace": discrete_laplace}


class CounterState(NamedTuple):
    key: jax.Array  # the counter's noise key (one per stream)
    t: jax.Array  # steps completed
    total: jax.Array  # (d,) exact prefix sum S_t (secure: of the snapped inputs, in grid units)
    leaf: jax.Array  # tree position (smooth: w_t; others: unused)
    buf: jax.Array  # buffer; its static shape carries the tree depth or T (see each counter)
    scale: jax.Array  # research: node noise std σ or Laplace scale b; secure: grid step 2^-k
    pending: jax.Array  # secure: integer noise of step t + 1's nodes; research trees: the noise
    # released at step t + 1, with leaf/buf already advanced to it (sqrt: empty)
    aux: jax.Array  # Honaker: counts of kept nodes (secure), pre-drawn node noise (research);
    # secure sqrt: past inputs; else empty

    @property
    def sigma(self) -> jax.Array:
        """Alias of `scale`: the per-node std σ of the research Gaussian counters."""
        return self.scale


class SecureNoise(NamedTuple):
    """Exact parameters of the host-side node noise (static, hashable)."""

    distribution: str
    param: Fraction  # σ² (gaussian) or scale b (laplace), in grid units
    zmax: int  # a draw with |z| > zmax aborts (probability < 2^-1000)
    source: str  # os | key


def _bit(x: jax.Array, b) -> jax.Array:
    return (jnp.right_shift(x, b) & 1).astype(bool)


def _trailing_zeros(t: jax.Array) -> jax.Array:
    return jax.lax.population_count((t & -t) - 1)


def discrete_gaussian_variance(sigma2: float) -> float:
    """Var of N_Z(0, σ²) = Σ y² e^{-y²/2σ²} / Σ e^{-y²/2σ²} (< σ², CKS20 Prop. 19 [M]).

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


# --------------------------------------------------------------------------- host draws
class PoolSource:
    """Uniform random bits (`privacy.noise.IntSource`) from 64-byte blocks, consumed in order.

    `os_source()`: blocks from `os.urandom` (the OS CSPRNG, as `secrets`; buffered, so one
    system call serves many draws). `keyed_source(seed)`: block i = BLAKE2b-512(seed, i), a
    pseudorandom function in counter mode: reproducible from the seed, distinct seeds give
    unrelated streams.
    """

    def __init__(self, block):
        self._block = block
        self._pool, self._bits = 0, 0

    def randbits(self, k: int) -> int:
        if k <= 0:
            return 0
        while self._bits < k:
            self._pool |= int.from_bytes(self._block(), "little") << self._bits
            self._bits += 512
        out = self._pool & ((1 << k) - 1)
        self._pool >>= k
        self._bits -= k
        return out


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


# --------------------------------------------------------------------------- the counters
@dataclass(frozen=True)
class _Counter(AgentBase):
    rho: float | None = 0.5
    neighbouring: str = "event"
    participations: int = 1
    bound: float = 1.0
    clip: bool = False
    noise: str = "research"
    distribution: str = "gaussian"
    epsilon: float | None = None
    grid_k: int = 0
    source: str = "os"

    def __post_init__(self):
        check_float("bound", self.bound, 0.0, low_open=True)
        Neighbouring(self.neighbouring, check_int("participations", self.participations, 1))
        if not isinstance(self.clip, bool):
            raise ConfigError(f"clip: must be true or false (got {self.clip!r})")
        check_choice("noise", self.noise, MODES)
        check_choice("distribution", self.distribution, DISTRIBUTIONS)
        check_choice("source", self.source, SOURCES)
        check_int("grid_k", self.grid_k, 0, 60)
        if self.distribution == "gaussian":
            check_float("rho", self.rho, 0.0, low_open=True)
            if self.epsilon is not None:
                raise ConfigError(
                    f"epsilon: used only with distribution=laplace (got {self.epsilon!r});"
                    " set epsilon=null or distribution=laplace"
                )
        else:
            if self.epsilon is None:
                raise ConfigError("epsilon: required (> 0) with distribution=laplace (got None)")
            check_float("epsilon", self.epsilon, 0.0, low_open=True)
        if self.noise == "secure" and round(Fraction(self.bound) * 2**self.grid_k) < 1:
            raise ConfigError(
                f"grid_k: bound {self.bound:g} rounds to 0 on the grid 2^-{self.grid_k};"
                " raise grid_k"
            )

    # ------------------------------------------------------------------ per-mechanism pieces
    def sens2(self, T: int) -> float:
        """sens² of C for unit-bounded scalar streams, event level."""
        raise NotImplementedError

    def sens1(self, T: int) -> float:
        """ℓ1 sensitivity of C (unit-bounded scalar, event level); 0/1 trees: = sens²."""
        return self.sens2(T)

    def row_norms2(self, T: int) -> np.ndarray:
        """‖B[t]‖², t = 1..T (per-step variance in units of the node variance)."""
        from privacy.factorization import loss

        return loss(self.mechanism, T) / self.sens2(T)

    def init_buffers(self, spec: ContinualSpec) -> tuple[jax.Array, jax.Array]:
        raise NotImplementedError

    def draw_shape(self, state: CounterState) -> tuple[int, ...]:
        """Shape of the fresh unit draws of one step (one row per node created)."""
        raise NotImplementedError

    def draw_mask(self, state: CounterState) -> jax.Array:
        """Which draws step state.t + 1 uses (bool, `draw_shape`): the nodes it creates."""
        raise NotImplementedError

    def mask_table(self, T: int) -> np.ndarray:
        """(T, rows) numpy: the rows of `draw_mask` at steps 1..T (the same for all streams)."""
        raise NotImplementedError

    def advance(self, state: CounterState, z: jax.Array):
        """(leaf, buf, noise) at step t = state.t + 1 given its draws z (noise in node units).

        Linear in z, and dtype-generic: research floats, secure integers."""
        raise NotImplementedError

    def _unit(self, key: jax.Array, shape) -> jax.Array:
        """Research draws: N(0, 1) or Laplace(1) (density e^{-|x|}/2, variance 2)."""
        if self.distribution == "gaussian":
            return jax.random.normal(key, shape)
        return jax.random.laplace(key, shape)

    def draws(self, state: CounterState) -> jax.Array:
        """Step t's draws from the key fold_in(key, t): each (step, row) feeds at most one node."""
        return self._unit(jax.random.fold_in(state.key, state.t + 1), self.draw_shape(state))

    # ------------------------------------------------------------------ calibration
    def node_scale(self, spec: ContinualSpec) -> float:
        """Research node noise: σ = k bound sqrt(d sens²)/sqrt(2ρ) or b = k bound d sens1/ε."""
        T, k = spec.horizon, self.participations
        if self.distribution == "gaussian":
            l2 = k * self.bound * math.sqrt(spec.d * self.sens2(T))
            return l2 / math.sqrt(2 * self.rho)
        return k * self.bound * spec.d * self.sens1(T) / self.epsilon

    def grid_bound(self) -> int:
        """Δ_g = round(bound 2^k): the largest snapped input, in grid units."""
        return round(Fraction(self.bound) * 2**self.grid_k)

    def _exact_sens(self, T: int) -> tuple[int, int]:
        """(sens², sens1) of the integer C used in secure mode, as integers."""
        s = self.sens2(T)
        if s != int(s):
            raise NotImplementedError
        return int(s), int(s)

    def secure_noise(self, spec: ContinualSpec) -> SecureNoise:
        """Exact node-noise parameters in grid units (see the module docstring, item 3)."""
        return self._calibrate(spec, *self._exact_sens(spec.horizon))

    def _calibrate(self, spec: ContinualSpec, s2: int, s1: int) -> SecureNoise:
        """Discrete Gaussian σ² = (k Δ_g)² d sens²/(2ρ) or discrete Laplace b = k Δ_g d sens1/ε
        for the integer strategy's exact sensitivities (sens², sens1)."""
        k, dg = self.participations, self.grid_bound()
        if self.distribution == "gaussian":
            sigma2 = Fraction(k * k * dg * dg * spec.d * s2) / (2 * Fraction(self.rho))
            zmax = GAUSS_TAIL * (math.isqrt(math.ceil(sigma2)) + 1)
            return SecureNoise("gaussian", sigma2, zmax, self.source)
        b = Fraction(k * dg * spec.d * s1) / Fraction(self.epsilon)
        return SecureNoise("laplace", b, LAPLACE_TAIL * math.ceil(b), self.source)

    def node_variance(self, spec: ContinualSpec) -> float:
        """Variance of one node's noise, in value units."""
        if self.noise == "research":
            s = self.node_scale(spec)
            return s * s if self.distribution == "gaussian" else 2 * s * s
        sn = self.secure_noise(spec)
        var = (
            discrete_gaussian_variance(float(sn.param))
            if self.distribution == "gaussian"
            else discrete_laplace_variance(float(sn.param))
        )
        return var * 4.0**-self.grid_k

    def variance(self, spec: ContinualSpec) -> np.ndarray:
        """Exact per-step, per-coordinate error variance ‖B[t]‖² Var(node), t = 1..T."""
        return self.row_norms2(spec.horizon) * self.node_variance(spec)

    def _check(self, spec: ContinualSpec) -> None:
        if spec.bound > self.bound and not self.clip:
            raise ConfigError(
                f"bound: stream values may reach {spec.bound:g} > the counter's bound"
                f" {self.bound:g}; raise bound or set clip=true (values are never clipped silently)"
            )

    def _int_range(self, spec: ContinualSpec, noise: SecureNoise) -> None:
        """Secure integers must not overflow: |count| + (nodes summed) |z| <= int max."""
        int_max = int(jnp.iinfo(jnp.result_type(int)).max)
        need = self._int_need(spec, noise)
        if need > int_max:
            raise ConfigError(
                f"grid_k: secure {self.mechanism} counter needs integers up to {need:.3g} >"
                f" {int_max} at T = {spec.horizon}; lower grid_k or set x64=true"
            )

    def _int_need(self, spec: ContinualSpec, noise: SecureNoise) -> int:
        return spec.horizon * self.grid_bound() + int(self.sens2(spec.horizon)) * noise.zmax

    def randomness(self, spec: ContinualSpec) -> dict:
        self._check(spec)
        return {}

    # ------------------------------------------------------------------ protocol
    def start(self, key: jax.Array, spec: ContinualSpec) -> CounterState:
        """The state before step 1 with nothing drawn: the tree position and empty buffers
        that `advance` starts from (`init` then prepares step 1's noise)."""
        self._check(spec)
        leaf, buf = self.init_buffers(spec)
        dt, it = jnp.result_type(float), jnp.result_type(int)
        zero_t = jnp.zeros((), jnp.int32)
        empty = jnp.zeros((0,), dt)
        if self.noise == "research":
            scale = jnp.asarray(self.node_scale(spec), dt)
            total = jnp.zeros((spec.d,), dt)
            return CounterState(key, zero_t, total, leaf, buf.astype(dt), scale, empty, empty)
        scale = jnp.asarray(2.0**-self.grid_k, dt)
        total = jnp.zeros((spec.d,), it)
        state = CounterState(key, zero_t, total, leaf, buf, scale, empty, empty)
        return self._secure_init(state, spec)

    def init(self, key: jax.Array, spec: ContinualSpec) -> CounterState:
        if self.noise == "research":
            return self._research_init(self.start(key, spec), spec)
        noise = self.secure_noise(spec)
        self._int_range(spec, noise)
        state = self.start(key, spec)
        return state._replace(pending=self._draw_next(state, noise))

    def _research_init(self, state: CounterState, spec: ContinualSpec) -> CounterState:
        return self._prefetch(state)

    def _secure_init(self, state: CounterState, spec: ContinualSpec) -> CounterState:
        return state._replace(buf=state.buf.astype(jnp.result_type(int)))

    def _noise_spec(self, state: CounterState) -> SecureNoise:
        spec = ContinualSpec(self._horizon(state), state.total.shape[0], self.bound)
        return self.secure_noise(spec)

    def _horizon(self, state: CounterState) -> int:
        """A horizon with the state's static structure (trees: T = 2^(L-1) has depth L): the
        noise parameters depend on T only through it."""
        return 1 << (state.buf.shape[0] - 1)

    def _draw_next(self, state: CounterState, noise: SecureNoise) -> jax.Array:
        """Exact noise for the nodes of step state.t + 1, drawn on the host."""
        mask = self.draw_mask(state)
        draw = _drawer(noise, np.dtype(jnp.result_type(int)).name)
        return draw(jax.random.key_data(state.key), state.t + 1, mask)

    def _x(self, obs: jax.Array) -> jax.Array:
        return jnp.clip(obs, 0.0, self.bound) if self.clip else obs

    def _grid(self, obs: jax.Array) -> jax.Array:
        """Snapped input n_t = min(max(round(x 2^k), 0), Δ_g) as integers (item 1)."""
        it = jnp.result_type(int)
        g = jnp.clip(jnp.round(self._x(obs) * 2.0**self.grid_k), 0, None).astype(it)
        return jnp.minimum(g, self.grid_bound())

    # research mode: the state is one step ahead (leaf, buf after step t + 1, pending = its
    # noise), so each step makes one draw and one `advance` (act only reads `pending`)
    def _prefetch(self, state: CounterState) -> CounterState:
        leaf, buf, noise = self.advance(state, self.draws(state))
        return state._replace(leaf=leaf, buf=buf, pending=noise)

    def _research_noise(self, state: CounterState) -> jax.Array:
        return state.pending

    def _research_update(self, state: CounterState) -> CounterState:
        return self._prefetch(state._replace(t=state.t + 1))

    # secure mode
    def _secure_step(self, state: CounterState, n: jax.Array):
        """(leaf, buf, aux, release in grid units) at step t = state.t + 1 (item 4).

        Trees with 0/1 B: S_t + Σ_nodes z in integers, which equals Σ_nodes (count + z)."""
        leaf, buf, noise = self.advance(state, state.pending)
        return leaf, buf, state.aux, state.total + n + noise

    def act(self, rng, state: CounterState, obs: jax.Array) -> jax.Array:
        if self.noise == "research":
            return state.total + self._x(obs) + state.scale * self._research_noise(state)
        release = self._secure_step(state, self._grid(obs))[3]
        return release.astype(state.scale.dtype) * state.scale

    def update(self, state: CounterState, obs, action, feedback) -> CounterState:
        if self.noise == "research":
            new = self._research_update(state)
            return new._replace(t=state.t + 1, total=state.total + self._x(obs))
        n = self._grid(obs)
        leaf, buf, aux, _ = self._secure_step(state, n)
        new = state._replace(t=state.t + 1, total=state.total + n, leaf=leaf, buf=buf, aux=aux)
        return new._replace(pending=self._draw_next(new, self._noise_spec(state)))

    # ------------------------------------------------------------------ R2 harness
    def harness(self, spec: ContinualSpec, keys: jax.Array, reduce=None) -> jax.Array:
        """Research-mode release errors of N streams (`keys`), step by step through `advance`.

        Returns, for each step t, `reduce`(errors of the N streams at t, shape (N, d)): (T, ...)
        (default: the (T, N, d) errors). The draws come from one bulk draw per stream of exactly
        the nodes used (a pool of iid unit draws, handed to step t's node rows by the static
        `mask_table`), not from fold_in(key, t): the same distribution as the agent's draws, at a
        fraction of the random bits. The pool is laid out step-major, (nodes, N, d), and the tree
        position (t, leaf) is shared by all streams, so each step reads contiguous memory.
        """
        if self.noise != "research":
            raise ValueError("harness: research mode only (secure noise is drawn on the host)")
        reduce = (lambda e: e) if reduce is None else reduce
        state = self.start(keys[0], spec)  # the static structure; advance never reads the key
        T, shape, N = spec.horizon, self.draw_shape(state), keys.shape[0]
        mask = self.mask_table(T)  # (T, rows)
        idx = np.cumsum(mask, axis=None).reshape(mask.shape) - 1
        idx = np.where(mask, idx, 0).astype(np.int32)
        size = (max(int(mask.sum()), 1), spec.d)
        pool = jax.vmap(lambda k: self._unit(k, size), out_axes=1)(keys)  # (nodes, N, d)
        buf0 = jnp.broadcast_to(state.buf, (N, *state.buf.shape))

        def body(carry, xs):
            t, leaf, buf = carry
            m, i = xs
            rows = [jax.lax.dynamic_index_in_dim(pool, i[r], keepdims=False) for r in range(m.size)]
            z = jnp.where(m[None, :, None], jnp.stack(rows, 1), 0.0).reshape(N, *shape)

            def one(b, zz):
                return self.advance(state._replace(t=t, leaf=leaf, buf=b), zz)

            leaf, buf, n = jax.vmap(one, out_axes=(None, 0, 0))(buf, z)
            return (t + 1, leaf, buf), reduce(state.scale * n)

        carry = (state.t, state.leaf, buf0)
        return jax.lax.scan(body, carry, (jnp.asarray(mask), jnp.asarray(idx)))[1]


@dataclass(frozen=True)
class BinaryTreeCounter(_Counter):
    """Binary tree mechanism (Dwork, Naor, Pitassi & Rothblum, STOC 2010; Chan, Shi & Song,
    ACM TISSEC 2011, Alg. 2 "binary mechanism"): output t sums the noisy p-sums of the nodes
    (b, t >> b) over the set bits b of t; sens² = sens1 = L = ⌊log2 T⌋ + 1; Var_t = popcount(t)
    Var(node) (Gaussian: σ²; Laplace: 2b², b = L bound d/ε)."""

    mechanism = "binary"

    def sens2(self, T: int) -> float:
        return float(binary_depth(T))

    def init_buffers(self, spec):
        return jnp.zeros((), jnp.int32), jnp.zeros((binary_depth(spec.horizon), spec.d))

    def draw_shape(self, state):
        return state.buf.shape[1:]  # one new node per step

    def draw_mask(self, state):
        return jnp.ones(self.draw_shape(state), bool)

    def mask_table(self, T):
        return np.ones((T, 1), bool)

    def advance(self, state, z):
        t = state.t + 1
        top = _trailing_zeros(t)  # node (top, t >> top) completes at t
        buf = state.buf.at[top].set(z)  # buf[b]: noise of node (b, t >> b) while bit b is set
        levels = jnp.arange(buf.shape[0])
        return state.leaf, buf, jnp.sum(jnp.where(_bit(t, levels)[:, None], buf, 0), 0)

    # research harness without a scan: the whole noise path at once
    @staticmethod
    def level_sizes(T: int) -> list[int]:
        """Used nodes per level: (b, m) is used iff m is odd (m = t >> b for a set bit b)."""
        return [((T >> b) + 1) // 2 for b in range(binary_depth(T))]

    @staticmethod
    def path_from_nodes(nodes: list[jax.Array], T: int) -> jax.Array:
        """(B z)_t = Σ_{bits b of t} z_b[t >> (b + 1)], t = 1..T, for the used nodes' noise
        `nodes[b]` ((level_sizes[b], d); node (b, 2i + 1) is row i): T d work per level, no
        scan, so a GPU runs all steps of all streams in parallel."""
        t = jnp.arange(1, T + 1)
        out = jnp.zeros((T, nodes[0].shape[-1]), nodes[0].dtype)
        for b, z in enumerate(nodes):
            on = _bit(t, b)[:, None]
            out = out + jnp.where(on, z[jnp.minimum(t >> (b + 1), z.shape[0] - 1)], 0)
        return out

    def harness(self, spec, keys, reduce=None):
        """As `_Counter.harness`, vectorised over the T steps: each stream draws its T used
        nodes level by level (from fold_in(key, level)) and `path_from_nodes` sums them; the
        same distribution (iid unit noise per used node, B z), O(N T d) memory for a batch."""
        if self.noise != "research":
            raise ValueError("harness: research mode only (secure noise is drawn on the host)")
        reduce = (lambda e: e) if reduce is None else reduce
        T, d = spec.horizon, spec.d
        sizes = self.level_sizes(T)

        def path(key):
            nodes = [self._unit(jax.random.fold_in(key, b), (m, d)) for b, m in enumerate(sizes)]
            return self.path_from_nodes(nodes, T)

        paths = jax.vmap(path, out_axes=1)(keys)  # (T, N, d)
        scale = jnp.asarray(self.node_scale(spec), paths.dtype)
        return jax.vmap(reduce)(scale * paths)


@dataclass(frozen=True)
class SmoothBinaryCounter(_Counter):
    """Smooth binary mechanism (Andersson & Pagh, NeurIPS 2023, arXiv:2306.09666, §3): the
    binary tree of depth D (smallest even D with C(D, D/2) > T) read only at leaves of Hamming
    weight D/2, so every output sums D/2 nodes: Var_t = D Var(node)/2 at every t, sens² = D/2.
    Leaf order by Gosper's hack as in the authors' code; placement of inputs is [I], see
    `privacy.factorization`. Secure mode checks the exact column count (`tree_sens2`) <= D/2."""

    mechanism = "smooth"

    def sens2(self, T: int) -> float:
        return smooth_depth(T) / 2

    def _exact_sens(self, T):
        s = smooth_depth(T) // 2
        if _smooth_exact_sens(T) > s:  # the calibration assumes it; never expected to fail
            raise ConfigError(f"horizon: smooth mechanism column count exceeds D/2 at T = {T}")
        return s, s

    def _horizon(self, state):
        D = state.buf.shape[0]
        return math.comb(D - 2, D // 2 - 1)  # the smallest T with smooth_depth(T) = D

    def init_buffers(self, spec):
        D = smooth_depth(spec.horizon)
        return jnp.asarray((1 << (D // 2)) - 1, jnp.int32), jnp.zeros((D, spec.d))

    def draw_shape(self, state):
        return state.buf.shape  # up to D new nodes per step

    def _next(self, w):
        lsb = w & -w
        y = w + lsb
        return y + (y & -y) // (2 * lsb) - 1  # next integer of the same weight (HAKMEM 175)

    def _new_nodes(self, state):
        w = state.leaf
        e = self._next(w)
        levels = jnp.arange(state.buf.shape[0])
        on = _bit(e, levels)
        new = jnp.right_shift(e, levels) != jnp.right_shift(w, levels)
        return e, on, new

    def draw_mask(self, state):
        _, on, new = self._new_nodes(state)
        return jnp.broadcast_to((on & new)[:, None], state.buf.shape)

    def mask_table(self, T):
        w = smooth_leaves(T)[0]  # e_t = w_{t+1}
        prev = np.concatenate([[(1 << (smooth_depth(T) // 2)) - 1], w[:-1]])
        b = np.arange(smooth_depth(T))
        on = (w[:, None] >> b) & 1 == 1
        return on & ((w[:, None] >> b) != (prev[:, None] >> b))

    def advance(self, state, z):
        e, on, new = self._new_nodes(state)
        buf = jnp.where(on[:, None], jnp.where(new[:, None], z, state.buf), 0)
        return e, buf, jnp.sum(buf, 0)  # buf[b]: node (b, e >> b) for bits b of e


@functools.lru_cache(maxsize=64)
def _smooth_exact_sens(T: int) -> float:
    return tree_sens2(*smooth_leaves(T))


@functools.cache
def honaker_chain(levels: int) -> np.ndarray:
    """W[top, j] = Π_{j<i<=top} (1 - a_i) for j <= top, else 0 (float64, (L, L))."""
    keep = 1.0 - honaker_weights(levels)
    W = np.zeros((levels, levels))
    for top in range(levels):
        for j in range(top + 1):
            W[top, j] = np.prod(keep[j + 1 : top + 1])
    W.setflags(write=False)
    return W


@dataclass(frozen=True)
class HonakerCounter(_Counter):
    """Honaker's variance-reduced tree, online variant (Honaker, TPDP 2015; TF Privacy
    `EfficientTreeAggregator`): every completed node gets noise z; a level-j node's estimate
    is a_j (own noisy sum) + (1 - a_j)(left child + right child estimates), a_j = 2^j/(2^{j+1}-1)
    (inverse-variance weights); output t sums the estimates of nodes (j, t >> j), bits j of t.
    sens² = sens1 = L; Var_t = Var(node) Σ_{bits j of t} 2^j/(2^{j+1} - 1).

    Secure mode computes the estimates from the noisy integer node values y = count + z (the
    counts of the kept left nodes are in `aux`), so the release is post-processing of them."""

    unrolled: bool | None = None  # the level recursion's form in `advance` (None: by backend)

    mechanism = "honaker"

    def __post_init__(self):
        super().__post_init__()
        if self.unrolled not in (None, True, False):
            raise ConfigError(f"unrolled: must be true, false or null (got {self.unrolled!r})")

    def sens2(self, T: int) -> float:
        return float(binary_depth(T))

    def init_buffers(self, spec):
        return jnp.zeros((), jnp.int32), jnp.zeros((binary_depth(spec.horizon), spec.d))

    def draw_shape(self, state):
        return state.buf.shape  # row j: the level-j node ending at t (used if j <= top)

    def draw_mask(self, state):
        top = _trailing_zeros(state.t + 1)
        rows = jnp.arange(state.buf.shape[0]) <= top
        return jnp.broadcast_to(rows[:, None], state.buf.shape)

    def mask_table(self, T):
        t = np.arange(1, T + 1, dtype=np.int64)
        top = np.bitwise_count((t & -t) - 1)
        return np.arange(binary_depth(T))[None, :] <= top[:, None]

    def advance(self, state, z):
        """The estimates n_j = a_j z_j + (1 - a_j)(buf[j-1] + n_{j-1}) of nodes (j, t >> j),
        j = 0..top (a_0 = 1, n_0 = z_0), bottom-up. On the CPU a loop over levels 1..top (two
        levels per step on average); on an accelerator the unrolled form
        n_top = Σ_{j<=top} W[top, j] u_j, u_j = a_j z_j + (1 - a_j) buf[j-1],
        W[top, j] = Π_{j<i<=top} (1 - a_i) (`honaker_chain`): all L levels in parallel, no
        loop (`unrolled`: None = by backend; both forms are tested)."""
        t, L = state.t + 1, state.buf.shape[0]  # buf: (L, d) noise of the last left nodes
        a = jnp.asarray(honaker_weights(L), z.dtype)[:, None]
        top = _trailing_zeros(t)  # levels 0..top end at t
        unrolled = jax.default_backend() != "cpu" if self.unrolled is None else self.unrolled
        if unrolled:
            u = a * z + (1 - a) * jnp.roll(state.buf, 1, axis=0)  # row 0: z_0 (1 - a_0 = 0)
            n = jnp.sum(jnp.asarray(honaker_chain(L), z.dtype)[top][:, None] * u, 0)
        else:

            def level(j, n):  # estimate of node (j, t >> j) from its own draw and its children
                return a[j] * z[j] + (1 - a[j]) * (state.buf[j - 1] + n)

            n = jax.lax.fori_loop(1, top + 1, level, z[0])
        buf = state.buf.at[top].set(n)  # node (top, t >> top) is a left child: keep it
        levels = jnp.arange(L)
        return state.leaf, buf, jnp.sum(jnp.where(_bit(t, levels)[:, None], buf, 0.0), 0)

    # research: two draws per step instead of L (levels 0..top need top + 1, 2 on average)
    def step_draws(self, state: CounterState) -> jax.Array:
        """Research draws of step t = state.t + 1, (2, d) from fold_in(key, t): row 0 is the
        leaf (0, t); row 1 the next level-(tz(t) + 1) node, which completes 2^tz(t) steps later.
        Every node's noise is drawn once, at the midpoint of its span, and kept in `aux`."""
        return self._unit(jax.random.fold_in(state.key, state.t + 1), (2, state.buf.shape[1]))

    def _research_init(self, state, spec):
        return self._prefetch(state._replace(aux=jnp.zeros_like(state.buf)))

    def _prefetch(self, state):
        """Step t's node draws: the leaf's fresh, levels 1..top pre-drawn in aux[j] (the
        level-j node ending at t was drawn at t - 2^(j-1), the one step in its span with
        tz = j - 1, and nothing writes aux[j] in between); then aux[top + 1] gets the next."""
        u = self.step_draws(state)
        top = _trailing_zeros(state.t + 1)
        leaf, buf, noise = self.advance(state, state.aux.at[0].set(u[0]))
        aux = state.aux.at[top + 1].set(u[1], mode="drop")  # top + 1 = L: no such level
        return state._replace(leaf=leaf, buf=buf, pending=noise, aux=aux)

    def _secure_init(self, state, spec):
        it = jnp.result_type(int)
        dt = state.scale.dtype
        return state._replace(buf=state.buf.astype(dt), aux=jnp.zeros(state.buf.shape, it))

    def _int_need(self, spec, noise):
        return spec.horizon * self.grid_bound() + noise.zmax  # one node value y = count + z

    def _secure_step(self, state, n):
        t, L = state.t + 1, state.buf.shape[0]
        dt = state.buf.dtype
        a = honaker_weights(L)
        top = _trailing_zeros(t)
        z = state.pending
        c = n  # count of node (0, t)
        est = (c + z[0]).astype(dt)  # a_0 = 1: the leaf's own noisy value
        for j in range(1, L):
            cj = state.aux[j - 1] + c  # node (j, t >> j) = left child (kept) + right child
            cand = a[j] * (cj + z[j]).astype(dt) + (1 - a[j]) * (state.buf[j - 1] + est)
            on = j <= top
            est, c = jnp.where(on, cand, est), jnp.where(on, cj, c)
        buf, aux = state.buf.at[top].set(est), state.aux.at[top].set(c)
        levels = jnp.arange(L)
        release = jnp.sum(jnp.where(_bit(t, levels)[:, None], buf, 0.0), 0)
        return state.leaf, buf, aux, release


def causal_convolve(coefs: jax.Array, z: jax.Array) -> jax.Array:
    """(Toeplitz(coefs) z)_t = Σ_{s<=t} coefs_{t-s} z_s for z of shape (T, d), by one FFT
    (zero-padded to >= 2T, so the circular convolution is the linear one): O(T log T)."""
    T = z.shape[0]
    n = 1 << (2 * T - 1).bit_length()
    fc = jnp.fft.rfft(coefs, n)
    fz = jnp.fft.rfft(z, n, axis=0)
    return jnp.fft.irfft(fc[:, None] * fz, n, axis=0)[:T].astype(z.dtype)


@dataclass(frozen=True)
class SqrtToeplitzCounter(_Counter):
    """Square-root Toeplitz factorisation (Fichtenberger, Henzinger & Upadhyay, ICML 2023, §3):
    B = C = Toeplitz(f), f_k = C(2k, k)/4^k; release S_t + Σ_{s<=t} f_{t-s} z_s.
    sens² = s_T = Σ_{k<T} f_k², sens1 = Σ_{k<T} f_k; Var_t = Var(node) s_t.

    Research mode: the whole noise path B z is computed at init by one FFT convolution of the T
    node draws (`causal_convolve`), O(T log T) per stream, and read at each step: the same
    distribution as the step-by-step sum, O(T d) memory. Secure mode: integer C̃ (module
    docstring), O(T d) memory and work per step."""

    mechanism = "sqrt"

    # the strategy: C = Toeplitz(c), B = A C^{-1} = Toeplitz(b); subclasses override these
    def coefficients(self, T: int) -> np.ndarray:
        """c_0..c_{T-1}, the first column of the lower-triangular Toeplitz C (float64)."""
        return sqrt_coefficients(T)

    def noise_coefficients(self, T: int) -> np.ndarray:
        """b_0..b_{T-1}, the first column of B = A C^{-1} (here B = C)."""
        return sqrt_coefficients(T)

    def quantised(self, T: int, bits: int) -> tuple[np.ndarray, np.ndarray]:
        """Secure mode's integer c̃ = round(2^bits c) and b̃ with B̃ C̃ = A."""
        return quantised_sqrt(T, bits)

    def sens2(self, T: int) -> float:
        return float(np.sum(self.coefficients(T) ** 2))

    def sens1(self, T: int) -> float:
        return float(np.sum(np.abs(self.coefficients(T))))

    def init_buffers(self, spec):
        return jnp.zeros((), jnp.int32), jnp.zeros((spec.horizon, spec.d))

    def _horizon(self, state):
        return state.buf.shape[0]

    def draw_shape(self, state):
        return state.buf.shape[1:]  # z_t

    def draw_mask(self, state):
        return jnp.ones(self.draw_shape(state), bool)

    def mask_table(self, T):
        return np.ones((T, 1), bool)

    # research: the noise path at init
    def _research_init(self, state, spec):
        z = self._unit(jax.random.fold_in(state.key, 0), (spec.horizon, spec.d))
        b = jnp.asarray(self.noise_coefficients(spec.horizon), z.dtype)
        return state._replace(buf=causal_convolve(b, z))

    def _research_noise(self, state):
        return state.buf[state.t]

    def _research_update(self, state):
        return state

    def advance(self, state, z):
        """The step-by-step form Σ_{s<=t} b_{t-s} z_s, buf = past z (reference, tests only)."""
        t, T = state.t + 1, state.buf.shape[0]
        buf = state.buf.at[t - 1].set(z)
        f = jnp.asarray(self.noise_coefficients(T), buf.dtype)
        lag = t - 1 - jnp.arange(T)
        coef = jnp.where(lag >= 0, f[jnp.clip(lag, 0, T - 1)], 0.0)
        return state.leaf, buf, coef @ buf

    def harness(self, spec, keys, reduce=None):
        """As `_Counter.harness`, from the init-time noise paths (one FFT per stream)."""
        if self.noise != "research":
            raise ValueError("harness: research mode only (secure noise is drawn on the host)")
        reduce = (lambda e: e) if reduce is None else reduce
        paths = jax.vmap(lambda k: self.init(k, spec).buf, out_axes=1)(keys)  # (T, N, d)
        scale = jnp.asarray(self.node_scale(spec), paths.dtype)
        return jax.vmap(reduce)(scale * paths)

    # secure: integer C̃
    def coefficient_bits(self, spec: ContinualSpec) -> int:
        """q: the largest q <= 24 whose integer coefficients fit the integer range (>= 8)."""
        int_max = int(jnp.iinfo(jnp.result_type(int)).max)
        return _sqrt_bits(self, spec, int_max)

    def _bits(self, spec, int_max) -> int:
        for q in range(24, 7, -1):
            if self._sqrt_need(spec, q) <= int_max:
                return q
        raise ConfigError(
            f"grid_k: secure sqrt counter at T = {spec.horizon} does not fit the integer range"
            " with >= 8 coefficient bits; lower grid_k or set x64=true"
        )

    def _sqrt_need(self, spec, q):
        c, _ = self.quantised(spec.horizon, q)
        noise = self._secure_noise_q(spec, q)
        return self.grid_bound() * int(np.sum(np.abs(c))) + noise.zmax

    def _secure_noise_q(self, spec, q) -> SecureNoise:
        c, _ = self.quantised(spec.horizon, q)
        s2 = sum(int(v) * int(v) for v in c)  # exact: column 1 of C̃ is the longest
        s1 = int(np.sum(np.abs(c)))
        return self._calibrate(spec, s2, s1)

    def secure_noise(self, spec):
        return self._secure_noise_q(spec, self.coefficient_bits(spec))

    def _int_range(self, spec, noise):
        self.coefficient_bits(spec)  # raises if nothing fits

    def row_norms2(self, T):
        if self.noise == "research":
            return np.cumsum(self.noise_coefficients(T) ** 2)  # ‖B[t]‖² = Σ_{k<t} b_k²
        spec = ContinualSpec(T, 1, self.bound)
        _, b = self.quantised(T, self.coefficient_bits(spec))
        return np.cumsum(b**2)

    def variance(self, spec):
        if self.noise == "research":
            return super().variance(spec)
        _, b = self.quantised(spec.horizon, self.coefficient_bits(spec))
        return np.cumsum(b**2) * self.node_variance(spec)

    def _secure_init(self, state, spec):
        it = jnp.result_type(int)
        shape = (spec.horizon, spec.d)
        return state._replace(buf=jnp.zeros(shape, it), aux=jnp.zeros(shape, it))

    def _secure_step(self, state, n):
        t, T = state.t + 1, state.buf.shape[0]
        spec = ContinualSpec(T, state.total.shape[0], self.bound)
        c, b = self.quantised(T, self.coefficient_bits(spec))
        it, dt = state.aux.dtype, state.scale.dtype
        lag = t - 1 - jnp.arange(T)
        live = lag >= 0
        at = jnp.clip(lag, 0, T - 1)
        aux = state.aux.at[t - 1].set(n)  # past snapped inputs n_1..n_t
        cn = jnp.where(live, jnp.asarray(c, it)[at], 0) @ aux  # (C̃ n)_t, exact integers
        buf = state.buf.at[t - 1].set(cn + state.pending)  # noisy node y_t
        release = jnp.where(live, jnp.asarray(b, dt)[at], 0.0) @ buf.astype(dt)  # (B̃ y)_t
        return state.leaf, buf, aux, release


@functools.lru_cache(maxsize=64)
def _sqrt_bits(counter: SqrtToeplitzCounter, spec: ContinualSpec, int_max: int) -> int:
    return counter._bits(spec, int_max)


COUNTERS = {
    "binary": BinaryTreeCounter,
    "smooth": SmoothBinaryCounter,
    "honaker": HonakerCounter,
    "sqrt": SqrtToeplitzCounter,
}


def noise_from_draws(counter: _Counter, spec: ContinualSpec, draws: jax.Array) -> jax.Array:
    """The release noise (B z)_t, (T, d) in node units, when step t's unit draws are draws[t]
    (shape (T, *draw_shape)) instead of the key's: `advance` step by step from `start`. A
    linear function of the draws, for tests of which draw feeds which node."""
    state = counter.start(jax.random.key(0), spec)

    def body(s, z):
        leaf, buf, n = counter.advance(s, z)
        return s._replace(t=s.t + 1, leaf=leaf, buf=buf), n

    return jax.lax.scan(body, state, draws)[1]


def releases(counter: _Counter, spec: ContinualSpec, stream, seed: int = 0) -> np.ndarray:
    """The counter's releases Ŝ_1..Ŝ_T, (T, d) float64, for one given stream x (T, d) or (T,),
    through its own init/act/update with key(seed) (compiled once per counter and spec)."""
    x = jnp.asarray(stream, jnp.result_type(float)).reshape(spec.horizon, spec.d)
    return np.asarray(_release_fn(counter, spec)(jax.random.key(seed), x), np.float64)


@functools.cache
def _release_fn(counter: _Counter, spec: ContinualSpec):
    def run(key, x):
        def body(s, xt):
            out = counter.act({}, s, xt)
            return counter.update(s, xt, out, ()), out

        return jax.lax.scan(body, counter.init(key, spec), x)[1]

    return jax.jit(run)


def noise_streams(
    counter: _Counter, spec: ContinualSpec, keys: jax.Array, agent: bool | None = None
) -> jax.Array:
    """Release errors Ŝ_t - S_t, (N, T, d), of N independent streams (one per key).

    ``agent`` (default for secure mode): vmap of the counter's own init/act/update over an
    all-zero stream (the error does not depend on the data). Otherwise (research default) the
    streaming harness with bulk draws (`harness`): the same distribution, much faster (R2).
    """
    if agent is None:
        agent = counter.noise == "secure"
    if not agent:
        return jnp.swapaxes(counter.harness(spec, keys), 0, 1)
    zero = jnp.zeros((spec.d,), jnp.result_type(float))

    def one(key):
        state = counter.init(key, spec)

        def body(s, _):
            out = counter.act({}, s, zero)
            return counter.update(s, zero, out, ()), out

        return jax.lax.scan(body, state, None, length=spec.horizon)[1]

    return jax.vmap(one)(keys)


def noise_sum_of_squares(counter: _Counter, spec: ContinualSpec, keys: jax.Array) -> jax.Array:
    """Σ over the N streams of the squared release errors, (T, d), research mode: R2's
    statistic. Honaker and smooth accumulate it step by step (no (N, T, d) array); the binary
    tree, sqrt and BLT harnesses build the (T, N, d) paths of the batch first (batch N so that
    N T d floats fit)."""
    return counter.harness(spec, keys, lambda e: jnp.sum(e.astype(jnp.float32) ** 2, 0))


from privacy.blt import BLTCounter  # noqa: E402  (privacy.blt subclasses SqrtToeplitzCounter)

COUNTERS["blt"] = BLTCounter
