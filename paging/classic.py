"""Classic paging algorithms as agents of ``env=paging`` (`paging.env`): LRU, FIFO, LFU, Marker and
Belady's offline OPT.

Each agent keeps per-slot metadata of shape (k,) (LFU: per-page counts (n,)) and answers, on a
fault with a full cache, the slot to evict; the env ignores the action otherwise. Eviction is an
O(k) ``argmin``/``argmax`` over the slots (FIFO: O(1)); bookkeeping per request is O(1).

* `LRU`: evict the least recently used page (Sleator & Tarjan, "Amortized efficiency of list
  update and paging rules", CACM 28(2), 1985, Sec. 3: k-competitive).
* `FIFO`: evict the page that entered the cache first (same paper, Sec. 3: k-competitive). Slots are
  filled in order and the requested page takes the evicted slot, so FIFO evicts slots
  0, 1, ..., k-1, 0, ... in turn.
* `LFU`: evict the page requested least often so far (counts over the whole history, "perfect
  LFU"), ties to the least recently used (Sleator & Tarjan 1985, Sec. 3, where LFU is shown not to
  be competitive).
* `Marker`: the randomized marking algorithm of Fiat, Karp, Luby, McGeoch, Sleator & Young,
  "Competitive paging algorithms" (J. Algorithms 12(4), 1991, Sec. 3; 2H_k-competitive): mark
  each requested page; on a fault with a full cache and all pages marked, unmark all (a new
  phase); evict a uniformly random unmarked page (one engine-drawn uniform per step: the
  floor(u m)-th of the m unmarked slots in slot order, as `paging.marking.choose_uniform`).
* `Belady`: the offline optimum (Belady, "A study of replacement algorithms for a virtual-storage
  computer", IBM Systems Journal 5(2), 1966): evict the page whose next request is furthest,
  from the exact ``obs.next_arrival``; ties (only pages never requested again) to the lowest
  slot, the rule `paging.opt` pins.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import jax
import jax.numpy as jnp

from experiments.protocol import UNIFORM, AgentBase, Draw
from paging.env import PagingSpec
from paging.marking import (
    BlockMarks,
    Tournament,
    block_choose,
    block_mark,
    block_start_phase,
    full_fault,
    new_block_marks,
    set_key,
    tournament,
    winner,
)


class LRUState(NamedTuple):
    last_used: Tournament  # per slot: request index of its last request (-1 none), smallest wins


@dataclass(frozen=True)
class LRU(AgentBase):
    """Least recently used (Sleator & Tarjan, CACM 1985, Sec. 3)."""

    def init(self, key, spec: PagingSpec) -> LRUState:
        return LRUState(last_used=tournament(spec.cache_size, -1, largest=False))

    def act(self, rng, state: LRUState, obs):
        return winner(state.last_used, largest=False)

    def update(self, state: LRUState, obs, action, feedback) -> LRUState:
        return LRUState(
            last_used=set_key(state.last_used, feedback.slot, obs.t.astype(jnp.int32), False)
        )


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
    last_used: jax.Array  # (k,) tie-break: least recently used


@dataclass(frozen=True)
class LFU(AgentBase):
    """Least frequently used, ties to LRU (Sleator & Tarjan, CACM 1985, Sec. 3)."""

    def init(self, key, spec: PagingSpec) -> LFUState:
        return LFUState(
            count=jnp.zeros((spec.pages,), jnp.int32),
            last_used=jnp.full((spec.cache_size,), -1, jnp.int32),
        )

    def act(self, rng, state: LFUState, obs):
        c = state.count[jnp.maximum(obs.slot_page, 0)]
        least = c == jnp.min(c)
        big = jnp.iinfo(jnp.int32).max
        return jnp.argmin(jnp.where(least, state.last_used, big)).astype(jnp.int32)

    def update(self, state: LFUState, obs, action, feedback) -> LFUState:
        return LFUState(
            count=state.count.at[obs.page].add(1),
            last_used=state.last_used.at[feedback.slot].set(obs.t),
        )


@dataclass(frozen=True)
class Marker(AgentBase):
    """Randomized marking (Fiat et al., J. Algorithms 1991, Sec. 3)."""

    def randomness(self, spec):
        return {"u": Draw(UNIFORM)}

    def init(self, key, spec: PagingSpec) -> BlockMarks:
        return new_block_marks(spec.cache_size)

    def act(self, rng, state: BlockMarks, obs):
        k = obs.slot_page.shape[0]
        return block_choose(block_start_phase(state, full_fault(obs), k), rng["u"], k)

    def update(self, state: BlockMarks, obs, action, feedback) -> BlockMarks:
        k = obs.slot_page.shape[0]
        return block_mark(block_start_phase(state, full_fault(obs), k), feedback.slot)


class BeladyState(NamedTuple):
    slot_next: Tournament  # per slot: next request time of its page, largest wins


@dataclass(frozen=True)
class Belady(AgentBase):
    """Offline OPT: evict the page requested furthest in the future (Belady 1966)."""

    def init(self, key, spec: PagingSpec) -> BeladyState:
        return BeladyState(slot_next=tournament(spec.cache_size, 0, largest=True))

    def act(self, rng, state: BeladyState, obs):
        return winner(state.slot_next, largest=True)

    def update(self, state: BeladyState, obs, action, feedback) -> BeladyState:
        nxt = jnp.asarray(obs.next_arrival, jnp.int32)
        return BeladyState(slot_next=set_key(state.slot_next, feedback.slot, nxt, True))


__all__ = ["FIFO", "LFU", "LRU", "Belady", "Marker"]
