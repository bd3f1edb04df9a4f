"""Classic paging algorithms as agents of ``env=paging`` (`paging.env`): LRU, FIFO, LFU, Marker and
Belady's offline OPT.

Each agent keeps per-slot metadata of shape (k,) (LFU: also per-page counts (n,)) and answers,
on a fault with a full cache, the slot to evict; the env ignores the action otherwise. Per
request: FIFO O(1); LRU, LFU and Belady O(k / 32 + 32) (a two-level tournament over blocks of
32 slots, `paging.marking.Tournament`); Marker O(1) (the unmarked slots as the prefix of a
permutation, `paging.marking.FreeList`).

* `LRU`: evict the least recently used page (Sleator & Tarjan, "Amortized efficiency of list
  update and paging rules", CACM 28(2), 1985, Sec. 3: k-competitive).
* `FIFO`: evict the page that entered the cache first (same paper, Sec. 3: k-competitive). Slots are
  filled in order and the requested page takes the evicted slot, so FIFO evicts slots
  0, 1, ..., k-1, 0, ... in turn.
* `LFU`: evict the page requested least often so far (counts over the whole history, "perfect
  LFU"), ties to the least recently used (Sleator & Tarjan 1985, Sec. 3, where LFU is shown not to
  be competitive); the rule is stated exactly in `LFU`'s docstring.
* `Marker`: the randomized marking algorithm of Fiat, Karp, Luby, McGeoch, Sleator & Young,
  "Competitive paging algorithms" (J. Algorithms 12(4), 1991, Sec. 3; 2H_k-competitive): mark
  each requested page; on a fault with a full cache and all pages marked, unmark all (a new
  phase); evict a uniformly random unmarked page (one engine-drawn uniform per step: entry
  floor(u m) of the list of the m unmarked slots that `paging.marking.FreeList` keeps).
* `Belady`: the offline optimum (Belady, "A study of replacement algorithms for a virtual-storage
  computer", IBM Systems Journal 5(2), 1966): evict the page whose next request is furthest;
  ties (only pages never requested again) to the lowest slot, the rule `paging.opt` pins. By
  default it replays the env's host pass (``obs.opt_slot``); ``replay=False`` computes it from
  the exact ``obs.next_arrival``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import jax
import jax.numpy as jnp

from experiments.protocol import UNIFORM, AgentBase, Draw
from paging.env import PagingSpec
from paging.marking import (
    FreeList,
    LexTournament,
    Tournament,
    free_choose,
    free_mark,
    free_start_phase,
    full_fault,
    lex_set_key,
    lex_tournament,
    lex_winner,
    new_free_list,
    set_key,
    tournament,
    winner,
)


class LRUState(NamedTuple):
    links: jax.Array  # (2 (k + 1),): next[0..k], then prev[0..k]; k is the list's sentinel
    tail: jax.Array  # prev[k]: the least recently used slot (kept apart; see `LRU`)


@dataclass(frozen=True)
class LRU(AgentBase):
    """Least recently used (Sleator & Tarjan, CACM 1985, Sec. 3).

    The slots form a doubly linked list in order of last use (most recent first) with a
    sentinel k: ``next[k]`` is the most recent slot, ``prev[k]`` the least recent one (the
    slot to evict); a slot not yet in the list has ``prev = -1``. A request moves its slot to
    the front: one gather of (prev[s], next[s], next[k]) and one scatter of at most six entries
    at distinct positions (a step that changes nothing drops its writes), so a step is O(1)
    with no reduction over the slots. The least recent slot is also kept as a scalar, so `act`
    does not read the table: every read of the table is then an ancestor of its update and
    XLA updates it in place (a cheap read of the table in `act` was fused into the env's
    consumers of the action, which made XLA copy the table twice per step).
    """

    def init(self, key, spec: PagingSpec) -> LRUState:
        k = spec.cache_size
        links = jnp.full((2 * (k + 1),), -1, jnp.int32)
        return LRUState(
            links=links.at[jnp.array([k, 2 * k + 1])].set(k), tail=jnp.full((), k, jnp.int32)
        )

    def act(self, rng, state: LRUState, obs):
        return state.tail

    def update(self, state: LRUState, obs, action, feedback) -> LRUState:
        links = state.links
        k = links.shape[0] // 2 - 1
        s = jnp.asarray(feedback.slot, jnp.int32)
        prv, nxt, head = links[jnp.stack([k + 1 + s, s, jnp.int32(k)])]
        linked = prv >= 0
        move = prv != k  # s is not at the front already (k = its sentinel predecessor)
        drop = 2 * (k + 1) + jnp.arange(6, dtype=jnp.int32)  # out of range: dropped
        unlink = linked & move
        # unlink s (next[prv] = nxt, prev[nxt] = prv), then push it to the front
        idx = jnp.stack(
            [
                jnp.where(unlink, prv, drop[0]),
                jnp.where(unlink, k + 1 + nxt, drop[1]),
                jnp.where(move, s, drop[2]),
                jnp.where(move, k + 1 + s, drop[3]),
                jnp.where(move, k + 1 + head, drop[4]),
                jnp.where(move, jnp.int32(k), drop[5]),
            ]
        )
        val = jnp.stack([nxt, prv, head, jnp.int32(k), s, s])
        # the least recent slot: its predecessor when it moves to the front; s when it enters
        # an empty list
        tail = jnp.where(
            unlink & (s == state.tail), prv, jnp.where(~linked & (head == k), s, state.tail)
        )
        return LRUState(links=links.at[idx].set(val, mode="drop", unique_indices=True), tail=tail)


class FIFOState(NamedTuple):
    next_out: jax.Array  # the slot loaded longest ago


@dataclass(frozen=True)
class FIFO(AgentBase):
    """First in, first out (Sleator & Tarjan, CACM 1985, Sec. 3)."""

    def init(self, key, spec: PagingSpec) -> FIFOState:
        return FIFOState(next_out=jnp.zeros((), jnp.int32))

    def act(self, rng, state: FIFOState, obs):
        return state.next_out

    def update(self, state: FIFOState, obs, action, feedback) -> FIFOState:
        k = obs.slot_page.shape[0]
        moved = full_fault(obs).astype(jnp.int32)
        return FIFOState(next_out=(state.next_out + moved) % k)


class LFUState(NamedTuple):
    count: jax.Array  # (n,) requests of each page so far
    keys: LexTournament  # per slot: (requests of its page, time of its last request)


@dataclass(frozen=True)
class LFU(AgentBase):
    """Least frequently used, ties to LRU (Sleator & Tarjan, CACM 1985, Sec. 3).

    Rule: on a fault with a full cache, evict the cached page with the fewest requests so far
    (the current request not counted: it is not cached); among those, the one whose last
    request is earliest. Last-request times of cached pages are distinct, so the rule names
    exactly one page. Each slot's key (count of its page, last request) changes only when its
    page is requested, so the keys live in a lexicographic two-level tournament over blocks of
    32 slots (`paging.marking.LexTournament`), O(k / 32 + 32) per request instead of an O(k)
    scan; the per-page counts (n,) are the history "perfect LFU" needs.
    """

    def init(self, key, spec: PagingSpec) -> LFUState:
        return LFUState(
            count=jnp.zeros((spec.pages,), jnp.int32),
            keys=lex_tournament(spec.cache_size, (0, -1)),
        )

    def act(self, rng, state: LFUState, obs):
        return lex_winner(state.keys)

    def update(self, state: LFUState, obs, action, feedback) -> LFUState:
        # the read under a cond whose predicate is the (unbatched) page id: materialised once,
        # so XLA updates the (n,) counts in place instead of copying them every step (as
        # `paging.env` does for its per-page table)
        page = jnp.asarray(obs.page, jnp.int32)
        c = jax.lax.cond(page >= 0, lambda: state.count[page], lambda: jnp.int32(0)) + 1
        key = (c, jnp.asarray(obs.t, jnp.int32))
        return LFUState(
            count=state.count.at[page].set(c),
            keys=lex_set_key(state.keys, feedback.slot, key),
        )


@dataclass(frozen=True)
class Marker(AgentBase):
    """Randomized marking (Fiat et al., J. Algorithms 1991, Sec. 3).

    The unmarked slots are kept as the prefix of a permutation of the slots
    (`paging.marking.FreeList`): a fault with a full cache evicts ``order[floor(u m)]`` (m
    unmarked slots, u the step's uniform), a uniform choice by one read, and marking is a
    swap-remove, so a step is O(1) with no reduction over the slots.
    """

    def randomness(self, spec):
        return {"u": Draw(UNIFORM)}

    def init(self, key, spec: PagingSpec) -> FreeList:
        return new_free_list(spec.cache_size)

    def act(self, rng, state: FreeList, obs):
        return free_choose(free_start_phase(state, full_fault(obs)), rng["u"])

    def update(self, state: FreeList, obs, action, feedback) -> FreeList:
        return free_mark(free_start_phase(state, full_fault(obs)), feedback.slot)


class BeladyState(NamedTuple):
    slot_next: Tournament  # per slot: next request time of its page, largest wins (replay: unused)


@dataclass(frozen=True)
class Belady(AgentBase):
    """Offline OPT: evict the page requested furthest in the future (Belady 1966).

    ``replay=True`` (the default): the eviction is the slot of the env's host pass
    (`paging.opt.belady_schedule`, ``obs.opt_slot``), which runs this rule, with the same tie
    rule and slot discipline, once per trace before the run (O(k / 32 + 32) per request there,
    shared with the env's OPT counts); the agent's step is O(1). ``replay=False``: the agent
    runs the rule itself from ``obs.next_arrival`` (a two-level tournament over blocks of 32
    slots, `paging.marking.Tournament`, O(k / 32 + 32) per request), an independent check of
    the host pass.
    """

    replay: bool = True

    def init(self, key, spec: PagingSpec) -> BeladyState:
        k = 1 if self.replay else spec.cache_size
        return BeladyState(slot_next=tournament(k, 0, largest=True))

    def act(self, rng, state: BeladyState, obs):
        if self.replay:
            return jnp.asarray(obs.opt_slot, jnp.int32)
        return winner(state.slot_next, largest=True)

    def update(self, state: BeladyState, obs, action, feedback) -> BeladyState:
        if self.replay:
            return state
        nxt = jnp.asarray(obs.next_arrival, jnp.int32)
        return BeladyState(slot_next=set_key(state.slot_next, feedback.slot, nxt, True))


__all__ = ["FIFO", "LFU", "LRU", "Belady", "Marker"]
