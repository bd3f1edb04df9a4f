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

The R2 noise paths (`BLTStrategy.noise_paths`) evaluate the same recurrence in blocks of K
steps (the chunked form of a linear state recurrence, as in Dao & Gu, "Transformers are SSMs",
ICML 2024, §6): inside a block, the response to the block's own draws is Toeplitz(b_0..b_{K-1})
(a K x K matrix product for all blocks of all streams at once), plus the response to the state
(β, noise) at the block's start; the state is carried across the T/K blocks by a short scan.

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
from privacy.counters.strategy import Reduce, Unit
from privacy.counters.toeplitz import Toeplitz

BLOCK = 64  # steps per block of the R2 noise paths (`BLTStrategy.noise_paths`)


class BlockOperators(NamedTuple):
    """The recurrence of `BLTStrategy.advance` over one block of K steps (float64, numpy):
    outputs k = 0..K-1 and the state after the block, as linear maps of the block's draws z
    and of the state (β, noise) at its start."""

    toeplitz: np.ndarray  # (K, K): output k from z_i, zero start state: b_{k-i} (k >= i)
    from_beta: np.ndarray  # (K, m): output k from β_j at the start: ŝ_j Σ_{i<=k} φ_j^i
    beta_from_z: np.ndarray  # (K, m): β_j after the block from z_i: φ_j^{K-1-i}
    beta_decay: np.ndarray  # (m,): β_j after the block from β_j at the start: φ_j^K


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
    chunk_elements: ClassVar[int | None] = 1 << 20  # scan-free `noise_paths`

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

    # ------------------------------------------------------------------ R2: blocks, no step scan
    def block_operators(self, T: int, K: int) -> BlockOperators:
        """`BlockOperators` of blocks of K steps, from the inverse BLT (φ, ŝ) of horizon T's
        strategy (the same parameters as `init_state`)."""
        inv = self.blt(T).inverse()
        phi = 1.0 - (1.0 - inv.decay)  # as `advance`: φ = 1 - gap
        power = phi[None, :] ** np.arange(K + 1, dtype=np.float64)[:, None]  # (K + 1, m)
        y = np.concatenate([[1.0], power[: K - 1] @ inv.scale])  # response of y_{i+k} to z_i
        b = np.cumsum(y)  # noise_k = Σ_{l<=k} y_l: b_0..b_{K-1}
        lag = np.arange(K)[:, None] - np.arange(K)[None, :]
        return BlockOperators(
            toeplitz=np.where(lag >= 0, b[np.clip(lag, 0, K - 1)], 0.0),
            from_beta=inv.scale[None, :] * np.cumsum(power[:K], 0),
            beta_from_z=power[K - 1 :: -1][:K],
            beta_decay=power[K],
        )

    def paths_from_draws(self, z: jax.Array, T: int, K: int = BLOCK) -> jax.Array:
        """(B z) of S scalar streams: z (S, nb K) of unit draws, nb = ceil(T / K) blocks ->
        (S, T) noise paths (draws beyond T only feed outputs beyond T)."""
        S, n = z.shape
        K = min(K, n)
        nb = n // K
        ops = self.block_operators(T, K)
        f = lambda a: jnp.asarray(a, z.dtype)
        zb = z.reshape(S * nb, K)
        local = (zb @ f(ops.toeplitz).T).reshape(S, nb, K)  # zero start state
        into_beta = (zb @ f(ops.beta_from_z)).reshape(S, nb, -1)
        last = f(ops.from_beta[K - 1])
        decay = f(ops.beta_decay)

        def block(carry, xs):  # the state at the start of the next block
            beta, noise = carry
            zbeta, end = xs
            return (decay * beta + zbeta, noise + end + beta @ last), (beta, noise)

        start = (jnp.zeros((S, ops.beta_decay.size), z.dtype), jnp.zeros((S,), z.dtype))
        xs = (jnp.swapaxes(into_beta, 0, 1), jnp.swapaxes(local[:, :, K - 1], 0, 1))
        beta, noise = jax.lax.scan(block, start, xs)[1]  # (nb, S, m), (nb, S)
        out = local + jnp.einsum("bsj,kj->sbk", beta, f(ops.from_beta)) + noise.T[:, :, None]
        return out.reshape(S, nb * K)[:, :T]

    def noise_paths(
        self, spec: ContinualSpec, keys: jax.Array, unit: Unit, scale: jax.Array, reduce: Reduce
    ) -> jax.Array:
        """R2 noise paths in blocks (`paths_from_draws`, module docstring): each stream draws
        ceil(T / K) K unit draws per coordinate in one `unit`(key) call; the same law as the
        agent's draws (B z, iid unit z), computed without a scan over steps."""
        T, d = spec.horizon, spec.d
        K = min(BLOCK, T)
        n = -(-T // K) * K
        z = jax.vmap(lambda k: unit(k, (d, n)))(keys)  # (N, d, n)
        paths = self.paths_from_draws(z.reshape(-1, n), T, K).reshape(-1, d, T)
        return jax.vmap(reduce)(scale * jnp.transpose(paths, (2, 0, 1)))
