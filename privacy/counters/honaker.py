"""Honaker's variance-reduced tree, online variant (Honaker, TPDP 2015; the recursion of TF
Privacy's `EfficientTreeAggregator`): every completed node gets noise z; a level-j node's
estimate is a_j (own noisy sum) + (1 - a_j)(left child + right child estimates),
a_j = 2^j/(2^{j+1} - 1) (inverse-variance weights); output t sums the estimates of the nodes
(j, t >> j) over the set bits j of t. sens² = sens1 = L; Var_t = Var(node) Σ_{bits j of t}
‖est_j‖² (`privacy.factorization.honaker_loss`)."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from experiments.config import ConfigError
from experiments.protocol import step_key
from privacy.continual import ContinualSpec
from privacy.counters.strategy import Reduce, Strategy, Unit, bit, trailing_zeros
from privacy.counters.tree import BinaryTree
from privacy.factorization import binary_depth, honaker_weights


class HonakerState(NamedTuple):
    est: jax.Array  # (L, d): row j is the noise of the estimate of the last level-j left node
    ahead: jax.Array  # (L, d): research agent only: row j >= 1 is the noise pre-drawn for the
    # level-j node that completes next (zeros elsewhere, unused by `advance`)


class HonakerCounts(NamedTuple):
    """Secure state: the estimates are post-processing of the noisy integer nodes."""

    est: jax.Array  # (L, d) float: the estimate of the last level-j left node
    counts: jax.Array  # (L, d) int: the exact count (grid units) of that node


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
class Honaker(Strategy):
    """Step t completes the nodes (j, t >> j), j = 0..tz(t): draw rows 0..tz(t) are used.

    Research draws: two per step (`step_draws`) instead of L; every node's noise is drawn once,
    at the midpoint of its span, and kept in `ahead` until the node completes."""

    unrolled: bool | None = None  # the level recursion's form in `advance` (None: by backend)

    name: ClassVar[str] = "honaker"
    chunk_elements: ClassVar[int | None] = 1 << 18  # scan-free `noise_paths`

    def __post_init__(self):
        if self.unrolled not in (None, True, False):
            raise ConfigError(f"unrolled: must be true, false or null (got {self.unrolled!r})")

    def sens2(self, T: int) -> float:
        return float(binary_depth(T))

    def init_state(self, spec: ContinualSpec, dtype: Any) -> HonakerState:
        zeros = jnp.zeros((binary_depth(spec.horizon), spec.d), dtype)
        return HonakerState(est=zeros, ahead=zeros)

    def draw_shape(self, state: HonakerState | HonakerCounts) -> tuple[int, ...]:
        return state.est.shape  # row j: the level-j node ending at t (used if j <= tz(t))

    def draw_mask(self, state: HonakerState | HonakerCounts, t: jax.Array) -> jax.Array:
        rows = jnp.arange(state.est.shape[0]) <= trailing_zeros(t)
        return jnp.broadcast_to(rows[:, None], state.est.shape)

    def mask_table(self, T: int) -> np.ndarray:
        t = np.arange(1, T + 1, dtype=np.int64)
        top = np.bitwise_count((t & -t) - 1)
        return np.arange(binary_depth(T))[None, :] <= top[:, None]

    def advance(
        self, state: HonakerState, t: jax.Array, z: jax.Array
    ) -> tuple[HonakerState, jax.Array]:
        """The estimates n_j = a_j z_j + (1 - a_j)(est[j-1] + n_{j-1}) of nodes (j, t >> j),
        j = 0..top (a_0 = 1, n_0 = z_0), bottom-up. On the CPU a loop over levels 1..top (two
        levels per step on average); on an accelerator the unrolled form
        n_top = Σ_{j<=top} W[top, j] u_j, u_j = a_j z_j + (1 - a_j) est[j-1],
        W[top, j] = Π_{j<i<=top} (1 - a_i) (`honaker_chain`): all L levels in parallel, no
        loop (`unrolled`: None = by backend; both forms are tested)."""
        L = state.est.shape[0]
        a = jnp.asarray(honaker_weights(L), z.dtype)[:, None]
        top = trailing_zeros(t)  # levels 0..top end at t
        unrolled = jax.default_backend() != "cpu" if self.unrolled is None else self.unrolled
        if unrolled:
            u = a * z + (1 - a) * jnp.roll(state.est, 1, axis=0)  # row 0: z_0 (1 - a_0 = 0)
            n = jnp.sum(jnp.asarray(honaker_chain(L), z.dtype)[top][:, None] * u, 0)
        else:

            def level(j, n):  # estimate of node (j, t >> j) from its own draw and its children
                return a[j] * z[j] + (1 - a[j]) * (state.est[j - 1] + n)

            n = jax.lax.fori_loop(1, top + 1, level, z[0])
        est = state.est.at[top].set(n)  # node (top, t >> top) is a left child: keep it
        levels = jnp.arange(L)
        noise = jnp.sum(jnp.where(bit(t, levels)[:, None], est, 0.0), 0)
        return state._replace(est=est), noise

    # ------------------------------------------------------------------ research: two draws
    def step_draws(self, key: jax.Array, t: jax.Array, d: int, unit: Unit) -> jax.Array:
        """Research draws of step t, (2, d) from step_key(key, t): row 0 is the leaf (0, t);
        row 1 the level-(tz(t) + 1) node, which completes 2^tz(t) steps later."""
        return unit(step_key(key, t), (2, d))

    def research_step(
        self, state: HonakerState, t: jax.Array, key: jax.Array, unit: Unit
    ) -> tuple[HonakerState, jax.Array]:
        """Step t's node draws: the leaf's fresh, levels 1..top pre-drawn in ahead[j] (the
        level-j node ending at t was drawn at t - 2^(j-1), the one step in its span with
        tz = j - 1, and nothing writes ahead[j] in between); then ahead[top + 1] gets the next."""
        u = self.step_draws(key, t, state.est.shape[1], unit)
        top = trailing_zeros(t)
        new, noise = self.advance(state, t, state.ahead.at[0].set(u[0]))
        ahead = state.ahead.at[top + 1].set(u[1], mode="drop")  # top + 1 = L: no such level
        return new._replace(ahead=ahead), noise

    # ------------------------------------------------------------------ closed form, no scan
    @staticmethod
    def path_from_draws(z: jax.Array, T: int) -> jax.Array:
        """(B z)_t, t = 1..T, (T, d), from the draws z of all nodes, level by level: rows
        [Σ_{i<j} (T >> i), Σ_{i<=j} (T >> i)) of z are the level-j nodes (j, m), m = 1..T >> j.
        Estimates bottom-up, n_{j,m} = a_j z_{j,m} + (1 - a_j)(n_{j-1,2m-1} + n_{j-1,2m}), the
        recursion of `advance` for all nodes of a level at once; then output t sums the
        estimates of the nodes (j, t >> j) over the set bits j of t (odd t >> j), by the binary
        tree's prefix doubling (`BinaryTree.path_from_nodes`). About 2T draws and 4T additions
        per stream, no scan. The children's sums are a dot with (1, 1) (exact in float32 at
        HIGHEST precision): a dot's operand is materialised, so XLA does not fuse a level's
        estimates (and the draws' last stage) into the next level's and into the doubling,
        which recomputed them several times per draw (R2: about 0.7x the fused form's CPU
        time)."""
        levels = binary_depth(T)
        a = honaker_weights(levels)
        pair = jnp.ones((2,), z.dtype)
        est, lo = [], 0
        for j in range(levels):
            c = T >> j
            zj = z[lo : lo + c]
            if j:
                kids = jnp.einsum(  # nodes 2m - 1 + 2m
                    "mpd,p->md",
                    est[-1][: 2 * c].reshape(c, 2, -1),
                    pair,
                    precision=jax.lax.Precision.HIGHEST,
                )
                zj = a[j] * zj + (1 - a[j]) * kids
            est.append(zj)
            lo += c
        return BinaryTree.path_from_nodes([e[::2] for e in est], T)  # row i: node (j, 2i + 1)

    def noise_paths(
        self, spec: ContinualSpec, keys: jax.Array, unit: Unit, scale: jax.Array, reduce: Reduce
    ) -> jax.Array:
        """R2 noise paths without a scan: each stream draws all Σ_j (T >> j) node values in one
        `unit`(key) call and `path_from_draws` computes B z; the same distribution as the
        agent's draws (iid unit noise per node)."""
        T, d = spec.horizon, spec.d
        nodes = sum(T >> j for j in range(binary_depth(T)))
        paths = jax.vmap(lambda k: self.path_from_draws(unit(k, (nodes, d)), T), out_axes=1)(keys)
        return jax.vmap(reduce)(scale * paths)

    # ------------------------------------------------------------------ secure
    def int_need(self, T: int, grid_bound: int, zmax: int) -> int:
        return T * grid_bound + zmax  # one node value y = count + z

    def init_secure(self, spec: ContinualSpec) -> HonakerCounts:
        shape = (binary_depth(spec.horizon), spec.d)
        return HonakerCounts(
            est=jnp.zeros(shape, jnp.result_type(float)),
            counts=jnp.zeros(shape, jnp.result_type(int)),
        )

    def secure_release(
        self, state: HonakerCounts, t: jax.Array, n: jax.Array, z: jax.Array, total: jax.Array
    ) -> tuple[HonakerCounts, jax.Array]:
        """The estimates from the noisy integer node values y = count + z only (level by level,
        as `advance`), so the release is post-processing of them; `total` is not used."""
        L = state.est.shape[0]
        dt = state.est.dtype
        a = honaker_weights(L)
        top = trailing_zeros(t)
        c = n  # count of node (0, t)
        est = (c + z[0]).astype(dt)  # a_0 = 1: the leaf's own noisy value
        for j in range(1, L):
            cj = state.counts[j - 1] + c  # node (j, t >> j) = left child (kept) + right child
            cand = a[j] * (cj + z[j]).astype(dt) + (1 - a[j]) * (state.est[j - 1] + est)
            on = j <= top
            est, c = jnp.where(on, cand, est), jnp.where(on, cj, c)
        new = HonakerCounts(est=state.est.at[top].set(est), counts=state.counts.at[top].set(c))
        levels = jnp.arange(L)
        release = jnp.sum(jnp.where(bit(t, levels)[:, None], new.est, 0.0), 0)
        return new, release
