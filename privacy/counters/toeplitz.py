"""Toeplitz strategies C = Toeplitz(c), B = A C^{-1} = Toeplitz(b), and their integer form.

`SqrtToeplitz`: the square-root factorisation (Fichtenberger, Henzinger & Upadhyay, ICML 2023,
§3): B = C = Toeplitz(f), f_k = C(2k, k)/4^k; release S_t + Σ_{s<=t} f_{t-s} z_s;
sens² = s_T = Σ_{k<T} f_k², sens1 = Σ_{k<T} f_k; Var_t = Var(node) s_t. It has no exact streaming
form with o(T) memory (that is what BLT approximates, Dvijotham et al., FOCS 2024): research
mode computes the whole noise path at init by one FFT convolution, O(T log T) per stream.

`QuantisedToeplitz`: the integer strategy of secure mode. f_k is dyadic, but exact arithmetic
with it would need 2T-bit integers, so secure mode uses C̃ = Toeplitz(c̃), c̃_k = round(2^q c_k),
with q <= 24 chosen at init as large as the integer range allows (q >= 8). Any integer C̃ is a
valid strategy: its exact sens² = Σ_k c̃_k² (an integer) calibrates the noise, and
B̃ = A C̃^{-1} (b̃ = cumsum of the series inverse of c̃) makes B̃ C̃ = A, so the release is
unbiased and its exact per-step variance is Var(z) Σ_{k<t} b̃_k² 4^-grid_k (the float oracle up
to a relative ~2^-q: the rounding of c̃ only perturbs the constants). It keeps the past snapped
inputs and noisy nodes: O(T d) memory and work per step.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from experiments.protocol import step_key
from privacy.continual import ContinualSpec
from privacy.counters.strategy import Reduce, Strategy, Unit
from privacy.factorization import series_inverse, sqrt_coefficients

MAX_BITS, MIN_BITS = 24, 8  # coefficient bits q of the integer strategy, tried from the top


class ToeplitzState(NamedTuple):
    draws: jax.Array  # (T, d): the node draws z_1..z_t so far (step form; reference and tests)


class ToeplitzPath(NamedTuple):
    path: jax.Array  # (T, d): the whole noise path (B z)_1..T, computed at init (research)


class QuantisedState(NamedTuple):
    inputs: jax.Array  # (T, d) int: the snapped inputs n_1..n_t so far
    nodes: jax.Array  # (T, d) int: the noisy nodes y_s = (C̃ n)_s + z_s so far


def causal_convolve(coefs: jax.Array, z: jax.Array) -> jax.Array:
    """(Toeplitz(coefs) z)_t = Σ_{s<=t} coefs_{t-s} z_s for z of shape (T, d), by one FFT
    (zero-padded to >= 2T, so the circular convolution is the linear one): O(T log T)."""
    T = z.shape[0]
    n = 1 << (2 * T - 1).bit_length()
    fc = jnp.fft.rfft(coefs, n)
    fz = jnp.fft.rfft(z, n, axis=0)
    return jnp.fft.irfft(fc[:, None] * fz, n, axis=0)[:T].astype(z.dtype)


def _window(coefs: np.ndarray, t: jax.Array, dtype: Any) -> jax.Array:
    """Row t of Toeplitz(coefs): coefs_{t-1-s} at s = 0..T-1 (zero for s >= t)."""
    T = coefs.shape[0]
    lag = t - 1 - jnp.arange(T)
    return jnp.where(lag >= 0, jnp.asarray(coefs, dtype)[jnp.clip(lag, 0, T - 1)], 0)


@functools.lru_cache(maxsize=64)
def quantise(strategy: Toeplitz, T: int, bits: int) -> tuple[np.ndarray, np.ndarray]:
    """c̃ = round(2^bits c) (int64) and b̃ = cumsum(1/c̃(x)) (float64): B̃ C̃ = A."""
    c = np.round(np.ldexp(strategy.coefficients(T), bits)).astype(np.int64)
    b = np.cumsum(series_inverse(c.astype(np.float64), T))
    c.setflags(write=False)
    b.setflags(write=False)
    return c, b


class Toeplitz(Strategy):
    """A lower-triangular Toeplitz strategy: `coefficients` and `noise_coefficients` required;
    the step form Σ_{s<=t} b_{t-s} z_s (`advance`, buffer of past draws) and the integer
    strategies of secure mode follow from them."""

    def coefficients(self, T: int) -> np.ndarray:
        """c_0..c_{T-1}, the first column of C (float64)."""
        raise NotImplementedError

    def noise_coefficients(self, T: int) -> np.ndarray:
        """b_0..b_{T-1}, the first column of B = A C^{-1} (float64)."""
        raise NotImplementedError

    def quantised(self, T: int, bits: int) -> tuple[np.ndarray, np.ndarray]:
        """Secure mode's integer c̃ = round(2^bits c) and b̃ with B̃ C̃ = A."""
        return quantise(self, T, bits)

    def sens2(self, T: int) -> float:
        return float(np.sum(self.coefficients(T) ** 2))

    def sens1(self, T: int) -> float:
        return float(np.sum(np.abs(self.coefficients(T))))

    def row_norms2(self, T: int) -> np.ndarray:
        return np.cumsum(self.noise_coefficients(T) ** 2)  # ‖B[t]‖² = Σ_{k<t} b_k²

    def init_state(self, spec: ContinualSpec, dtype: Any) -> ToeplitzState:
        return ToeplitzState(draws=jnp.zeros((spec.horizon, spec.d), dtype))

    def draw_shape(self, state: ToeplitzState) -> tuple[int, ...]:
        return state.draws.shape[1:]  # z_t

    def advance(
        self, state: ToeplitzState, t: jax.Array, z: jax.Array
    ) -> tuple[ToeplitzState, jax.Array]:
        """The step form Σ_{s<=t} b_{t-s} z_s over the buffer of past draws (O(T d) per step)."""
        draws = state.draws.at[t - 1].set(z)
        b = _window(self.noise_coefficients(draws.shape[0]), t, draws.dtype)
        return ToeplitzState(draws=draws), b @ draws

    def integer_strategies(self, T: int) -> Iterable[QuantisedToeplitz]:
        return (
            QuantisedToeplitz(base=self, T=T, bits=q) for q in range(MAX_BITS, MIN_BITS - 1, -1)
        )


@dataclass(frozen=True)
class SqrtToeplitz(Toeplitz):
    """B = C = Toeplitz(f), f_k = C(2k, k)/4^k (module docstring). Research mode: the noise
    path B z of the T node draws from step_key(key, 0), by one FFT at init."""

    name: ClassVar[str] = "sqrt"

    def coefficients(self, T: int) -> np.ndarray:
        return sqrt_coefficients(T)

    def noise_coefficients(self, T: int) -> np.ndarray:
        return sqrt_coefficients(T)

    def init_research(self, spec: ContinualSpec, key: jax.Array, unit: Unit) -> ToeplitzPath:
        z = unit(step_key(key, 0), (spec.horizon, spec.d))
        b = jnp.asarray(self.noise_coefficients(spec.horizon), z.dtype)
        return ToeplitzPath(path=causal_convolve(b, z))

    def research_step(
        self, state: ToeplitzPath, t: jax.Array, key: jax.Array, unit: Unit
    ) -> tuple[ToeplitzPath, jax.Array]:
        return state, state.path[t - 1]

    def noise_paths(
        self, spec: ContinualSpec, keys: jax.Array, unit: Unit, scale: jax.Array, reduce: Reduce
    ) -> jax.Array:
        """Noise paths in closed form (`noise_paths_closed_form`)."""
        return self.noise_paths_closed_form(spec, keys, unit, scale, reduce)

    def noise_paths_closed_form(
        self, spec: ContinualSpec, keys: jax.Array, unit: Unit, scale: jax.Array, reduce: Reduce
    ) -> jax.Array:
        """The agents' own init-time paths (one FFT per stream, the same draws), no scan."""
        paths = jax.vmap(lambda k: self.init_research(spec, k, unit).path, out_axes=1)(keys)
        return jax.vmap(reduce)(scale * paths)


@dataclass(frozen=True)
class QuantisedToeplitz:
    """The integer strategy C̃ = Toeplitz(round(2^bits c)) of a Toeplitz strategy at horizon T
    (module docstring): secure mode only, hashable (static in the counter's state)."""

    base: Toeplitz
    T: int
    bits: int

    @property
    def name(self) -> str:
        return self.base.name

    @property
    def c(self) -> np.ndarray:
        return self.base.quantised(self.T, self.bits)[0]

    @property
    def b(self) -> np.ndarray:
        return self.base.quantised(self.T, self.bits)[1]

    def exact_sens(self, T: int) -> tuple[int, int]:
        """(Σ c̃_k², Σ |c̃_k|): column 1 of C̃ is the longest."""
        return sum(int(v) * int(v) for v in self.c), int(np.sum(np.abs(self.c)))

    def int_need(self, T: int, grid_bound: int, zmax: int) -> int:
        return grid_bound * int(np.sum(np.abs(self.c))) + zmax  # one node value y_t

    def row_norms2(self, T: int) -> np.ndarray:
        return np.cumsum(self.b**2)

    def init_secure(self, spec: ContinualSpec) -> QuantisedState:
        zeros = jnp.zeros((spec.horizon, spec.d), jnp.result_type(int))
        return QuantisedState(inputs=zeros, nodes=zeros)

    def draw_shape(self, state: QuantisedState) -> tuple[int, ...]:
        return state.nodes.shape[1:]

    def draw_mask(self, state: QuantisedState, t: jax.Array) -> jax.Array:
        return jnp.ones(self.draw_shape(state), bool)

    def secure_release(
        self, state: QuantisedState, t: jax.Array, n: jax.Array, z: jax.Array, total: jax.Array
    ) -> tuple[QuantisedState, jax.Array]:
        """y_t = (C̃ n)_t + z_t in integers, release (B̃ y)_t in floats (post-processing)."""
        it, dt = state.inputs.dtype, jnp.result_type(float)
        inputs = state.inputs.at[t - 1].set(n)
        cn = _window(self.c, t, it) @ inputs  # (C̃ n)_t, exact integers
        nodes = state.nodes.at[t - 1].set(cn + z)  # noisy node y_t
        release = _window(self.b, t, dt) @ nodes.astype(dt)  # (B̃ y)_t
        return QuantisedState(inputs=inputs, nodes=nodes), release
