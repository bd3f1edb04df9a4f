"""Trust&Doubt: paging that follows a predicted cache state and doubts it (Antoniadis, Coester,
Eliáš, Polak & Simon, "Online Metric Algorithms with Untrusted Predictions", ICML 2020, PMLR
119:345-355, Section 4 (caching); journal version ACM TALG 2023).

The algorithm reads *action predictions*: the predictor's cache P_t after each request. As in the
authors' experiments (their public code ``adampolak/mts-with-predictions``, ``algorithms.py``:
``TrustDoubt`` run through ``LazyTrustDoubt``, fed with the cache of ``FollowPred``), P_t is the
cache of follow-the-predictions (`paging.reoccurrence.BlindOracle`'s rule: evict the page predicted
furthest, lowest slot on ties) replayed inside the agent on the env's next-arrival predictions
(``env.predictions=next_arrival``). With exact predictions P_t is Belady's cache. Guarantee as
recalled by secondary sources (not checked against the paper's text):
O(min{1 + log(1 + eta/OPT), log k})-competitive, eta the error of the predicted caches, hence
O(1)-consistent (no explicit constant) and O(log k)-robust.

**The non-lazy algorithm** (one phase; phases are the k-distinct-pages partition of Marker, Fiat
et al., J. Algorithms 1991). At a phase start, *ancient* pages are the cached pages not requested
in the previous phase (nor now), *stale* pages the other cached ones; each stale page gets a
uniformly random priority. Pages requested in the phase are *marked*; a *clean* page is one
requested in the phase that is not stale. Numbered as in the authors' code:

* ancient part: while ancient pages remain, a request for an uncached page evicts an ancient
  page, the least recently requested one not in P_{t+1} (any ancient page if all are in P_{t+1});
* step 1: afterwards, a request for an uncached page evicts the unmarked stale page of lowest
  priority;
* step 2: at the first request of a clean page q, choose p_q: the least recently requested page
  among the unmarked stale and the marked pages that is not in P_{t+1} and is no other p_q'
  (none if there is no such page); q is *trusted*, with interval length t_q = 1;
* step 3: a request for p_q (the prediction that p_q was not needed was wrong): choose p_q again
  by the same rule; q is now *doubted* and its interval restarts;
* step 4: at each arrival (first request of a page in the phase), for every clean q, in order,
  whose interval (counted in arrivals) has elapsed: restart it; if doubted, double t_q and trust q
  again; if p_q is cached, replace it by the unmarked stale page of highest priority that is not
  cached and is no trusted p_q'.

**Lazy execution** (``Lazy_update`` in the authors' code): the cache served is ours; on a fault
with a full cache we evict a page that is in our cache but not in the non-lazy cache after this
request, the one loaded longest ago (lowest slot on ties). A lazy algorithm never pays more than
the one it follows.

**What is reconstructed** (the paper's text was not available to us; the rules above are the
authors' code's, read and re-implemented, not copied):

* the tie rules are the code's: least recently requested among candidates, lowest slot among
  equal priorities;
* where the code asserts that a choice exists, we use a fallback: step 1 with no unmarked stale
  page cached evicts the least recently requested cached page; step 3 with no candidate sets no
  p_q (as the code's step 2 does); step 4 with no candidate leaves p_q cached. None of these
  fallbacks occurs on the tested traces;
* priorities: the stale page in cache slot i at the start of the agent's phase j gets the i-th
  entry of ``uniform(step_key(key, j), (k,))`` (lower value = lower priority; ties have
  probability 0 and fall to the lower slot), a uniformly random order as the code's shuffle.

Cost per request O(k^2) (the step-4 loop over at most k clean pages, each an O(k) search), run in
both ``act`` and ``update``, and O(1) reads/writes of two per-page (n,) tables.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import jax
import jax.numpy as jnp

from experiments.protocol import AgentBase, step_key
from paging.env import time_dtype
from paging.succinct import I32, distinct_phase, spec_sizes

F32 = jnp.float32


class TrustDoubtState(NamedTuple):
    key: jax.Array  # the agent's key (priorities: step_key(key, phase))
    # the predictor: follow-the-predictions replayed on the agent's side
    pred_page: jax.Array  # (k,) page in each slot of the predictor's cache (-1 empty)
    pred_next: jax.Array  # (k,) its predicted next request
    # the non-lazy Trust&Doubt cache and its phase
    cache: jax.Array  # (k,) page in each slot of the non-lazy cache (-1 empty)
    ancient: jax.Array  # (k,) slot holds an ancient page
    ancient_none: jax.Array  # the phase began with an empty slot (the first phase)
    stale: jax.Array  # (k,) stale pages of the phase, by their slot at its start (-1 none)
    prio: jax.Array  # (k,) their priorities
    stale_marked: jax.Array  # (k,) the stale page was requested in the phase
    arrived: jax.Array  # (k,) pages requested in the phase, in order (-1 after the last)
    clean_p: jax.Array  # (k,) p_q of the phase's clean pages, in order (-1 none)
    clean_trust: jax.Array  # (k,) trusted
    clean_start: jax.Array  # (k,) arrivals at the start of the current interval
    clean_len: jax.Array  # (k,) interval length t_q
    clean_count: jax.Array  # clean pages so far in the phase
    seen: jax.Array  # (n,) phase of the page's latest request (-1 never)
    last: jax.Array  # (n,) time of the page's latest request (-1 never)
    phase: jax.Array
    distinct: jax.Array  # arrivals so far in the phase
    # the lazy cache served
    loaded: jax.Array  # (k,) time our slot's page was loaded


def _member(pages: jax.Array, of: jax.Array) -> jax.Array:
    """Whether each of `pages` (-1 = none: False) is among the entries of `of` (>= 0 ones)."""
    return jnp.any((pages[:, None] == of[None, :]) & (of[None, :] >= 0), axis=1) & (pages >= 0)


def _slot_of(cache: jax.Array, page: jax.Array) -> jax.Array:
    """The slot of `page` in `cache` (k if absent)."""
    match = cache == page
    return jnp.where(match.any(), jnp.argmax(match), cache.shape[0]).astype(I32)


def _predictor(state: TrustDoubtState, page, x):
    """Follow-the-predictions after the request (Wei, APPROX 2020): (pages, predictions)."""
    k = state.pred_page.shape[0]
    match = state.pred_page == page
    free = state.pred_page < 0
    furthest = jnp.argmax(state.pred_next).astype(I32)
    s = jnp.where(
        match.any(), jnp.argmax(match), jnp.where(free.any(), jnp.argmax(free), furthest)
    ).astype(I32)
    s = jnp.minimum(s, k - 1)
    return state.pred_page.at[s].set(page), state.pred_next.at[s].set(x)


@dataclass(frozen=True)
class TrustDoubt(AgentBase):
    """Trust&Doubt (Antoniadis, Coester, Eliáš, Polak & Simon, ICML 2020, Section 4), lazy, fed
    with the cache of follow-the-predictions on next-arrival predictions (module docstring: the
    rules, and what is reconstructed)."""

    def init(self, key, spec) -> TrustDoubtState:
        k, n = spec_sizes(spec, reads="next_arrival")
        return TrustDoubtState(
            key=key,
            pred_page=jnp.full(k, -1, I32),
            pred_next=jnp.full(k, -jnp.inf, time_dtype()),
            cache=jnp.full(k, -1, I32),
            ancient=jnp.zeros(k, bool),
            ancient_none=jnp.ones((), bool),
            stale=jnp.full(k, -1, I32),
            prio=jnp.zeros(k, F32),
            stale_marked=jnp.zeros(k, bool),
            arrived=jnp.full(k, -1, I32),
            clean_p=jnp.full(k, -1, I32),
            clean_trust=jnp.zeros(k, bool),
            clean_start=jnp.zeros(k, I32),
            clean_len=jnp.ones(k, I32),
            clean_count=jnp.zeros((), I32),
            seen=jnp.full(n, -1, I32),
            last=jnp.full(n, -1, I32),
            phase=jnp.zeros((), I32),
            distinct=jnp.zeros((), I32),
            loaded=jnp.full(k, -1, I32),
        )

    # ------------------------------------------------------------------ the non-lazy algorithm
    def _advance(self, state: TrustDoubtState, obs) -> TrustDoubtState:
        """The non-lazy Trust&Doubt state after serving `obs.page` (module docstring)."""
        k = state.cache.shape[0]
        r = jnp.asarray(obs.page, I32)
        t = jnp.asarray(obs.t, I32)
        big = jnp.iinfo(I32).max
        last = state.last.at[r].set(t)
        pred_page, pred_next = _predictor(state, r, jnp.asarray(obs.predicted_next, time_dtype()))

        # phase bookkeeping (k-distinct-pages partition)
        old_phase = state.phase
        new, phase, distinct = distinct_phase(state.seen, state.phase, state.distinct, r, k)
        fresh = state.seen[r] != old_phase  # an arrival (new phase: always)
        cache = state.cache
        cached = cache >= 0
        prev = state.seen[jnp.maximum(cache, 0)] == old_phase  # requested in the ending phase
        anc_new = cached & ~prev & (cache != r)
        ancient = jnp.where(new, anc_new, state.ancient)
        ancient_none = jnp.where(new, ~cached.all(), state.ancient_none)
        stale = jnp.where(new, jnp.where(cached & ~anc_new, cache, -1), state.stale)
        prio = jnp.where(new, jax.random.uniform(step_key(state.key, phase), (k,)), state.prio)
        stale_marked = jnp.where(new, False, state.stale_marked)
        arrived = jnp.where(new, jnp.full(k, -1, I32), state.arrived)
        clean_count = jnp.where(new, 0, state.clean_count)
        clean_p = jnp.where(new, -1, state.clean_p)
        before = distinct - 1  # arrivals before this one (when it is one)
        arrived = jnp.where(fresh, arrived.at[jnp.minimum(before, k - 1)].set(r), arrived)
        seen = state.seen.at[r].set(phase)
        stale_marked = stale_marked | (stale == r)

        in_cache = (cache == r).any()
        free = ~cached

        # ---- the ancient part
        ancient_branch = ancient.any() | ancient_none
        ancient_req = ancient & (cache == r)
        in_pred = _member(cache, pred_page)
        pool = ancient & ~ancient_req
        pool = jnp.where((pool & ~in_pred).any(), pool & ~in_pred, pool)
        lru = jnp.argmin(jnp.where(pool, last[jnp.maximum(cache, 0)], big)).astype(I32)
        s_anc = jnp.where(free.any(), jnp.argmax(free), lru).astype(I32)
        a_load = ancient_branch & ~in_cache
        cache_a = jnp.where(a_load, cache.at[s_anc].set(r), cache)
        ancient_a = ancient & ~ancient_req
        ancient_a = jnp.where(a_load, ancient_a.at[s_anc].set(False), ancient_a)

        # ---- steps 1-4 (once no ancient page remains); step 1: evict the lowest priority
        stale_pos = _slot_pos(cache, stale)  # (k,) slot of each stale page (k: not cached)
        unmarked = (stale >= 0) & ~stale_marked
        cand1 = unmarked & (stale_pos < k)
        low = jnp.argmin(jnp.where(cand1, prio, jnp.inf))
        lru_any = jnp.argmin(jnp.where(cached, last[jnp.maximum(cache, 0)], big))
        s1 = jnp.where(cand1.any(), stale_pos[low], lru_any)
        s1 = jnp.where(free.any(), jnp.argmax(free), s1).astype(I32)
        cache_s = jnp.where(~in_cache, cache.at[s1].set(r), cache)

        def choose(clean_p):
            """p_q: least recently requested unmarked stale or marked page not in the predictor's
            cache and no current p_q (-1 when none)."""
            pages = jnp.concatenate([jnp.where(unmarked, stale, -1), arrived])
            ok = (pages >= 0) & ~_member(pages, pred_page) & ~_member(pages, clean_p)
            i = jnp.argmin(jnp.where(ok, last[jnp.maximum(pages, 0)], big))
            return jnp.where(ok.any(), pages[i], -1)

        # step 2: a clean page arrives
        clean_now = fresh & ~(stale == r).any()
        j = jnp.minimum(clean_count, k - 1)
        pq = choose(clean_p)
        clean_p_s = jnp.where(clean_now, clean_p.at[j].set(pq), clean_p)
        clean_trust = jnp.where(clean_now, state.clean_trust.at[j].set(True), state.clean_trust)
        clean_len = jnp.where(clean_now, state.clean_len.at[j].set(1), state.clean_len)
        clean_start = jnp.where(clean_now, state.clean_start.at[j].set(before), state.clean_start)
        clean_count_s = clean_count + clean_now.astype(I32)
        active = jnp.arange(k) < clean_count_s

        # step 3: the request is some p_q
        hit_p = active & (clean_p_s == r)
        jq = jnp.argmax(hit_p)
        doubt = hit_p.any()
        again = choose(clean_p_s)
        clean_p_s = jnp.where(doubt, clean_p_s.at[jq].set(again), clean_p_s)
        clean_trust = jnp.where(doubt, clean_trust.at[jq].set(False), clean_trust)
        clean_start = jnp.where(doubt, clean_start.at[jq].set(distinct), clean_start)

        # step 4: elapsed intervals, in the order of the clean pages
        def body(i, c):
            cache, cp, trust, start, length = c
            due = fresh & (i < clean_count_s) & (distinct - start[i] == length[i])
            length = jnp.where(due & ~trust[i], length.at[i].multiply(2), length)
            start = jnp.where(due, start.at[i].set(distinct), start)
            trust = jnp.where(due, trust.at[i].set(True), trust)
            p = cp[i]
            sp = _slot_of(cache, p)
            present = due & (p >= 0) & (sp < k)
            cache_wo = cache.at[jnp.minimum(sp, k - 1)].set(-1)
            out = (stale >= 0) & ~stale_marked & ~_member(stale, cache_wo)
            out = out & ~_member(stale, jnp.where(trust & (jnp.arange(k) < clean_count_s), cp, -1))
            hi = jnp.argmax(jnp.where(out, prio, -jnp.inf))
            swap = present & out.any()
            cache = jnp.where(swap, cache.at[jnp.minimum(sp, k - 1)].set(stale[hi]), cache)
            return cache, cp, trust, start, length

        cache_s, clean_p_s, clean_trust, clean_start, clean_len = jax.lax.fori_loop(
            0, k, body, (cache_s, clean_p_s, clean_trust, clean_start, clean_len)
        )

        steps = ~ancient_branch
        return state._replace(
            pred_page=pred_page,
            pred_next=pred_next,
            cache=jnp.where(steps, cache_s, cache_a),
            ancient=jnp.where(steps, ancient, ancient_a),
            ancient_none=ancient_none,
            stale=stale,
            prio=prio,
            stale_marked=stale_marked,
            arrived=arrived,
            clean_p=jnp.where(steps, clean_p_s, clean_p),
            clean_trust=jnp.where(steps, clean_trust, state.clean_trust),
            clean_start=jnp.where(steps, clean_start, state.clean_start),
            clean_len=jnp.where(steps, clean_len, state.clean_len),
            clean_count=jnp.where(steps, clean_count_s, clean_count),
            seen=seen,
            last=last,
            phase=phase,
            distinct=distinct,
        )

    # ------------------------------------------------------------------ protocol
    def act(self, rng, state: TrustDoubtState, obs) -> jax.Array:
        goal = self._advance(state, obs).cache
        out = ~_member(obs.slot_page, goal) & (obs.slot_page >= 0)
        big = jnp.iinfo(I32).max
        return jnp.argmin(jnp.where(out, state.loaded, big)).astype(I32)

    def update(self, state: TrustDoubtState, obs, action, feedback) -> TrustDoubtState:
        st = self._advance(state, obs)
        s = feedback.slot
        loaded = state.loaded.at[s].set(
            jnp.where(feedback.fault, jnp.asarray(obs.t, I32), state.loaded[s])
        )
        return st._replace(loaded=loaded)


def _slot_pos(cache: jax.Array, pages: jax.Array) -> jax.Array:
    """The slot of each of `pages` in `cache` (k when absent or -1)."""
    k = cache.shape[0]
    match = (pages[:, None] == cache[None, :]) & (pages[:, None] >= 0)
    return jnp.where(match.any(axis=1), jnp.argmax(match, axis=1), k).astype(I32)


__all__ = ["TrustDoubt", "TrustDoubtState"]
