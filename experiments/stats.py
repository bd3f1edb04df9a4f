"""Confidence intervals over seeds, chosen by a metric's support (`protocol.MetricInfo.support`).

* ``real``: Student t interval of the mean (`mean_ci`);
* ``nonnegative`` (heavy-tailed, >= 0): BCa bootstrap interval of the mean (`bootstrap_mean_ci`),
  whose endpoints are means of resamples and so never leave [min x, max x] (never below 0); no
  interval (nan) when all values are equal;
* ``indicator`` ({0, 1}): exact Clopper–Pearson interval of the probability
  (`clopper_pearson_ci`), which is never [0, 0] for 0 successes in n trials.

`interval` picks one of them; `ratio_ci` compares two agents on the same seeds. Used by results,
tables, plots and reproductions.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy import special  # not scipy.stats: ~0.3 s more to import in every run

from experiments.protocol import INDICATOR, NONNEGATIVE, REAL

BOOTSTRAP_RESAMPLES = 4000  # B: Monte Carlo error of BCa endpoints ~ a few % of the width
BOOTSTRAP_SEED = 0  # fixed: the same values always give the same interval
_BATCH_ELEMENTS = 1 << 22  # resample counts held at once (B_batch x n)

METHODS = {REAL: "student-t", NONNEGATIVE: "bca-bootstrap", INDICATOR: "clopper-pearson"}


class Interval(NamedTuple):
    """A point estimate with a two-sided confidence interval (arrays when vectorised)."""

    mean: np.ndarray | float
    low: np.ndarray | float
    high: np.ndarray | float


def mean_ci(x: np.ndarray, level: float = 0.95, axis: int = 0):
    """Mean and two-sided Student-t confidence interval of the mean along `axis`.

    mean ± t_{n-1, (1+level)/2} s / sqrt(n). With one sample no spread can be estimated: the
    interval is undefined, (mean, nan, nan).
    """
    x = np.asarray(x, np.float64)
    n = x.shape[axis]
    mean = x.mean(axis=axis)
    if n < 2:
        return mean, mean * np.nan, mean * np.nan
    half = special.stdtrit(n - 1, 0.5 + level / 2) * x.std(axis=axis, ddof=1) / np.sqrt(n)
    return mean, mean - half, mean + half


def clopper_pearson_ci(k, n, level: float = 0.95):
    """Exact (Clopper & Pearson, Biometrika 26(4), 1934) interval of a binomial proportion.

    With α = 1 - level: low = Beta(α/2; k, n - k + 1) quantile (0 when k = 0), high =
    Beta(1 - α/2; k + 1, n - k) quantile (1 when k = n). For k = 0 the upper end is the closed
    form 1 - (α/2)^(1/n) > 0. Coverage >= level for every p (conservative). Vectorised.
    """
    k = np.asarray(k, np.float64)
    n = np.asarray(n, np.float64)
    a = (1 - level) / 2
    with np.errstate(invalid="ignore", divide="ignore"):
        low = np.where(k > 0, special.betaincinv(k, n - k + 1, a), 0.0)
        high = np.where(k < n, special.betaincinv(k + 1, n - k, 1 - a), 1.0)
    return low, high


def wilson_ci(k, n, level: float = 0.95):
    """Wilson (JASA 22(158), 1927) score interval of a binomial proportion p̂ = k / n.

    (p̂ + z²/2n ± z sqrt(p̂(1 - p̂)/n + z²/4n²)) / (1 + z²/n), z = Φ^{-1}((1 + level)/2); for
    k = 0 it is [0, z²/(n + z²)], never [0, 0]. Not exact (coverage can dip below level);
    `interval` uses Clopper–Pearson. Vectorised.
    """
    k = np.asarray(k, np.float64)
    n = np.asarray(n, np.float64)
    z = special.ndtri(0.5 + level / 2)
    p = k / n
    centre = (p + z**2 / (2 * n)) / (1 + z**2 / n)
    half = z * np.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / (1 + z**2 / n)
    return np.clip(centre - half, 0.0, 1.0), np.clip(centre + half, 0.0, 1.0)


def bootstrap_means(
    x: np.ndarray, n_resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED
) -> np.ndarray:
    """Means of `n_resamples` bootstrap resamples (with replacement) of the rows of `x`.

    x has shape (n, ...); the result (B, ...). Resample b draws n row indices uniformly
    (``default_rng(seed).integers(0, n, (B, n))``, the draws of `scipy.stats.bootstrap` with the
    same generator) and every trailing column is resampled with the same rows (paired). Computed
    as (resample counts) @ x / n in batches, O(B n) time, bounded memory.
    """
    x = np.asarray(x, np.float64)
    n = x.shape[0]
    flat = x.reshape(n, -1)
    rng = np.random.default_rng(seed)
    out = np.empty((n_resamples, flat.shape[1]))
    step = max(1, _BATCH_ELEMENTS // max(n, 1))
    for s in range(0, n_resamples, step):
        b = min(step, n_resamples - s)
        idx = rng.integers(0, n, (b, n)) + n * np.arange(b)[:, None]
        counts = np.bincount(idx.ravel(), minlength=b * n).reshape(b, n)
        out[s : s + b] = counts @ flat / n
    return out.reshape(n_resamples, *x.shape[1:])


def bootstrap_mean_ci(
    x: np.ndarray,
    level: float = 0.95,
    axis: int = 0,
    n_resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
):
    """Mean and BCa bootstrap interval of the mean along `axis` (Efron, "Better bootstrap
    confidence intervals", JASA 82(397), 1987; Efron & Tibshirani, "An Introduction to the
    Bootstrap", 1993, §14.3).

    With θ̂ the mean and θ*_b the resample means: z0 = Φ^{-1}(#{θ* < θ̂}/B + #{θ* = θ̂}/2B);
    the jackknife acceleration of the mean has the closed form
    a = Σ(x - x̄)³ / (6 (Σ(x - x̄)²)^{3/2}); the interval is the [α1, α2] quantiles of θ*,
    α_i = Φ(z0 + (z0 + z_i)/(1 - a (z0 + z_i))),
    z_1,2 = Φ^{-1}((1 ∓ level)/2). Same numbers as ``scipy.stats.bootstrap(method="BCa")``
    with ``rng=default_rng(seed)``, in O(B n). Endpoints are resample means: within
    [min x, max x], so never below 0 for non-negative x. One sample, or all-equal x (every
    resample mean is that value: a zero-width "interval" that is no 95% statement, e.g. the
    20 zeros of a simple regret that is mostly 0), gives an undefined interval (nan, nan); a
    column with a NaN gives NaN. With few seeds and a zero-inflated x (mostly 0, a rare
    positive value) the coverage is far below `level` even when the values are not all equal
    (docs/usage.md, "Quick start").
    """
    x = np.moveaxis(np.asarray(x, np.float64), axis, 0)
    mean = x.mean(axis=0)
    n = x.shape[0]
    if n < 2:
        return mean, mean * np.nan, mean * np.nan
    boot = np.sort(bootstrap_means(x, n_resamples, seed), axis=0)
    below = np.count_nonzero(boot < mean, axis=0) + np.count_nonzero(boot <= mean, axis=0)
    z0 = special.ndtri(np.clip(below / (2 * n_resamples), 0.5 / n_resamples, 1 - 0.5 / n_resamples))
    dev = x - mean
    den = 6 * np.sum(dev**2, axis=0) ** 1.5
    with np.errstate(invalid="ignore", divide="ignore"):
        acc = np.where(den > 0, np.sum(dev**3, axis=0) / den, 0.0)
    ends = []
    for z in (special.ndtri((1 - level) / 2), special.ndtri((1 + level) / 2)):
        q = special.ndtr(z0 + (z0 + z) / (1 - acc * (z0 + z)))
        ends.append(_quantile_sorted(boot, q))
    bad = ~np.all(np.isfinite(x), axis=0) | np.all(x == x[:1], axis=0)
    low, high = (np.where(bad, np.nan, e)[()] for e in ends)
    return mean, low, high


def _quantile_sorted(s: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Per-column quantile q (linear interpolation, numpy's default) of columns sorted on axis 0."""
    pos = np.clip(np.nan_to_num(q, nan=0.5), 0.0, 1.0) * (s.shape[0] - 1)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, s.shape[0] - 1)
    frac = pos - lo
    take = lambda i: np.take_along_axis(s, i[None, ...], axis=0)[0]
    a, b = take(np.asarray(lo)), take(np.asarray(hi))
    return a + frac * (b - a)


def indicator_ci(x: np.ndarray, level: float = 0.95, axis: int = 0):
    """Frequency of a {0, 1} metric along `axis` with its Clopper–Pearson interval."""
    x = np.asarray(x, np.float64)
    finite = np.isfinite(x)
    if np.any(finite & (x != 0) & (x != 1)):
        raise ValueError("indicator metric: values must be 0 or 1")
    n = x.shape[axis]
    k = x.sum(axis=axis)
    low, high = clopper_pearson_ci(k, n, level)
    bad = ~np.all(finite, axis=axis)
    return k / n, np.where(bad, np.nan, low)[()], np.where(bad, np.nan, high)[()]


def interval(values: np.ndarray, support: str = REAL, level: float = 0.95, axis: int = 0):
    """Mean with the confidence interval its support calls for (see the module docstring).

    Returns `Interval(mean, low, high)`; scalars for 1-d input, arrays along the other axes.
    """
    if support == REAL:
        return Interval(*mean_ci(values, level, axis))
    if support == NONNEGATIVE:
        return Interval(*bootstrap_mean_ci(values, level, axis))
    if support == INDICATOR:
        return Interval(*indicator_ci(values, level, axis))
    raise ValueError(f"support: must be one of {', '.join(METHODS)} (got {support!r})")


def ratio_ci(a: np.ndarray, b: np.ndarray, level: float = 0.95):
    """Ratio of means R = mean(a) / mean(b) of paired samples (same seeds), with a CI.

    Delta method on the paired differences: R's standard error is the standard error of the mean
    of d_i = (a_i - R b_i) / mean(b), which accounts for the correlation of a and b that common
    random numbers create (both agents meet the same instance in seed i). Student t with n - 1
    degrees of freedom; with one sample the interval is undefined (ratio, nan, nan). When
    mean(b) = 0 the ratio is undefined: (nan, nan, nan).
    """
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    if a.shape != b.shape:
        raise ValueError(f"ratio_ci: paired samples need equal shapes (got {a.shape}, {b.shape})")
    if b.mean() == 0:
        return np.nan, np.nan, np.nan
    ratio = a.mean() / b.mean()
    n = a.size
    if n < 2:
        return ratio, np.nan, np.nan
    d = (a - ratio * b) / b.mean()
    half = special.stdtrit(n - 1, 0.5 + level / 2) * d.std(ddof=1) / np.sqrt(n)
    return ratio, ratio - half, ratio + half
