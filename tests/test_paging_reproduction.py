"""The paging reproduction (paging/reproduction.py, ``regretlab-reproduce paging_antoniadis2023``).

Default tier: the host-side reference it checks against (the best marking algorithm's cost) on a
hand-computed trace and against a brute-force marking search, and the lower-bound arithmetic.
Slow tier: every item end to end through `experiments.reproduce.reproduce` at reduced sizes (the
CLI's ``--quick`` takes minutes), with the exact checks (consistency at p = 0 and sigma = 0, the
deterministic lower bound) required to pass.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from paging import reproduction as rp


def test_best_marking_cost_hand_computed():
    # k = 2: "a b a c b d": phases {a, b} (a b a), {c, b} (c b), {d}: new pages 2, 1 (c), 1 (d).
    a, b, c, d = range(4)
    assert rp.best_marking_cost(np.array([a, b, a, c, b, d]), 2) == 4
    # k = 3, a cycle over 4 pages: phases of 3 distinct pages; phase i >= 1 shares 2 pages
    # with phase i - 1, so it brings 1 new page: 3 + 1 per later phase.
    cyc = np.tile(np.arange(4), 6)  # 24 requests -> phases of lengths 3: 8 phases
    assert rp.best_marking_cost(cyc, 3) == 3 + 7


def _marking_min(trace, k):
    """Brute force: the least faults of any marking algorithm (every choice among unmarked)."""
    best = None

    def go(t, cache, marked, faults):
        nonlocal best
        if best is not None and faults >= best:
            return
        if t == len(trace):
            best = faults
            return
        p = trace[t]
        if p in cache:
            go(t + 1, cache, marked | {p}, faults)
            return
        if len(cache) < k:
            go(t + 1, cache | {p}, marked | {p}, faults + 1)
            return
        if marked >= cache:
            marked = frozenset()
        for q in sorted(cache - marked):
            go(t + 1, (cache - {q}) | {p}, marked | {p}, faults + 1)

    go(0, frozenset(), frozenset(), 0)
    return best


def test_best_marking_cost_equals_brute_force():
    rng = np.random.default_rng(0)
    for k, n in itertools.product((2, 3), (4, 5)):
        trace = rng.integers(0, n, 10)
        assert rp.best_marking_cost(trace, k) == _marking_min(trace.tolist(), k)


def test_lower_bound_sizes_keep_boundary_terms_small():
    # R3's threshold 0.99 k needs T >= 100 k^2 (OPT ~ T/k + k, so ALG/OPT >= k (1 - k^2/T)).
    for quick in (True, False):
        r = type("R", (), {"quick": quick})()
        assert rp.sizes(r)["lb_T"] >= 100 * rp.K**2


@pytest.mark.slow
def test_reproduction_end_to_end_reduced(tmp_path, monkeypatch):
    from experiments import reproduce

    tiny = {
        "T": 4000,
        "pages": 100,
        "seeds": 2,
        "ps": [0.0, 0.5],
        "one_sided": [0.1, 0.2],
        "sigmas": [0.0, 200.0],
        "lb_T": 10_000,
    }
    monkeypatch.setattr(rp, "sizes", lambda r: tiny)
    r = reproduce.reproduce("paging_antoniadis2023", tmp_path, quick=True, progress=False)
    assert (tmp_path / "report.md").is_file()
    exact = [
        c
        for c in r.checks
        if "every seed" in c.quantity or c.item == "R3"  # consistency and the lower bound
    ]
    assert len(exact) == 3 + 3 + 2 + 2  # R3: the lower bound and the combination, both instances
    assert all(c.ok for c in exact), [c for c in exact if not c.ok]
