"""The BLT strategy: a buffered linear Toeplitz C (Dvijotham, McMahan, Pillutla, Steinke &
Thakurta, "Efficient and near-optimal noise generation for streaming differential privacy",
FOCS 2024, arXiv:2404.16706, §5; the factorisation and its optimiser are `privacy.blt`).

Release S_t + (B z)_t, B = A C^{-1}; sens² = Σ_{k<T} c_k²; Var_t = Var(node) ‖B[t]‖². Research
mode streams with O(buffers · d) state: step t draws z_t from step_key(key, t) and

    y_t = z_t + Σ_j ŝ_j β_{j,t} = (C^{-1} z)_t,   β_{j,t+1} = φ_j β_{j,t} + z_t,
    noise_t = noise_{t-1} + y_t = (A C^{-1} z)_t = (B z)_t,

with the inverse BLT (φ, ŝ) of C (arXiv:2404.16706 Lemma 5.2, Prop. 5.6; `BLT.inverse`). The
decay is applied as β - (1 - φ) β, so float32 keeps 1 - φ to relative 2^-24 (φ itself would keep
only ~3 digits of 1 - φ near 1).

Secure mode uses the integer Toeplitz strategy C̃ = Toeplitz(round(2^q c)) (`QuantisedToeplitz`):
an exact integer BLT recurrence does not exist for irrational decays (rounding the buffers each
step would make C̃ data-dependent), so the integer strategy is the rounded Toeplitz matrix, whose
exact sens² = Σ c̃_k² calibrates the discrete noise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from experiments.config import ConfigError, check_int
from privacy.blt import BLT, MAX_BUFFERS, check_strategy, optimize
from privacy.continual import ContinualSpec
from privacy.counters.toeplitz import Toeplitz


class BLTState(NamedTuple):
    inverse: jax.Array  # (2, m): [1 - φ; ŝ] of the inverse BLT (static per run, float64 -> dtype)
    beta: jax.Array  # (m, d): the inverse buffers β_{j,t+1}
    noise: jax.Array  # (d,): the running noise (B z)_t


@dataclass(frozen=True)
class BLTStrategy(Toeplitz):
    """`output_scale` and `buf_decay` (both, same length = `buffers`), or neither: then the BLT
    minimising the max loss at the run's horizon (`privacy.blt.optimize`, cached per
    (T, buffers))."""

    buffers: int = 2
    output_scale: tuple[float, ...] | None = None
    buf_decay: tuple[float, ...] | None = None

    name: ClassVar[str] = "blt"

    def __post_init__(self):
        check_int("buffers", self.buffers, 1, MAX_BUFFERS)
        given = (self.output_scale is not None, self.buf_decay is not None)
        if given[0] != given[1]:
            missing = "buf_decay" if given[0] else "output_scale"
            raise ConfigError(
                f"{missing}: give output_scale and buf_decay together, or neither (optimised)"
            )
        if given[0]:
            blt = check_strategy(self.output_scale, self.buf_decay)
            if blt.buffers != self.buffers:
                raise ConfigError(
                    f"buffers: must equal len(output_scale) = {blt.buffers} (got {self.buffers})"
                )
            object.__setattr__(self, "output_scale", blt.output_scale)
            object.__setattr__(self, "buf_decay", blt.buf_decay)

    def blt(self, T: int) -> BLT:
        """The strategy for horizon T: the explicit parameters, or `optimize(T, buffers)`."""
        if self.output_scale is not None:
            return BLT(self.output_scale, self.buf_decay)
        return optimize(T, self.buffers, "max")

    def coefficients(self, T: int) -> np.ndarray:
        return self.blt(T).coefficients(T)

    def noise_coefficients(self, T: int) -> np.ndarray:
        return self.blt(T).noise_coefficients(T)

    def sens2(self, T: int) -> float:
        return self.blt(T).sens2(T)

    def sens1(self, T: int) -> float:
        return self.blt(T).sens1(T)

    def row_norms2(self, T: int) -> np.ndarray:
        return self.blt(T).row_norms2(T)

    def init_state(self, spec: ContinualSpec, dtype: Any) -> BLTState:
        """inverse = [1 - φ; ŝ] (computed in float64), zero buffers and noise."""
        inv = self.blt(spec.horizon).inverse()
        params = np.stack([1.0 - inv.decay, inv.scale])
        return BLTState(
            inverse=jnp.asarray(params, jnp.result_type(float)),
            beta=jnp.zeros((self.buffers, spec.d), dtype),
            noise=jnp.zeros((spec.d,), dtype),
        )

    def draw_shape(self, state: BLTState) -> tuple[int, ...]:
        return state.noise.shape

    def advance(self, state: BLTState, t: jax.Array, z: jax.Array) -> tuple[BLTState, jax.Array]:
        """y_t = z_t + ŝ·β_t, noise_t = noise_{t-1} + y_t, β_{t+1} = β_t - (1 - φ) β_t + z_t."""
        gap, sh = state.inverse[0], state.inverse[1]
        noise = state.noise + z + sh @ state.beta  # + (C^{-1} z)_t
        beta = state.beta - gap[:, None] * state.beta + z  # φ β + z
        return BLTState(inverse=state.inverse, beta=beta, noise=noise), noise
