"""The binary tree strategy (Dwork, Naor, Pitassi & Rothblum, STOC 2010; Chan, Shi & Song, ACM
TISSEC 2011, Alg. 2 "binary mechanism"): output t sums the noisy p-sums of the nodes (b, t >> b)
over the set bits b of t; sens² = sens1 = L = ⌊log2 T⌋ + 1; Var_t = popcount(t) Var(node)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from privacy.continual import ContinualSpec
from privacy.counters.strategy import Reduce, Strategy, Unit, bit, trailing_zeros
from privacy.factorization import binary_depth


class BinaryState(NamedTuple):
    nodes: jax.Array  # (L, d): row b is the noise of node (b, t >> b) while bit b of t is set


@dataclass(frozen=True)
class BinaryTree(Strategy):
    """One new node per step: node (tz(t), t >> tz(t)) completes at step t."""

    name: ClassVar[str] = "binary"
    chunk_elements: ClassVar[int | None] = 1 << 18  # scan-free `noise_paths`

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
        nodes' noise `nodes[b]` (at least `level_sizes`[b] rows of shape (d,); node (b, 2i + 1)
        is row i; rows beyond (T >> (b + 1)) + 1 are ignored, missing ones are taken as 0).

        By prefix doubling from the top level down (the binary mechanism's decomposition of t
        into the nodes of its set bits, module docstring): P_b[m] = (B z) at t = m 2^b,
        m = 0..T >> b, is P_{b+1}[m / 2] for even m and P_{b+1}[(m - 1) / 2] + z_b[(m - 1) / 2]
        for odd m, so each level interleaves the level above with itself plus that level's
        nodes: about 2T additions and copies in all, no gather and no scan."""
        path = jnp.zeros((1, nodes[0].shape[-1]), nodes[0].dtype)  # P_L: t = 0 only
        for b in reversed(range(len(nodes))):
            rows = path.shape[0]  # (T >> (b + 1)) + 1
            z = nodes[b][:rows]
            if z.shape[0] < rows:
                z = jnp.concatenate([z, jnp.zeros((rows - z.shape[0], z.shape[1]), z.dtype)])
            path = jnp.stack([path, path + z], 1).reshape(2 * rows, -1)[: (T >> b) + 1]
        return path[1:]

    def noise_paths(
        self, spec: ContinualSpec, keys: jax.Array, unit: Unit, scale: jax.Array, reduce: Reduce
    ) -> jax.Array:
        """Noise paths in closed form (`noise_paths_closed_form`): each stream draws its nodes
        in one bulk call and `path_from_nodes` sums them; the same distribution as the agent's
        draws (iid unit noise per used node, B z)."""
        return self.noise_paths_closed_form(spec, keys, unit, scale, reduce)

    def noise_paths_closed_form(
        self, spec: ContinualSpec, keys: jax.Array, unit: Unit, scale: jax.Array, reduce: Reduce
    ) -> jax.Array:
        """(T, ...) `reduce` of scale (B z)_t over N streams, without a scan: O(N T d) memory.
        Stream k draws (T >> (b + 1)) + 1 nodes of level b (the used ones and at most one more
        per level, which `path_from_nodes` ignores), T + L at most, in one `unit`(key) call."""
        T, d = spec.horizon, spec.d
        rows = [(T >> (b + 1)) + 1 for b in range(binary_depth(T))]
        ends = np.cumsum([0, *rows])

        def path(key):
            z = unit(key, (int(ends[-1]), d))
            return self.path_from_nodes([z[lo:hi] for lo, hi in itertools.pairwise(ends)], T)

        paths = jax.vmap(path, out_axes=1)(keys)  # (T, N, d)
        return jax.vmap(reduce)(scale * paths)
