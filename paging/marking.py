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

Marker itself keeps `FreeList` (`new_free_list`, `free_start_phase`, `free_choose`,
`free_mark`): the unmarked slots as the prefix of a permutation of the slots, so a uniform
choice is one read (``order[floor(u m)]``), marking a swap-remove and a new phase a counter reset:
O(1) per request, no reduction over the slots. The law of the choice is the same (uniform over
the unmarked slots, u independent of the past); which slot a given u picks differs from
`choose_uniform`'s slot order (the order is the permutation's, fixed by the past).

`Tournament` (`tournament`, `winner`, `set_key`): the first slot of largest (or smallest) key,
two levels of `_BLOCK`-slot blocks, O(k / 32 + 32) per update and query (O(sqrt k) at
k ~ 1000; Belady's furthest next request, LRU's least recent use).

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

_BLOCK = 32  # slots per block (choose_uniform's prefix counts, Tournament)


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


# --------------------------------------------------------------------------- block structures
def _blocks(k: int) -> int:
    return -(-k // _BLOCK)


def _block_of(table: jax.Array, b: jax.Array) -> jax.Array:
    """Entries b * _BLOCK ... b * _BLOCK + _BLOCK - 1 of a table padded to whole blocks."""
    return jax.lax.dynamic_slice_in_dim(table, b * _BLOCK, _BLOCK)


class Tournament(NamedTuple):
    """Per-slot keys padded to whole blocks of `_BLOCK` slots (padding holds a key that never
    wins) and the best key of each block."""

    key: jax.Array  # (blocks * _BLOCK,) int32
    best: jax.Array  # (blocks,) int32


def tournament(k: int, initial: int, largest: bool) -> Tournament:
    """k slots holding `initial`; the winner is the first slot of largest key when `largest`
    (else smallest)."""
    pad = jnp.iinfo(jnp.int32).min if largest else jnp.iinfo(jnp.int32).max
    nb = _blocks(k)
    key = jnp.full((nb * _BLOCK,), pad, jnp.int32).at[:k].set(initial)
    best = jnp.max if largest else jnp.min
    return Tournament(key=key, best=best(key.reshape(nb, _BLOCK), axis=1))


def winner(t: Tournament, largest: bool) -> jax.Array:
    """The first slot holding the largest (smallest) key: the first block whose best is the
    best, then the first such slot in it (the slot ``jnp.argmax`` / ``argmin`` over all keys
    returns)."""
    arg = jnp.argmax if largest else jnp.argmin
    b = arg(t.best).astype(jnp.int32)
    return b * _BLOCK + arg(_block_of(t.key, b)).astype(jnp.int32)


def set_key(t: Tournament, slot: jax.Array, value: jax.Array, largest: bool) -> Tournament:
    """Slot `slot` now holds `value` (its block's best recomputed from the block)."""
    key = t.key.at[slot].set(value)
    b = slot // _BLOCK
    best = (jnp.max if largest else jnp.min)(_block_of(key, b))
    return Tournament(key=key, best=t.best.at[b].set(best))


class LexTournament(NamedTuple):
    """`Tournament` for keys that are pairs (a, b), smallest first in lexicographic order
    (LFU: requests of the page, then its last request): ``table[0]`` the a's, ``table[1]`` the
    b's, each laid out as `Tournament.table` (slots padded to whole blocks, then each block's
    best pair)."""

    table: jax.Array  # (2, nb * (_BLOCK + 1)) int32


def _lex_arg(a: jax.Array, b: jax.Array) -> jax.Array:
    """Index of the lexicographically smallest (a, b) (the first such one)."""
    big = jnp.iinfo(jnp.int32).max
    return jnp.argmin(jnp.where(a == jnp.min(a), b, big)).astype(jnp.int32)


def lex_tournament(k: int, initial: tuple[int, int]) -> LexTournament:
    """k slots holding the pair `initial` (padding slots hold a pair that never wins)."""
    big = jnp.iinfo(jnp.int32).max
    nb = _blocks(k)
    rows = []
    for v in initial:
        key = jnp.full((nb * _BLOCK,), big, jnp.int32).at[:k].set(v)
        rows.append(key)
    blocks = [r.reshape(nb, _BLOCK) for r in rows]
    i = jax.vmap(_lex_arg)(*blocks)
    best = [jnp.take_along_axis(x, i[:, None], axis=1)[:, 0] for x in blocks]
    return LexTournament(
        table=jnp.stack([jnp.concatenate([r, bb]) for r, bb in zip(rows, best, strict=True)])
    )


def lex_winner(t: LexTournament) -> jax.Array:
    """The slot of lexicographically smallest pair (the first such slot)."""
    nb = t.table.shape[-1] // (_BLOCK + 1)
    b = _lex_arg(t.table[0, nb * _BLOCK :], t.table[1, nb * _BLOCK :])
    blk = jax.lax.dynamic_slice_in_dim(t.table, b * _BLOCK, _BLOCK, axis=1)
    return b * _BLOCK + _lex_arg(blk[0], blk[1])


def lex_set_key(t: LexTournament, slot: jax.Array, value: tuple) -> LexTournament:
    """Slot `slot` now holds the pair `value` (its block's best pair recomputed from the block
    as it was, with `value` in place of the slot's old pair; one scatter of two columns)."""
    nb = t.table.shape[-1] // (_BLOCK + 1)
    b = slot // _BLOCK
    v = jnp.stack([jnp.asarray(x, jnp.int32) for x in value])
    blk = jax.lax.dynamic_slice_in_dim(t.table, b * _BLOCK, _BLOCK, axis=1)
    blk = jnp.where(jnp.arange(_BLOCK) == slot % _BLOCK, v[:, None], blk)
    best = blk[:, _lex_arg(blk[0], blk[1])]
    idx = jnp.stack([slot, nb * _BLOCK + b])
    return LexTournament(table=t.table.at[:, idx].set(jnp.stack([v, best], axis=1)))


class FreeList(NamedTuple):
    """Marks as a permutation of the slots, the unmarked ones first: ``table[:k]`` is the
    permutation (``order``; the unmarked slots are ``order[:free]``), ``table[k:]`` its inverse
    (``where``: the position of each slot in ``order``).

    Marking an unmarked slot s moves it to position ``free - 1`` (the slot there takes s's
    position; "swap-remove") and decrements ``free``; a new phase sets ``free = k``: every slot
    is unmarked again and the permutation stays valid as it is, so nothing is rewritten. A
    uniform choice among the unmarked slots is ``order[floor(u free)]``: one read. Marked slots
    sit in ``order[free:]`` in reverse order of marking, so a new phase lists the slots in
    reverse order of their marking in the phase that ended (the order `free_choose` indexes;
    initially ``order`` is 0, ..., k - 1 and every slot is unmarked).
    """

    table: jax.Array  # (2 k,) int32: order, then where
    free: jax.Array  # number of unmarked slots
    phase: jax.Array  # phases begun so far (as `Marks.phase`)


def new_free_list(k: int) -> FreeList:
    ident = jnp.arange(k, dtype=jnp.int32)
    return FreeList(
        table=jnp.concatenate([ident, ident]),
        free=jnp.full((), k, jnp.int32),
        phase=jnp.zeros((), jnp.int32),
    )


def free_start_phase(marks: FreeList, full_fault_now: jax.Array) -> FreeList:
    """`start_phase` for `FreeList`: a fault with a full cache and no unmarked slot unmarks
    every slot (one more phase); O(1)."""
    k = marks.table.shape[0] // 2
    new = full_fault_now & (marks.free == 0)
    return marks._replace(
        free=jnp.where(new, k, marks.free), phase=marks.phase + new.astype(marks.phase.dtype)
    )


def free_choose(marks: FreeList, u: jax.Array) -> jax.Array:
    """A uniformly random unmarked slot from one uniform `u` in [0, 1): ``order[floor(u m)]``,
    m = ``free`` (int32; -1 when every slot is marked). One read of the table."""
    m = marks.free
    j = jnp.minimum(jnp.floor(u * m).astype(jnp.int32), jnp.maximum(m - 1, 0))
    return jnp.where(m > 0, marks.table[j], -1)


def free_mark(marks: FreeList, slot: jax.Array) -> FreeList:
    """Mark `slot` (nothing if it is marked): one gather of (where[slot], order[free - 1]) and
    one scatter of four entries at distinct positions (dropped when nothing moves)."""
    table, m = marks.table, marks.free
    k = table.shape[0] // 2
    s = jnp.asarray(slot, jnp.int32)
    last = m - 1
    pos, other = table[jnp.stack([k + s, jnp.maximum(last, 0)])]
    unmarked = pos < m
    move = unmarked & (pos != last)  # s is not at the end of the unmarked prefix already
    drop = 2 * k + jnp.arange(4, dtype=jnp.int32)  # out of range: dropped
    idx = jnp.where(move, jnp.stack([pos, last, k + other, k + s]), drop)
    val = jnp.stack([other, s, pos, last])
    return marks._replace(
        table=table.at[idx].set(val, mode="drop", unique_indices=True),
        free=m - unmarked.astype(jnp.int32),
    )
