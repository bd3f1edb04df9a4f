"""Paging predictions computed from the future of a trace, and the noise models that corrupt them.

All passes are host-side and streamed (chunks of `CHUNK_ROWS` requests; per-page carries of size
n between chunks), NumPy-vectorised within a chunk, except the phase partition, which is a
sequential scan compiled with JAX (`phase_ids`).

**Next arrivals** (`next_arrivals`): next[t] = the least s > t with r_s = r_t, or L (the trace's
length) when the page is never requested again. These feed Belady and the reoccurrence
predictions of Lykouris & Vassilvitskii (ICML 2018, Sec. 2: "the next time the element is
requested").

**Exact one-bit predictions** of Antoniadis, Boyar, Eliáš, Favrholdt, Hoeksma, Larsen, Polak &
Simon, "Paging with Succinct Predictions" (ICML 2023); the abstract is the only part of the
paper checked; the precise definitions below are our reconstruction (from third-party code
that cites the paper and from the standard analysis):

* *discard bit* of request t (abstract: "whether or not it is safe to evict this page"): 1 iff
  Belady's offline-optimal schedule (`paging.opt`, tie rule pinned there) evicts the page before
  its next request, and 1 when it is never requested again. Equivalently, since Belady's fault
  at the next request s = next[t] happens exactly when the page was evicted in between:
  ``bit[t] = (next[t] == L) or opt_fault[next[t]]``. Independent of Belady's tie rule.
* *phase bit* of request t (abstract: "whether the current page will be requested in the next
  phase"): 1 iff the page is requested in the phase after t's phase, in the standard
  k-distinct-pages partition (the one of the Marker analysis, Fiat et al., J. Algorithms 1991,
  Sec. 3): scanning left to right, a new phase starts at the request that would make the current
  phase contain k + 1 distinct pages.

**Error counts** (our reading; the paper's (alpha, beta, gamma)-competitiveness
ALG <= alpha OPT + beta eta0 + gamma eta1 is read from secondary sources): ``eta0`` = number
of requests whose predicted bit is 0 while the true bit is 1, ``eta1`` = predicted 1 while the
true bit is 0 (each error is indexed by the bit that was *predicted*). For discard
bits eta0 is the expensive error (a page that is safe to evict kept), eta1 the cheap one.

**Noise models** (`flip_mask`, `budget_mask`, `lognormal_noise`; the env applies the same models
per step from the engine's draws when no ``prediction_seed`` is given):

* i.i.d. flips: each bit flipped with probability p (``flip=both``);
* one-sided flips: only 0 -> 1 (``zero_to_one``, creating eta1 errors) or only 1 -> 0
  (``one_to_zero``, creating eta0 errors), each eligible bit with probability p;
* evenly spaced error budget (``error_budget``): exactly ``budget`` eligible bits among the
  first `horizon` requests are flipped, evenly spaced among the eligible ones (deterministic; a
  budget larger than the number of eligible bits flips them all). Not adversarial: the flipped
  bits are chosen by position, not by their cost to any algorithm (with ``budget=1`` it is the
  first eligible bit, which makes a chosen single-error instance, e.g. the ``stale_page``
  trace);
* lognormal noise on next-arrival times: predicted = next + X, X ~ LogNormal(0, sigma) for
  sigma > 0 (exact for sigma = 0), as in the experiments of Lykouris & Vassilvitskii (ICML 2018,
  Sec. 6) and Antoniadis, Coester, Eliáš, Polak & Simon (ICML 2020, Sec. 6).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from experiments.inputs import CHUNK_ROWS, NpyRows, NpyWriter, scratch_path

FLIPS = ("both", "zero_to_one", "one_to_zero")
IN_MEMORY_ROWS = 1 << 22


class _Out:
    """An output array of `length` rows: in memory when small, else a scratch ``.npy`` file."""

    def __init__(self, length: int, dtype, name: str):
        self.length = length
        if length <= IN_MEMORY_ROWS:
            self.array, self.writer = np.empty(length, dtype), None
        else:
            self.array = None
            self.path = scratch_path(f"{name}-{id(self)}.npy")
            self.writer = NpyWriter(self.path, (length,), dtype)

    def write(self, a: int, rows) -> None:
        if self.writer is None:
            self.array[a : a + len(rows)] = rows
        else:
            self.writer.write(a, rows)

    def result(self):
        if self.writer is None:
            return self.array
        return self.writer.close()


def _chunks(length: int, reverse: bool = False):
    starts = range(0, length, CHUNK_ROWS)
    return reversed(starts) if reverse else starts


# --------------------------------------------------------------------------- next arrivals
def next_arrivals_local(x: np.ndarray) -> np.ndarray:
    """next[t] within the array `x` (len(x) when none); O(m log m)."""
    x = np.asarray(x)
    m = x.size
    order = np.argsort(x, kind="stable")
    nxt = np.full(m, m, np.int64)
    same = x[order[1:]] == x[order[:-1]]
    nxt[order[:-1][same]] = order[1:][same]
    return nxt


def next_arrivals(pages, n: int):
    """next[t] of a trace of dense pages 0..n-1 (int32; L = never), one backward pass."""
    L = len(pages)
    first_after = np.full(n, L, np.int64)
    out = _Out(L, np.int32, "next")
    for a in _chunks(L, reverse=True):
        x = np.asarray(pages[a : a + CHUNK_ROWS])
        local = next_arrivals_local(x)
        out.write(a, np.where(local < x.size, a + local, first_after[x]).astype(np.int32))
        here, first = np.unique(x, return_index=True)
        first_after[here] = a + first
    return out.result()


# --------------------------------------------------------------------------- phases
@functools.partial(jax.jit, static_argnums=(0,))
def _phase_chunk(k: int, carry, pages):
    # padding rows at the end of the last chunk only change the carry after the trace's end
    def body(c, p):
        last_phase, phase, count = c
        new_page = last_phase[p] != phase
        boundary = new_page & (count == k)
        phase = jnp.where(boundary, phase + 1, phase)
        count = jnp.where(new_page, jnp.where(boundary, 1, count + 1), count)
        return (last_phase.at[p].set(phase), phase, count), phase

    return jax.lax.scan(body, carry, pages)


def phase_ids(pages, n: int, k: int):
    """Phase index (from 0) of every request in the k-distinct-pages partition (int32)."""
    L = len(pages)
    carry = (jnp.full((n,), -1, jnp.int32), jnp.zeros((), jnp.int32), jnp.zeros((), jnp.int32))
    chunk = min(CHUNK_ROWS, max(64, 1 << (L - 1).bit_length()))  # few compiled shapes
    out = _Out(L, np.int32, "phase")
    for a in range(0, L, chunk):
        p = np.asarray(pages[a : a + chunk], np.int32)
        m = p.size
        p = np.pad(p, (0, chunk - m))
        carry, ph = _phase_chunk(k, carry, p)
        out.write(a, np.asarray(ph)[:m])
    return out.result()


def phase_ids_reference(trace, k: int) -> np.ndarray:
    """The k-phase partition in plain Python (tests)."""
    out, phase, seen = [], 0, set()
    for p in trace:
        if p not in seen and len(seen) == k:
            phase, seen = phase + 1, set()
        seen.add(p)
        out.append(phase)
    return np.asarray(out, np.int32)


# --------------------------------------------------------------------------- exact bits
def exact_bits(pages, n: int, next_arrival, opt_fault=None, phases=None):
    """(discard bits, phase bits) (int8 each, None where its input is None), one backward pass.

    discard[t] = next[t] == L or opt_fault[next[t]]; phase[t] = 1 iff the page is requested in
    phase phases[t] + 1 (found through the first request of the page in a later phase).
    """
    L = len(pages)
    BIG = np.iinfo(np.int64).max // 4
    fa_opt = np.ones(n, np.int8)  # value at the first request after the chunk (none: "never")
    fa_phase = np.full(n, BIG, np.int64)
    fa_later = np.full(n, BIG, np.int64)  # phase of the first request in a later phase
    d_out = _Out(L, np.int8, "discard") if opt_fault is not None else None
    p_out = _Out(L, np.int8, "phasebit") if phases is not None else None
    for a in _chunks(L, reverse=True):
        x = np.asarray(pages[a : a + CHUNK_ROWS]).astype(np.int64)
        m = x.size
        nx = np.asarray(next_arrival[a : a + m]).astype(np.int64)
        inside = nx < a + m
        li = np.where(inside, nx - a, 0)
        here, first = np.unique(x, return_index=True)
        if d_out is not None:
            f = np.asarray(opt_fault[a : a + m]).astype(np.int8)
            at_next = np.where(inside, f[li], fa_opt[x])
            d_out.write(a, np.where(nx >= L, 1, at_next).astype(np.int8))
            fa_opt[here] = f[first]
        if p_out is not None:
            ph = np.asarray(phases[a : a + m]).astype(np.int64)
            ph_next = np.where(inside, ph[li], np.where(nx >= L, BIG, fa_phase[x]))
            # a request whose next one is in a later phase knows it; one whose next one is in
            # the same phase takes the answer of the last request of its (page, phase) group
            later = np.where(ph_next > ph, ph_next, np.where(inside, -1, fa_later[x]))
            order = np.lexsort((np.arange(m), ph, x))
            xs, ps = x[order], ph[order]
            last = np.ones(m, bool)
            last[:-1] = (xs[1:] != xs[:-1]) | (ps[1:] != ps[:-1])
            group = np.cumsum(np.concatenate([[0], last[:-1]]))
            group_value = later[order][last]
            resolved = np.empty(m, np.int64)
            resolved[order] = group_value[group]
            p_out.write(a, (resolved == ph + 1).astype(np.int8))
            fa_phase[here] = ph[first]
            fa_later[here] = resolved[first]
    return (
        None if d_out is None else d_out.result(),
        None if p_out is None else p_out.result(),
    )


def discard_bits_reference(trace, k: int) -> np.ndarray:
    """Discard bits by simulating Belady in Python and marking evictions (tests): 1 at the most
    recent request of every page Belady evicts, and at the last request of every page."""
    from paging.opt import belady_faults_reference

    trace = [int(x) for x in trace]
    L = len(trace)
    faults = belady_faults_reference(trace, k)
    bits = np.zeros(L, np.int8)
    last = {}
    for t, p in enumerate(trace):
        if p in last and faults[t]:
            bits[last[p]] = 1  # evicted between its previous request and this one
        last[p] = t
    for t in last.values():
        bits[t] = 1
    return bits


def phase_bits_reference(trace, k: int) -> np.ndarray:
    """Phase bits from the definition, in plain Python (tests)."""
    ph = phase_ids_reference(trace, k)
    sets: dict[int, set] = {}
    for p, q in zip(trace, ph, strict=True):
        sets.setdefault(int(q), set()).add(int(p))
    return np.asarray(
        [int(int(p) in sets.get(int(q) + 1, set())) for p, q in zip(trace, ph, strict=True)],
        np.int8,
    )


# --------------------------------------------------------------------------- noise (host side)
def eligible(bits: np.ndarray, flip: str) -> np.ndarray:
    """Which bits a noise model of direction `flip` may flip."""
    bits = np.asarray(bits)
    if flip == "both":
        return np.ones(bits.shape, bool)
    return bits == (0 if flip == "zero_to_one" else 1)


def flip_mask(bits: np.ndarray, p: float, flip: str, rng: np.random.Generator) -> np.ndarray:
    """i.i.d. (or one-sided) flips: 1 where a bit is flipped (int8)."""
    return ((rng.random(np.shape(bits)) < p) & eligible(bits, flip)).astype(np.int8)


def budget_mask(bits, budget: int, flip: str, horizon: int):
    """The evenly spaced error budget: `budget` eligible bits among the first `horizon`
    flipped, evenly spaced among the eligible ones (the i-th flip is eligible bit number
    floor(i * eligible / budget), so the first one is always flipped); deterministic, not
    adversarial (int8 mask over the whole trace, streamed)."""
    L = len(bits)
    total = 0
    for a in _chunks(L):
        b = np.asarray(bits[a : min(a + CHUNK_ROWS, horizon)])
        total += int(eligible(b, flip).sum())
    budget = min(int(budget), total)
    out = _Out(L, np.int8, "budget")
    # the i-th chosen eligible bit (i < budget) is eligible number floor(i * total / budget)
    chosen = (np.arange(budget, dtype=np.int64) * total) // max(budget, 1)
    seen = 0
    for a in _chunks(L):
        b = np.asarray(bits[a : a + CHUNK_ROWS])
        e = eligible(b, flip) & (np.arange(a, a + b.size) < horizon)
        rank = seen + np.cumsum(e) - 1  # rank among eligible bits, for eligible positions
        hit = np.zeros(b.size, bool)
        if budget:
            pos = np.searchsorted(chosen, rank)
            hit = e & (pos < budget) & (chosen[np.minimum(pos, budget - 1)] == rank)
        out.write(a, hit.astype(np.int8))
        seen += int(e.sum())
    return out.result()


def lognormal_noise(size: int, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Additive noise of next-arrival predictions: LogNormal(0, sigma), 0 when sigma = 0."""
    if sigma == 0:
        return np.zeros(size, np.float32)
    with np.errstate(over="ignore"):
        return np.exp(sigma * rng.standard_normal(size)).astype(np.float32)


def error_counts(true_bits, predicted_bits) -> tuple[int, int]:
    """(eta0, eta1): predicted 0 where the truth is 1, predicted 1 where the truth is 0."""
    t, p = np.asarray(true_bits), np.asarray(predicted_bits)
    return int(np.sum((p == 0) & (t == 1))), int(np.sum((p == 1) & (t == 0)))


__all__ = [
    "FLIPS",
    "NpyRows",
    "budget_mask",
    "discard_bits_reference",
    "error_counts",
    "exact_bits",
    "flip_mask",
    "lognormal_noise",
    "next_arrivals",
    "next_arrivals_local",
    "phase_bits_reference",
    "phase_ids",
    "phase_ids_reference",
]
