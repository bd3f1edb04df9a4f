"""The binary tree strategy (Dwork, Naor, Pitassi & Rothblum, STOC 2010; Chan, Shi & Song, ACM
TISSEC 2011, Alg. 2 "binary mechanism"): output t sums the noisy p-sums of the nodes (b, t >> b)
over the set bits b of t; sens² = sens1 = L = ⌊log2 T⌋ + 1; Var_t = popcount(t) Var(node)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple

import jax
import jax.numpy as jnp

from privacy.continual import ContinualSpec
from privacy.counters.strategy import Reduce, Strategy, Unit, bit, trailing_zeros
from privacy.factorization import binary_depth


class BinaryState(NamedTuple):
    nodes: jax.Array  # (L, d): row b is the noise of node (b, t >> b) while bit b of t is set


@dataclass(frozen=True)
class BinaryTree(Strategy):
    """One new node per step: node (tz(t), t >> tz(t)) completes at step t."""

    name: ClassVar[str] = "binary"

    def sens2(self, T: int) -> float:
        return float(binary_depth(T))

    def init_state(self, spec: ContinualSpec, dtype: Any) -> BinaryState:
        return BinaryState(nodes=jnp.zeros((binary_depth(spec.horizon), spec.d), dtype))

    def draw_shape(self, state: BinaryState) -> tuple[int, ...]:
        return state.nodes.shape[1:]

    def advance(
        self, state: BinaryState, t: jax.Array, z: jax.Array
    ) -> tuple[BinaryState, jax.Array]:
        nodes = state.nodes.at[trailing_zeros(t)].set(z)
        levels = jnp.arange(nodes.shape[0])
        return BinaryState(nodes=nodes), jnp.sum(jnp.where(bit(t, levels)[:, None], nodes, 0), 0)

    # ------------------------------------------------------------------ closed form, no scan
    @staticmethod
    def level_sizes(T: int) -> list[int]:
        """Used nodes per level: (b, m) is used iff m is odd (m = t >> b for a set bit b)."""
        return [((T >> b) + 1) // 2 for b in range(binary_depth(T))]

    @staticmethod
    def path_from_nodes(nodes: list[jax.Array], T: int) -> jax.Array:
        """Closed form (B z)_t = Σ_{bits b of t} z_b[t >> (b + 1)], t = 1..T, for the used
        nodes' noise `nodes[b]` ((level_sizes[b], d); node (b, 2i + 1) is row i): T d work per
        level, no scan, so a GPU runs all steps of all streams in parallel."""
        t = jnp.arange(1, T + 1)
        out = jnp.zeros((T, nodes[0].shape[-1]), nodes[0].dtype)
        for b, z in enumerate(nodes):
            on = bit(t, b)[:, None]
            out = out + jnp.where(on, z[jnp.minimum(t >> (b + 1), z.shape[0] - 1)], 0)
        return out

    def noise_paths(
        self, spec: ContinualSpec, keys: jax.Array, unit: Unit, scale: jax.Array, reduce: Reduce
    ) -> jax.Array:
        """Noise paths in closed form (`noise_paths_closed_form`): each stream draws its T used
        nodes level by level (from fold_in(key, level)) and `path_from_nodes` sums them; the
        same distribution as the agent's draws (iid unit noise per used node, B z)."""
        return self.noise_paths_closed_form(spec, keys, unit, scale, reduce)

    def noise_paths_closed_form(
        self, spec: ContinualSpec, keys: jax.Array, unit: Unit, scale: jax.Array, reduce: Reduce
    ) -> jax.Array:
        """(T, ...) `reduce` of scale (B z)_t over N streams, without a scan: O(N T d) memory."""
        T, d = spec.horizon, spec.d
        sizes = self.level_sizes(T)

        def path(key):
            nodes = [unit(jax.random.fold_in(key, b), (m, d)) for b, m in enumerate(sizes)]
            return self.path_from_nodes(nodes, T)

        paths = jax.vmap(path, out_axes=1)(keys)  # (T, N, d)
        return jax.vmap(reduce)(scale * paths)
