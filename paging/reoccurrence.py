"""Paging with reoccurrence (next-arrival) predictions: the learning-augmented baselines the
succinct-prediction paper compares against ("Reoccurrence baselines").

Every request comes with a predicted time of the page's next request (``obs.predicted_next``;
the exact one, or one corrupted by lognormal noise as in Lykouris & Vassilvitskii's experiments).
Each algorithm keeps the prediction of the latest request to each cached page per slot. Rules
follow the cited papers as implemented in the public code of Antoniadis, Coester, Eliáš, Polak &
Simon (``adampolak/mts-with-predictions``, ICML 2020), which we re-implemented (not copied):

* `BlindOracle` (Wei, APPROX 2020, "follow the predictions", FtP): evict the page whose predicted
  next request is the furthest (lowest slot on ties). With exact predictions it is Belady's rule.
* BlindOracle+LRU (Wei, APPROX 2020, Section 3): `paging.combine.CombineDet` of BlindOracle and
  LRU (conf ``blind_oracle_lru``).
* `PredictiveMarker` (Lykouris & Vassilvitskii, ICML 2018 / J. ACM 2021, Algorithm 2): Marker
  whose evictions for a clean page follow the predictions (furthest predicted unmarked page),
  while each eviction chain follows them only for its first ``gamma * H_k`` steps, then evicts a
  uniformly random unmarked page.
* `LMarker` (Rohatgi, SODA 2020, Section 4): Marker that evicts the furthest predicted unmarked
  page on a request to a clean page and a uniformly random unmarked page on a stale one.
* `LNonMarkerNonRobust` (Rohatgi, SODA 2020, Section 5): as LMarker over k-distinct-pages phases,
  except that a stale page whose eviction was caused by a clean page evicts a uniformly random
  page among all cached ones (not a marking algorithm); LNonMarker (conf ``lnonmarker``) is its
  `paging.combine.CombineDet` with Marker, as in Rohatgi's statement.

Trust&Doubt (Antoniadis et al., ICML 2020) is not implemented here (see the docs).

A "clean" page is one not in the cache at the start of the current phase, a "stale" one is; a
marking phase starts at a fault with a full cache and every cached page marked (Fiat et al.,
J. Algorithms 1991; `paging.marking`). Randomness: one engine-drawn uniform per step (``u``,
`paging.marking.choose_uniform`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import jax
import jax.numpy as jnp

from experiments.config import check_float
from experiments.protocol import UNIFORM, AgentBase, Draw
from paging.env import time_dtype
from paging.marking import Marks, choose_uniform, full_fault, mark, new_marks, start_phase
from paging.succinct import I32, distinct_phase, spec_sizes


def _furthest(mask: jax.Array, pred: jax.Array) -> jax.Array:
    """The slot of `mask` with the largest prediction (lowest slot on ties)."""
    return jnp.argmax(jnp.where(mask, pred, -jnp.inf)).astype(I32)


def _pred(obs) -> jax.Array:
    """The predicted next request (float32, float64 under x64: `paging.env.time_dtype`, as the
    env gives it; may be inf under noise)."""
    return jnp.asarray(obs.predicted_next, time_dtype())


# --------------------------------------------------------------------------- BlindOracle
class PredState(NamedTuple):
    pred: jax.Array  # (k,) predicted next request of the page in the slot (`time_dtype`)


@dataclass(frozen=True)
class BlindOracle(AgentBase):
    """Follow the predictions (Wei, APPROX 2020): evict the page predicted to be requested
    furthest in the future; min(1 + 2 eta/OPT, 2 + 4 eta / ((k-1) OPT))-competitive (Wei's
    Theorem 1, eta the l1 error). Exact predictions: Belady's rule (Belady 1966)."""

    def init(self, key, spec) -> PredState:
        k, _ = spec_sizes(spec, reads="next_arrival")
        return PredState(pred=jnp.full(k, -1.0, time_dtype()))

    def act(self, rng, state: PredState, obs) -> jax.Array:
        return _furthest(jnp.ones_like(state.pred, bool), state.pred)

    def update(self, state: PredState, obs, action, feedback) -> PredState:
        return PredState(pred=state.pred.at[feedback.slot].set(_pred(obs)))


# --------------------------------------------------------------------------- marking family
class MarkerPredState(NamedTuple):
    marks: Marks  # per-slot marks and the phase count (paging.marking)
    pred: jax.Array  # (k,)
    stale: jax.Array  # (n,) phase at whose start the page was cached (-1 never)
    rep: jax.Array  # (k,) PredictiveMarker: the page each eviction chain ends at (-1 none)
    length: jax.Array  # (k,) PredictiveMarker: length of each chain
    chains: jax.Array  # PredictiveMarker: chains (clean pages) so far in the phase


def _new_marking_phase(state: MarkerPredState, obs):
    """Marker's phase rule (fault, full cache, all marked): marks cleared, the cached pages
    become the phase's stale set, chains reset. Returns (state, new)."""
    marks = start_phase(state.marks, full_fault(obs))
    new = marks.phase != state.marks.phase
    n = state.stale.shape[0]
    idx = jnp.where(new & (obs.slot_page >= 0), obs.slot_page, n)
    return (
        state._replace(
            marks=marks,
            stale=state.stale.at[idx].set(marks.phase, mode="drop"),
            rep=jnp.where(new, -1, state.rep),
            length=jnp.where(new, 0, state.length),
            chains=jnp.where(new, 0, state.chains),
        ),
        new,
    )


def _marker_init(spec) -> MarkerPredState:
    k, n = spec_sizes(spec, reads="next_arrival")
    return MarkerPredState(
        marks=new_marks(k),
        pred=jnp.full(k, -1.0, time_dtype()),
        stale=jnp.full(n, -1, I32),
        rep=jnp.full(k, -1, I32),
        length=jnp.zeros(k, I32),
        chains=jnp.zeros((), I32),
    )


def _marker_update(state: MarkerPredState, obs, feedback) -> MarkerPredState:
    s = feedback.slot
    return state._replace(marks=mark(state.marks, s), pred=state.pred.at[s].set(_pred(obs)))


@dataclass(frozen=True)
class LMarker(AgentBase):
    """LMarker (Rohatgi, SODA 2020, Section 4): Marker; on a fault with a full cache, a clean
    requested page evicts the unmarked page predicted furthest, a stale one a uniformly random
    unmarked page."""

    def randomness(self, spec):
        return {"u": Draw(UNIFORM)}

    def init(self, key, spec) -> MarkerPredState:
        return _marker_init(spec)

    def act(self, rng, state: MarkerPredState, obs) -> jax.Array:
        st, _ = _new_marking_phase(state, obs)
        unmarked = ~st.marks.marked
        stale = st.stale[obs.page] == st.marks.phase
        return jnp.where(stale, choose_uniform(unmarked, rng["u"]), _furthest(unmarked, st.pred))

    def update(self, state: MarkerPredState, obs, action, feedback) -> MarkerPredState:
        st, _ = _new_marking_phase(state, obs)
        return _marker_update(st, obs, feedback)


@dataclass(frozen=True)
class PredictiveMarker(AgentBase):
    """PredictiveMarker (Lykouris & Vassilvitskii, ICML 2018 / J. ACM 2021, Algorithm 2):
    Marker with eviction chains. A clean page starts a chain and evicts the unmarked page
    predicted furthest; a stale page ends the chain whose last evicted page it is, extends it,
    and evicts the furthest predicted unmarked page while the chain's length is at most
    ``gamma * H_k``, a uniformly random unmarked page after. min(2 + 2 sqrt(5 eta/OPT), 4 H_k)-
    competitive (their Theorem 1, ``gamma = 1``)."""

    gamma: float = 1.0

    def __post_init__(self):
        check_float("gamma", self.gamma, 0.0)

    def randomness(self, spec):
        return {"u": Draw(UNIFORM)}

    def init(self, key, spec) -> MarkerPredState:
        return _marker_init(spec)

    def _decide(self, state: MarkerPredState, obs, u):
        st, _ = _new_marking_phase(state, obs)
        k = st.pred.shape[0]
        unmarked = ~st.marks.marked
        stale = st.stale[obs.page] == st.marks.phase
        c_old = jnp.argmax(st.rep == obs.page).astype(I32)
        c = jnp.where(stale, c_old, jnp.minimum(st.chains, k - 1))
        length = jnp.where(stale, st.length[c] + 1, 1)
        trust = ~stale | (length <= self.gamma * harmonic(k))
        slot = jnp.where(trust, _furthest(unmarked, st.pred), choose_uniform(unmarked, u))
        return st, c, length, slot, stale

    def act(self, rng, state: MarkerPredState, obs) -> jax.Array:
        return self._decide(state, obs, rng["u"])[3]

    def update(self, state: MarkerPredState, obs, action, feedback) -> MarkerPredState:
        st, c, length, _, stale = self._decide(state, obs, jnp.zeros(()))
        ff = full_fault(obs)
        evicted = obs.slot_page[jnp.clip(jnp.asarray(action, I32), 0, st.pred.shape[0] - 1)]
        st = st._replace(
            rep=jnp.where(ff, st.rep.at[c].set(evicted), st.rep),
            length=jnp.where(ff, st.length.at[c].set(length), st.length),
            chains=st.chains + (ff & ~stale).astype(I32),
        )
        return _marker_update(st, obs, feedback)


# --------------------------------------------------------------------------- LNonMarker
class NonMarkerState(NamedTuple):
    mark: jax.Array  # (k,)
    pred: jax.Array  # (k,)
    stale: jax.Array  # (n,) phase at whose start the page was cached (-1 never)
    seen: jax.Array  # (n,) phase of the page's latest request (k-distinct-pages partition)
    by_clean: jax.Array  # (n,) the page's latest eviction was caused by a clean page
    phase: jax.Array
    distinct: jax.Array


@dataclass(frozen=True)
class LNonMarkerNonRobust(AgentBase):
    """Rohatgi's non-marking algorithm before its combination with Marker (SODA 2020,
    Section 5), over k-distinct-pages phases: a clean page evicts the unmarked page predicted
    furthest; a stale page evicts a uniformly random unmarked page, or, when the page that
    evicted it was clean, a uniformly random cached page (marked or not). Not robust alone."""

    def randomness(self, spec):
        return {"u": Draw(UNIFORM)}

    def init(self, key, spec) -> NonMarkerState:
        k, n = spec_sizes(spec, reads="next_arrival")
        return NonMarkerState(
            mark=jnp.zeros(k, bool),
            pred=jnp.full(k, -1.0, time_dtype()),
            stale=jnp.full(n, -1, I32),
            seen=jnp.full(n, -1, I32),
            by_clean=jnp.zeros(n, bool),
            phase=jnp.zeros((), I32),
            distinct=jnp.zeros((), I32),
        )

    def _phase(self, state: NonMarkerState, obs) -> NonMarkerState:
        k, n = state.mark.shape[0], state.stale.shape[0]
        new, phase, distinct = distinct_phase(state.seen, state.phase, state.distinct, obs.page, k)
        idx = jnp.where(new & (obs.slot_page >= 0), obs.slot_page, n)
        return state._replace(
            mark=jnp.where(new, False, state.mark),
            stale=state.stale.at[idx].set(phase, mode="drop"),
            seen=state.seen.at[obs.page].set(phase),
            phase=phase,
            distinct=distinct,
        )

    def act(self, rng, state: NonMarkerState, obs) -> jax.Array:
        st = self._phase(state, obs)
        unmarked = ~st.mark
        stale = st.stale[obs.page] == st.phase
        anywhere = choose_uniform(jnp.ones_like(st.mark), rng["u"])
        random = jnp.where(st.by_clean[obs.page], anywhere, choose_uniform(unmarked, rng["u"]))
        return jnp.where(stale, random, _furthest(unmarked, st.pred))

    def update(self, state: NonMarkerState, obs, action, feedback) -> NonMarkerState:
        st = self._phase(state, obs)
        k, n = st.mark.shape[0], st.stale.shape[0]
        ff = full_fault(obs)
        evicted = obs.slot_page[jnp.clip(jnp.asarray(action, I32), 0, k - 1)]
        clean = st.stale[obs.page] != st.phase
        s = feedback.slot
        return st._replace(
            mark=st.mark.at[s].set(True),
            pred=st.pred.at[s].set(_pred(obs)),
            by_clean=st.by_clean.at[jnp.where(ff, evicted, n)].set(clean, mode="drop"),
        )


def harmonic(k: int) -> float:
    """H_k = 1 + 1/2 + ... + 1/k."""
    return math.fsum(1.0 / i for i in range(1, k + 1))
