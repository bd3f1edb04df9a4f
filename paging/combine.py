"""Robust combinations of two paging algorithms, run side by side in simulation and followed
lazily ("Succinct-prediction algorithms").

The paper (Antoniadis et al., "Paging with Succinct Predictions", ICML 2023) obtains robustness
by combining its prediction-following algorithms with Marker; we reconstruct the combination with
the two standard schemes, as implemented for paging by Antoniadis, Coester, Eliáš, Polak & Simon
("Online Metric Algorithms with Untrusted Predictions", ICML 2020, Section 2 and their public code
``adampolak/mts-with-predictions``); that the 2023 paper uses exactly these is our assumption:

* `CombineDet` (deterministic switching; Fiat, Rabani & Ravid, FOCS 1990, as in ICML 2020 Thm. 1):
  follow the current algorithm while its cumulative cost is at most ``bound`` (initially 1); when
  it exceeds it, switch round-robin to the next one and multiply the bound by
  ``1 + gamma / (m - 1)``. Cost at most 2 (1 + gamma) min(costs) plus k per switch (a switch
  can cost up to k page loads of the lazy following), with about ln(min cost) / gamma switches.
* `CombineRand` (Blum & Burch, COLT 1997 / Mach. Learn. 2000): multiplicative weights with
  ``beta = 1 - epsilon / 2`` on each algorithm's per-step cost (w_i = beta^{cost_i}, computed
  from the cumulative costs so that a weight never sticks at a float32 0); when the current
  algorithm's probability drops from p to p', leave it with probability (p - p') / p. Cost
  (1 + epsilon) min(costs) + O(k / epsilon) in expectation.

Both are *lazy*: on a fault with a full cache we evict a page that is in our cache but not in the
followed algorithm's cache after this request (one always exists), the one loaded longest ago.
(The ICML 2020 code picks by a ``last_used`` time set only on loads into an occupied slot; we set
it on every load.) Each algorithm's cost is its number of faults (page loads).

Each component runs on its own virtual cache (`VCache`, the environment's cache rules replayed
in the agent), seeing the observation the environment would show it. No per-page table: a
virtual cache is its (k,) slots (a lookup is O(k) compares, as finding its first free slot
already was), and which of our cached pages each component holds is kept as an (m, k) mask
updated per request (a component's cache changes only by gaining the requested page, which we
then hold too, and by losing the page it evicts), so memory is O(m k) per seed, not O(m n),
and a step is O(m k) vector work. Randomness: the
components' draws and the switching coin are needed in ``update`` as well as ``act``, and
``update`` receives no draws, so they come from the key ``init`` received, folded with the step
index (`experiments.protocol.step_key`), the protocol's documented way to do this.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from experiments.config import ConfigError, check_float
from experiments.protocol import AgentBase, step_key
from experiments.rollout import draw_once
from paging.succinct import I32, oldest, spec_sizes

# Algorithms a combination may run, by config name -> "module:Class".
ALGORITHMS = {
    "follow_discard_bits": "paging.succinct:FollowDiscardBits",
    "mark0": "paging.succinct:Mark0",
    "mark_and_predict": "paging.succinct:MarkAndPredict",
    "blind_oracle": "paging.reoccurrence:BlindOracle",
    "predictive_marker": "paging.reoccurrence:PredictiveMarker",
    "lmarker": "paging.reoccurrence:LMarker",
    "lnonmarker_nonrobust": "paging.reoccurrence:LNonMarkerNonRobust",
    "marker": "paging.classic:Marker",
    "lru": "paging.classic:LRU",
}


def algorithm(name: str, where: str) -> Any:
    """A fresh agent of the algorithm `name` (default fields); ConfigError naming `where`."""
    if name not in ALGORITHMS:
        raise ConfigError(f"{where}: must be one of {', '.join(ALGORITHMS)} (got {name!r})")
    module, cls = ALGORITHMS[name].split(":")
    return getattr(importlib.import_module(module), cls)()


# --------------------------------------------------------------------------- virtual caches
class VCache(NamedTuple):
    slot_page: jax.Array  # (k,) page in each slot, -1 empty


def vcache(k: int) -> VCache:
    return VCache(slot_page=jnp.full(k, -1, I32))


def view(vc: VCache, page) -> tuple[jax.Array, jax.Array]:
    """(hit, slot) as the environment reports them: the page's slot on a hit, the first free slot
    on a fault with a free slot, -1 on a fault with a full cache (O(k) compares)."""
    here = vc.slot_page == page
    hit = here.any()
    free = vc.slot_page < 0
    first = jnp.where(free.any(), jnp.argmax(free).astype(I32), -1)
    return hit, jnp.where(hit, jnp.argmax(here).astype(I32), first)


def load(vc: VCache, page, hit, slot, action) -> tuple[VCache, jax.Array]:
    """Serve `page`: on a fault it enters `slot` (a free one) or the evicted slot `action`.
    Returns the cache after the request and the slot that holds the page."""
    fill = jnp.where(slot >= 0, slot, jnp.asarray(action, I32))
    return VCache(slot_page=vc.slot_page.at[fill].set(page)), fill


class Served(NamedTuple):
    obs: Any  # the observation the component saw
    action: jax.Array
    fault: jax.Array
    slot: jax.Array  # slot holding the page afterwards
    evicted: jax.Array  # the page evicted by this request (-1: none)


def serve(agent, state, vc: VCache, obs, rng) -> Served:
    """One request of `obs` served by `agent` on its virtual cache `vc` (act only; the cache
    after it is `load`'s)."""
    hit, slot = view(vc, obs.page)
    vobs = obs._replace(hit=hit, slot=slot, slot_page=vc.slot_page)
    action = jnp.asarray(agent.act(rng, state, vobs), I32)
    fill = jnp.where(slot >= 0, slot, action)
    evicted = jnp.where(hit, -1, vc.slot_page[fill])
    return Served(vobs, action, ~hit, fill, evicted)


def holds(inside: jax.Array, served: Served, page, pages: jax.Array) -> jax.Array:
    """Whether each of `pages` (our cached pages, slot by slot) is in the component's cache
    after the request for `page`, from `inside` (whether it was before; see `CombineState`):
    O(k) compares, no per-page table."""
    return (inside & (pages != served.evicted)) | (pages == page)


# --------------------------------------------------------------------------- combinations
class CombineState(NamedTuple):
    key: jax.Array
    states: tuple  # the components' agent states
    caches: tuple  # their virtual caches (VCache)
    inside: jax.Array  # (m, k): whether the page in our slot s is in component i's cache
    cost: jax.Array  # (m,) cumulative faults of each component (float32)
    weight: jax.Array  # (m,) CombineRand: probabilities; CombineDet: unused
    cur: jax.Array  # the component followed
    bound: jax.Array  # CombineDet: the current cost bound
    loaded: jax.Array  # (k,) time our slot's page was loaded


@dataclass(frozen=True)
class _Combine(AgentBase):
    algorithm: str = "follow_discard_bits"
    robust: str = "marker"

    def __post_init__(self):
        self.components()  # names checked at construction

    def components(self) -> tuple:
        return (
            algorithm(self.algorithm, "algorithm"),
            algorithm(self.robust, "robust"),
        )

    def init(self, key, spec) -> CombineState:
        k, _ = spec_sizes(spec)
        comps = self.components()
        keys = jax.random.split(key, len(comps) + 2)
        m = len(comps)
        return CombineState(
            key=keys[-1],
            states=tuple(c.init(kk, spec) for c, kk in zip(comps, keys, strict=False)),
            caches=tuple(vcache(k) for _ in comps),
            inside=jnp.zeros((m, k), bool),
            cost=jnp.zeros(m, jnp.float32),
            weight=jnp.full(m, 1.0 / m, jnp.float32),
            cur=self._first(keys[-2], m),
            bound=jnp.ones((), jnp.float32),
            loaded=jnp.full(k, -1, I32),
        )

    def _first(self, key, m: int) -> jax.Array:
        return jnp.zeros((), I32)

    def _serve_all(self, state: CombineState, obs) -> list[Served]:
        out = []
        for i, (c, s, vc) in enumerate(
            zip(self.components(), state.states, state.caches, strict=True)
        ):
            rng = draw_once(step_key(state.key, obs.t, i), c.randomness(None))
            out.append(serve(c, s, vc, obs, rng))
        return out

    def _follow(self, state: CombineState, faults: jax.Array, t) -> tuple:
        raise NotImplementedError

    def act(self, rng, state: CombineState, obs) -> jax.Array:
        served = self._serve_all(state, obs)
        faults = jnp.stack([s.fault for s in served]).astype(jnp.float32)
        cur = self._follow(state, faults, obs.t)[0]
        inside = jnp.stack(
            [holds(state.inside[i], s, obs.page, obs.slot_page) for i, s in enumerate(served)]
        )  # (m, k)
        out = ~inside[cur] & (obs.slot_page >= 0)
        return oldest(out, state.loaded)

    def update(self, state: CombineState, obs, action, feedback) -> CombineState:
        served = self._serve_all(state, obs)
        faults = jnp.stack([s.fault for s in served]).astype(jnp.float32)
        cur, cost, weight, bound = self._follow(state, faults, obs.t)
        states = tuple(
            c.update(st, s.obs, s.action, feedback._replace(fault=s.fault, slot=s.slot))
            for c, st, s in zip(self.components(), state.states, served, strict=True)
        )
        s = feedback.slot
        loaded = state.loaded.at[s].set(
            jnp.where(feedback.fault, jnp.asarray(obs.t, I32), state.loaded[s])
        )
        # our slot `s` now holds the requested page, which every component holds too; our
        # other slots keep their pages, which a component holds unless it just evicted them
        evicted = jnp.stack([x.evicted for x in served])[:, None]
        inside = (state.inside & (obs.slot_page[None, :] != evicted)).at[:, s].set(True)
        return CombineState(
            key=state.key,
            states=states,
            inside=inside,
            caches=tuple(
                load(vc, obs.page, ~x.fault, x.obs.slot, x.action)[0]
                for vc, x in zip(state.caches, served, strict=True)
            ),
            cost=cost,
            weight=weight,
            cur=cur,
            bound=bound,
            loaded=loaded,
        )


@dataclass(frozen=True)
class CombineDet(_Combine):
    """Deterministic switching between `algorithm` and `robust` (ICML 2020 code's
    ``Combine_det``; Fiat, Rabani & Ravid's doubling-style scheme), followed lazily.

    `gamma` > 0: after each switch the cost bound grows by the factor 1 + gamma (two algorithms).
    """

    gamma: float = 0.01

    def __post_init__(self):
        check_float("gamma", self.gamma, 0.0, low_open=True)
        super().__post_init__()

    def _follow(self, state: CombineState, faults, t):
        m = faults.shape[0]
        cost = state.cost + faults
        grow = 1.0 + self.gamma / (m - 1)

        def cond(c):
            cur, bound = c
            return cost[cur] > bound

        def body(c):
            cur, bound = c
            return (cur + 1) % m, bound * grow

        cur, bound = jax.lax.while_loop(cond, body, (state.cur, state.bound))
        return cur, cost, state.weight, bound


@dataclass(frozen=True)
class CombineRand(_Combine):
    """Randomized combination of `algorithm` and `robust` (Blum & Burch, Mach. Learn. 2000;
    ICML 2020 code's ``Combine_rand``), followed lazily; `epsilon` in (0, 1]."""

    epsilon: float = 0.5

    def __post_init__(self):
        check_float("epsilon", self.epsilon, 0.0, 1.0, low_open=True)
        super().__post_init__()

    def _first(self, key, m: int) -> jax.Array:
        return jax.random.randint(key, (), 0, m).astype(I32)

    def _follow(self, state: CombineState, faults, t):
        m = faults.shape[0]
        beta = 1.0 - 0.5 * self.epsilon
        # Weights beta^{cost_i} from the cumulative costs, relative to the leader's: the running
        # product w * beta^{fault} underflows to 0 in float32 once a component is ~360 faults
        # behind (beta = 0.75) and never recovers, which loses Blum-Burch's guarantee on long
        # traces; beta^{cost_i - min cost} is recomputed every step and comes back.
        cost = state.cost + faults
        w = beta ** (cost - jnp.min(cost))
        new = w / w.sum()
        old_p, new_p = state.weight[state.cur], new[state.cur]
        u = jax.random.uniform(step_key(state.key, t, m))
        leave = (new_p < old_p) & (u <= (old_p - new_p) / old_p)
        # Blum-Burch moves the lost mass to the others in proportion to their gains; with two
        # algorithms: the other one.
        cur = jnp.where(leave, (state.cur + 1) % m, state.cur)
        return cur, cost, new, state.bound
