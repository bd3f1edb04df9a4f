"""`experiments.stats`: support-aware confidence intervals against closed forms and scipy."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from experiments.protocol import INDICATOR, NONNEGATIVE, REAL
from experiments.stats import (
    METHODS,
    bootstrap_mean_ci,
    clopper_pearson_ci,
    indicator_ci,
    interval,
    mean_ci,
    ratio_ci,
    wilson_ci,
)


# --------------------------------------------------------------------------- binomial intervals
@pytest.mark.parametrize("n", [1, 7, 50, 1000])
@pytest.mark.parametrize("level", [0.9, 0.95, 0.99])
def test_clopper_pearson_closed_forms_at_the_ends(n, level):
    """k = 0: [0, 1 - (α/2)^(1/n)]; k = n: [(α/2)^(1/n), 1] (Clopper & Pearson 1934)."""
    a = (1 - level) / 2
    lo, hi = clopper_pearson_ci(0, n, level)
    assert lo == 0.0 and hi == pytest.approx(1 - a ** (1 / n), rel=1e-12)
    assert hi > 0  # never [0, 0] for no error in n
    lo, hi = clopper_pearson_ci(n, n, level)
    assert hi == 1.0 and lo == pytest.approx(a ** (1 / n), rel=1e-12)


def test_clopper_pearson_and_wilson_match_scipy():
    k = np.array([0, 1, 3, 10, 25, 49, 50])
    n = 50
    lo, hi = clopper_pearson_ci(k, n)
    wlo, whi = wilson_ci(k, n)
    for i, ki in enumerate(k):
        ref = stats.binomtest(int(ki), n).proportion_ci(0.95, method="exact")
        assert (lo[i], hi[i]) == pytest.approx((ref.low, ref.high), rel=1e-9, abs=1e-12)
        ref = stats.binomtest(int(ki), n).proportion_ci(0.95, method="wilson")
        assert (wlo[i], whi[i]) == pytest.approx((ref.low, ref.high), rel=1e-9, abs=1e-12)
    z = stats.norm.ppf(0.975)
    assert wilson_ci(0, 20)[1] == pytest.approx(z**2 / (20 + z**2), rel=1e-12)  # not [0, 0]


@pytest.mark.parametrize("n", [10, 40])
def test_clopper_pearson_coverage_is_at_least_the_level_exactly(n):
    """Coverage P_p(lo(K) <= p <= hi(K)) summed exactly over K ~ Binomial(n, p): no simulation."""
    k = np.arange(n + 1)
    lo, hi = clopper_pearson_ci(k, n, 0.95)
    for p in np.linspace(0.001, 0.999, 181):
        cover = stats.binom.pmf(k, n, p)[(lo <= p) & (p <= hi)].sum()
        assert cover >= 0.95 - 1e-12, (p, cover)


def test_indicator_ci_counts_and_rejects_non_indicators():
    x = np.zeros(30)
    mean, lo, hi = indicator_ci(x)
    assert (mean, lo) == (0.0, 0.0) and hi == pytest.approx(1 - 0.025 ** (1 / 30), rel=1e-12)
    x[:6] = 1
    assert indicator_ci(x)[0] == pytest.approx(0.2)
    with pytest.raises(ValueError, match="0 or 1"):
        indicator_ci(np.array([0.0, 0.5, 1.0]))
    assert np.isnan(indicator_ci(np.array([0.0, np.nan]))[1])


# --------------------------------------------------------------------------- bootstrap
def test_bca_matches_scipy_bootstrap_with_the_same_generator():
    """Same resample indices (``integers(0, n, (B, n))`` of one generator), same mid-rank z0, same
    jackknife acceleration (closed form for the mean here, numerical in scipy), same linear
    quantiles: equal up to float rounding of the resample means (1e-9 relative is ample)."""
    x = np.random.default_rng(1).pareto(1.5, 200)
    for level, seed in ((0.95, 5), (0.9, 11)):
        mean, lo, hi = bootstrap_mean_ci(x, level, n_resamples=3000, seed=seed)
        ref = stats.bootstrap(
            (x,), np.mean, confidence_level=level, n_resamples=3000, method="BCa",
            rng=np.random.default_rng(seed), vectorized=True,
        ).confidence_interval  # fmt: skip
        assert mean == pytest.approx(x.mean(), rel=1e-14)
        assert (lo, hi) == pytest.approx((ref.low, ref.high), rel=1e-9)


def test_bootstrap_never_goes_below_zero_where_t_does():
    """19 zeros and one 100 (a heavy tail): t gives a negative lower end, BCa stays in [0, 100]."""
    x = np.r_[np.zeros(19), 100.0]
    assert mean_ci(x)[1] < 0
    mean, lo, hi = bootstrap_mean_ci(x)
    assert mean == 5.0 and 0.0 <= lo < mean < hi <= 100.0
    assert bootstrap_mean_ci(x) == (mean, lo, hi)  # fixed seed: reproducible


def test_bootstrap_vectorised_edge_cases():
    rng = np.random.default_rng(2)
    x = rng.lognormal(0, 1.5, (40, 3))
    x[:, 1] = 2.5  # all equal: no interval (not the point as a zero-width one)
    x[5, 2] = np.nan  # a NaN: NaN ends
    mean, lo, hi = bootstrap_mean_ci(x)
    one = bootstrap_mean_ci(x[:, 0])
    assert (mean[0], lo[0], hi[0]) == pytest.approx(one, rel=1e-12)  # columns independent
    assert mean[1] == 2.5 and np.isnan(lo[1]) and np.isnan(hi[1])
    assert np.isnan(lo[2]) and np.isnan(hi[2])
    m1, lo1, hi1 = bootstrap_mean_ci(np.array([3.0]))  # one sample: no interval, not a point
    assert m1 == 3.0 and np.isnan(lo1) and np.isnan(hi1)


def test_bootstrap_of_all_equal_values_is_no_interval():
    """20 zeros (a simple regret that is 0 in every seed): every resample mean is 0, and [0, 0]
    would claim 95% coverage it does not have (0.3 x Bernoulli(0.01) over 20 seeds is all zeros
    82% of the time, while its mean is 0.003): no interval, as for one sample."""
    m, lo, hi = bootstrap_mean_ci(np.zeros(20))
    assert m == 0.0 and np.isnan(lo) and np.isnan(hi)
    m, lo, hi = interval(np.full(7, 3.0), NONNEGATIVE)
    assert m == 3.0 and np.isnan(lo) and np.isnan(hi)
    _, lo, hi = bootstrap_mean_ci(np.r_[np.zeros(19), 0.3])  # one positive value: an interval
    assert 0.0 <= lo < hi <= 0.3


def test_one_sample_intervals_are_undefined_not_zero_width():
    """n = 1 gives no estimate of spread: Student t and the ratio have no interval either,
    while the exact binomial interval is defined for one trial (Clopper-Pearson, k = 0, n = 1:
    [0, 1 - 0.025] = [0, 0.975])."""
    m, lo, hi = mean_ci(np.array([2.0]))
    assert m == 2.0 and np.isnan(lo) and np.isnan(hi)
    r, rlo, rhi = ratio_ci(np.array([3.0]), np.array([1.5]))
    assert r == 2.0 and np.isnan(rlo) and np.isnan(rhi)
    assert clopper_pearson_ci(0, 1) == pytest.approx((0.0, 0.975))


def test_bootstrap_coverage_on_a_skewed_law():
    """400 samples of n = 60 from Exp(1) (mean 1), one vectorised call. BCa's coverage here is
    ~0.94; with 400 replicates its sd is ~0.012, so 0.90 is > 3 sd below and the lower end must
    never be negative."""
    x = np.random.default_rng(3).exponential(1.0, (60, 400))
    _, lo, hi = bootstrap_mean_ci(x, n_resamples=2000)
    assert np.all(lo >= 0)
    assert np.mean((lo <= 1.0) & (hi >= 1.0)) >= 0.90


# --------------------------------------------------------------------------- dispatch and ratio
def test_interval_dispatches_on_support():
    x = np.random.default_rng(4).exponential(2.0, 25)
    assert tuple(interval(x, REAL)) == mean_ci(x)
    assert tuple(interval(x, NONNEGATIVE)) == bootstrap_mean_ci(x)
    b = (x > 2).astype(float)
    assert tuple(interval(b, INDICATOR)) == indicator_ci(b)
    assert set(METHODS) == {REAL, NONNEGATIVE, INDICATOR}
    with pytest.raises(ValueError, match="support"):
        interval(x, "weird")
    wide = np.random.default_rng(5).exponential(1.0, (30, 4))
    m, lo, hi = interval(wide, NONNEGATIVE, axis=0)
    assert m.shape == lo.shape == hi.shape == (4,)


def test_ratio_ci_with_a_zero_reference_is_undefined():
    assert all(np.isnan(v) for v in ratio_ci(np.ones(5), np.zeros(5)))
