"""Trust&Doubt (paging/trust_doubt.py) against a plain-Python reference written from the authors'
public code of "Online Metric Algorithms with Untrusted Predictions" (Antoniadis, Coester, Eliáš,
Polak & Simon, ICML 2020; ``adampolak/mts-with-predictions``: ``FollowPred``, ``TrustDoubt``,
``LazyTrustDoubt``, ``Lazy_update``) on lists, sets and dicts, with the same priorities (the
agent's documented ``uniform(step_key(key, phase), (k,))`` by cache slot at the phase start);
against Belady (exact predictions: consistency) and Marker's bound (bad predictions: robustness);
and through the CLI.
"""

from __future__ import annotations

import math
import subprocess
import sys

import jax
import numpy as np
import pytest
from test_paging_succinct import belady, next_arrivals, replay, small_trace

from experiments.config import ConfigError
from experiments.protocol import step_key
from paging.env import PagingSpec
from paging.trust_doubt import TrustDoubt


# --------------------------------------------------------------------------- the reference
def trust_doubt_reference(pages, preds, k, key):
    """(faults, actions, fallbacks, events): the authors' TrustDoubt + LazyTrustDoubt on the
    cache of FollowPred, with their tie rules; where their code asserts, the agent's documented
    fallback (counted in `fallbacks`); `events` counts the non-lazy steps taken."""

    def prio_of(j):
        return np.asarray(jax.random.uniform(step_key(jax.random.key(key), j), (k,)))

    def lru(cands):
        return min(cands, key=lambda x: (last_seen[x], x))

    def choose(unmarked_stale, new_elements, P, clean_evict):
        """p_q: least recently requested unmarked stale or marked page, not predicted cached,
        no other p_q (None when there is none)."""
        c = ((unmarked_stale | set(new_elements)) - P) - set(clean_evict.values())
        return lru(c) if c else None

    pc, pn = [None] * k, [-math.inf] * k  # FollowPred
    cache = [None] * k  # TrustDoubt (non-lazy)
    ours, loaded = [None] * k, [-1] * k  # the lazy cache served
    faults, acts, fallbacks = [], [], 0
    events = dict.fromkeys(("ancient", "step1", "clean", "doubt", "double", "swap"), 0)
    new_elements, last_seen, phase = [], {}, -1
    for t, (r, x) in enumerate(zip(pages, preds, strict=True)):
        r = int(r)
        last_seen[r] = t
        if r in pc:
            s = pc.index(r)
        elif None in pc:
            s = pc.index(None)
        else:
            s = max(range(k), key=lambda i: (pn[i], -i))
        pc[s], pn[s] = r, float(x)
        P = set(pc) - {None}

        if r not in new_elements:
            new_elements.append(r)
        if len(new_elements) > k or t == 0:
            phase += 1
            ancient = set(cache) - set(new_elements)  # None: an empty slot (first phase)
            prio = prio_of(phase)
            priority = {
                c: prio[i] for i, c in enumerate(cache) if c is not None and c not in ancient
            }
            stale = set(priority)
            unmarked_stale = set(stale)
            clean_evict, trusted, clean_pages = {}, {}, []
            arrival, interval_arrivals, interval_length = {}, {}, {}
            new_elements = [r]
        if r not in arrival:
            interval_arrivals[r] = len(arrival)
            arrival[r] = t
        unmarked_stale.discard(r)

        if ancient:
            ancient.discard(r)
            if r not in cache:
                if None in cache:
                    cache[cache.index(None)] = r
                else:
                    real = ancient - {None}
                    ev = lru((real - P) or real)
                    ancient.remove(ev)
                    cache[cache.index(ev)] = r
                    events["ancient"] += 1
        else:
            if r not in stale and arrival[r] == t:
                clean_pages.append(r)
            if r not in cache:  # step 1
                cands = [p for p in unmarked_stale if p in cache]
                if cands:
                    ev = min(cands, key=lambda p: (priority[p], cache.index(p)))
                else:
                    fallbacks += 1
                    ev = lru([c for c in cache if c is not None])
                cache[cache.index(ev)] = r
                events["step1"] += 1

            if r in clean_pages and arrival[r] == t:  # step 2
                clean_evict[r] = choose(unmarked_stale, new_elements, P, clean_evict)
                events["clean"] += 1
                trusted[r] = True
                interval_length[r] = 1
            for q, pq in clean_evict.items():  # step 3
                if r == pq:
                    new_p = choose(unmarked_stale, new_elements, P, clean_evict)
                    fallbacks += new_p is None
                    clean_evict[q] = new_p
                    trusted[q] = False
                    interval_arrivals[q] = len(arrival)
                    events["doubt"] += 1
                    break
            if arrival[r] == t:  # step 4
                for q in clean_pages:
                    if len(arrival) - interval_arrivals[q] == interval_length[q]:
                        interval_arrivals[q] = len(arrival)
                        if not trusted[q]:
                            interval_length[q] *= 2
                            events["double"] += 1
                            trusted[q] = True
                        pq = clean_evict[q]
                        if pq is not None and pq in cache:
                            i = cache.index(pq)
                            cache[i] = None
                            T = {clean_evict[y] for y in trusted if trusted[y]}
                            cands = (unmarked_stale - set(cache)) - T
                            if cands:
                                cache[i] = max(cands, key=lambda p: priority[p])
                                events["swap"] += 1
                            else:
                                fallbacks += 1
                                cache[i] = pq
        assert r in cache

        # LazyTrustDoubt (Lazy_update)
        if r in ours:
            faults.append(False)
            continue
        faults.append(True)
        if None in ours:
            s = ours.index(None)
        else:
            s = min((i for i in range(k) if ours[i] not in cache), key=lambda i: (loaded[i], i))
            acts.append(s)
        ours[s], loaded[s] = r, t
    return np.asarray(faults, bool), np.asarray(acts), fallbacks, events


def marker_faults(pages, k, seed):
    """Marker (Fiat et al. 1991) with NumPy uniforms: its fault count."""
    rng = np.random.default_rng(seed)
    cache, marked, faults = [], set(), 0
    for p in pages:
        if p not in cache:
            faults += 1
            if len(cache) == k:
                if marked >= set(cache):
                    marked = set()
                cands = sorted(c for c in cache if c not in marked)
                cache.remove(cands[rng.integers(len(cands))])
            cache.append(p)
        marked.add(p)
    return faults


def preds_of(pages, kind, seed=0):
    """Integer next-arrival predictions: exact, noisy (lognormal, Lykouris & Vassilvitskii's
    model rounded down), reversed (the sooner the next request, the later the prediction) or
    uniformly random."""
    T = len(pages)
    nxt = np.asarray(next_arrivals(list(pages)), np.int64)
    rng = np.random.default_rng(seed)
    if kind == "exact":
        return nxt
    if kind == "noisy":
        return nxt + np.floor(rng.lognormal(0.0, 3.0, T)).astype(np.int64) % (4 * T)
    if kind == "reversed":
        return 2 * T - nxt
    return rng.integers(0, 2 * T, T)


def run(pages, preds, k, n, key=0):
    f, a = replay(TrustDoubt(), pages, k, n, preds=preds, key=key)
    return f, a[a >= 0]


# --------------------------------------------------------------------------- tests
# One compiled program per (k, n, T): the default tier uses one shape (k = 4, n = 9, T = 300),
# the other sizes are in the slow tier.
K, T = 4, 300
KINDS = ("exact", "noisy", "reversed", "random")


def sized(seed, k, *rest):
    marks = () if k == K else (pytest.mark.slow,)
    return pytest.param(seed, k, *rest, marks=marks)


CASES = [(seed, k, kind) for seed, k in ((0, 3), (1, 4), (2, 5)) for kind in KINDS]


@pytest.mark.parametrize(("seed", "k", "kind"), [sized(*c) for c in CASES])
def test_matches_reference_decision_by_decision(seed, k, kind):
    pages = small_trace(seed, T=T, n=k + 5)
    preds = preds_of(pages, kind, seed)
    f, a = run(pages, preds, k, k + 5)
    rf, ra, fallbacks, _ = trust_doubt_reference(pages, preds, k, key=0)
    np.testing.assert_array_equal(f, rf)
    np.testing.assert_array_equal(a, ra)
    assert fallbacks == 0  # the authors' code paths only (their asserts hold here)


def test_the_reference_cases_take_every_step():
    """The traces of the comparison above reach every step of the non-lazy algorithm (ancient
    evictions, step-1 evictions, clean pages, doubts, doublings, swaps): agreement covers them."""
    total = dict.fromkeys(("ancient", "step1", "clean", "doubt", "double", "swap"), 0)
    for seed, k, kind in CASES:
        pages = small_trace(seed, T=T, n=k + 5)
        events = trust_doubt_reference(pages, preds_of(pages, kind, seed), k, key=0)[3]
        for name, c in events.items():
            total[name] += c
    assert all(c > 0 for c in total.values()), total


# Consistency: the paper proves O(1) with no explicit constant (reconstructed bound below).
@pytest.mark.parametrize(
    ("seed", "k"), [sized(s, K) for s in range(4)] + [sized(4, 6), sized(5, 8)]
)
def test_exact_predictions_are_consistent(seed, k):
    """With exact predictions, faults <= 2 OPT.

    The paper proves O(1)-consistency without stating the constant (reconstructed bound, not
    the paper's): with exact predictions the predicted cache is Belady's, a trusted p_q is one
    Belady does not hold, and a doubt (a request for p_q) needs one of Belady's faults in
    between; on these traces Trust&Doubt never paid more than the best marking algorithm (the
    number of new pages per phase), which is at most 2 OPT (Fiat et al., J. Algorithms 1991).
    Measured ratios to OPT here: 1.06-1.18, so the factor 2 is a loose regression bound.
    """
    n = k + 5
    pages = small_trace(seed, T=T, n=n)
    opt, _ = belady(list(pages), k)
    f, _ = run(pages, preds_of(pages, "exact"), k, n)
    assert f.sum() <= 2 * opt, (f.sum(), opt)


@pytest.mark.parametrize(
    ("seed", "k", "trace"),
    [sized(s, K, "zipf") for s in range(3)] + [sized(0, K, "cyclic"), sized(3, 8, "zipf")],
)
@pytest.mark.parametrize("kind", ["reversed", "random"])
def test_bad_predictions_are_robust(seed, k, trace, kind):
    """Robustness O(log k): faults <= 4 H_k OPT (twice Marker's 2 H_k ratio: the constant of the
    paper's O(log k) is not stated), and at most twice Marker's own faults on the same trace."""
    n = k + 5
    if trace == "cyclic":  # k + 1 pages in turn (the deterministic lower bound's sequence)
        pages = (np.arange(T) % (k + 1)).astype(np.int32)
    else:
        pages = small_trace(seed, T=T, n=n)
    opt, _ = belady(list(pages), k)
    hk = sum(1.0 / i for i in range(1, k + 1))
    f, _ = run(pages, preds_of(pages, kind, seed), k, n)
    assert f.sum() <= 4 * hk * opt, (f.sum(), opt)
    marker = np.mean([marker_faults(list(pages), k, s) for s in range(5)])
    assert f.sum() <= 2 * marker, (f.sum(), marker)


def test_refuses_other_prediction_kinds():
    for kind in ("discard", "phase", "none"):
        with pytest.raises(ConfigError, match=r"needs env\.predictions=next_arrival"):
            TrustDoubt().init(jax.random.key(0), PagingSpec(3, 10, 50, kind))
    TrustDoubt().init(jax.random.key(0), PagingSpec(3, 10, 50, "next_arrival"))


@pytest.mark.slow  # a subprocess that compiles two agents: ~30 s on 2 cores
def test_cli_runs(tmp_path):
    cmd = [
        sys.executable, "-m", "experiments.run", f"hydra.run.dir={tmp_path}",
        "env=paging", "env.trace=zipf", "env.length=2000", "env.pages=60", "env.cache_size=8",
        "env.predictions=next_arrival", "env.sigma=1.0", "agents=[trust_doubt,blind_oracle]",
        "horizon=2000", "seeds=2", "plot=false", "progress=false",
    ]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "trust_doubt" in out.stdout
    bad = [  # sigma is refused with bits (it would do nothing): the agent's own check remains
        c.replace("env.predictions=next_arrival", "env.predictions=discard")
        for c in cmd
        if c != "env.sigma=1.0"
    ]
    out = subprocess.run(bad, capture_output=True, text=True, timeout=300)
    assert out.returncode == 2 and "needs env.predictions=next_arrival" in out.stderr
