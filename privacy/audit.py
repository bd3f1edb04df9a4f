"""A black-box statistical DP auditor (in the spirit of StatDP, Ding, Wang, Wang, Zhang & Kifer,
CCS 2018; DP-Sniper, Bichsel, Steffen, Bogunovic & Vechev, S&P 2021; DP-Auditorium, Kong et al.,
arXiv:2307.05608; Google's `stochastic_tester.h`).

A mechanism M is a function ``M(x, n, rng) -> (n,) or (n, m) array`` of n independent outputs on
input x. For a pair of neighbouring inputs (x0, x1) and an event E (a set of outputs):

    p0 = P[M(x0) ∈ E],  p1 = P[M(x1) ∈ E];   (ε, δ)-DP requires p0 <= e^ε p1 + δ,

so with Clopper-Pearson bounds, ε_lb = ln((p̂0_lower - δ) / p̂1_upper) is a lower confidence bound
on the ε of M (StatDP's test uses Fisher's exact test instead). Two phases, as in StatDP
(cmla-psu/statdp: `statdp/selectors.py` selects the event on its own samples, `statdp/hypotest.py`
tests it on fresh ones): a *selection* sample picks, in each event family, the (pair, direction,
event) with the largest ε_lb; a *fresh* test sample bounds the k selected events, each at level α/k
(Bonferroni), and the largest bound is reported. ``flagged = ε_lb > claimed ε``: a mechanism that is
(ε, δ)-DP on the pairs is flagged with probability <= α (the exact statement is in `audit`'s
docstring). Passing does not prove privacy (as google/differential-privacy's
`cc/testing/stochastic_tester.h` says of its own tester).

Event families. `threshold_events`: per output column, half-lines {o >= c}, {o <= c} at pooled
quantiles, equality {o = v} for discrete columns, and (discrete = v) ∧ (continuous >= / <= c)
for two-column outputs (StatDP's iSVT4 output). The default for vector outputs adds
(`default_families`) half-lines on linear statistics (`linear_statistics`: differences
o[j] - o[i] and contiguous block sums; `LinearThresholds`) and on a learned direction
(`logistic_direction`, DP-Sniper's classifier idea with a logistic regression): a leak that
shows only in a combination of coordinates (a continual counter's tree node without noise,
visible in the difference of two releases; noise calibrated for too small a sensitivity, spread
over several releases) is caught by default. `impossible_outputs` is Mironov's (CCS 2012)
stronger witness for floating-point Laplace: outputs reachable from one input and not the other.

Controls and the StatDP battery (R8) are in `privacy.audit_mechanisms`; the vector-output
controls (broken binary-tree counters) in tests/test_privacy_audit_controls.py.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np
from scipy.special import expit
from scipy.stats import beta

from experiments.config import ConfigError, check_float, check_int

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
    """A finite family of events: ``indicator(o)`` maps (n, m) outputs to an (n, len(names)) bool
    array (column e: whether each output lies in event e). A family may also have ``counts(o)``,
    the column sums of ``indicator(o)`` computed without the (n, E) array (`LinearThresholds`)."""

    names: list[str]
    indicator: Callable[[np.ndarray], np.ndarray]  # (n, m) outputs -> (n, E) bool


def _as_2d(o: np.ndarray) -> np.ndarray:
    o = np.asarray(o, float)
    return o[:, None] if o.ndim == 1 else o.reshape(o.shape[0], -1)


def _cuts(values: np.ndarray, cuts: int) -> np.ndarray:
    """The distinct pooled quantiles at levels 0.01 … 0.99 (`cuts` of them) of each column:
    (cuts, S) with duplicates of a column replaced by NaN (a NaN cut is never met)."""
    with np.errstate(invalid="ignore"):
        qs = np.quantile(values, np.linspace(0.01, 0.99, cuts), axis=0)
    qs = np.sort(qs, axis=0)
    dup = np.zeros_like(qs, bool)
    dup[1:] = qs[1:] == qs[:-1]
    return np.where(dup, np.nan, qs)


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


class LinearThresholds:
    """Threshold events on linear statistics: {w_s·o >= c} and {w_s·o <= c} for each column w_s
    of `weights` (m, S) and each of `cuts` pooled quantiles c of w_s·o on `pool` (the selection
    sample of both inputs). Events are ordered by statistic, then ">=" cuts, then "<=" cuts.
    `counts` sorts each statistic once (n log n per statistic) instead of building the
    (n, E) indicator array."""

    def __init__(self, weights: np.ndarray, labels: Sequence[str], pool: np.ndarray, cuts=24):
        self.weights = np.asarray(weights, float)
        self.cuts = _cuts(self.values(pool), cuts)  # (C, S), NaN = unused
        c = self.cuts
        self.names = [
            f"{lab} {op} {c[i, s]:.6g}"
            for s, lab in enumerate(labels)
            for op in (">=", "<=")
            for i in range(c.shape[0])
        ]

    def values(self, o: np.ndarray) -> np.ndarray:
        """The statistics (n, S). A BLAS product may round an output's value differently with
        its position in the batch; the auditor's bound stays valid (both inputs' test samples
        then use the same position-dependent mixture of nearly equal events)."""
        with np.errstate(invalid="ignore", over="ignore"):
            return _as_2d(o) @ self.weights

    def indicator(self, o: np.ndarray) -> np.ndarray:
        v = self.values(o)[:, None, :]  # (n, 1, S)
        ge, le = v >= self.cuts, v <= self.cuts  # (n, C, S) each; NaN cuts are never met
        return np.concatenate([ge, le], 1).transpose(0, 2, 1).reshape(v.shape[0], -1)

    def counts(self, o: np.ndarray) -> np.ndarray:
        v = np.sort(self.values(o), axis=0)  # NaN sorts last: counted in neither side
        out = np.zeros((self.cuts.shape[1], 2, self.cuts.shape[0]), int)
        for s in range(v.shape[1]):
            c = self.cuts[:, s]
            ok = ~np.isnan(c)
            col = v[:, s]
            finite = col[~np.isnan(col)]
            out[s, 0, ok] = finite.size - np.searchsorted(finite, c[ok], "left")
            out[s, 1, ok] = np.searchsorted(finite, c[ok], "right")
        return out.reshape(-1)

    def event(self, o: np.ndarray, e: int) -> np.ndarray:
        """Column e of `indicator(o)`, computed alone."""
        n_cuts = self.cuts.shape[0]
        s, rest = divmod(e, 2 * n_cuts)
        side, i = divmod(rest, n_cuts)
        v = self.values(o)[:, s]  # the same product as `indicator`, then one column
        c = self.cuts[i, s]
        return v >= c if side == 0 else v <= c


MAX_ALL_BLOCKS = 32  # up to this output dimension: all differences and contiguous block sums


def linear_statistics(m: int) -> tuple[np.ndarray, list[str]]:
    """The default linear statistics of an m-vector output (m >= 2), as weights (m, S) and labels.

    m <= 32: every difference o[j] - o[i] (i < j; for prefix sums such as a continual counter's
    releases these are the sums of the stream over (i, j], and they include the consecutive
    differences) and every contiguous block sum o[i] + … + o[j] (j > i; prefix sums included).
    m > 32: the consecutive differences, the differences across dyadic spans o[(k+1)2^l - 1] -
    o[k 2^l - 1], the dyadic block sums and the prefix sums (O(m log m) statistics).
    """
    cols: list[np.ndarray] = []
    labels: list[str] = []

    def diff(i: int, j: int) -> None:  # o[j] - o[i]
        w = np.zeros(m)
        w[j], w[i] = 1.0, -1.0
        cols.append(w)
        labels.append(f"o[{j}] - o[{i}]")

    def block(i: int, j: int) -> None:  # o[i] + ... + o[j]
        w = np.zeros(m)
        w[i : j + 1] = 1.0
        cols.append(w)
        labels.append(f"o[{i}] + o[{i + 1}]" if j == i + 1 else f"o[{i}] + … + o[{j}]")

    if m <= MAX_ALL_BLOCKS:
        for i in range(m):
            for j in range(i + 1, m):
                diff(i, j)
        for i in range(m):
            for j in range(i + 1, m):
                block(i, j)
    else:
        pairs: set[tuple[int, int]] = {(i, i + 1) for i in range(m - 1)}
        blocks: set[tuple[int, int]] = {(0, j) for j in range(1, m)}
        size = 2
        while size <= m:
            for k in range(m // size):
                a, b = k * size, (k + 1) * size - 1
                blocks.add((a, b))
                if a > 0:
                    pairs.add((a - 1, b))
            size *= 2
        for i, j in sorted(pairs):
            diff(i, j)
        for i, j in sorted(blocks):
            block(i, j)
    return np.stack(cols, 1), labels


MAX_LEARNED_DIM = 256  # the logistic fit solves an (m + 1) x (m + 1) Newton system per step


def logistic_direction(
    o0: np.ndarray, o1: np.ndarray, ridge: float = 1e-3, steps: int = 50
) -> np.ndarray:
    """The weights w (m,) of a ridge-regularised logistic regression separating outputs o0
    (label 1) from o1 (label 0): the learned direction whose thresholded score w·o is an event,
    as in DP-Sniper (Bichsel, Steffen, Bogunovic & Vechev, S&P 2021: a classifier, by default a
    logistic regression, trained to tell M(x0) from M(x1), whose thresholded score is the
    attack; eth-sri/dp-sniper `dpsniper/attack/dpsniper.py`,
    `dpsniper/classifiers/logistic_regression.py`). DP-Sniper thresholds the posterior so that
    a fixed fraction of M(x1)'s outputs lies above; here the threshold is chosen among pooled
    quantiles like every other event's.

    Features are the output coordinates standardised on the pooled sample (constant coordinates
    get weight 0); the objective is the mean log-loss + (ridge/2)‖β‖² (intercept not penalised),
    minimised by Newton's method (iteratively reweighted least squares; strictly convex, so it
    converges from 0 whether or not the sample is separable). Returned on the original scale,
    normalised to max |w| = 1 (events are invariant to the scale).
    """
    x = np.concatenate([_as_2d(o0), _as_2d(o1)])
    y = np.r_[np.ones(len(o0)), np.zeros(len(o1))]
    mu, sd = x.mean(0), x.std(0)
    live = sd > 1e-12 * np.maximum(1.0, np.abs(mu))
    z = np.where(live, (x - mu) / np.where(live, sd, 1.0), 0.0)
    z = np.concatenate([z, np.ones((len(z), 1))], 1)
    pen = np.r_[np.where(live, ridge, 1.0), 0.0]  # dead coordinates: pinned at 0
    beta_ = np.zeros(z.shape[1])
    n = len(z)
    for _ in range(steps):
        p = expit(z @ beta_)
        grad = z.T @ (p - y) / n + pen * beta_
        hess = (z * (p * (1 - p))[:, None]).T @ z / n + np.diag(pen)
        step = np.linalg.solve(hess, grad)
        beta_ -= step
        if np.max(np.abs(step)) < 1e-10 * (1 + np.max(np.abs(beta_))):
            break
    w = np.where(live, beta_[:-1] / np.where(live, sd, 1.0), 0.0)
    top = np.max(np.abs(w))
    return w / top if top > 0 else w


def default_families(o0: np.ndarray, o1: np.ndarray, cuts: int = 24) -> list[tuple[str, object]]:
    """The default event families for one input pair, from its selection sample (o0, o1):

    * ``coordinates``: `threshold_events` on the pooled sample (single output columns);
    * for vector outputs (m >= 2), ``linear``: `LinearThresholds` on `linear_statistics(m)`
      (differences and block sums), and ``learned``: `LinearThresholds` on the
      `logistic_direction` fitted to this pair's selection sample (m <= 256, finite outputs).

    The auditor carries the best event of each family (over pairs and directions) to the test
    sample, so the number of families is the Bonferroni factor k (1 for scalar outputs).
    """
    o0, o1 = _as_2d(o0), _as_2d(o1)
    pool = np.concatenate([o0, o1])
    m = pool.shape[1]
    fams: list[tuple[str, object]] = [("coordinates", threshold_events(pool, cuts))]
    if m >= 2:
        w, labels = linear_statistics(m)
        fams.append(("linear", LinearThresholds(w, labels, pool, cuts)))
        if m <= MAX_LEARNED_DIM and np.isfinite(pool).all():
            d = logistic_direction(o0, o1)
            lab = "learned w·o (w = [" + ", ".join(f"{v:.3g}" for v in d) + "])"
            fams.append(("learned", LinearThresholds(d[:, None], [lab], pool, cuts)))
    return fams


def _event(fam, o: np.ndarray, e: int) -> np.ndarray:
    event = getattr(fam, "event", None)
    if event is not None:
        return np.asarray(event(o, e))
    return np.asarray(fam.indicator(o))[:, e]


def _counts(fam, o: np.ndarray) -> np.ndarray:
    counts = getattr(fam, "counts", None)
    if counts is not None:
        return np.asarray(counts(o))
    return np.asarray(fam.indicator(o)).sum(0)


def _check_family(fam, pool: np.ndarray):
    """A user's `family(pool)` result, checked: names (a list of str) and an indicator returning
    an (n, len(names)) bool array; else one ConfigError line naming `family`."""
    want = "family: must be a callable pool -> EventFamily(names, indicator) whose indicator(o)"
    want += " returns an (n, len(names)) bool array"
    names, ind = getattr(fam, "names", None), getattr(fam, "indicator", None)
    if not isinstance(names, Sequence) or isinstance(names, str) or not callable(ind):
        raise ConfigError(f"{want} (got {type(fam).__name__})")
    if not names or not all(isinstance(s, str) for s in names):
        raise ConfigError(f"{want} (got names {list(names)[:3]!r}…)")
    got = np.asarray(ind(pool[:2]))
    if got.shape != (min(2, len(pool)), len(names)) or got.dtype != bool:
        raise ConfigError(f"{want} (got {got.dtype} shape {got.shape} for 2 outputs)")
    return fam


def _outputs(mechanism: Mechanism, x, n: int, rng: np.random.Generator) -> np.ndarray:
    o = np.asarray(mechanism(x, n, rng))
    if o.ndim == 0 or o.shape[0] != n or o.size == 0:
        raise ConfigError(
            f"mechanism: must return n outputs, an (n,) or (n, d) array (got shape {o.shape} "
            f"for n = {n})"
        )
    return _as_2d(o)


# --------------------------------------------------------------------------- the auditor
class AuditResult(NamedTuple):
    epsilon_lb: float  # lower confidence bound on ε (confidence: `audit`), from the test phase
    epsilon_hat: float  # point estimate ln(p0 / p1) on the test sample
    claimed: float
    flagged: bool  # epsilon_lb > claimed
    event: str
    pair: int  # index into the input pairs
    reversed: bool  # True: the event is more likely under x1 than x0
    p0: float
    p1: float
    n: int
    tested: int = 1  # k: events carried to the test sample (Bonferroni factor)
    alpha: float = 0.05
    candidates: tuple = ()  # (family, event, pair, reversed, ε_lb) of each tested event


def _py_int(v):
    return int(v) if isinstance(v, np.integer) else v


def _check_pairs(pairs) -> list[tuple]:
    try:
        out = [tuple(p) for p in pairs]
    except TypeError:
        out = None
    if not out or any(len(p) != 2 for p in out):
        raise ConfigError(
            "pairs: must be a non-empty sequence of (x0, x1) neighbouring inputs "
            f"(got {type(pairs).__name__})"
        )
    return out


def audit(
    mechanism: Mechanism,
    pairs: Sequence[tuple],
    epsilon: float,
    n_select: int,
    n_test: int,
    *,
    delta: float = 0.0,
    family: Callable[[np.ndarray], EventFamily] | None = None,
    seed: int = 0,
    alpha: float = 0.05,
) -> AuditResult:
    """Audit the claim "M is (ε, δ)-DP for these neighbouring pairs": select events on a selection
    sample, bound ε from below on a fresh test sample; flag when the bound exceeds ε.

    ``mechanism(x, n, rng)`` returns n independent outputs, shape (n,) or (n, d), for input x.
    Selection (StatDP, Ding et al., CCS 2018: event selection on one sample, hypothesis test on
    another): for each pair, its n_select outputs per input give the events' counts; for each
    event family, the (pair, direction, event) with the largest selection-sample ε_lb (at level
    α, as the auditor before vector events: its choice among the coordinate events is
    unchanged) is kept. Families: ``family(pool)`` if given (one family, k = 1: the auditor
    before vector events, draw for draw), else `default_families` — single coordinates,
    differences and block sums (`linear_statistics`) and a learned logistic direction
    (DP-Sniper, Bichsel et al., S&P 2021) for vector outputs; k = the number of families that
    found an event with p0_lower > δ (3 for vector outputs, 1 for scalar ones). Test: n_test
    fresh outputs per input of each kept event's pair give ε_lb,i = ln((p0_lower - δ) /
    p1_upper), each proportion bounded by one side of a two-sided Clopper–Pearson interval of
    confidence 1 - α/(2k) (`epsilon_lower_bound` at α/k); the reported bound is the largest.

    Confidence statement: the events are functions of the selection sample only, so they are
    fixed given it; by Bonferroni over the 2k one-sided bounds (each at α/(4k)), with
    probability >= 1 - α/2 >= 1 - α over the test sample every ε_lb,i <=
    ln((P[M(x0) ∈ E_i] - δ) / P[M(x1) ∈ E_i]), which is <= ε for a mechanism that is (ε, δ)-DP
    on these pairs. Hence P[flagged] <= α for such a mechanism, and a flag proves, at
    confidence 1 - α, that M is not (epsilon, delta)-DP — under the sampling assumptions: the
    outputs are independent draws of M (stateless across calls, randomness from `rng`
    independent between calls). A pass proves nothing: a leak outside the families, or one that
    needs more samples, goes unseen.

    Bad input (n_select or n_test < 100, ε < 0, δ outside [0, 1), α outside (0, 1), pairs not
    (x0, x1) tuples, a `family` result of the wrong shape, a mechanism returning the wrong
    number of outputs) raises a one-line ConfigError naming the field.
    """
    n_select = check_int("n_select", _py_int(n_select), 100)
    n_test = check_int("n_test", _py_int(n_test), 100)
    check_float("epsilon", epsilon, 0.0)
    check_float("delta", delta, 0.0, 1.0, high_open=True)
    check_float("alpha", alpha, 0.0, 1.0, low_open=True, high_open=True)
    if family is not None and not callable(family):
        raise ConfigError(
            "family: must be None (the default events) or a callable pool -> "
            f"EventFamily(names, indicator) (got {type(family).__name__})"
        )
    pairs = _check_pairs(pairs)
    rng = np.random.default_rng(seed)
    best: dict[str, tuple] = {}  # family -> (selection ε_lb, pair, reversed, fam, event)
    order: list[str] = []
    for p, (x0, x1) in enumerate(pairs):
        o0, o1 = _outputs(mechanism, x0, n_select, rng), _outputs(mechanism, x1, n_select, rng)
        if family is not None:
            pool = np.concatenate([o0, o1])
            fams = [("family", _check_family(family(pool), pool))]
        else:
            fams = default_families(o0, o1)
        for name, fam in fams:
            if name not in order:
                order.append(name)
            k0, k1 = _counts(fam, o0), _counts(fam, o1)
            for rev, (a, b) in enumerate(((k0, k1), (k1, k0))):
                lb = epsilon_lower_bound(a, b, n_select, alpha, delta)
                e = int(np.argmax(lb))
                if lb[e] > best.get(name, (-np.inf,))[0]:
                    best[name] = (lb[e], p, bool(rev), fam, e)
    kept = [(name, best[name]) for name in order if name in best]
    if not kept:  # no event has p0_lower > δ: nothing to test
        return AuditResult(
            -math.inf, -math.inf, epsilon, False, "", 0, False, 0.0, 0.0, n_test, 0, alpha
        )
    k = len(kept)
    samples: dict[tuple[int, int], np.ndarray] = {}

    def test_sample(p: int, i: int) -> np.ndarray:
        if (p, i) not in samples:
            samples[(p, i)] = _outputs(mechanism, pairs[p][i], n_test, rng)
        return samples[(p, i)]

    results = []
    for name, (_, p, rev, fam, e) in kept:
        first, second = (1, 0) if rev else (0, 1)
        t0, t1 = test_sample(p, first), test_sample(p, second)
        c0, c1 = int(_event(fam, t0, e).sum()), int(_event(fam, t1, e).sum())
        lb = float(epsilon_lower_bound(c0, c1, n_test, alpha / k, delta))
        results.append((lb, name, fam.names[e], p, rev, c0, c1))
    lb, _, event, p, rev, c0, c1 = max(results, key=lambda r: r[0])
    with np.errstate(divide="ignore"):
        hat = float(np.log(c0 / c1)) if c0 > 0 and c1 > 0 else (math.inf if c0 else -math.inf)
    cands = tuple((r[1], r[2], r[3], r[4], r[0]) for r in results)
    return AuditResult(
        lb, hat, epsilon, lb > epsilon, event, p, rev, c0 / n_test, c1 / n_test, n_test, k,
        alpha, cands,
    )  # fmt: skip


# --------------------------------------------------------------------------- float Laplace (R7)
def naive_float_laplace(x: float, u: np.ndarray, scale: float) -> np.ndarray:
    """The textbook float Laplace mechanism x + Lap(scale) by inverse CDF of u in [0, 1), in the
    operation order of NumPy's `laplace` (u >= 1/2: x - b ln(2 - u - u); else x + b ln(u + u)).
    Vulnerable to Mironov's (CCS 2012) attack: u lies on the grid 2^-53 Z, so the outputs are a
    sparse, input-dependent subset of the floats. It is a copy of NumPy's formula with `np.log`,
    not NumPy's `Generator.laplace` itself, which calls the C library's log (about 0.2% of its
    outputs differ by up to 2 ulp): `reachable` decides the support of this copy only."""
    u = np.asarray(u, np.float64)
    with np.errstate(divide="ignore"):
        return np.where(u >= 0.5, x - scale * np.log(2.0 - u - u), x + scale * np.log(u + u))


def uniform_grid53(n: int, rng: np.random.Generator) -> np.ndarray:
    """Uniforms on the grid 2^-53 {0, ..., 2^53 - 1}, as NumPy's `random()` produces them."""
    return (rng.integers(0, 2**53, n, dtype=np.int64)).astype(np.float64) * 2.0**-53


def reachable(y: np.ndarray, x: float, scale: float, width: int = 8) -> np.ndarray:
    """Whether each output y can be produced by `naive_float_laplace(x, ·, scale)` (exactly; for
    this copy's outputs, not for NumPy's `Generator.laplace`, whose libm log differs in the last
    bits: used on its outputs this would call ~0.3% of reachable ones unreachable).

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
