"""Paging with predictions: a cache of k slots replaying a request trace (``env=paging``).

The model is demand paging with unit-size pages (Sleator & Tarjan, CACM 28(2), 1985, Sec. 3):
each step is one request; a request for a cached page is a hit; otherwise a fault, the requested
page enters the cache, and when the cache is full the agent names the slot to evict. The cost is
the number of faults, compulsory misses included. Each request can carry a prediction:

* ``predictions=discard``: one bit, 1 = "safe to evict" (Antoniadis, Boyar, Eliáš, Favrholdt,
  Hoeksma, Larsen, Polak & Simon, "Paging with Succinct Predictions", ICML 2023; exact bit as in
  `paging.predictions`);
* ``predictions=phase``: one bit, 1 = "requested in the next k-phase" (same paper);
* ``predictions=next_arrival``: the predicted time of the page's next request (Lykouris &
  Vassilvitskii, ICML 2018);
* ``predictions=none``.

Bits and times come exact from the future of the trace, then corrupted by the noise model
(`paging.predictions`): ``flip_p`` (i.i.d. flips; with ``flip=zero_to_one`` / ``one_to_zero``
one-sided), ``error_budget`` (exactly that many eligible bits flipped, evenly spaced among them:
deterministic, not chosen adversarially), ``sigma`` (lognormal noise on next-arrival times). Each
setting is refused in one line where the chosen predictions would ignore it (``flip_p > 0``,
``flip`` other than ``both`` and ``error_budget``: bits only; ``sigma > 0``: next_arrival only; an
integer ``prediction_seed``: not with ``predictions=none``, which has no noise to seed; it is
accepted at ``flip_p = 0`` so that a sweep over p may include 0). With ``prediction_seed=null``
(the default) the i.i.d. noise is drawn per step from the engine's draws of each seed (every agent
of a run sees the same noisy predictions for the same seed, and seeds are independent noise
realisations); with an integer ``prediction_seed`` it is drawn once on the host with NumPy from
that seed and is the same for every seed. ``prediction_file``: a user's own predictions (a ``.npy``
array or a text file, one value per line, as long as the trace; bits for discard/phase, times for
next_arrival), corrupted by the same noise settings.

**Interface** (the contract the paging agents code against):

* `PagingSpec` ``(cache_size, pages, horizon)``: k, the number n of distinct pages (ids are
  remapped to 0..n-1 on the host), the number of requests.
* `PagingObs` (built by keyword): ``t`` request index; ``page`` (dense id); ``hit`` (bool);
  ``slot``: the page's slot on a hit, the first free slot on a fault with a free slot, -1 on a
  fault with a full cache; ``bit`` the predicted bit (int32; 0 when predictions are not bits);
  ``predicted_next`` (float32, float64 under x64, `time_dtype`; the trace's length L when
  predictions are not next_arrival; float32 holds integers exactly only up to 2^24, so
  next_arrival on a longer trace is refused unless x64 is on);
  ``slot_page`` (k,) int32 (-1 = empty); ``next_arrival``: the *exact* next request time (int32,
  L = never), and ``opt_slot``: the slot Belady's schedule (the host pass) puts the requested
  page in (on a fault with a full cache: the slot it evicts), for offline algorithms only
  (`paging.classic.Belady`); online agents must not read them.
* Action: the slot to evict (an integer). Read only on a fault with a full cache, where a slot
  outside [0, k) is ``illegal``; ignored otherwise. Free slots are filled in order 0, 1, ...
* Feedback `PagingFeedback` ``(fault, slot)``: ``slot`` now holds the requested page.
* Metrics (curves, cumulative against requests; their totals are final values too): ``faults``,
  ``opt_faults`` (Belady on the same trace, exact on every prefix), ``eta0``, ``eta1``
  (bit predictions only: predicted 0 where the truth is 1, predicted 1 where it is 0); final:
  ``ratio`` = faults / opt_faults.

Cost per step: O(1). The state keeps both directions of the cache, ``slot_page`` (k,) and
``page_slot`` (n,) (-1 = not cached; an evicted page's entry is cleared), so a lookup is one
read and a request writes at most three entries. Both arrays are updated in place by XLA only
because every read of the old arrays is an ancestor of the update: the lookup
``page_slot[page]`` is taken once, in ``feed``, under a ``lax.cond`` (predicate: the page id,
which the engine streams unbatched, so the cond stays a branch under ``vmap``) -- otherwise XLA
fuses copies of that read into later consumers and then copies the whole (n,) table on every
step (20-60 us per request at n = 10^5 on CPU); the evicted page is read before ``slot_page``
is written, and the write's index is made to depend on it. Memory: (n + k) int32 per seed.
The host passes (dense ids, next arrivals, Belady, bits) run once per run and are shared by
its agents.
"""

from __future__ import annotations

import threading
import warnings
from dataclasses import dataclass
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from experiments.config import ConfigError, check_choice, check_float, check_int
from experiments.inputs import CHUNK_ROWS, NpyRows
from experiments.protocol import (
    FINAL,
    NONNEGATIVE,
    NORMAL,
    UNIFORM,
    Draw,
    EnvBase,
    Exogenous,
    MetricInfo,
)
from paging import predictions as pred
from paging import traces
from paging.opt import belady_schedule

PREDICTIONS = ("none", "discard", "phase", "next_arrival")
BITS = ("discard", "phase")
EXACT_TIMES = 1 << 24  # float32 holds every integer up to 2^24: longer traces need x64


def time_dtype():
    """The dtype of predicted next-arrival times (``obs.predicted_next``): float32, or float64
    when JAX's x64 mode is on (``x64=true``); read at trace time."""
    return jnp.result_type(float)


class PagingSpec(NamedTuple):
    """What a paging agent may know before it starts."""

    cache_size: int  # k
    pages: int  # n distinct pages (dense ids 0..n-1)
    horizon: int  # requests in the run
    predictions: str | None = None  # env.predictions (none | discard | phase | next_arrival)


class PagingObs(NamedTuple):
    """One request, as the agent sees it (see the module docstring)."""

    t: jax.Array
    page: jax.Array
    hit: jax.Array
    slot: jax.Array
    bit: jax.Array
    predicted_next: jax.Array
    slot_page: jax.Array
    next_arrival: Any = None  # exact; offline algorithms only
    opt_slot: Any = None  # Belady's slot for this request (host pass); offline algorithms only


class PagingFeedback(NamedTuple):
    fault: jax.Array  # bool
    slot: jax.Array  # the slot that now holds the requested page


class PagingState(NamedTuple):
    t: jax.Array
    page: jax.Array
    next_arrival: jax.Array
    opt_fault: jax.Array
    opt_slot: jax.Array
    true_bit: jax.Array
    bit: jax.Array
    predicted_next: jax.Array
    slot_page: jax.Array  # (k,) page in each slot, -1 empty
    page_slot: jax.Array  # (n,) slot of each page, -1 not cached
    lookup: jax.Array  # page_slot[page] of the current request
    filled: jax.Array  # slots 0..filled-1 are occupied
    u: jax.Array  # noise draws for the coming request
    z: jax.Array
    faults: jax.Array
    opt_faults: jax.Array


_LOCK = threading.Lock()
_PREPARED: dict[str, dict[str, Exogenous]] = {}


@dataclass(frozen=True)
class Paging(EnvBase):
    """k-slot demand paging on a trace, with optional predictions (module docstring)."""

    trace: str = "zipf"  # generator (paging.traces.GENERATORS) or a file path
    format: str = "auto"  # auto | text | tokens | csv | oracle_general | npy
    column: Any = 0  # csv: column index (from 0) or header name
    length: int | None = None  # requests (generators: required; files: a prefix, null = all)
    pages: int = 1000  # generators: pages to draw from
    alpha: float = 1.0  # zipf exponent
    phase_length: int = 1000  # phases generator
    working_set: int = 10  # phases generator
    trace_seed: int = 0
    cache_size: int = 10  # k
    predictions: str = "none"  # none | discard | phase | next_arrival
    flip_p: float = 0.0  # i.i.d. flip probability
    flip: str = "both"  # both | zero_to_one | one_to_zero
    error_budget: int = 0  # flips of exactly this many bits, evenly spaced (deterministic)
    sigma: float = 0.0  # lognormal noise of next-arrival predictions
    prediction_seed: int | None = None  # null: per-seed noise from the engine's draws
    prediction_file: str | None = None

    primary_metric = "faults"
    x_label = "request t"

    def __post_init__(self):
        check_int("env.cache_size", self.cache_size, 1)
        check_choice("env.predictions", self.predictions, PREDICTIONS)
        check_choice("env.flip", self.flip, pred.FLIPS)
        check_choice("env.format", self.format, traces.FORMATS)
        check_float("env.flip_p", self.flip_p, 0.0, 1.0)
        check_float("env.sigma", self.sigma, 0.0)
        check_int("env.error_budget", self.error_budget, 0)
        check_float("env.alpha", self.alpha, 0.0)
        check_int("env.trace_seed", self.trace_seed, 0)
        if self.prediction_seed is not None:
            check_int("env.prediction_seed", self.prediction_seed, 0)
        # a noise setting the chosen predictions do not read would silently do nothing
        if self.flip_p > 0 and self.predictions not in BITS:
            raise ConfigError(
                "env.flip_p: flips bits, so only with env.predictions=discard or phase"
                f" (got flip_p={self.flip_p} with predictions={self.predictions})"
            )
        if self.flip != "both" and self.predictions not in BITS:
            raise ConfigError(
                "env.flip: one-sided flips of bits, only with env.predictions=discard or phase"
                f" (got flip={self.flip} with predictions={self.predictions})"
            )
        if self.sigma > 0 and self.predictions != "next_arrival":
            raise ConfigError(
                "env.sigma: noise on next-arrival times, only with"
                f" env.predictions=next_arrival (got sigma={self.sigma} with"
                f" predictions={self.predictions})"
            )
        if self.error_budget and self.predictions not in BITS:
            raise ConfigError("env.error_budget: needs env.predictions=discard or phase")
        if self.prediction_seed is not None and self.predictions == "none":
            raise ConfigError(  # with p = 0 it draws nothing, but a sweep over p may include 0
                "env.prediction_seed: seeds prediction noise, so only with env.predictions ="
                f" discard, phase or next_arrival (got prediction_seed={self.prediction_seed}"
                " with predictions=none; leave it null)"
            )
        if self.error_budget and self.flip_p > 0:  # the two masks combine by XOR: a bit both
            raise ConfigError(  # chose would flip back, and "exactly that many" would not hold
                "env.error_budget: cannot be combined with env.flip_p > 0 (one noise model at a"
                f" time; got error_budget={self.error_budget}, flip_p={self.flip_p})"
            )
        if self.trace in traces.GENERATORS:
            if self.length is None:
                raise ConfigError(f"env.length: needed for the {self.trace} generator")
            check_int("env.length", self.length, 1)
            check_int("env.pages", self.pages, 1)
            check_int("env.phase_length", self.phase_length, 1)
            check_int("env.working_set", self.working_set, 1)
        elif self.length is not None:
            check_int("env.length", self.length, 1)
        if not (isinstance(self.column, str) or check_int("env.column", self.column, 0) >= 0):
            raise ConfigError(f"env.column: must be an index >= 0 or a name (got {self.column!r})")
        tr = self._trace()
        object.__setattr__(self, "_n", int(tr.n))
        object.__setattr__(self, "_L", int(tr.length))
        long = self.predictions == "next_arrival" and tr.length > EXACT_TIMES
        if long and not jax.config.jax_enable_x64:  # times up to L: float32 merges neighbours
            raise ConfigError(
                f"env.predictions: next_arrival on a trace of {tr.length} requests > 2^24"
                " needs 64-bit floats (float32 next-arrival times collide above 2^24): set"
                " x64=true (without the CLI: JAX_ENABLE_X64=1), or use at most 2^24 requests"
                " (env.length)"
            )
        if self.cache_size >= tr.n:
            warnings.warn(
                f"env.cache_size: k = {self.cache_size} >= {tr.n} distinct pages: only compulsory"
                " misses occur and every algorithm is optimal",
                stacklevel=2,
            )
        if self.prediction_file is not None:
            self._given()  # checks its length now

    # ------------------------------------------------------------------ host side
    def _trace(self) -> traces.Trace:
        return traces.load(
            self.trace,
            length=self.length,
            pages=self.pages,
            alpha=float(self.alpha),
            seed=self.trace_seed,
            cache_size=self.cache_size,
            phase_length=self.phase_length,
            working_set=self.working_set,
            fmt=self.format,
            column=self.column,
        )

    def _given(self):
        """The user's prediction file as an array-like of length L (checked)."""
        path = self.prediction_file
        kind = "next_arrival" if self.predictions == "next_arrival" else "bits"
        if self.predictions == "none":
            raise ConfigError(
                "env.prediction_file: needs env.predictions=discard|phase|next_arrival"
            )
        try:
            if str(path).endswith(".npy"):
                data = NpyRows(path)
                length = len(data)
            else:
                data = np.concatenate(list(traces.read_chunks(path, "text")))
                length = data.size
        except OSError as e:
            raise ConfigError(f"env.prediction_file: cannot read {path!r} ({e})") from None
        except ConfigError as e:
            msg = str(e).replace("env.trace:", "env.prediction_file:")
            raise ConfigError(msg) from None
        if length != self._L:
            raise ConfigError(
                f"env.prediction_file: {length} predictions for a trace of {self._L} requests"
                " (lengths must be equal)"
            )
        if kind == "bits":
            for a in range(0, length, CHUNK_ROWS):
                v = np.asarray(data[a : a + CHUNK_ROWS])
                if np.any((v != 0) & (v != 1)):
                    raise ConfigError(f"env.prediction_file: bits must be 0 or 1 ({path})")
        return data

    def _host_noise(self) -> bool:
        return self.prediction_seed is not None

    def _prepared_key(self, horizon: int) -> str:
        return repr(
            (
                self.trace, self.format, self.column, self.length, self.pages, float(self.alpha),
                self.phase_length, self.working_set, self.trace_seed, self.cache_size,
                self.predictions, float(self.flip_p), self.flip, self.error_budget,
                float(self.sigma), self.prediction_seed, self.prediction_file,
                horizon if self.error_budget else None,
                self.predictions == "next_arrival" and bool(jax.config.jax_enable_x64),
            )
        )  # fmt: skip

    def host(self, horizon: int) -> dict[str, Exogenous]:
        """Every per-request input of a run of `horizon` requests (computed once per process)."""
        key = self._prepared_key(horizon)
        with _LOCK:
            if key not in _PREPARED:
                _PREPARED[key] = self._compute(horizon)
            return _PREPARED[key]

    def _compute(self, horizon: int) -> dict[str, Exogenous]:
        tr = self._trace()
        k, n, L = self.cache_size, tr.n, tr.length
        nxt = pred.next_arrivals(tr.pages, n)
        opt, opt_slot = belady_schedule(tr.pages, nxt, k, n)
        out = {"page": tr.pages, "next_arrival": nxt, "opt_fault": opt, "opt_slot": opt_slot}
        if self.predictions in BITS:
            phases = pred.phase_ids(tr.pages, n, k) if self.predictions == "phase" else None
            d, p = pred.exact_bits(tr.pages, n, nxt, opt if phases is None else None, phases)
            truth = d if self.predictions == "discard" else p
            out["true_bit"] = truth
            base = truth if self.prediction_file is None else self._given()
            flips = []
            if self.error_budget:
                flips.append(pred.budget_mask(base, self.error_budget, self.flip, horizon))
            if self._host_noise() and self.flip_p > 0:
                rng = np.random.default_rng(self.prediction_seed)
                flips.append(
                    np.concatenate(
                        [
                            pred.flip_mask(np.asarray(base[a : a + CHUNK_ROWS]), self.flip_p,
                                           self.flip, rng)
                            for a in range(0, L, CHUNK_ROWS)
                        ]
                    )
                )  # fmt: skip
            if self.prediction_file is not None:
                out["given"] = np.asarray(base, np.int8)
            if flips:
                mask = np.asarray(flips[0], np.int8)
                for f in flips[1:]:
                    mask = mask ^ np.asarray(f, np.int8)
                out["host_flip"] = mask
        elif self.predictions == "next_arrival":
            if self.prediction_file is not None:
                out["given"] = np.asarray(self._given(), time_dtype())
            if self._host_noise():
                rng = np.random.default_rng(self.prediction_seed)
                out["host_noise"] = np.concatenate(
                    [
                        pred.lognormal_noise(min(CHUNK_ROWS, L - a), float(self.sigma), rng)
                        for a in range(0, L, CHUNK_ROWS)
                    ]
                )
        return {name: Exogenous(v) for name, v in out.items()}

    # ------------------------------------------------------------------ protocol
    def metric_info(self) -> dict[str, MetricInfo]:
        info = {
            "faults": MetricInfo(label="cumulative faults"),
            "opt_faults": MetricInfo(label="OPT (Belady) faults"),
            "ratio": MetricInfo(label="faults / OPT faults", kind=FINAL, support=NONNEGATIVE),
        }
        if self.predictions in BITS:
            info["eta0"] = MetricInfo(label="eta0 (predicted 0, true 1)")
            info["eta1"] = MetricInfo(label="eta1 (predicted 1, true 0)")
        return info

    def default_params(self):
        return ()

    def spec(self, params, horizon: int) -> PagingSpec:
        if horizon > self._L:
            raise ConfigError(
                f"horizon: {horizon} requests > the trace's {self._L} (set horizon <= env.length)"
            )
        return PagingSpec(
            cache_size=self.cache_size,
            pages=self._n,
            horizon=int(horizon),
            predictions=self.predictions,
        )

    def randomness(self, params, action):
        if self._host_noise():
            return {}
        if self.predictions in BITS:
            return {"noise_u": Draw(UNIFORM)}
        if self.predictions == "next_arrival":
            return {"noise_z": Draw(NORMAL)}
        return {}

    def exogenous(self, params, horizon: int, seeds: int) -> dict[str, Exogenous]:
        self.spec(params, horizon)
        return {"page": self.host(horizon)["page"]}

    def prepare(self, inputs, params, horizon: int) -> dict[str, Exogenous]:
        return {k: v for k, v in self.host(horizon).items() if k != "page"}

    def init(self, key, params) -> PagingState:
        i = jnp.int32
        c = jnp.result_type(int)
        ku, kz = jax.random.split(key)
        return PagingState(
            t=jnp.zeros((), i),
            page=jnp.zeros((), i),
            next_arrival=jnp.zeros((), i),
            opt_fault=jnp.zeros((), i),
            opt_slot=jnp.zeros((), i),
            true_bit=jnp.zeros((), i),
            bit=jnp.zeros((), i),
            predicted_next=jnp.zeros((), time_dtype()),
            slot_page=jnp.full((self.cache_size,), -1, i),
            page_slot=jnp.full((self._n,), -1, i),
            lookup=jnp.full((), -1, i),
            filled=jnp.zeros((), i),
            u=jax.random.uniform(ku),
            z=jax.random.normal(kz),
            faults=jnp.zeros((), c),
            opt_faults=jnp.zeros((), c),
        )

    def feed(self, state: PagingState, inputs, params) -> PagingState:
        i = jnp.int32
        page = inputs["page"].astype(i)
        nxt = inputs["next_arrival"].astype(i)
        L = jnp.asarray(self._L, time_dtype())
        bit = jnp.zeros((), i)
        true_bit = jnp.zeros((), i)
        predicted_next = L
        if self.predictions in BITS:
            true_bit = inputs["true_bit"].astype(i)
            base = inputs["given"].astype(i) if "given" in inputs else true_bit
            bit = base
            if not self._host_noise():
                if self.flip == "both":
                    ok = True
                else:
                    ok = base == (0 if self.flip == "zero_to_one" else 1)
                bit = bit ^ ((state.u < self.flip_p) & ok).astype(i)
            if "host_flip" in inputs:
                bit = bit ^ inputs["host_flip"].astype(i)
        elif self.predictions == "next_arrival":
            base = inputs["given"] if "given" in inputs else nxt.astype(time_dtype())
            if self._host_noise():
                noise = inputs["host_noise"]
            else:
                noise = jnp.where(self.sigma > 0, jnp.exp(self.sigma * state.z), 0.0)
            predicted_next = (base + noise).astype(time_dtype())
        # an entry of `page_slot` is left stale when its page is evicted: valid only if that slot
        # still holds the page
        lookup = jax.lax.cond(page >= 0, lambda: state.page_slot[page], lambda: jnp.int32(-1))
        lookup = jnp.where(state.slot_page[jnp.maximum(lookup, 0)] == page, lookup, -1)
        return state._replace(
            page=page,
            lookup=lookup,
            next_arrival=nxt,
            opt_fault=inputs["opt_fault"].astype(i),
            opt_slot=inputs["opt_slot"].astype(i),
            true_bit=true_bit,
            bit=bit,
            predicted_next=jnp.asarray(predicted_next, time_dtype()),
        )

    def _lookup(self, state: PagingState):
        s = state.lookup
        hit = s >= 0
        free = state.filled < self.cache_size
        slot = jnp.where(hit, s, jnp.where(free, state.filled, -1))
        return hit, slot, free

    def observe(self, state: PagingState, params) -> PagingObs:
        hit, slot, _ = self._lookup(state)
        return PagingObs(
            t=state.t,
            page=state.page,
            hit=hit,
            slot=slot,
            bit=state.bit,
            predicted_next=state.predicted_next,
            slot_page=state.slot_page,
            next_arrival=state.next_arrival,
            opt_slot=state.opt_slot,
        )

    def step(self, rng, state: PagingState, action, params):
        k = self.cache_size
        hit, slot, free = self._lookup(state)
        full_fault = ~hit & ~free
        a = jnp.asarray(action).astype(jnp.int32)
        illegal = full_fault & ((a < 0) | (a >= k))
        victim = jnp.clip(a, 0, k - 1)
        target = jnp.where(full_fault, victim, slot)
        slot_page = state.slot_page.at[target].set(state.page)
        page_slot = state.page_slot.at[state.page].set(target)
        fault = ~hit
        c = state.faults.dtype
        new = state._replace(
            t=state.t + 1,
            slot_page=slot_page,
            page_slot=page_slot,
            filled=state.filled + (fault & free).astype(jnp.int32),
            u=rng.get("noise_u", state.u),
            z=rng.get("noise_z", state.z),
            faults=state.faults + fault.astype(c),
            opt_faults=state.opt_faults + state.opt_fault.astype(c),
        )
        metrics = {
            "faults": fault.astype(jnp.int32),
            "opt_faults": state.opt_fault,
            "illegal": illegal,
        }
        if self.predictions in BITS:
            metrics["eta0"] = ((state.bit == 0) & (state.true_bit == 1)).astype(jnp.int32)
            metrics["eta1"] = ((state.bit == 1) & (state.true_bit == 0)).astype(jnp.int32)
        return new, PagingFeedback(fault=fault, slot=target), metrics

    def final_metrics(self, state: PagingState, output, params) -> dict:
        return {"ratio": state.faults / jnp.maximum(state.opt_faults, 1)}


__all__ = ["Paging", "PagingFeedback", "PagingObs", "PagingSpec", "PagingState"]
