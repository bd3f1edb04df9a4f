"""A worked example of a trace-driven environment: a one-slot cache replaying a request trace.

The trace (page ids, one per step) is an *exogenous* input: it lives on the host -- an array, or a
memory-mapped ``.npy`` file of any length -- and the engine streams each chunk's rows into the
compiled program, so compile time and memory do not grow with the trace. A host-side
*preparation* pass sees the whole trace once and computes, for every request, the step of the
next request to the same page (``next_arrival``; the trace's length when there is none), streamed
the same way.

The cache holds one page. On a request for the cached page it is a hit; otherwise a fault, and the
agent decides whether the requested page replaces the cached one (``admit``). Belady's rule for
one slot (Belady, IBM Systems Journal 1966) admits the new page iff it is requested again before
the cached one, which minimises faults; the env counts ``faults`` per step.

    PYTHONPATH=examples uv run regretlab hydra.searchpath=[file://examples/conf] \\
        env=trace_cache agents=[cache_belady,cache_always,cache_random] horizon=100000 seeds=4
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from experiments.config import ConfigError, check_float, check_int
from experiments.inputs import CHUNK_ROWS, NpyRows, NpyWriter, scratch_path
from experiments.protocol import (
    FINAL,
    NONNEGATIVE,
    UNIFORM,
    AgentBase,
    Draw,
    EnvBase,
    Exogenous,
    MetricInfo,
)


def next_arrivals(trace: np.ndarray) -> np.ndarray:
    """next[t] = the least s > t with trace[s] == trace[t], or len(trace) if none; O(T log T)."""
    trace = np.asarray(trace)
    n = trace.size
    order = np.argsort(trace, kind="stable")  # equal pages stay in time order
    nxt = np.full(n, n, np.int64)
    same = trace[order[1:]] == trace[order[:-1]]
    nxt[order[:-1][same]] = order[1:][same]
    return nxt


def next_arrivals_streamed(rows, out: str | Path, chunk: int = CHUNK_ROWS) -> NpyRows:
    """`next_arrivals` of a trace too long for memory, in one backward pass of `chunk` rows.

    Within a chunk the next arrival is found as in `next_arrivals`; a request with none there
    takes the first arrival of its page in the chunks after it (`first_after`, one entry per page
    id, so ids must be small non-negative integers). Results go to the ``.npy`` file `out`.
    """
    T = len(rows)
    pages = 1 + max(int(np.max(rows[a : a + chunk])) for a in range(0, T, chunk))
    first_after = np.full(pages, T, np.int64)
    with NpyWriter(out, (T,), np.int64) as writer:
        for a in reversed(range(0, T, chunk)):
            x = np.asarray(rows[a : a + chunk])
            local = next_arrivals(x)
            writer.write(a, np.where(local < x.size, a + local, first_after[x]))
            pages_here, first = np.unique(x, return_index=True)
            first_after[pages_here] = a + first
    return NpyRows(out)


def zipf_trace(length: int, pages: int, alpha: float, seed: int) -> np.ndarray:
    """`length` i.i.d. requests, P(page i) proportional to (i + 1)^-alpha (NumPy, seeded)."""
    p = (np.arange(1, pages + 1, dtype=np.float64)) ** -alpha
    rng = np.random.default_rng(seed)
    return rng.choice(pages, size=length, p=p / p.sum()).astype(np.int32)


class CacheState(NamedTuple):
    cached: jax.Array  # page in the slot (-1: empty)
    cached_next: jax.Array  # step of the cached page's next request
    request: jax.Array  # the page requested now
    request_next: jax.Array  # step of its next request
    faults: jax.Array  # faults so far


class CacheObs(NamedTuple):
    request: jax.Array
    request_next: jax.Array
    cached: jax.Array
    cached_next: jax.Array


@dataclass(frozen=True)
class TraceCache(EnvBase):
    """One-slot cache on a trace of `length` requests (Zipf(`alpha`) over `pages`, or a file).

    `trace`: ``zipf`` (generated; per seed with ``per_seed=True``: seed s uses instance seed
    ``trace_seed + s``), or the path of a ``.npy`` file of integer page ids, read chunk by chunk
    (`experiments.inputs.NpyRows`), whose next arrivals are computed by a streamed backward pass
    into a scratch file: memory stays bounded whatever the trace's length.
    """

    trace: str = "zipf"
    length: int = 100_000
    pages: int = 16
    alpha: float = 1.0
    trace_seed: int = 0
    per_seed: bool = False

    primary_metric = "faults"
    x_label = "request t"

    def __post_init__(self):
        check_int("env.length", self.length, 1)
        check_int("env.pages", self.pages, 1)
        check_float("env.alpha", self.alpha, 0.0)
        check_int("env.trace_seed", self.trace_seed, 0)
        if self.trace != "zipf" and not self.trace.endswith(".npy"):
            raise ConfigError(f"env.trace: must be zipf or a .npy file (got {self.trace!r})")

    def metric_info(self) -> dict[str, MetricInfo]:
        return {
            "faults": MetricInfo(label="cumulative faults"),
            "fault_rate": MetricInfo(label="faults / requests", kind=FINAL, support=NONNEGATIVE),
        }

    def default_params(self):
        return ()

    def spec(self, params, horizon: int):
        return int(horizon)

    def exogenous(self, params, horizon: int, seeds: int) -> dict[str, Exogenous]:
        if self.trace != "zipf":
            return {"request": Exogenous(NpyRows(self.trace))}
        if not self.per_seed:
            return {"request": Exogenous(self._zipf(self.trace_seed))}
        rows = np.stack([self._zipf(self.trace_seed + s) for s in range(seeds)])
        return {"request": Exogenous(rows, per_seed=True)}

    def _zipf(self, seed: int) -> np.ndarray:
        return zipf_trace(self.length, self.pages, self.alpha, seed)

    def prepare(self, inputs, params, horizon: int) -> dict[str, Exogenous]:
        x = inputs["request"]
        if isinstance(x.data, NpyRows):
            out = scratch_path(f"next-{id(self)}-{x.data.path.name}")
            return {"request_next": Exogenous(next_arrivals_streamed(x.data, out))}
        data = np.asarray(x.data)
        nxt = np.stack([next_arrivals(r) for r in data]) if x.per_seed else next_arrivals(data)
        return {"request_next": Exogenous(nxt, per_seed=x.per_seed)}

    def init(self, key, params) -> CacheState:
        i = jnp.result_type(int)
        return CacheState(
            cached=jnp.full((), -1, i),
            cached_next=jnp.zeros((), i),
            request=jnp.zeros((), i),
            request_next=jnp.zeros((), i),
            faults=jnp.zeros((), i),
        )

    def feed(self, state: CacheState, inputs, params) -> CacheState:
        i = state.request.dtype
        return state._replace(
            request=inputs["request"].astype(i), request_next=inputs["request_next"].astype(i)
        )

    def observe(self, state: CacheState, params) -> CacheObs:
        return CacheObs(state.request, state.request_next, state.cached, state.cached_next)

    def step(self, rng, state: CacheState, action, params):
        hit = state.cached == state.request
        replace = ~hit & jnp.asarray(action, bool)
        cached_next = jnp.where(hit | replace, state.request_next, state.cached_next)
        new = state._replace(
            cached=jnp.where(replace, state.request, state.cached),
            cached_next=cached_next,
            faults=state.faults + (~hit).astype(state.faults.dtype),
        )
        return new, hit, {"faults": (~hit).astype(state.faults.dtype)}

    def final_metrics(self, state: CacheState, output, params) -> dict:
        return {"fault_rate": state.faults / self.length}


@dataclass(frozen=True)
class Belady(AgentBase):
    """Admit the requested page iff it is requested again before the cached one (offline OPT)."""

    def init(self, key, spec):
        return ()

    def act(self, rng, state, obs: CacheObs):
        return (obs.cached < 0) | (obs.request_next < obs.cached_next)

    def update(self, state, obs, action, feedback):
        return state


@dataclass(frozen=True)
class AlwaysAdmit(AgentBase):
    """Always replace on a fault (LRU and FIFO for one slot)."""

    def init(self, key, spec):
        return ()

    def act(self, rng, state, obs):
        return jnp.ones((), bool)

    def update(self, state, obs, action, feedback):
        return state


@dataclass(frozen=True)
class RandomAdmit(AgentBase):
    """Replace on a fault with probability `p` (one engine-drawn uniform per step)."""

    p: float = 0.5

    def __post_init__(self):
        check_float("agents.cache_random.p", self.p, 0.0, 1.0)

    def randomness(self, spec):
        return {"u": Draw(UNIFORM)}

    def init(self, key, spec):
        return ()

    def act(self, rng, state, obs):
        return rng["u"] < self.p

    def update(self, state, obs, action, feedback):
        return state
