"""Traces, exact predictions, OPT and noise (paging/traces.py, predictions.py, opt.py).

Everything is compared with an independent reference on small fixed traces: OPT with an
exhaustive search over eviction choices, discard bits from a plain-Python Belady that marks the
evicted page's last request, phase bits from the definition (sets of pages per k-phase), readers
against the ids written. Noise models: exact counts where they are deterministic, binomial
tolerances where they are random.
"""

from __future__ import annotations

import numpy as np
import pytest

from experiments.config import ConfigError
from paging import predictions as P
from paging import traces as T
from paging.opt import (
    belady_faults,
    belady_faults_reference,
    opt_brute_force,
    opt_evictions_brute_force,
)

N = 8  # page-table size of the compiled scans (>= the distinct pages): one compiled shape


def dense(trace):
    _, inv = np.unique(np.asarray(trace), return_inverse=True)
    return inv.astype(np.int32), N


def random_traces(count, max_len, max_pages, seed=0):
    rng = np.random.default_rng(seed)
    for _ in range(count):
        L = int(rng.integers(1, max_len + 1))
        yield rng.integers(0, int(rng.integers(1, max_pages + 1)), L), int(rng.integers(1, 4))


def test_belady_equals_exhaustive_search_and_the_python_reference():
    for trace, k in random_traces(50, 11, 6):
        x, n = dense(trace)
        f = belady_faults(x, P.next_arrivals(x, n), k, n)
        assert int(f.sum()) == opt_brute_force(x, k), (trace, k)
        # the per-request fault pattern is one of the optimal schedules' patterns
        assert tuple(f) in opt_evictions_brute_force(x, k)
        np.testing.assert_array_equal(f, belady_faults_reference(x, k))


def test_discard_and_phase_bits_against_references():
    for trace, k in random_traces(100, 40, 8, seed=1):
        x, n = dense(trace)
        nxt = P.next_arrivals(x, n)
        f = belady_faults(x, nxt, k, n)
        d, p = P.exact_bits(x, n, nxt, f, P.phase_ids(x, n, k))
        np.testing.assert_array_equal(d, P.discard_bits_reference(x, k))
        np.testing.assert_array_equal(p, P.phase_bits_reference(x, k))


def test_phase_partition_by_hand():
    # k = 2: phases {1,2} {3,1} {2} -> [0,0,0,1,1,2]; k = 3: {1,2,3} {...}
    trace = [1, 2, 1, 3, 1, 2]
    np.testing.assert_array_equal(P.phase_ids_reference(trace, 2), [0, 0, 0, 1, 1, 2])
    x, n = dense(trace)
    np.testing.assert_array_equal(P.phase_ids(x, n, 2), [0, 0, 0, 1, 1, 2])
    # bits: page 1 (phase 0) is requested in phase 1 -> 1; page 2 (phase 0) is not -> 0;
    # page 3 (phase 1) not in phase 2 -> 0; page 1 (phase 1) not in phase 2 -> 0; last -> 0
    np.testing.assert_array_equal(P.phase_bits_reference(trace, 2), [1, 0, 1, 0, 0, 0])
    nxt = P.next_arrivals(x, n)
    _, bits = P.exact_bits(x, n, nxt, None, P.phase_ids(x, n, 2))
    np.testing.assert_array_equal(bits, [1, 0, 1, 0, 0, 0])


def test_streamed_passes_equal_in_memory_ones(monkeypatch):
    """Chunk boundaries (7 rows) do not change next arrivals, phases or bits."""
    rng = np.random.default_rng(2)
    x, n = dense(rng.integers(0, 8, 200))
    nxt, ph = P.next_arrivals(x, n), P.phase_ids(x, n, 3)
    f = belady_faults(x, nxt, 3, n)
    d, p = P.exact_bits(x, n, nxt, f, ph)
    monkeypatch.setattr(P, "CHUNK_ROWS", 7)
    np.testing.assert_array_equal(P.next_arrivals(x, n), nxt)
    d7, p7 = P.exact_bits(x, n, nxt, f, ph)
    np.testing.assert_array_equal(d7, d)
    np.testing.assert_array_equal(p7, p)


def test_readers_text_csv_npy_and_oracle_general(tmp_path):
    ids = np.array([70, 3, 70, 12, 5, 3])
    T.write_text(tmp_path / "t.txt", ids)
    (tmp_path / "t.csv").write_text("ts,obj\n" + "".join(f"{i},{v}\n" for i, v in enumerate(ids)))
    np.save(tmp_path / "t.npy", ids)
    T.write_oracle_general(tmp_path / "t.oracleGeneral.bin", ids, np.full(ids.size, -1))
    for path, kw in [
        ("t.txt", {}),
        ("t.csv", {"column": "obj"}),
        ("t.npy", {}),
        ("t.oracleGeneral.bin", {}),
    ]:
        tr = T.load(str(tmp_path / path), **kw)
        assert tr.length == 6 and tr.n == 4
        np.testing.assert_array_equal(tr.ids[np.asarray(tr.pages)], ids)
    no_header = tmp_path / "h.csv"
    no_header.write_text("".join(f"{i},{v}\n" for i, v in enumerate(ids)))
    np.testing.assert_array_equal(T.load(str(no_header), column=1).ids, [3, 5, 12, 70])


def test_tokens_reader_maps_string_ids_one_to_one(tmp_path):
    """`format=tokens` (string page ids, e.g. BrightKite's hexadecimal location hashes): the
    same request structure as the integer ids, each string's id its BLAKE2b digest."""
    import hashlib

    words = ["88c46bf20db295831bd2d1718ad7e6f5", "7a0f", "9848afcc62e500a01cf6fbf24b797732f8963683"]
    ids = np.array([2, 0, 2, 1, 0, 0])
    (tmp_path / "bk.txt").write_text("".join(words[i] + "\n" for i in ids) + "\n")
    tr = T.load(str(tmp_path / "bk.txt"), fmt="tokens")
    assert tr.length == 6 and tr.n == 3
    h = [
        int.from_bytes(hashlib.blake2b(w.encode(), digest_size=8).digest(), "little") >> 1
        for w in words
    ]
    np.testing.assert_array_equal(tr.ids[np.asarray(tr.pages)], np.array(h)[ids])
    with pytest.raises(ConfigError, match="line 1: not an integer page id"):
        T.load(str(tmp_path / "bk.txt"), fmt="text")


def test_oracle_general_file_written_by_libcachesim(tmp_path):
    lcs = pytest.importorskip("libcachesim")
    ids = np.array([5, 1, 5, 2, 9, 1, 2, 5, 7, 1, 9, 9, 2, 7, 5, 1, 2, 3, 1, 5])
    T.write_text(tmp_path / "t.txt", ids)
    params = lcs.ReaderInitParam()
    params.ignore_obj_size = True
    reader = lcs.TraceReader(
        trace=str(tmp_path / "t.txt"),
        trace_type=lcs.TraceType.PLAIN_TXT_TRACE,
        reader_init_params=params,
    )
    out = tmp_path / "t.oracleGeneral.bin"
    lcs.Util.convert_to_oracleGeneral(reader._reader, str(out))
    tr = T.load(str(out))
    # libCacheSim's converter (0.3.5) drops the trace's last request
    assert tr.length == ids.size - 1
    np.testing.assert_array_equal(tr.ids[np.asarray(tr.pages)], ids[:-1])


def test_generators_are_seeded_and_independent_of_storage(monkeypatch):
    a = T.generate_block("zipf", 0, 5000, pages=50, alpha=1.0, seed=3)
    assert a.min() >= 0 and a.max() < 50
    # the most popular page has probability 1 / H_50 ~ 0.222 (Zipf(1)); 5000 draws: sd 0.006
    assert abs(np.mean(a == 0) - 1 / np.sum(1 / np.arange(1, 51))) < 0.03
    monkeypatch.setattr(T, "CHUNK_ROWS", 1 << 10)
    b = T.generate_block("uniform", 0, 3000, pages=7, seed=1)
    c = np.concatenate([T.generate_block("uniform", s, 1024, pages=7, seed=1) for s in (0, 1024)])
    np.testing.assert_array_equal(b[:2048], c)
    np.testing.assert_array_equal(
        T.generate_block("cyclic", 0, 7, pages=1, cache_size=2), [0, 1, 2, 0, 1, 2, 0]
    )
    ph = T.generate_block("phases", 0, 400, pages=100, phase_length=100, working_set=5, seed=0)
    assert all(np.unique(ph[i : i + 100]).size <= 5 for i in range(0, 400, 100))
    # stale_page: page k once, then 0..k-1 cyclically (also from a later start)
    np.testing.assert_array_equal(
        T.generate_block("stale_page", 0, 8, pages=1, cache_size=3), [3, 0, 1, 2, 0, 1, 2, 0]
    )
    np.testing.assert_array_equal(
        T.generate_block("stale_page", 4, 3, pages=1, cache_size=3), [0, 1, 2]
    )
    assert "lower_bound_phase" not in T.GENERATORS  # no phase-bit lower bound is known to us


@pytest.mark.parametrize(
    "content, message",
    [
        ("1\n2\nx7\n3\n", "line 3"),
        ("1\n2.5\n", "line 2"),
        ("", "empty"),
    ],
)
def test_malformed_and_empty_files(tmp_path, content, message):
    path = tmp_path / "bad.txt"
    path.write_text(content)
    with pytest.raises(ConfigError) as e:
        T.load(str(path))
    assert str(e.value).startswith("env.trace:") and message in str(e.value)
    assert str(path) in str(e.value) or message == "empty"


def test_noise_models():
    rng = np.random.default_rng(0)
    bits = (rng.random(20000) < 0.3).astype(np.int8)
    # evenly spaced error budget: exactly min(budget, eligible) flips, only of the eligible kind
    for flip, budget in (("both", 500), ("one_to_zero", 200), ("zero_to_one", 10**6)):
        m = P.budget_mask(bits, budget, flip, horizon=bits.size)
        assert m.sum() == min(budget, P.eligible(bits, flip).sum())
        assert np.all(P.eligible(bits, flip)[m == 1])
        eta0, eta1 = P.error_counts(bits, bits ^ m)
        assert (eta1 if flip == "zero_to_one" else eta0) == (m.sum() if flip != "both" else eta0)
    # i.i.d. flips with p = 0.1: 20000 draws, sd of the rate 0.0021; 5 sd tolerance
    m = P.flip_mask(bits, 0.1, "both", np.random.default_rng(1))
    assert abs(m.mean() - 0.1) < 0.011
    one_sided = P.flip_mask(bits, 1.0, "one_to_zero", np.random.default_rng(1))
    assert P.error_counts(bits, bits ^ one_sided) == (int(bits.sum()), 0)
    assert np.all(P.lognormal_noise(10, 0.0, rng) == 0)
    # LogNormal(0, 1): median 1
    assert abs(np.median(P.lognormal_noise(20000, 1.0, rng)) - 1) < 0.05
