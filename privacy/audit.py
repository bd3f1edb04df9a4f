"""A black-box statistical DP auditor (in the spirit of StatDP, Ding et al. CCS 2018; DP-Sniper,
Bichsel et al. S&P 2021; DP-Auditorium, Kong et al., arXiv:2307.05608; Google's
`stochastic_tester.h`).

A mechanism M is a function ``M(x, n, rng) -> (n,) or (n, m) array`` of n independent outputs on
input x. For a pair of neighbouring inputs (x0, x1) and an event E (a set of outputs):

    p0 = P[M(x0) ∈ E],  p1 = P[M(x1) ∈ E];   (ε, δ)-DP requires p0 <= e^ε p1 + δ,

so with Clopper-Pearson bounds at level α/2 each, ε_lb = ln((p̂0_lower - δ) / p̂1_upper) is a
(1 - α) lower confidence bound on the ε of M (StatDP's test uses Fisher's exact test instead).
Two phases, as in StatDP: a *selection* sample picks the (pair, direction, event) with the largest
ε_lb from an event family; a *fresh* test sample gives the reported bound, so no multiple-
comparison correction is needed. ``flagged = ε_lb > claimed ε``: a mechanism that is ε-DP is
flagged with probability <= α. Passing does not prove privacy (as google/differential-privacy's
`cc/testing/stochastic_tester.h` says of its own tester).

Event families (`threshold_events`): per output column, half-lines {o >= c}, {o <= c} at pooled
quantiles, equality {o = v} for discrete columns, and (discrete = v) ∧ (continuous >= / <= c)
for two-column outputs (StatDP's iSVT4 output). `impossible_outputs` is Mironov's (CCS 2012)
stronger witness for floating-point Laplace: outputs reachable from one input and not the other.

Controls and the StatDP battery (R8) are in `privacy.audit_mechanisms`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np
from scipy.stats import beta

Mechanism = Callable[[object, int, np.random.Generator], np.ndarray]


# --------------------------------------------------------------------------- statistics
def clopper_pearson(k: np.ndarray, n: int, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """Exact (Clopper-Pearson) two-sided 1 - alpha interval for a binomial proportion k / n.

    Each side is a one-sided alpha/2 bound: lower = Beta(alpha/2; k, n - k + 1) quantile (0 if
    k = 0), upper = Beta(1 - alpha/2; k + 1, n - k) quantile (1 if k = n).
    """
    k = np.asarray(k, float)
    lo = np.where(k > 0, beta.ppf(alpha / 2, np.maximum(k, 1), n - k + 1), 0.0)
    hi = np.where(k < n, beta.ppf(1 - alpha / 2, k + 1, np.maximum(n - k, 1)), 1.0)
    return lo, hi


def epsilon_lower_bound(k0, k1, n: int, alpha: float, delta: float = 0.0) -> np.ndarray:
    """ε_lb = ln((p0_lower - δ) / p1_upper) from event counts k0 (input x0) and k1 (input x1);
    -inf where p0_lower <= δ. Each proportion gets a 1 - alpha/2 interval (union: 1 - alpha)."""
    lo0, _ = clopper_pearson(k0, n, alpha / 2)
    _, hi1 = clopper_pearson(k1, n, alpha / 2)
    with np.errstate(divide="ignore"):
        return np.where(lo0 > delta, np.log(np.maximum(lo0 - delta, 1e-300) / hi1), -np.inf)


# --------------------------------------------------------------------------- events
class EventFamily(NamedTuple):
    names: list[str]
    indicator: Callable[[np.ndarray], np.ndarray]  # (n, m) outputs -> (n, E) bool


def _as_2d(o: np.ndarray) -> np.ndarray:
    o = np.asarray(o, float)
    return o[:, None] if o.ndim == 1 else o.reshape(o.shape[0], -1)


def threshold_events(pool: np.ndarray, cuts: int = 24, max_discrete: int = 32) -> EventFamily:
    """Half-lines at `cuts` pooled quantiles per column, equalities for discrete columns, and
    discrete-value ∧ half-line conjunctions for pairs of columns."""
    pool = _as_2d(pool)
    m = pool.shape[1]
    spec: list[tuple] = []  # (kind, column, value, column2, value2)
    discrete: dict[int, np.ndarray] = {}
    cont: dict[int, np.ndarray] = {}
    for i in range(m):
        vals = np.unique(pool[:, i])
        if vals.size <= max_discrete:
            discrete[i] = vals
            spec += [("eq", i, v, None, None) for v in vals]
        qs = np.unique(np.quantile(pool[:, i], np.linspace(0.01, 0.99, cuts)))
        cont[i] = qs
        spec += [("ge", i, c, None, None) for c in qs] + [("le", i, c, None, None) for c in qs]
    for i, vals in discrete.items():
        for j, qs in cont.items():
            if j != i and j not in discrete:
                for v in vals:
                    spec += [("eq&ge", i, v, j, c) for c in qs] + [
                        ("eq&le", i, v, j, c) for c in qs
                    ]

    def indicator(o: np.ndarray) -> np.ndarray:
        o = _as_2d(o)
        cols = []
        for kind, i, v, j, c in spec:
            a = o[:, i]
            if kind == "eq":
                cols.append(a == v)
            elif kind == "ge":
                cols.append(a >= v)
            elif kind == "le":
                cols.append(a <= v)
            elif kind == "eq&ge":
                cols.append((a == v) & (o[:, j] >= c))
            else:
                cols.append((a == v) & (o[:, j] <= c))
        return np.stack(cols, 1)

    names = [
        f"o[{i}] {k} {v:g}" if j is None else f"o[{i}] = {v:g} and o[{j}] {k[3:]} {c:g}"
        for k, i, v, j, c in spec
    ]
    return EventFamily(names, indicator)


# --------------------------------------------------------------------------- the auditor
class AuditResult(NamedTuple):
    epsilon_lb: float  # (1 - alpha) lower confidence bound on ε, from the test phase
    epsilon_hat: float  # point estimate ln(p0 / p1) on the test sample
    claimed: float
    flagged: bool  # epsilon_lb > claimed
    event: str
    pair: int  # index into the input pairs
    reversed: bool  # True: the event is more likely under x1 than x0
    p0: float
    p1: float
    n: int


def audit(
    mechanism: Mechanism,
    pairs: Sequence[tuple],
    claimed_epsilon: float,
    n_select: int = 5_000,
    n_test: int = 20_000,
    alpha: float = 0.05,
    delta: float = 0.0,
    family: Callable[[np.ndarray], EventFamily] = threshold_events,
    seed: int = 0,
) -> AuditResult:
    """Search (pair, direction, event) on a selection sample, then bound ε on a fresh sample."""
    rng = np.random.default_rng(seed)
    best = (-np.inf, None)
    for p, (x0, x1) in enumerate(pairs):
        o0, o1 = mechanism(x0, n_select, rng), mechanism(x1, n_select, rng)
        fam = family(np.concatenate([_as_2d(o0), _as_2d(o1)]))
        k0, k1 = fam.indicator(o0).sum(0), fam.indicator(o1).sum(0)
        for rev, (a, b) in enumerate(((k0, k1), (k1, k0))):
            lb = epsilon_lower_bound(a, b, n_select, alpha, delta)
            e = int(np.argmax(lb))
            if lb[e] > best[0]:
                best = (lb[e], (p, bool(rev), fam, e))
    if best[1] is None:  # no event has p0_lower > δ: nothing to test
        return AuditResult(-math.inf, -math.inf, claimed_epsilon, False, "", 0, False, 0, 0, n_test)
    p, rev, fam, e = best[1]
    x0, x1 = pairs[p]
    if rev:
        x0, x1 = x1, x0
    k0 = int(fam.indicator(mechanism(x0, n_test, rng))[:, e].sum())
    k1 = int(fam.indicator(mechanism(x1, n_test, rng))[:, e].sum())
    lb = float(epsilon_lower_bound(k0, k1, n_test, alpha, delta))
    with np.errstate(divide="ignore"):
        hat = float(np.log(k0 / k1)) if k0 > 0 and k1 > 0 else (math.inf if k0 else -math.inf)
    return AuditResult(
        lb, hat, claimed_epsilon, lb > claimed_epsilon, fam.names[e], p, rev,
        k0 / n_test, k1 / n_test, n_test,
    )  # fmt: skip


# --------------------------------------------------------------------------- float Laplace (R7)
def naive_float_laplace(x: float, u: np.ndarray, scale: float) -> np.ndarray:
    """The textbook float Laplace mechanism x + Lap(scale) by inverse CDF of u in [0, 1), in the
    operation order of NumPy's `laplace` (u >= 1/2: x - b ln(2 - u - u); else x + b ln(u + u)).
    Vulnerable to Mironov's (CCS 2012) attack: u lies on the grid 2^-53 Z, so the outputs are a
    sparse, input-dependent subset of the floats."""
    u = np.asarray(u, np.float64)
    with np.errstate(divide="ignore"):
        return np.where(u >= 0.5, x - scale * np.log(2.0 - u - u), x + scale * np.log(u + u))


def uniform_grid53(n: int, rng: np.random.Generator) -> np.ndarray:
    """Uniforms on the grid 2^-53 {0, ..., 2^53 - 1}, as NumPy's `random()` produces them."""
    return (rng.integers(0, 2**53, n, dtype=np.int64)).astype(np.float64) * 2.0**-53


def reachable(y: np.ndarray, x: float, scale: float, width: int = 8) -> np.ndarray:
    """Whether each output y can be produced by `naive_float_laplace(x, ·, scale)` (exactly).

    Inverts y to the uniform u* it needs (y <= x: u* = exp((y - x)/b)/2; else 1 - exp(-(y - x)/b)/2)
    and evaluates the mechanism at the `width` grid points either side of u*; the float map is
    monotone, and the float inversion error is far below one grid step, so this decides support.
    """
    y = np.asarray(y, np.float64)
    eta = y - x
    u_star = np.where(eta <= 0, np.exp(eta / scale) / 2, 1 - np.exp(-eta / scale) / 2)
    k = np.round(u_star * 2.0**53).astype(np.int64)
    ks = np.clip(k[:, None] + np.arange(-width, width + 1), 0, 2**53 - 1)
    out = naive_float_laplace(x, ks.astype(np.float64) * 2.0**-53, scale)
    return np.any(out == y[:, None], axis=1)


class ImpossibleOutputs(NamedTuple):
    fraction: float  # of outputs from x1 that x0 cannot produce
    fraction_lower: float  # Clopper-Pearson lower bound (1 - alpha/2)
    n: int
    flagged: bool  # any such output: no finite ε (and no δ below fraction_lower) holds


def impossible_outputs(
    x0: float, x1: float, scale: float, n: int, rng: np.random.Generator, alpha: float = 0.05
) -> ImpossibleOutputs:
    """Mironov's witness: outputs of the float Laplace on x1 that are unreachable from x0.

    For such an event E, P0(E) = 0 < P1(E), so the mechanism is not (ε, δ)-DP for any ε and any
    δ < P1(E). Checked exactly by `reachable`.
    """
    y = naive_float_laplace(x1, uniform_grid53(n, rng), scale)
    y = y[np.isfinite(y)]
    bad = int((~reachable(y, x0, scale)).sum())
    lo, _ = clopper_pearson(bad, y.size, alpha)
    return ImpossibleOutputs(bad / y.size, float(lo), y.size, bad > 0)


def support_events(x0: float, x1: float, scale: float) -> EventFamily:
    """Events {y unreachable from x0} and {y unreachable from x1} for the naive float Laplace
    (a family for `audit`: P0 of the first is exactly 0, so ε_lb grows with the sample size)."""

    def indicator(o: np.ndarray) -> np.ndarray:
        y = _as_2d(o)[:, 0]
        return np.stack([~reachable(y, x1, scale), ~reachable(y, x0, scale)], 1)

    return EventFamily([f"unreachable from {x1:g}", f"unreachable from {x0:g}"], indicator)
