"""The succinct-prediction algorithms (paging/succinct.py, paging/combine.py) against plain-Python
reference simulators: each algorithm written again from its pseudo-code, on a list cache,
independently of the JAX agents in paging/ (tests/test_paging_reoccurrence.py reuses the
harness). A "uniformly random member of a set" takes the floor(u * m)-th member in slot order
for the step's uniform u, the agents' documented mapping, so that both consume the same draws
and must agree decision by decision.

Also: a replay harness that drives a JAX agent through a cache with the environment's rules
(`replay`), Belady's fault count, exact discard and phase bits, and the k-distinct-pages
partition, all from first principles.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest


class Spec(NamedTuple):
    cache_size: int
    pages: int
    horizon: int


class Obs(NamedTuple):
    t: jax.Array
    page: jax.Array
    hit: jax.Array
    slot: jax.Array
    bit: jax.Array
    predicted_next: jax.Array
    slot_page: jax.Array


class Feedback(NamedTuple):
    fault: jax.Array
    slot: jax.Array


def replay(agent, pages, k, n, bits=None, preds=None, us=None, key=0):
    """Run `agent` on `pages` with the environment's cache rules; per-step faults and actions.

    Uses the virtual cache of paging.combine (the environment's rules replayed), given per-step
    bits, predicted next arrivals and uniforms (one per step, under every declared draw name).
    """
    T = len(pages)
    bits = np.zeros(T, np.int32) if bits is None else np.asarray(bits, np.int32)
    preds = np.full(T, T, np.int32) if preds is None else np.asarray(preds, np.int32)
    us = np.zeros(T, np.float32) if us is None else np.asarray(us, np.float32)
    f, a = _replay(agent, Spec(k, n, T), key, jnp.asarray(pages, jnp.int32), bits, preds, us)
    return np.asarray(f, bool), np.asarray(a)


@functools.partial(jax.jit, static_argnums=(0, 1, 2))
def _replay(agent, spec, key, pages, bits, preds, us):
    """One compiled program per (agent, sizes): the tests reuse few shapes."""
    from paging.combine import load, vcache, view

    k, _, T = spec
    names = list(agent.randomness(spec))
    st = agent.init(jax.random.key(key), spec)

    def body(c, x):
        st, vc = c
        t, p, b, pr, u = x
        hit, slot = view(vc, p)
        obs = Obs(t, p, hit, slot, b, pr, vc.slot_page)
        a = jnp.asarray(agent.act({nm: u for nm in names}, st, obs), jnp.int32)
        vc2, fill = load(vc, p, hit, slot, a)
        st = agent.update(st, obs, a, Feedback(~hit, fill))
        return (st, vc2), (~hit, jnp.where(slot < 0, a, -1))

    ts = jnp.arange(T, dtype=jnp.int32)
    _, (f, a) = jax.lax.scan(body, (st, vcache(k)), (ts, pages, bits, preds, us))
    return f, a


# --------------------------------------------------------------------------- offline facts
def next_arrivals(pages):
    T = len(pages)
    nxt, last = [T] * T, {}
    for t in range(T - 1, -1, -1):
        nxt[t] = last.get(pages[t], T)
        last[pages[t]] = t
    return nxt


def belady(pages, k):
    """(faults, discard bits): Belady's rule, ties among never-requested pages by lowest slot;
    bit of request t = 1 iff Belady evicts the page before its next request (never again: 1)."""
    T = len(pages)
    nxt = next_arrivals(pages)
    cache, cnext, last_req = [None] * k, [0] * k, {}
    bits = [0] * T
    faults = 0
    for t, p in enumerate(pages):
        if p in cache:
            s = cache.index(p)
        else:
            faults += 1
            if None in cache:
                s = cache.index(None)
            else:
                s = max(range(k), key=lambda i: (cnext[i], -i))
                bits[last_req[cache[s]]] = 1
            cache[s] = p
        cnext[s] = nxt[t]
        last_req[p] = t
    for t in range(T):
        if nxt[t] == T:
            bits[t] = 1
    return faults, bits


def distinct_phases(pages, k):
    """Phase index of each request in the k-distinct-pages partition."""
    out, phase, seen = [], 0, set()
    for p in pages:
        if p not in seen and len(seen) == k:
            phase, seen = phase + 1, set()
        seen.add(p)
        out.append(phase)
    return out


def phase_bits(pages, k):
    ph = distinct_phases(pages, k)
    pages_in = {}
    for p, i in zip(pages, ph, strict=True):
        pages_in.setdefault(i, set()).add(p)
    return [int(p in pages_in.get(i + 1, set())) for p, i in zip(pages, ph, strict=True)]


def marking_opt(pages, k):
    """Cost of the best marking algorithm: the number of new pages summed over phases."""
    ph = distinct_phases(pages, k)
    sets = {}
    for p, i in zip(pages, ph, strict=True):
        sets.setdefault(i, set()).add(p)
    return sum(len(sets[i] - sets.get(i - 1, set())) for i in sets)


# --------------------------------------------------------------------------- helpers
def nth(cands, u):
    """The floor(u * m)-th of the slot-ordered candidates."""
    cands = sorted(cands)
    return cands[min(math.floor(u * len(cands)), len(cands) - 1)]


class Cache:
    """A list cache: `serve` returns (fault, slot of the page, evicting?)."""

    def __init__(self, k):
        self.k, self.slots = k, [None] * k

    def lookup(self, p):
        if p in self.slots:
            return False, self.slots.index(p)
        if None in self.slots:
            return True, self.slots.index(None)
        return True, None


# --------------------------------------------------------------------------- succinct
def ftd(pages, bits, k):
    c, bit, used, faults, acts = Cache(k), [0] * k, [-1] * k, [], []
    for t, (p, b) in enumerate(zip(pages, bits, strict=True)):
        fault, s = c.lookup(p)
        if s is None:
            ones = [i for i in range(k) if bit[i] == 1]
            pool = ones or list(range(k))
            s = min(pool, key=lambda i: (used[i], i))
            acts.append(s)
        c.slots[s] = p
        bit[s], used[s] = b, t
        faults.append(fault)
    return faults, acts


def mark0(pages, bits, us, k, phase="distinct"):
    """Mark0 with lazy discards. phase="distinct": the k-distinct-pages partition (the paper);
    "slots": the third-party rule, a new phase once every slot has been written in the phase,
    checked at a fault with a full cache."""
    c = Cache(k)
    mark, drop, used = [False] * k, [False] * k, [-1] * k
    seen, written, faults, acts = set(), set(), [], []
    for t, (p, b, u) in enumerate(zip(pages, bits, us, strict=True)):
        if phase == "distinct" and p not in seen:
            if len(seen) == k:
                seen, mark = set(), [False] * k
            seen.add(p)
        fault, s = c.lookup(p)
        if s is None:
            if phase == "slots" and len(written) == k:
                written, mark = set(), [False] * k
            dropped = [i for i in range(k) if drop[i]]
            if dropped:
                s = min(dropped, key=lambda i: (used[i], i))
            else:
                s = nth([i for i in range(k) if not mark[i]], u)
            acts.append(s)
        c.slots[s] = p
        mark[s], drop[s], used[s] = True, b == 1, t
        written.add(s)
        faults.append(fault)
    return faults, acts


def mark_and_predict(pages, bits, us, k):
    c, mark, bit, faults, acts = Cache(k), [False] * k, [0] * k, [], []
    for p, b, u in zip(pages, bits, us, strict=True):
        fault, s = c.lookup(p)
        if s is None:
            if all(mark):
                mark = [False] * k
            unmarked = [i for i in range(k) if not mark[i]]
            zero = [i for i in unmarked if bit[i] == 0]
            s = nth(zero or unmarked, u)
            acts.append(s)
        c.slots[s] = p
        mark[s], bit[s] = True, b
        faults.append(fault)
    return faults, acts


# --------------------------------------------------------------------------- traces for tests
def small_trace(seed, T=400, n=16, alpha=0.8):
    """Zipf-like requests over n pages (NumPy, seeded): many faults and evictions at k = 4..6."""
    rng = np.random.default_rng(seed)
    w = np.arange(1, n + 1, dtype=np.float64) ** -alpha
    return rng.choice(n, size=T, p=w / w.sum()).astype(np.int32)


def flip(bits, p, seed):
    rng = np.random.default_rng(seed)
    b = np.asarray(bits, np.int32)
    return np.where(rng.random(b.size) < p, 1 - b, b).astype(np.int32)


# (trace seed, k); the second case compiles every agent again: slow tier
CASES = [(0, 4), pytest.param(1, 6, marks=pytest.mark.slow)]


# --------------------------------------------------------------------------- agents vs references
@pytest.mark.parametrize("seed,k", CASES)
def test_agents_match_references_decision_by_decision(seed, k):
    # Random (not exact) bits and uniforms: every branch of each rule is exercised; the JAX
    # agent and the list-cache reference must take the same eviction at every fault.
    from paging.succinct import FollowDiscardBits, Mark0, MarkAndPredict

    pages = small_trace(seed)
    n, T = 16, len(pages)
    rng = np.random.default_rng(100 + seed)
    bits = (rng.random(T) < 0.4).astype(np.int32)
    us = rng.random(T).astype(np.float32)
    for agent, ref in [
        (FollowDiscardBits(), lambda: ftd(pages.tolist(), bits.tolist(), k)),
        (Mark0(), lambda: mark0(pages.tolist(), bits.tolist(), us.tolist(), k)),
        (MarkAndPredict(), lambda: mark_and_predict(pages.tolist(), bits.tolist(), us.tolist(), k)),
    ]:
        f, a = replay(agent, pages, k, n, bits=bits, us=us)
        rf, ra = ref()
        assert f.tolist() == rf, type(agent).__name__
        assert a[a >= 0].tolist() == ra, type(agent).__name__


def test_mark0_phase_is_k_distinct_pages_not_slots_written():
    # Same draws, two phase rules in the reference: the paper's k-distinct-pages partition and
    # the third-party "a new phase once every slot was written in it" (checked at a fault with a
    # full cache). Refilled discarded slots make the slot rule end phases early, so evictions
    # differ on some of these traces; the agent follows the distinct-pages rule at every fault.
    from paging.succinct import Mark0

    k, n = 4, 16
    diffs = 0
    for seed in range(6):
        pages = small_trace(seed)
        rng = np.random.default_rng(seed)
        bits = (rng.random(400) < 0.3).astype(np.int32)
        us = rng.random(400).astype(np.float32)
        ours = mark0(pages.tolist(), bits.tolist(), us.tolist(), k, "distinct")
        slots = mark0(pages.tolist(), bits.tolist(), us.tolist(), k, "slots")
        diffs += ours[1] != slots[1]
        _, a = replay(Mark0(), pages, k, n, bits=bits, us=us)
        assert a[a >= 0].tolist() == ours[1]
    assert diffs >= 1  # the two phase rules are observably different


# --------------------------------------------------------------------------- consistency
@pytest.mark.parametrize("seed,k", CASES)
def test_exact_discard_bits_give_opt_faults(seed, k):
    # Consistency (alpha = 1): with the exact discard bits of a Belady run, follow-the-discard-
    # bits and Mark0 fault exactly as often as Belady (the argument in FollowDiscardBits'
    # docstring), whatever the uniforms.
    from paging.succinct import FollowDiscardBits, Mark0

    pages = small_trace(seed)
    opt, bits = belady(pages.tolist(), k)
    us = np.random.default_rng(seed).random(len(pages)).astype(np.float32)
    assert ftd(pages.tolist(), bits, k)[0].count(True) == opt
    for agent in (FollowDiscardBits(), Mark0()):
        f, _ = replay(agent, pages, k, 16, bits=np.array(bits), us=us)
        assert int(f.sum()) == opt, type(agent).__name__


@pytest.mark.parametrize("seed,k", CASES)
def test_exact_phase_bits_give_best_marking_cost(seed, k):
    # Mark&Predict with exact phase bits pays the number of new pages per phase, the cost of the
    # best marking algorithm (an independent count over the k-distinct-pages partition).
    from paging.succinct import MarkAndPredict

    pages = small_trace(seed)
    bits = phase_bits(pages.tolist(), k)
    us = np.random.default_rng(seed).random(len(pages)).astype(np.float32)
    f, _ = replay(MarkAndPredict(), pages, k, 16, bits=np.array(bits), us=us)
    assert int(f.sum()) == marking_opt(pages.tolist(), k)


def test_one_sided_errors_cost_within_the_stated_coefficients():
    # Smoothness of follow-the-discard-bits on a sweep of one-sided flips: each wrong 1 (true 0,
    # eta_1) costs at most one fault and each wrong 0 (true 1, eta_0) at most k - 1 (the stated
    # (1, k-1, 1) guarantee, our reading of beta and gamma). Measured slope of the excess faults
    # over OPT against the error count, least squares through the origin, over 4 rates x 3 seeds.
    from paging.succinct import FollowDiscardBits

    k, n = 4, 16
    slopes = {}
    for side in (0, 1):  # side 0: flip true 1s to 0 (eta_0); side 1: flip true 0s to 1 (eta_1)
        xs, ys = [], []
        for seed in range(3):
            pages = small_trace(seed)
            opt, bits = belady(pages.tolist(), k)
            bits = np.array(bits, np.int32)
            for p in (0.05, 0.1, 0.2, 0.4):
                r = np.random.default_rng(1000 * seed + int(100 * p)).random(bits.size)
                noisy = np.where((bits == 1 - side) & (r < p), side, bits).astype(np.int32)
                f, _ = replay(FollowDiscardBits(), pages, k, n, bits=noisy)
                xs.append(int((noisy != bits).sum()))
                ys.append(int(f.sum()) - opt)
        xs, ys = np.array(xs, float), np.array(ys, float)
        assert (ys >= 0).all()
        slopes[side] = float(xs @ ys / (xs @ xs))
    assert slopes[0] <= k - 1 and slopes[1] <= 1.0, slopes


def test_mark_and_predict_wrong_ones_are_the_expensive_errors():
    # Which phase-bit error carries H_k in Mark&Predict's (2, H_k, 1), compared with the bound
    # itself, E[ALG] <= 2 OPT + gamma_0 eta_0 + gamma_1 eta_1: our reading puts H_k on eta_1
    # (predicted 1, true 0; gamma_0 = 1), the swapped one on eta_0. On the cyclic (k + 1)-page
    # sequence each k-distinct-pages phase (k requests) leaves out one page, so one request per
    # phase has true phase bit 0, and OPT faults once per k requests. Every bit 1 (each true 0
    # wrong: eta_1 = one per phase, eta_0 = 0) leaves Mark&Predict no bit-0 page to prefer: it
    # evicts a uniformly random unmarked page, which costs H_k faults per phase in expectation
    # (Marker's, Fiat et al. 1991). The swapped reading allows 2 + 1 per phase: violated on long
    # enough sequences when H_k > 3, i.e. k >= 11 (at k = 8, H_k = 2.72, both hold: k = 8 cannot
    # tell them apart); ours allows 2 + H_k. k = 16: H_k = 3.38, so ALG ~ 16 + 125 H_k = 439 against
    # a swapped bound 2 (16 + 125) + 125 = 407 (measured 436); 20 seeds, per-seed standard
    # deviation ~14.5, so the mean's ~3.2: ~9 standard errors. The last phase has no
    # successor: its true bits (0) are kept, which changes no eviction (its unmarked pages are
    # the previous phase's, all with bit 1). Every bit 0 (eta_0 = k - 1 per phase) gives the same
    # random evictions and satisfies both readings. Per error over the best marking cost: a wrong
    # 1 costs H_k - 1 = 2.38 > 1 (so 1 cannot be eta_1's coefficient), a wrong 0 0.16 <= 1.
    from paging.succinct import MarkAndPredict

    k = 16
    phases = 126
    pages = np.arange(phases * k) % (k + 1)
    true = np.array(phase_bits(pages.tolist(), k), np.int32)
    opt = belady(pages.tolist(), k)[0]
    best = marking_opt(pages.tolist(), k)
    hk = sum(1 / i for i in range(1, k + 1))
    last = np.arange(pages.size) >= (phases - 1) * k  # the last phase
    checked = 0
    for wrong in (1, 0):  # every bit `wrong` (but the last phase's, kept true)
        bits = np.where(last, true, wrong).astype(np.int32)
        eta0 = int(((bits == 0) & (true == 1)).sum())
        eta1 = int(((bits == 1) & (true == 0)).sum())
        assert (eta0, eta1) == ((0, phases - 1) if wrong else ((k - 1) * (phases - 1), 0))
        faults = []
        for seed in range(20):
            us = np.random.default_rng(seed).random(len(pages)).astype(np.float32)
            f, _ = replay(MarkAndPredict(), pages, k, k + 1, bits=bits, us=us)
            faults.append(int(f.sum()))
        alg = float(np.mean(faults))
        assert alg <= 2 * opt + eta0 + hk * eta1, (wrong, alg)  # the stated reading holds
        swapped = 2 * opt + hk * eta0 + eta1
        if wrong:
            assert alg > swapped, (alg, swapped)  # ... the swapped one does not (436 > 407)
            assert 1.5 < (alg - best) / eta1 <= hk
        else:
            assert alg <= swapped and (alg - best) / eta0 <= 1.0
        checked += 1
    assert checked == 2


@pytest.mark.slow  # the engine compiles four programs: ~10-35 s here
def test_through_the_engine_exact_discard_bits_give_opt():
    # The same consistency through env=paging and the engine (the env's exact bits, its cache,
    # its observation types): follow-the-discard-bits pays Belady's faults on every seed.
    from experiments.simulate import simulate
    from paging.env import Paging
    from paging.succinct import FollowDiscardBits

    env = Paging(trace="zipf", length=2000, pages=40, cache_size=5, predictions="discard")
    res = simulate(env, env.default_params(), FollowDiscardBits(), 2000, seeds=2)
    assert np.array_equal(res.final["faults"], res.final["opt_faults"])
    assert res.final["opt_faults"][0] > 200  # many evictions: a real test
