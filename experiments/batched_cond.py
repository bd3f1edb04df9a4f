"""A conditional update that runs its expensive branch only when some lane of a batch needs it.

Under ``vmap`` a `lax.cond` whose predicate is batched becomes a `select`: both branches run in
every step for every lane. The engine vmaps every step over seeds (and over a sweep's configs),
so an agent that does rare, expensive work (a re-plan when a count doubles, the release and
elimination at a phase's end) would pay for it in every step. `cond_any` keeps it a real branch:

    apply = cond_any(fn, *static)
    new = apply(pred, inputs, old)  # == where(pred, fn(inputs, *static), old), leaf by leaf

`pred` is one bool per call (per lane under vmap). A ``custom_vmap`` rule folds every vmapped
axis (seeds, configs, in any nesting) into one leading axis, so the condition stays one
unbatched ``any(pred)`` over the whole batch: `fn` runs, vmapped over all lanes, only in steps
where at least one lane needs it, and its result is kept only in those lanes. Where no lane needs
it the step costs a reduction and a branch. The results equal the plain
``where(pred, fn(inputs), old)`` exactly (same operations on the same lanes).

Rules for callers:

* `fn` is a module-level function (or a method looked up on the class) and `static` hashable
  static facts: `cond_any` is cached on them (``functools.cache``), so one ``custom_vmap``
  object serves every trace. Nothing traced may be closed over: an agent's numbers may be
  tracers (hyperparameters lifted into the program, `experiments.lift`), so pass them in
  `inputs`.
* `fn(inputs, *static)` returns a pytree with the structure, shapes and dtypes of `old`.
* Under a sweep's config axis the batch is every (config, seed) lane: `fn` runs for all of them
  when one needs it. That is the cost model: the branch costs a whole batch's worth, but only
  in the steps that need it.

`cond_lanes` has the same contract and results but runs `fn` only on the lanes that need it, a
block of `lane_block()` lanes at a time (a loop over blocks of those lanes): the better choice when
`fn` is expensive and the lanes rarely need it in the same step (per-seed refreshes), where
`cond_any` would compute the whole batch whenever one lane asks. On the CPU a block is one lane
(the cost is the lanes computed); on an accelerator it is 256 lanes, `fn` vmapped over them (a
loop iteration costs kernel launches and a device-to-host predicate, not lanes: one lane after
another made Thompson sampling 10x slower on a GPU at 10^5 seeds, bench/gpu_results.md).
``REGRETLAB_LANE_BLOCK=k`` sets the block (read when a program is traced).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from jax import custom_batching, lax


@functools.cache
def cond_any(fn: Callable, *static: Any) -> Callable[[jax.Array, Any, Any], Any]:
    """``apply(pred, inputs, old)``: ``fn(inputs, *static)`` where `pred`, else `old`, computed
    only when some lane of the (vmapped) batch has `pred` (module docstring). jit/vmap-able."""

    def solve(inputs):
        return fn(inputs, *static)

    def any_lane(pred, inputs, old):  # leading axis: the lanes
        def run(_):
            new = jax.vmap(solve)(inputs)
            return jax.tree.map(
                lambda a, b: jnp.where(pred.reshape(pred.shape + (1,) * (a.ndim - 1)), a, b),
                new,
                old,
            )

        return lax.cond(jnp.any(pred), run, lambda _: old, None)

    return _lane_folded(any_lane, "cond_any")


@functools.cache
def cond_lanes(fn: Callable, *static: Any) -> Callable[[jax.Array, Any, Any], Any]:
    """``apply(pred, inputs, old)``: as `cond_any`, but `fn` runs **only on the lanes that need
    it**, `lane_block()` lanes at a time (a `lax.fori_loop` over blocks of the lanes with `pred`,
    gathered by index; no iteration where none has it). For an expensive `fn` whose lanes rarely
    need it in the same step (re-plans at per-seed doubling refreshes) the cost is set by the
    lanes that refresh, not by the batch size: with 4 seeds of the default latent-MDP garnet,
    posterior sampling planned 552 lane-plans through `cond_any` for the 236 its seeds needed
    (20 seeds: 5320 for 1204). A block of one lane is computed by the unbatched `fn`, a larger
    block by `fn` vmapped; results equal `cond_any`'s wherever the batched and the unbatched
    programs round alike (tested for the planners and the gamma fallback)."""

    def solve(inputs):
        return fn(inputs, *static)

    def each_lane(pred, inputs, old):  # leading axis: the lanes
        lanes = pred.shape[0]
        block = min(lane_block(), lanes)
        order, count = _needing_first(pred)
        if block == 1:

            def one(k, out):
                i = order[k]
                new = solve(jax.tree.map(lambda x: x[i], inputs))
                return jax.tree.map(lambda o, n: o.at[i].set(n), out, new)

            return lax.fori_loop(0, count, one, old)

        def several(k, out):
            # the last block is shifted back to end at the last lane: lanes it shares with the
            # block before are computed again (the same values); lanes past `count` are kept
            start = jnp.minimum(k * block, lanes - block)
            idx = lax.dynamic_slice_in_dim(order, start, block)
            keep = start + jnp.arange(block) < count
            new = jax.vmap(solve)(jax.tree.map(lambda x: x[idx], inputs))

            def put(o, n):
                mask = keep.reshape(keep.shape + (1,) * (n.ndim - 1))
                return o.at[idx].set(jnp.where(mask, n, o[idx]))

            return jax.tree.map(put, out, new)

        return lax.fori_loop(0, (count + block - 1) // block, several, old)

    return _lane_folded(each_lane, "cond_lanes")


def _needing_first(pred: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(the lanes with `pred` in index order, then the others in index order; their count):
    ``argsort(~pred, stable=True)`` by two running counts and a scatter, O(lanes), no sort."""
    need = pred.astype(jnp.int32)
    count = jnp.sum(need)
    slot = jnp.where(pred, jnp.cumsum(need) - 1, count + jnp.cumsum(1 - need) - 1)
    order = jnp.zeros_like(need).at[slot].set(jnp.arange(pred.shape[0], dtype=jnp.int32))
    return order, count


LANE_BLOCK_ENV = "REGRETLAB_LANE_BLOCK"
ACCELERATOR_LANE_BLOCK = 256


def lane_block() -> int:
    """Lanes per iteration of `cond_lanes`: ``REGRETLAB_LANE_BLOCK`` if set, else 1 on the CPU
    and `ACCELERATOR_LANE_BLOCK` on another default backend (module docstring)."""
    from experiments.config import env_positive_int

    block = env_positive_int(LANE_BLOCK_ENV)  # a ConfigError (a ValueError) names the variable
    if block is not None:
        return block
    return 1 if jax.default_backend() == "cpu" else ACCELERATOR_LANE_BLOCK


def _lane_folded(kernel: Callable, name: str) -> Callable[[jax.Array, Any, Any], Any]:
    """``apply(pred, inputs, old)`` running ``kernel(pred, inputs, old)`` on arrays with one
    leading lane axis; a ``custom_vmap`` rule folds every vmapped axis (seeds, configs, in any
    nesting) into that lane axis, so `kernel` always sees the whole batch at once."""
    batch = custom_batching.custom_vmap(kernel)

    @batch.def_vmap
    def _rule(axis_size, in_batched, pred, inputs, old):
        # broadcast what is not batched, then fold (vmapped axis, lanes) into one lane axis
        args = jax.tree.map(
            lambda x, b: x if b else jnp.broadcast_to(x, (axis_size, *x.shape)),
            (pred, inputs, old),
            tuple(in_batched),
        )
        lead = args[0].shape[:2]
        flat = jax.tree.map(lambda x: x.reshape((-1, *x.shape[2:])), args)
        out = batch(*flat)
        unfolded = jax.tree.map(lambda x: x.reshape((*lead, *x.shape[1:])), out)
        return unfolded, jax.tree.map(lambda _: True, out)

    def apply(pred, inputs, old):
        pred = jnp.asarray(pred, bool)
        if pred.shape != ():
            raise ValueError(f"{name}: pred must be one bool per call (got shape {pred.shape})")
        out = batch(*jax.tree.map(lambda x: jnp.asarray(x)[None], (pred, inputs, old)))
        return jax.tree.map(lambda x: x[0], out)

    return apply
