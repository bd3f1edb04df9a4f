"""Request traces for paging: synthetic generators and streamed readers of real trace files.

A trace is a sequence of page ids. Everything here works chunk by chunk (`CHUNK_ROWS` requests),
so a trace of 10^7 or 10^9 requests costs bounded memory (with next-arrival predictions, more
than 2^24 requests need x64: `paging.env`): a generated trace longer than
`IN_MEMORY_ROWS` and every file trace are written to a scratch ``.npy`` file
(`experiments.inputs.NpyWriter`) and read back by row slices (`experiments.inputs.NpyRows`).

Page ids are remapped to dense ids 0..n-1 (n distinct pages, in increasing order of the original
id) by `load`, which returns a `Trace` whose ``pages`` is array-like with row slices.

Generators (``trace=`` name; all seeded by ``trace_seed`` with NumPy's PCG64, drawn in blocks of
`CHUNK_ROWS` so the sequence does not depend on where it is stored):

* ``uniform``: i.i.d. uniform over ``pages`` pages.
* ``zipf``: i.i.d., P(page i) proportional to (i + 1)^-alpha (the usual Zipf-like law of cache
  workloads; Breslau, Cao, Fan, Phillips & Shenker, INFOCOM 1999).
* ``phases``: phase-structured working sets: consecutive phases of ``phase_length`` requests,
  each uniform over a working set of ``working_set`` pages drawn afresh from ``pages`` pages.
* ``cyclic``: pages 0, 1, ..., k, 0, 1, ... over k + 1 pages (k = the cache size): the classic
  adversary on which LRU and FIFO fault on every request while OPT faults once every k requests
  (the lower-bound sequence of Sleator & Tarjan, CACM 1985, Sec. 3).
* ``lower_bound_discard``: the request sequence of the deterministic lower bounds for discard
  predictions of Antoniadis et al., "Paging with Succinct Predictions" (ICML 2023),
  reconstructed (ours) as the cyclic (k + 1)-page sequence; the adversarial bits are the env's
  noise settings: ``flip_p=1 flip=one_to_zero`` (every bit 0: alpha + beta >= k) or ``flip_p=1
  flip=zero_to_one`` (every bit 1: alpha + (k - 1) gamma >= k). The paper's exact construction
  was not available. (No phase-prediction lower bound is known to us, so there is no
  generator for one.)
* ``stale_page``: page k requested once (never again), then pages 0, 1, ..., k - 1 cyclically
  (k + 1 pages): OPT faults k + 1 times. With ``error_budget=1`` the first eligible bit is
  flipped, here the stale page's: ``flip=one_to_zero`` predicts its discard bit 0 ("keep",
  eta0 = 1), ``zero_to_one`` its phase bit 1 ("requested in the next phase", eta1 = 1). A single
  wrong bit that is never corrected, since the page is never requested again: an algorithm
  whose fallback keeps it can pay for it on every later cycle (the one-error check of the
  paging reproduction, R2).

Readers (``trace=`` a file path, ``format``):

* ``text``: one integer page id per line (blank lines are skipped);
* ``tokens``: one page id per line, any string (e.g. the hexadecimal location hashes of the
  BrightKite check-in traces), each mapped to a 63-bit integer by BLAKE2b (8-byte digest); two
  of n distinct strings collide with probability below n^2 / 2^64 (5e-8 at n = 10^6);
* ``csv``: comma-separated, page ids in ``column`` (an index from 0, or a header name, in which
  case the first line is the header);
* ``oracle_general``: libCacheSim's binary oracleGeneral records, 24 bytes each, little-endian
  and packed: ``uint32 timestamp, uint64 obj_id, uint32 obj_size, int64 next_access_vtime``
  (libCacheSim, ``traceReader/customizedReader/oracle/oracleGeneralBin.h``); only obj_id is read.
  zstd-compressed files (``.zst``) must be decompressed first;
* ``npy``: a ``.npy`` array of integer page ids;
* ``auto`` (default): by suffix (``.npy``, ``.csv``, ``.bin``/``.oracleGeneral`` -> oracle_general,
  otherwise text).

A malformed line raises `ConfigError` naming the file and the line number.
"""

from __future__ import annotations

import hashlib
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from experiments.config import ConfigError
from experiments.inputs import CHUNK_ROWS, NpyRows, NpyWriter, scratch_path

GENERATORS = (
    "uniform",
    "zipf",
    "phases",
    "cyclic",
    "lower_bound_discard",
    "stale_page",
)
FORMATS = ("auto", "text", "tokens", "csv", "oracle_general", "npy")
IN_MEMORY_ROWS = 1 << 22  # generated traces up to this length stay in memory
ORACLE_GENERAL = np.dtype([("ts", "<u4"), ("id", "<u8"), ("size", "<u4"), ("next", "<i8")])
assert ORACLE_GENERAL.itemsize == 24  # packed, as libCacheSim writes it


@dataclass(frozen=True)
class Trace:
    """A trace with dense page ids: ``pages`` (ndarray or `NpyRows`, int32), its ``length`` and
    its number of distinct pages ``n``; ``ids[i]`` is the original id of dense page i."""

    pages: Any
    length: int
    n: int
    ids: np.ndarray


# --------------------------------------------------------------------------- generators
def generate_block(
    name: str,
    start: int,
    count: int,
    *,
    pages: int,
    alpha: float = 1.0,
    seed: int = 0,
    cache_size: int = 1,
    phase_length: int = 1000,
    working_set: int = 10,
) -> np.ndarray:
    """Requests [start, start + count) of generator `name` (int32); `start` a multiple of
    `CHUNK_ROWS` unless the generator is deterministic."""
    t = np.arange(start, start + count, dtype=np.int64)
    if name in ("cyclic", "lower_bound_discard"):
        return (t % (cache_size + 1)).astype(np.int32)
    if name == "stale_page":
        return np.where(t == 0, cache_size, (t - 1) % cache_size).astype(np.int32)
    out = np.empty(count, np.int32)
    for a in range(0, count, CHUNK_ROWS):
        block = (start + a) // CHUNK_ROWS
        m = min(CHUNK_ROWS, count - a)
        rng = np.random.default_rng([seed, block])
        if name == "uniform":
            out[a : a + m] = rng.integers(0, pages, m)
        elif name == "zipf":
            cdf = _zipf_cdf(pages, alpha)
            out[a : a + m] = np.minimum(
                np.searchsorted(cdf, rng.random(m), side="right"), pages - 1
            )
        elif name == "phases":
            out[a : a + m] = _phases(t[a : a + m], pages, phase_length, working_set, seed)
        else:
            raise ConfigError(f"env.trace: must be one of {', '.join(GENERATORS)} or a file")
    return out


_CDF: dict[tuple[int, float], np.ndarray] = {}


def _zipf_cdf(pages: int, alpha: float) -> np.ndarray:
    key = (pages, float(alpha))
    if key not in _CDF:
        w = np.arange(1, pages + 1, dtype=np.float64) ** -float(alpha)
        _CDF[key] = np.cumsum(w) / w.sum()
    return _CDF[key]


def _phases(t: np.ndarray, pages: int, phase_length: int, working_set: int, seed: int):
    """Request t: phase t // phase_length draws its working set (a seeded sample of
    `working_set` distinct pages) and the request a uniform member of it."""
    out = np.empty(t.size, np.int32)
    phase = t // phase_length
    for ph in np.unique(phase):
        sel = phase == ph
        rng = np.random.default_rng([seed, 1 << 30, int(ph)])
        ws = rng.choice(pages, size=min(working_set, pages), replace=False)
        rng2 = np.random.default_rng([seed, 1 << 31, int(ph)])
        first = int(t[sel][0]) - int(ph) * phase_length
        draws = rng2.integers(0, ws.size, phase_length)[first : first + int(sel.sum())]
        out[sel] = ws[draws]
    return out


# --------------------------------------------------------------------------- readers
def detect_format(path: str, fmt: str) -> str:
    if fmt != "auto":
        return fmt
    p = path.lower()
    if p.endswith(".npy"):
        return "npy"
    if p.endswith(".csv"):
        return "csv"
    if p.endswith(".bin") or "oraclegeneral" in p:
        return "oracle_general"
    return "text"


def read_chunks(path: str, fmt: str = "auto", column: int | str = 0):
    """Yield the raw page ids of a trace file as int64 arrays of at most `CHUNK_ROWS` rows."""
    fmt = detect_format(path, fmt)
    if not os.path.isfile(path):
        raise ConfigError(f"env.trace: no such file or generator: {path!r}")
    if fmt == "npy":
        rows = NpyRows(path)
        if rows.ndim != 1 or not np.issubdtype(rows.dtype, np.integer):
            raise ConfigError(f"env.trace: {path}: must hold a 1-d integer array")
        for a in range(0, len(rows), CHUNK_ROWS):
            yield np.asarray(rows[a : a + CHUNK_ROWS], np.int64)
    elif fmt == "oracle_general":
        size = os.path.getsize(path)
        if size % ORACLE_GENERAL.itemsize:
            raise ConfigError(
                f"env.trace: {path}: size {size} is not a multiple of the 24-byte oracleGeneral"
                " record (a zstd-compressed file? decompress it first)"
            )
        records = np.memmap(path, ORACLE_GENERAL, "r")
        for a in range(0, len(records), CHUNK_ROWS):
            yield np.array(records["id"][a : a + CHUNK_ROWS]).astype(np.int64)
        del records
    elif fmt in ("text", "tokens", "csv"):
        yield from _read_lines(path, fmt, column)
    else:
        raise ConfigError(f"env.format: must be one of {', '.join(FORMATS)} (got {fmt!r})")


def token_id(token: str) -> int:
    """The 63-bit page id of a string page id (format ``tokens``): BLAKE2b, 8-byte digest."""
    digest = hashlib.blake2b(token.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


def _read_lines(path: str, fmt: str, column: int | str):
    with open(path, encoding="utf-8", errors="replace") as f:
        lineno = 0
        col = column
        if fmt == "csv" and isinstance(column, str):
            header = f.readline()
            lineno = 1
            names = [h.strip().strip('"') for h in header.rstrip("\n").split(",")]
            if column not in names:
                raise ConfigError(
                    f"env.column: {column!r} is not a column of {path} (one of: {', '.join(names)})"
                )
            col = names.index(column)
        while True:
            lines = f.readlines(1 << 22)
            if not lines:
                return
            values = []
            for line in lines:
                lineno += 1
                s = line.strip()
                if not s:
                    continue
                if fmt == "csv":
                    cells = s.split(",")
                    if col >= len(cells):
                        raise ConfigError(
                            f"env.trace: {path}, line {lineno}: no column {col} in {s[:60]!r}"
                        )
                    s = cells[col].strip().strip('"')
                if fmt == "tokens":
                    values.append(token_id(s))
                    continue
                try:
                    values.append(int(s))
                except ValueError:
                    raise ConfigError(
                        f"env.trace: {path}, line {lineno}: not an integer page id: {s[:60]!r}"
                    ) from None
            if values:
                yield np.asarray(values, np.int64)


# --------------------------------------------------------------------------- loading
_LOCK = threading.Lock()
_LOADED: dict[str, Trace] = {}


def load(
    trace: str,
    *,
    length: int | None = None,
    pages: int = 1000,
    alpha: float = 1.0,
    seed: int = 0,
    cache_size: int = 1,
    phase_length: int = 1000,
    working_set: int = 10,
    fmt: str = "auto",
    column: int | str = 0,
) -> Trace:
    """The trace `trace` (a generator name or a file path) with dense page ids (cached per
    process: every agent of a run shares it). A file is read whole (`length`: its first
    `length` requests if given); a generator makes `length` requests."""
    args = (trace, length, pages, alpha, seed, cache_size, phase_length, working_set, fmt, column)
    key = repr(args)
    with _LOCK:
        if key not in _LOADED:
            _LOADED[key] = _load(*args, key)
        return _LOADED[key]


def _load(
    trace, length, pages, alpha, seed, cache_size, phase_length, working_set, fmt, column, key
):
    tag = hashlib.sha1(key.encode()).hexdigest()[:12]
    if trace in GENERATORS:
        kw = dict(
            pages=pages,
            alpha=alpha,
            seed=seed,
            cache_size=cache_size,
            phase_length=phase_length,
            working_set=working_set,
        )
        assert length is not None

        def chunks():
            for a in range(0, length, CHUNK_ROWS):
                yield generate_block(trace, a, min(CHUNK_ROWS, length - a), **kw).astype(np.int64)

    else:

        def chunks():
            seen = 0
            for c in read_chunks(trace, fmt, column):
                if length is not None:
                    c = c[: max(length - seen, 0)]
                seen += c.size
                if c.size:
                    yield c
                if length is not None and seen >= length:
                    return

    # pass 1: length and distinct ids
    total, ids = 0, np.zeros(0, np.int64)
    for c in chunks():
        total += c.size
        ids = np.union1d(ids, np.unique(c))
    if total == 0:
        raise ConfigError(f"env.trace: {trace}: the trace is empty")
    if total > 2**31 - 2:
        raise ConfigError(f"env.trace: {total} requests > 2^31 - 2 are not supported")
    # pass 2: dense ids
    if total <= IN_MEMORY_ROWS:
        out = np.concatenate([np.searchsorted(ids, c).astype(np.int32) for c in chunks()])
        return Trace(out, total, int(ids.size), ids)
    path = scratch_path(f"trace-{tag}.npy")
    with NpyWriter(path, (total,), np.int32) as w:
        a = 0
        for c in chunks():
            w.write(a, np.searchsorted(ids, c).astype(np.int32))
            a += c.size
    return Trace(NpyRows(path), total, int(ids.size), ids)


def write_text(path: str | Path, pages: np.ndarray) -> None:
    """Write a trace as plain text, one id per line."""
    np.savetxt(path, np.asarray(pages, np.int64), fmt="%d")


def write_oracle_general(path: str | Path, pages: np.ndarray, next_access: np.ndarray) -> None:
    """Write libCacheSim oracleGeneral records (unit sizes; `next_access` absolute request
    indices, -1 for never, written as INT64_MAX as libCacheSim's Belady requires)."""
    pages = np.asarray(pages)
    rec = np.zeros(pages.size, ORACLE_GENERAL)
    rec["ts"] = np.arange(pages.size, dtype=np.uint32)
    rec["id"] = pages.astype(np.uint64)
    rec["size"] = 1
    nxt = np.asarray(next_access, np.int64)
    rec["next"] = np.where(nxt < 0, np.iinfo(np.int64).max, nxt)
    rec.tofile(path)
