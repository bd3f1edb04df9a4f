"""The reoccurrence-prediction baselines (paging/reoccurrence.py) and the robust combinations
(paging/combine.py) against plain-Python reference simulators written from the papers' rules
(Wei, APPROX 2020; Lykouris & Vassilvitskii, ICML 2018; Rohatgi, SODA 2020; Blum & Burch 2000;
Fiat, Rabani & Ravid 1990), on the same draws, decision by decision; BlindOracle with exact
predictions against Belady's fault count.
"""

from __future__ import annotations

import jax
import numpy as np
import pytest
from test_paging_succinct import (
    Cache,
    belady,
    ftd,
    mark0,
    next_arrivals,
    nth,
    replay,
    small_trace,
)


# --------------------------------------------------------------------------- reoccurrence
def blind_oracle(pages, preds, k):
    c, pred, faults, acts = Cache(k), [-1] * k, [], []
    for p, x in zip(pages, preds, strict=True):
        fault, s = c.lookup(p)
        if s is None:
            s = max(range(k), key=lambda i: (pred[i], -i))
            acts.append(s)
        c.slots[s] = p
        pred[s] = x
        faults.append(fault)
    return faults, acts


def _furthest(cands, pred):
    return max(cands, key=lambda i: (pred[i], -i))


def lmarker(pages, preds, us, k):
    c, mark, pred, stale, faults, acts = Cache(k), [False] * k, [-1] * k, set(), [], []
    for p, x, u in zip(pages, preds, us, strict=True):
        fault, s = c.lookup(p)
        if s is None:
            if all(mark):
                mark, stale = [False] * k, set(c.slots)
            unmarked = [i for i in range(k) if not mark[i]]
            s = nth(unmarked, u) if p in stale else _furthest(unmarked, pred)
            acts.append(s)
        c.slots[s] = p
        mark[s], pred[s] = True, x
        faults.append(fault)
    return faults, acts


def predictive_marker(pages, preds, us, k, gamma=1.0):
    hk = sum(1.0 / i for i in range(1, k + 1))
    c, mark, pred, stale = Cache(k), [False] * k, [-1] * k, set()
    reps, lengths, faults, acts = [], [], [], []
    for p, x, u in zip(pages, preds, us, strict=True):
        fault, s = c.lookup(p)
        if s is None:
            if all(mark):
                mark, stale, reps, lengths = [False] * k, set(c.slots), [], []
            unmarked = [i for i in range(k) if not mark[i]]
            if p not in stale:
                s = _furthest(unmarked, pred)
                reps.append(c.slots[s])
                lengths.append(1)
            else:
                j = reps.index(p)
                lengths[j] += 1
                s = _furthest(unmarked, pred) if lengths[j] <= gamma * hk else nth(unmarked, u)
                reps[j] = c.slots[s]
            acts.append(s)
        c.slots[s] = p
        mark[s], pred[s] = True, x
        faults.append(fault)
    return faults, acts


def lnonmarker_nonrobust(pages, preds, us, k):
    c, mark, pred, stale, seen, evictor = Cache(k), [False] * k, [-1] * k, set(), set(), {}
    faults, acts = [], []
    for p, x, u in zip(pages, preds, us, strict=True):
        if p not in seen:
            if len(seen) == k:
                seen, mark, stale, evictor = set(), [False] * k, set(c.slots), {}
            seen.add(p)
        fault, s = c.lookup(p)
        if s is None:
            unmarked = [i for i in range(k) if not mark[i]]
            if p in stale:
                s = nth(range(k), u) if evictor[p] not in stale else nth(unmarked, u)
            else:
                s = _furthest(unmarked, pred)
            evictor[c.slots[s]] = p
            acts.append(s)
        c.slots[s] = p
        mark[s], pred[s] = True, x
        faults.append(fault)
    return faults, acts


def marker(pages, us, k):
    """Marker as `paging.classic.Marker` keeps its unmarked slots (`paging.marking.FreeList`):
    a list from which marking removes a slot by moving the last entry into its place; a new
    phase lists every slot in reverse order of marking; the eviction is entry floor(u m)."""
    c, unmarked, marked, faults, acts = Cache(k), list(range(k)), [], [], []
    for p, u in zip(pages, us, strict=True):
        fault, s = c.lookup(p)
        if s is None:
            if not unmarked:
                unmarked, marked = marked[::-1], []
            m = len(unmarked)
            s = unmarked[min(int(np.floor(np.float32(u) * np.float32(m))), m - 1)]
            acts.append(s)
        c.slots[s] = p
        if s in unmarked:
            i, last = unmarked.index(s), unmarked.pop()
            if i < len(unmarked):
                unmarked[i] = last
            marked.append(s)
        faults.append(fault)
    return faults, acts


# (trace seed, k); the second case compiles every agent again (~2.5 s each): slow tier
CASES = [(0, 4), pytest.param(1, 6, marks=pytest.mark.slow)]


def noisy_preds(pages, sigma, seed):
    """Lykouris-Vassilvitskii style: next arrival + lognormal(0, sigma) noise, as integers."""
    nxt = np.array(next_arrivals(pages.tolist()), np.float64)
    noise = np.random.default_rng(seed).lognormal(0.0, sigma, nxt.size)
    return np.minimum(nxt + noise, 2**30).astype(np.int32)


@pytest.mark.parametrize("seed,k", CASES)
def test_blind_oracle_with_exact_predictions_is_belady(seed, k):
    from paging.reoccurrence import BlindOracle

    pages = small_trace(seed)
    preds = np.array(next_arrivals(pages.tolist()), np.int32)
    f, _ = replay(BlindOracle(), pages, k, 16, preds=preds)
    assert int(f.sum()) == belady(pages.tolist(), k)[0]


@pytest.mark.parametrize("seed,k", CASES)
def test_baselines_match_references_decision_by_decision(seed, k):
    from paging.reoccurrence import BlindOracle, LMarker, LNonMarkerNonRobust, PredictiveMarker

    pages = small_trace(seed)
    preds = noisy_preds(pages, 5.0, seed)
    us = np.random.default_rng(7 + seed).random(len(pages)).astype(np.float32)
    P, X, U = pages.tolist(), preds.tolist(), us.tolist()
    for agent, ref in [
        (BlindOracle(), lambda: blind_oracle(P, X, k)),
        (LMarker(), lambda: lmarker(P, X, U, k)),
        (PredictiveMarker(), lambda: predictive_marker(P, X, U, k)),
        (LNonMarkerNonRobust(), lambda: lnonmarker_nonrobust(P, X, U, k)),
    ]:
        f, a = replay(agent, pages, k, 16, preds=preds, us=us)
        rf, ra = ref()
        assert f.tolist() == rf, agent
        assert a[a >= 0].tolist() == ra, agent


# --------------------------------------------------------------------------- combinations
def combine_reference(pages, k, comps, rule, key, gamma=0.01, epsilon=0.5):
    """Lazy combination of two algorithms given by their per-step cache contents and faults.

    `comps`: per component, (faults list, list of cache sets after each request). Det: follow
    while cost <= bound, round-robin switch and bound *= 1 + gamma. Rand: Blum-Burch weights
    beta^cost (relative to the leader's), leave with probability (p - p') / p using the agent's
    own coins (passed in).
    """
    from experiments.protocol import step_key

    m = len(comps)
    costs, bound = [0.0] * m, 1.0
    probs = [1.0 / m] * m
    if rule == "det":
        cur = 0
    else:
        keys = jax.random.split(jax.random.key(key), m + 2)
        cur = int(jax.random.randint(keys[-2], (), 0, m))
        ckey = keys[-1]
    c, loaded, faults = Cache(k), [-1] * k, []
    for t, p in enumerate(pages):
        loss = [float(comps[i][0][t]) for i in range(m)]
        costs = [a + b for a, b in zip(costs, loss, strict=True)]
        if rule == "det":
            while costs[cur] > bound:
                cur, bound = (cur + 1) % m, bound * (1 + gamma / (m - 1))
        else:
            beta = np.float32(1 - 0.5 * epsilon)
            w = [beta ** np.float32(x - min(costs)) for x in costs]  # beta^{cost}, leader = 1
            new = [x / sum(w) for x in w]
            u = float(jax.random.uniform(step_key(ckey, t, m)))
            if new[cur] < probs[cur] and u <= (probs[cur] - new[cur]) / probs[cur]:
                cur = 1 - cur
            probs = new
        fault, s = c.lookup(p)
        if s is None:
            target = comps[cur][1][t]
            s = min((i for i in range(k) if c.slots[i] not in target), key=lambda i: (loaded[i], i))
        if fault:
            loaded[s] = t
        c.slots[s] = p
        faults.append(fault)
    return faults


def caches_of(pages, k, acts_faults):
    """Cache contents after each request from a reference run's faults and evictions."""
    faults, acts = acts_faults
    c, out, it = Cache(k), [], iter(acts)
    for p in pages:
        _, s = c.lookup(p)
        if s is None:
            s = next(it)
        c.slots[s] = p
        out.append(set(c.slots))
    return faults, out


def component_uniforms(key, T, index):
    """The draws `paging.combine` gives component `index` at each step: ``u`` from the
    combination's key (the last of m + 2 splits of the init key) folded with (t, index)."""
    from experiments.protocol import UNIFORM, Draw, step_key
    from experiments.rollout import draw_once

    ck = jax.random.split(jax.random.key(key), 4)[-1]
    spec = {"u": Draw(UNIFORM)}
    return [float(draw_once(step_key(ck, t, index), spec)["u"]) for t in range(T)]


@pytest.mark.slow
def test_predictive_marker_short_chains_match_reference():
    # gamma * H_k < 2: every chain turns random at its second eviction (the random branch).
    from paging.reoccurrence import PredictiveMarker

    k, pages = 4, small_trace(2)
    preds = noisy_preds(pages, 5.0, 2)
    us = np.random.default_rng(9).random(len(pages)).astype(np.float32)
    f, a = replay(PredictiveMarker(gamma=0.2), pages, k, 16, preds=preds, us=us)
    rf, ra = predictive_marker(pages.tolist(), preds.tolist(), us.tolist(), k, 0.2)
    assert f.tolist() == rf and a[a >= 0].tolist() == ra


# Each combination compiles both components twice (act and update): ~8 s; rand in the slow tier.
@pytest.mark.parametrize("rule", ["det", pytest.param("rand", marks=pytest.mark.slow)])
def test_combinations_match_reference(rule):
    from paging.combine import CombineDet, CombineRand

    k, seed = 4, 3
    pages = small_trace(seed, T=120)
    rng = np.random.default_rng(seed)
    bits = (rng.random(pages.size) < 0.5).astype(np.int32)  # bad bits: switching happens
    P = pages.tolist()
    u_marker = component_uniforms(5, len(P), 1)
    comps = [
        caches_of(P, k, ftd(P, bits.tolist(), k)),
        caches_of(P, k, marker(P, u_marker, k)),
    ]
    Agent = CombineDet if rule == "det" else CombineRand
    f, _ = replay(Agent(algorithm="follow_discard_bits"), pages, k, 16, bits=bits, key=5)
    assert f.tolist() == combine_reference(P, k, comps, rule, 5)
    # and the combination never pays more than (1 + eps)-ish times the better one plus k-ish
    assert f.sum() <= 2 * min(sum(comps[0][0]), sum(comps[1][0])) + 2 * k


@pytest.mark.slow
def test_mark0_combined_is_robust_on_the_cyclic_adversary():
    # k + 1 pages requested cyclically with every bit 1 (all wrong but the last): Mark0 alone
    # (lazy, least recent dropped page first) faults on every request; combined with Marker it
    # stays within a constant factor of Marker's ~H_k per phase.
    from paging.combine import CombineDet
    from paging.succinct import Mark0

    k = 4
    pages = np.tile(np.arange(k + 1, dtype=np.int32), 40)[:120]
    bits = np.ones(pages.size, np.int32)
    us = np.random.default_rng(0).random(pages.size).astype(np.float32)
    f_alone, _ = replay(Mark0(), pages, k, 16, bits=bits, us=us)
    assert f_alone.all()
    f_comb, _ = replay(CombineDet(algorithm="mark0"), pages, k, 16, bits=bits, key=1)
    assert f_comb.sum() < 0.7 * f_alone.sum()
    _ = mark0  # the reference's rule is the same as the agent's (tests/test_paging_succinct.py)


def test_bad_parameters_are_one_line_config_errors():
    from experiments.config import ConfigError
    from paging.combine import CombineDet, CombineRand
    from paging.reoccurrence import PredictiveMarker

    cases = [
        (lambda: CombineDet(algorithm="nope"), "algorithm: must be one of"),
        (lambda: CombineDet(robust="belady"), "robust: must be one of"),
        (lambda: CombineDet(gamma=0.0), "gamma: must be"),
        (lambda: CombineRand(epsilon=1.5), "epsilon: must be"),
        (lambda: PredictiveMarker(gamma=-1.0), "gamma: must be"),
    ]
    for make, start in cases:
        with pytest.raises(ConfigError) as e:
            make()
        assert str(e.value).startswith(start) and "\n" not in str(e.value)


def test_combine_rand_recovers_after_a_long_lead():
    """Blum-Burch's weights beta^{cost}: a component 1000 faults behind has weight 0.75^1000
    (1e-125), which a float32 running product rounds to 0 for good (it never switched again,
    however badly the leader did later). From the cumulative costs the weight comes back: when
    the leader then faults on every step while the other never does, the combination moves to
    the other as soon as the other's cost is lower (here: after ~1000 + a few dozen steps; the
    leave coins make the exact step random) and stays with it."""
    import jax.numpy as jnp

    from paging.combine import CombineRand, CombineState

    agent = CombineRand(algorithm="follow_discard_bits", robust="marker")
    lead, after = 1000, 2000
    faults = np.concatenate([np.tile([[0.0, 1.0]], (lead, 1)), np.tile([[1.0, 0.0]], (after, 1))])
    state = CombineState(
        key=jax.random.key(0),
        states=(),
        caches=(),
        inside=jnp.zeros((2, 1), bool),
        cost=jnp.zeros(2, jnp.float32),
        weight=jnp.full(2, 0.5, jnp.float32),
        cur=jnp.int32(0),
        bound=jnp.float32(1),
        loaded=jnp.zeros(1, jnp.int32),
    )

    def body(s, x):
        t, f = x
        cur, cost, weight, _ = agent._follow(s, f, t)
        return s._replace(cur=cur, cost=cost, weight=weight), cur

    steps = jnp.arange(lead + after, dtype=jnp.int32)
    _, cur = jax.lax.scan(body, state, (steps, jnp.asarray(faults, jnp.float32)))
    cur = np.asarray(cur)
    assert np.all(cur[lead - 10 : lead + 900] == 0)  # the other is still behind: stay
    assert np.all(cur[-500:] == 1)  # ... until it leads: follow it (it was never, before the fix)
