"""Offline OPT for paging: Belady's rule, run as a compiled scan on the host (no Python loop).

Belady (IBM Systems Journal 5(2), 1966; the "longest forward distance" rule, optimal for unit-size
pages as proved by Mattson, Gecsei, Slutz & Traiger, IBM Systems Journal 9(2), 1970): on a fault
with a full cache, evict the cached page whose next request is furthest in the future. Pages that
are never requested again have next request ``L`` (the trace's length) and are evicted first.

**Tie rule (pinned).** Next requests of distinct pages are distinct times, so ties occur only
among pages never requested again (next = L); among them the page in the lowest-numbered slot is
evicted (``argmax`` returns the first maximum). The requested page always takes the evicted slot,
free slots are filled in order 0, 1, ..., k-1. Neither the fault count nor the discard bits
depend on this rule (a page never requested again never causes a fault; which of them is evicted
does not change which of the pages requested again are cached).

`belady_schedule(pages, next_arrival, k, n)` returns the per-request fault indicator (int8, 1 = a
fault, compulsory misses included) and the slot each request's page ends in (what the `Belady`
agent replays); `belady_faults` the indicator alone. The indicator is exact on every prefix:
Belady on the whole trace is optimal for each prefix too (it evicts a page not requested within
the prefix whenever one is cached). It runs in chunks of `CHUNK_ROWS` requests through one
jitted ``lax.scan``, O(k / 32 + 32) per request: the slot of furthest next request comes from
a two-level tournament over blocks of 32 slots (`paging.marking.Tournament`; the same slot as
``argmax``, the first maximum), read only on a fault with a full cache under ``lax.cond``, and
updated at the slot written; the per-page table is updated in place. Memory: the two outputs
(5 bytes per request) and O(n + k) state.

`opt_brute_force(trace, k)` is an exhaustive search over eviction choices, for tests on tiny
traces only.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from experiments.inputs import CHUNK_ROWS
from paging.marking import set_key, tournament, winner


@functools.partial(jax.jit, static_argnums=(0,))
def _belady_chunk(k: int, carry, pages, nexts):
    # The slot of furthest next request comes from a two-level tournament over blocks of slots
    # (`paging.marking.Tournament`: the first slot of largest key, as ``argmax``), updated at
    # the slot written on every request, O(k / 32 + 32). The per-page table (n,) is updated in
    # place; an evicted page's entry is left stale and a lookup is valid only if the slot still
    # holds the page. Padding rows at the end of the last chunk change the carry after the
    # trace's end only (never read).
    def body(c, x):
        slot_page, slot_next, page_slot, filled = c
        p, nx = x
        s = page_slot[p]
        hit = (s >= 0) & (slot_page[jnp.maximum(s, 0)] == p)
        free = filled < k
        victim = jax.lax.cond(
            ~hit & ~free, lambda: winner(slot_next, largest=True), lambda: jnp.int32(0)
        )
        target = jnp.where(hit, s, jnp.where(free, filled, victim))
        c = (
            slot_page.at[target].set(p),
            set_key(slot_next, target, nx, largest=True),
            page_slot.at[p].set(target),
            filled + (~hit & free).astype(jnp.int32),
        )
        return c, ((~hit).astype(jnp.int8), target)

    return jax.lax.scan(body, carry, (pages, nexts))


def belady_schedule(pages, next_arrival, k: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Belady with `k` slots over dense pages 0..n-1: per request, the fault indicator (int8,
    compulsory misses included) and the slot that holds the requested page afterwards (int32;
    on a fault with a full cache, the slot evicted). Slots follow the env's rules (free slots
    filled in order 0, 1, ...; the requested page takes the evicted slot), so the `Belady`
    agent can replay the slots.

    `pages`, `next_arrival`: array-likes with row slices (ndarray or `NpyRows`), next arrival =
    the trace's length when the page is never requested again.
    """
    L = len(pages)
    carry = (
        jnp.full((k,), -1, jnp.int32),
        tournament(k, 0, largest=True),
        jnp.full((n,), -1, jnp.int32),
        jnp.zeros((), jnp.int32),
    )
    chunk = min(CHUNK_ROWS, max(64, 1 << (L - 1).bit_length()))  # few compiled shapes
    faults, slots = np.empty(L, np.int8), np.empty(L, np.int32)
    for a in range(0, L, chunk):
        p = np.asarray(pages[a : a + chunk], np.int32)
        nx = np.minimum(np.asarray(next_arrival[a : a + chunk], np.int64), L).astype(np.int32)
        m = p.size
        if m < chunk:  # pad the last chunk (one compiled shape)
            p = np.concatenate([p, np.zeros(chunk - m, np.int32)])
            nx = np.concatenate([nx, np.zeros(chunk - m, np.int32)])
        carry, (f, s) = _belady_chunk(k, carry, p, nx)
        faults[a : a + m] = np.asarray(f)[:m]
        slots[a : a + m] = np.asarray(s)[:m]
    return faults, slots


def belady_faults(pages, next_arrival, k: int, n: int) -> np.ndarray:
    """Per-request fault indicator (int8) of Belady (`belady_schedule`'s first part)."""
    return belady_schedule(pages, next_arrival, k, n)[0]


def belady_faults_reference(trace, k: int) -> np.ndarray:
    """Belady in plain Python (a dict of cached pages; evict the furthest next request, ties to
    the smallest page id): per-request fault indicator. For tests."""
    trace = [int(x) for x in trace]
    L = len(trace)
    nxt, last = [L] * L, {}
    for t in range(L - 1, -1, -1):
        nxt[t] = last.get(trace[t], L)
        last[trace[t]] = t
    cache: dict[int, int] = {}
    faults = np.zeros(L, np.int8)
    for t, p in enumerate(trace):
        if p not in cache:
            faults[t] = 1
            if len(cache) >= k:
                victim = max(cache, key=lambda q: (cache[q], -q))
                del cache[victim]
        cache[p] = nxt[t]
    return faults


def opt_brute_force(trace, k: int) -> int:
    """The minimum number of faults over every eviction choice (exhaustive search with
    memoisation on (time, cache set)); tiny traces only."""
    trace = tuple(int(x) for x in trace)

    @functools.cache
    def best(t: int, cache: frozenset) -> int:
        if t == len(trace):
            return 0
        p = trace[t]
        if p in cache:
            return best(t + 1, cache)
        if len(cache) < k:
            return 1 + best(t + 1, cache | {p})
        return 1 + min(best(t + 1, (cache - {q}) | {p}) for q in cache)

    return best(0, frozenset())


def opt_evictions_brute_force(trace, k: int) -> set[tuple[int, ...]]:
    """Every per-request fault vector attained by an optimal schedule (tiny traces only)."""
    trace = tuple(int(x) for x in trace)
    target = opt_brute_force(trace, k)
    found = set()

    def walk(t, cache, faults):
        if sum(faults) > target:
            return
        if t == len(trace):
            if sum(faults) == target:
                found.add(tuple(faults))
            return
        p = trace[t]
        if p in cache:
            walk(t + 1, cache, [*faults, 0])
        elif len(cache) < k:
            walk(t + 1, cache | {p}, [*faults, 1])
        else:
            for q in cache:
                walk(t + 1, (cache - {q}) | {p}, [*faults, 1])

    walk(0, frozenset(), [])
    return found


__all__ = [
    "belady_faults",
    "belady_faults_reference",
    "belady_schedule",
    "opt_brute_force",
    "opt_evictions_brute_force",
]
