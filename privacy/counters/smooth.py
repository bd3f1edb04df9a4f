"""The smooth binary strategy (Andersson & Pagh, NeurIPS 2023, arXiv:2306.09666, §3): the binary
tree of depth D (the smallest even D with C(D, D/2) > T) read only at leaves of Hamming weight
D/2, so every output sums D/2 nodes: Var_t = D Var(node)/2 at every t, sens² = D/2. Leaf order
by Gosper's hack as in the authors' code; the placement of inputs is our reconstruction (see
`privacy.factorization`). Secure mode checks the exact column count (`tree_sens2`) <= D/2."""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from experiments.config import ConfigError
from privacy.continual import ContinualSpec
from privacy.counters.strategy import Strategy, bit
from privacy.factorization import smooth_depth, smooth_leaves, tree_sens2


class SmoothState(NamedTuple):
    end: jax.Array  # () e_t: the leaf (of weight D/2) that output t covers up to
    nodes: jax.Array  # (D, d): row b is the noise of node (b, e_t >> b) for the set bits b of e_t


def _next(w: jax.Array) -> jax.Array:
    """The next integer of the same Hamming weight (Gosper's hack, HAKMEM item 175)."""
    lsb = w & -w
    y = w + lsb
    return y + (y & -y) // (2 * lsb) - 1


def _leaf_dtype(T: int):
    """int32 while the leaves up to w_{T+1} (weight D/2) fit below 2^31, else int64 (x64 only).

    The weight-D/2 numbers below 2^31 are C(31, D/2) (all of them when D <= 30), so from
    T = C(31, 16) = 300 540 195 (D = 32) Gosper's step would wrap in int32.
    """
    D = smooth_depth(T)
    if D <= 30 or math.comb(31, D // 2) > T:
        return jnp.int32
    if not jax.config.jax_enable_x64:
        raise ConfigError(
            f"horizon: the smooth mechanism's leaf numbers at T = {T} (depth D = {D}) overflow"
            f" int32; use x64=true or a horizon < {math.comb(31, D // 2)}"
        )
    return jnp.int64


@dataclass(frozen=True)
class SmoothBinary(Strategy):
    """Output t sums the D/2 nodes (b, e_t >> b) over the set bits b of e_t = w_{t+1}."""

    name: ClassVar[str] = "smooth"

    def sens2(self, T: int) -> float:
        return smooth_depth(T) / 2

    def exact_sens(self, T: int) -> tuple[int, int]:
        s = smooth_depth(T) // 2
        if _exact_column_count(T) > s:  # the calibration assumes it; never expected to fail
            raise ConfigError(f"horizon: smooth mechanism column count exceeds D/2 at T = {T}")
        return s, s

    def init_state(self, spec: ContinualSpec, dtype: Any) -> SmoothState:
        D = smooth_depth(spec.horizon)
        w1 = (1 << (D // 2)) - 1  # the smallest leaf of weight D/2
        end = jnp.asarray(w1, _leaf_dtype(spec.horizon))
        return SmoothState(end=end, nodes=jnp.zeros((D, spec.d), dtype))

    def draw_shape(self, state: SmoothState) -> tuple[int, ...]:
        return state.nodes.shape  # up to D new nodes per step

    def _new_nodes(self, state: SmoothState):
        e = _next(state.end)
        levels = jnp.arange(state.nodes.shape[0])
        on = bit(e, levels)
        new = jnp.right_shift(e, levels) != jnp.right_shift(state.end, levels)
        return e, on, new

    def draw_mask(self, state: SmoothState, t: jax.Array) -> jax.Array:
        _, on, new = self._new_nodes(state)
        return jnp.broadcast_to((on & new)[:, None], state.nodes.shape)

    def mask_table(self, T: int) -> np.ndarray:
        w = smooth_leaves(T)[0]  # e_t = w_{t+1}
        prev = np.concatenate([[(1 << (smooth_depth(T) // 2)) - 1], w[:-1]])
        b = np.arange(smooth_depth(T))
        on = (w[:, None] >> b) & 1 == 1
        return on & ((w[:, None] >> b) != (prev[:, None] >> b))

    def advance(
        self, state: SmoothState, t: jax.Array, z: jax.Array
    ) -> tuple[SmoothState, jax.Array]:
        e, on, new = self._new_nodes(state)
        nodes = jnp.where(on[:, None], jnp.where(new[:, None], z, state.nodes), 0)
        return SmoothState(end=e, nodes=nodes), jnp.sum(nodes, 0)


@functools.lru_cache(maxsize=64)
def _exact_column_count(T: int) -> float:
    return tree_sens2(*smooth_leaves(T))
