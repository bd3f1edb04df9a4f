"""Shared bookkeeping of marking algorithms for paging (pure JAX, per-slot arrays of shape (k,)).

A *marking algorithm* (Fiat, Karp, Luby, McGeoch, Sleator & Young, "Competitive paging
algorithms", J. Algorithms 12(4), 1991, Sec. 3) keeps one mark per cached page: a requested page
is marked; on a fault with a full cache and every cached page marked, a new phase begins and all
marks are cleared; the page evicted is always an unmarked one. Its phases are exactly the
k-distinct-pages partition (`paging.predictions.phase_ids`). Marker (the randomized algorithm of
that paper, Sec. 3) evicts a uniformly random unmarked page; Mark0, Mark&Predict, the robust
combinations and PredictiveMarker / LMarker differ only in which unmarked page they choose.

Marks live per *slot* (the env's cache slots: the page in slot i is ``obs.slot_page[i]``); a slot
whose page is evicted receives the requested page, which is then marked.

    marks = new_marks(k)                                    # in the agent's init
    # in act, on a fault with a full cache (obs.slot < 0):
    cleared = start_phase(marks, full_fault)                # marks after a possible new phase
    slot = choose_uniform(~cleared.marked, rng["u"])        # uniform among unmarked slots
    # in update:
    marks = mark(start_phase(marks, full_fault), feedback.slot)

`choose_uniform(mask, u)` maps one engine-drawn uniform u in [0, 1) to the floor(u * m)-th set
entry of `mask` (m = its number of set entries), i.e. a uniform choice; -1 when the mask is
empty. `choose_preferred(preferred, fallback, u)` picks uniformly among `preferred` when any is
set, else among `fallback` (e.g. Mark&Predict: unmarked pages predicted not to be requested in
the next phase, else any unmarked page).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

_BLOCK = 32  # slots per block of choose_uniform's two-level prefix counts


class Marks(NamedTuple):
    """Marking state: ``marked`` (k,) bool per slot; ``phase``: phases begun so far (a new
    phase is counted when all marks are cleared on a fault)."""

    marked: jax.Array
    phase: jax.Array


def new_marks(k: int) -> Marks:
    return Marks(marked=jnp.zeros((k,), bool), phase=jnp.zeros((), jnp.int32))


def full_fault(obs) -> jax.Array:
    """True on a fault with a full cache (the only step whose action the env reads)."""
    return ~obs.hit & (obs.slot < 0)


def start_phase(marks: Marks, full_fault_now: jax.Array) -> Marks:
    """Clear every mark (a new phase) when a fault with a full cache meets no unmarked slot."""
    new = full_fault_now & jnp.all(marks.marked)
    return Marks(
        marked=jnp.where(new, jnp.zeros_like(marks.marked), marks.marked),
        phase=marks.phase + new.astype(marks.phase.dtype),
    )


def mark(marks: Marks, slot: jax.Array) -> Marks:
    """Mark `slot` (the slot now holding the requested page)."""
    return marks._replace(marked=marks.marked.at[slot].set(True))


def choose_uniform(mask: jax.Array, u: jax.Array) -> jax.Array:
    """A uniformly random set entry of `mask` from one uniform `u` in [0, 1) (int32; -1 if
    none): the floor(u m)-th set entry in slot order, m = number of set entries.

    Two-level prefix counts (blocks of `_BLOCK` slots): a cumulative sum over the k / _BLOCK
    block counts finds the block, one over that block's entries the slot. (``jnp.cumsum`` over
    all k slots cost ~50 us per step at k = 1000 on CPU.)
    """
    k = mask.shape[0]
    count = jnp.sum(mask, dtype=jnp.int32)
    j = jnp.minimum(jnp.floor(u * count).astype(jnp.int32), jnp.maximum(count - 1, 0))
    if k <= _BLOCK:
        csum = jnp.cumsum(mask, dtype=jnp.int32)
        slot = jnp.argmax(mask & (csum == j + 1)).astype(jnp.int32)
        return jnp.where(count > 0, slot, -1)
    blocks = -(-k // _BLOCK)
    padded = jnp.zeros((blocks * _BLOCK,), bool).at[:k].set(mask).reshape(blocks, _BLOCK)
    per_block = jnp.sum(padded, axis=1, dtype=jnp.int32)
    before = jnp.cumsum(per_block) - per_block  # set entries in the blocks before each block
    b = jnp.sum((before + per_block) <= j).astype(jnp.int32)  # first block reaching j + 1
    b = jnp.minimum(b, blocks - 1)
    local = jax.lax.dynamic_index_in_dim(padded, b, keepdims=False)
    csum = jnp.cumsum(local, dtype=jnp.int32) + before[b]
    slot = b * _BLOCK + jnp.argmax(local & (csum == j + 1)).astype(jnp.int32)
    return jnp.where(count > 0, slot, -1)


def choose_preferred(preferred: jax.Array, fallback: jax.Array, u: jax.Array) -> jax.Array:
    """Uniform among `preferred` if any entry is set, else uniform among `fallback`."""
    use = jnp.any(preferred)
    return choose_uniform(jnp.where(use, preferred, fallback), u)
