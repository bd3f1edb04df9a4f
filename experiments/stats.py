"""Confidence intervals over seeds (Student t), used by results, tables and plots."""

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
