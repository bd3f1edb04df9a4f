"""Confidence intervals over seeds (Student t), used by results, tables, plots, reproductions."""

from __future__ import annotations

import numpy as np
from scipy import stats


def mean_ci(x: np.ndarray, level: float = 0.95, axis: int = 0):
    """Mean and two-sided Student-t confidence interval of the mean along `axis`.

    With one sample the interval is the point itself (no spread can be estimated).
    """
    x = np.asarray(x, np.float64)
    n = x.shape[axis]
    mean = x.mean(axis=axis)
    if n < 2:
        return mean, mean, mean
    half = stats.t.ppf(0.5 + level / 2, n - 1) * x.std(axis=axis, ddof=1) / np.sqrt(n)
    return mean, mean - half, mean + half


def ratio_ci(a: np.ndarray, b: np.ndarray, level: float = 0.95):
    """Ratio of means R = mean(a) / mean(b) of paired samples (same seeds), with a CI.

    Delta method on the paired differences: R's standard error is the standard error of the mean
    of d_i = (a_i - R b_i) / mean(b), which accounts for the correlation of a and b that common
    random numbers create (both agents meet the same instance in seed i). Student t with n - 1
    degrees of freedom; with one sample the interval is the point itself.
    """
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    if a.shape != b.shape:
        raise ValueError(f"ratio_ci: paired samples need equal shapes (got {a.shape}, {b.shape})")
    ratio = a.mean() / b.mean()
    n = a.size
    if n < 2:
        return ratio, ratio, ratio
    d = (a - ratio * b) / b.mean()
    half = stats.t.ppf(0.5 + level / 2, n - 1) * d.std(ddof=1) / np.sqrt(n)
    return ratio, ratio - half, ratio + half
