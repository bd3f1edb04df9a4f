"""The strategy of a continual counter: a factorisation A = B C of the prefix-sum matrix run online.

A counter releases Ŝ_t = S_t + (B z)_t: the node values C x get independent noise z, and the
release B (C x + z) = S_t + (B z)_t. A `Strategy` says which nodes exist, which draws of step t
feed which node, and how (B z)_t follows from the draws; the noise backends (`research`,
`secure`) decide where the draws come from and how the release is computed from them.

As distrax's `Distribution` (three abstract methods, everything else defaulted), a strategy
writes four methods:

* ``sens2(T)``: sens² = max_j ‖C[:, j]‖² for unit-bounded scalar streams, event level;
* ``init_state(spec, dtype)``: its own state before step 1 (a NamedTuple, fields of one meaning);
* ``draw_shape(state)``: the shape of one step's unit draws (one row per node created);
* ``advance(state, t, z)``: (state after step t, (B z)_t) from step t's draws z: linear in z and
  dtype-generic (research floats, secure integers).

Defaults, overridden where a strategy knows better: ``sens1`` (= sens², 0/1 trees),
``row_norms2`` (‖B[t]‖² from `privacy.factorization.loss`), ``draw_mask``/``mask_table`` (every
draw row used), the research draws (``init_research``, ``research_step``: step t's draws from
``step_key(key, t)``), the R2 noise paths (``noise_paths``: bulk draws through ``advance``) and
the secure (integer) form: the strategy is its own integer strategy when C is 0/1
(``integer_strategies``), released as S_t + Σ_nodes z in integers (``secure_release``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from experiments.protocol import step_key
from privacy import factorization as fz
from privacy.continual import ContinualSpec

Unit = Callable[[jax.Array, tuple[int, ...]], jax.Array]  # (key, shape) -> iid unit draws
Reduce = Callable[[jax.Array], jax.Array]  # errors of N streams at one step (N, d) -> anything


def bit(x: jax.Array, b) -> jax.Array:
    """Bit b of the integer x (bool)."""
    return (jnp.right_shift(x, b) & 1).astype(bool)


def trailing_zeros(t: jax.Array) -> jax.Array:
    """tz(t): the number of trailing zero bits of t >= 1."""
    return jax.lax.population_count((t & -t) - 1)


class Strategy:
    """A factorisation strategy run online (module docstring: four required methods)."""

    name: ClassVar[str] = ""  # mechanism name of `privacy.factorization.loss`
    # streams x T x d elements per chunk of `privacy.counters.noise_sum_of_squares` when
    # `noise_paths` is scan-free (None: all streams at once, as the default scan over steps)
    chunk_elements: ClassVar[int | None] = None

    # ------------------------------------------------------------------ required
    def sens2(self, T: int) -> float:
        """sens² of C for unit-bounded scalar streams, event level."""
        raise NotImplementedError

    def init_state(self, spec: ContinualSpec, dtype: Any) -> Any:
        """The strategy's state before step 1, node values of type `dtype`."""
        raise NotImplementedError

    def draw_shape(self, state: Any) -> tuple[int, ...]:
        """Shape of one step's unit draws (one row per node created)."""
        raise NotImplementedError

    def advance(self, state: Any, t: jax.Array, z: jax.Array) -> tuple[Any, jax.Array]:
        """(state after step t, (B z)_t in node units) given step t's draws z."""
        raise NotImplementedError

    # ------------------------------------------------------------------ oracles
    def sens1(self, T: int) -> float:
        """ℓ1 sensitivity of C (unit-bounded scalar, event level); 0/1 trees: = sens²."""
        return self.sens2(T)

    def row_norms2(self, T: int) -> np.ndarray:
        """‖B[t]‖², t = 1..T: the per-step variance in units of the node variance."""
        return fz.loss(self.name, T) / self.sens2(T)

    # ------------------------------------------------------------------ which draws feed nodes
    def draw_mask(self, state: Any, t: jax.Array) -> jax.Array:
        """Which draws step t uses (bool, `draw_shape`): the nodes it creates (default: all)."""
        return jnp.ones(self.draw_shape(state), bool)

    def mask_table(self, T: int) -> np.ndarray:
        """(T, rows): the rows of `draw_mask` at steps 1..T, the same for all streams."""
        return np.ones((T, 1), bool)

    # ------------------------------------------------------------------ research draws
    def init_research(self, spec: ContinualSpec, key: jax.Array, unit: Unit) -> Any:
        """The research state before step 1 (default: `init_state` in floats)."""
        return self.init_state(spec, jnp.result_type(float))

    def research_step(
        self, state: Any, t: jax.Array, key: jax.Array, unit: Unit
    ) -> tuple[Any, jax.Array]:
        """Research step t: unit draws from step_key(key, t), one per row (each row feeds at
        most one node), then `advance`."""
        return self.advance(state, t, unit(step_key(key, t), self.draw_shape(state)))

    def noise_paths(
        self, spec: ContinualSpec, keys: jax.Array, unit: Unit, scale: jax.Array, reduce: Reduce
    ) -> jax.Array:
        """R2 noise paths of N streams (`keys`): for each step t, `reduce`(scale (B z)_t of the
        N streams, (N, d)), stacked (T, ...). Bulk draws: one pool of iid unit draws per stream of
        exactly the nodes used, handed to step t's rows by the static `mask_table`; the same
        distribution as the agent's `research_step` draws at a fraction of the random bits.
        A scan over `advance` (the strategy's own recursion, not the protocol), pool laid out
        step-major (nodes, N, d) so that each step reads contiguous memory."""
        state = self.init_state(spec, jnp.result_type(float))
        T, shape, N = spec.horizon, self.draw_shape(state), keys.shape[0]
        mask = self.mask_table(T)  # (T, rows)
        idx = np.cumsum(mask, axis=None).reshape(mask.shape) - 1
        idx = np.where(mask, idx, 0).astype(np.int32)
        size = (max(int(mask.sum()), 1), spec.d)
        pool = jax.vmap(lambda k: unit(k, size), out_axes=1)(keys)  # (nodes, N, d)
        states = jax.tree.map(lambda x: jnp.broadcast_to(x, (N, *x.shape)), state)

        def body(carry, xs):
            t, s = carry
            m, i = xs
            rows = [jax.lax.dynamic_index_in_dim(pool, i[r], keepdims=False) for r in range(m.size)]
            z = jnp.where(m[None, :, None], jnp.stack(rows, 1), 0.0).reshape(N, *shape)
            s, n = jax.vmap(lambda ss, zz: self.advance(ss, t, zz))(s, z)
            return (t + 1, s), reduce(scale * n)

        xs = (jnp.asarray(mask), jnp.asarray(idx))
        return jax.lax.scan(body, (jnp.ones((), jnp.int32), states), xs)[1]

    # ------------------------------------------------------------------ secure (integer) form
    def integer_strategies(self, T: int) -> Iterable[Any]:
        """Integer strategies for secure mode, preferred first; the first whose integers fit is
        used. Default: this one (C is 0/1, node values are integer sums)."""
        return (self,)

    def exact_sens(self, T: int) -> tuple[int, int]:
        """(sens², sens1) of the integer C, as integers."""
        s = self.sens2(T)
        if s != int(s):
            raise NotImplementedError(f"{self.name}: no integer sensitivity")
        return int(s), int(self.sens1(T))

    def int_need(self, T: int, grid_bound: int, zmax: int) -> int:
        """Largest integer the secure state may hold: |count| + (nodes summed) |z|."""
        return T * grid_bound + int(self.sens2(T)) * zmax

    def init_secure(self, spec: ContinualSpec) -> Any:
        """The secure state before step 1 (default: `init_state` in integers)."""
        return self.init_state(spec, jnp.result_type(int))

    def secure_release(
        self, state: Any, t: jax.Array, n: jax.Array, z: jax.Array, total: jax.Array
    ) -> tuple[Any, jax.Array]:
        """(state after step t, release in grid units) from the snapped input n_t, step t's
        integer node noise z and the exact integer S_{t-1}. Default (0/1 B): S_t + Σ_nodes z in
        integers, which *is* Σ_nodes (count + z), the sum of the noisy integer nodes."""
        state, noise = self.advance(state, t, z)
        return state, total + n + noise
