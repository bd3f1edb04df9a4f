"""The DP-BAI reproduction (privacy/dpbai_reproduction.py): its analysis by hand (default tier,
no simulation) and a reduced end-to-end run through the engine (slow tier)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from experiments.reproduce import load_paper
from privacy import dpbai_reproduction as rep


def test_registered():
    m = load_paper("dpbai_chen2024")
    assert m is rep and list(m.ITEMS) == ["R1", "R2", "R3", "R4"]


def test_hardness_by_hand():
    # Soare-type instance: means (0.9, 0, 0, 0, 0.9 cos ω); d = 4 so i = 2..4: the gaps of the
    # 2nd..4th best arms are 0.9 (1 - cos ω), 0.9, 0.9.
    w = 0.3
    means = np.array([0.9, 0.0, 0.0, 0.0, 0.9 * math.cos(w)])
    g2 = 0.9 * (1 - math.cos(w))
    h_bai, h_pri = rep.hardness(means, 4)
    assert h_bai == pytest.approx(max(2 / g2**2, 3 / 0.81, 4 / 0.81), rel=1e-12)
    assert h_pri == pytest.approx(max(2 / g2, 3 / 0.9, 4 / 0.9), rel=1e-12)
    # d ∧ K: with d = 2 only the second-best arm counts
    assert rep.hardness(means, 2) == pytest.approx((2 / g2**2, 2 / g2))


def test_decay_fit_exact_exponential():
    # error = 0.4 exp(-T/2000) exactly (k = n p): the weighted fit returns the slope -1/2000,
    # R² = 1; points with fewer than 5 errors or error > 0.5 are left out.
    T = np.array([500, 1000, 3000, 6000, 30_000])
    n = np.full(5, 10**6)
    p = 0.4 * np.exp(-T / 2000)
    k = n * p
    f = rep.decay_fit(T, k, n)
    assert f["points"] == 4  # T = 30000: 10^6 p = 0.12 errors < 5
    assert f["slope"] == pytest.approx(-1 / 2000, rel=1e-9)
    assert f["r2"] == pytest.approx(1.0, abs=1e-12) and f["se"] == pytest.approx(0, abs=1e-9)
    k2 = k.copy()
    k2[0] = 0.6 * n[0]  # above 0.5: not in the decay regime
    assert rep.decay_fit(T, k2, n)["points"] == 3
    assert math.isnan(rep.decay_fit(T[:1], k[:1], n[:1])["slope"])


def test_fisher_less_against_the_hypergeometric_sum():
    # Fisher's one-sided p-value of p1 < p2 is P[X <= k1] for X hypergeometric (N = n1 + n2
    # runs, k1 + k2 errors, n1 drawn): summed here from math.comb, independently of scipy.
    def by_hand(k1, n1, k2, n2):
        N, K = n1 + n2, k1 + k2
        return sum(math.comb(K, x) * math.comb(N - K, n1 - x) for x in range(k1 + 1)) / math.comb(
            N, n1
        )

    for k1, n1, k2, n2 in [(3, 40, 10, 40), (0, 10, 0, 12), (7, 30, 2, 25), (50, 1000, 80, 1000)]:
        assert rep.fisher_less(k1, n1, k2, n2) == pytest.approx(by_hand(k1, n1, k2, n2), rel=1e-9)


def test_mcnemar_less_is_the_binomial_test_of_the_discordant_pairs():
    # Paired indicators (the same seeds): only the discordant pairs count. b = 3 seeds where
    # only the first is wrong, c = 9 where only the second is, plus concordant pairs either way;
    # the one-sided p-value of p1 < p2 is P[Binomial(12, 1/2) <= 3] = (1 + 12 + 66 + 220)/4096,
    # summed here from math.comb; the other direction P[B <= 9]; no discordance: 1.
    x1 = np.array([1] * 3 + [0] * 9 + [1] * 5 + [0] * 20, bool)
    x2 = np.array([0] * 3 + [1] * 9 + [1] * 5 + [0] * 20, bool)
    assert rep.mcnemar_less(x1, x2) == pytest.approx(299 / 4096, rel=1e-12)
    below9 = sum(math.comb(12, j) for j in range(10)) / 4096
    assert rep.mcnemar_less(x2, x1) == pytest.approx(below9, rel=1e-12)
    assert rep.mcnemar_less(x1, x1) == 1.0
    # concordant pairs do not change the test (Fisher on the margins would: it treats the two
    # columns as independent samples)
    more = np.concatenate([x1, np.ones(100, bool)]), np.concatenate([x2, np.ones(100, bool)])
    assert rep.mcnemar_less(*more) == rep.mcnemar_less(x1, x2)
    with pytest.raises(ValueError, match="same seeds"):
        rep.mcnemar_less(x1, x2[:-1])


def test_compare_pairs_equal_repetitions_and_not_unequal_ones():
    # The same number of repetitions: the same run keys, McNemar on the pairs (its power from
    # the discordance: p_b = 0.01, p_c = 0.05, n = 1000, α = 0.01: ψ = 0.06, Δ = 0.04,
    # Φ((√1000 · 0.04 − 2.3263 √0.06) / √(0.06 − 0.0016)) = Φ(2.8762) = 0.99799); different
    # numbers (a second pass for one agent only): other keys, Fisher on the counts.
    rng = np.random.default_rng(0)
    bai = np.zeros(1000, bool)
    oth = np.zeros(1000, bool)
    bai[:10] = True  # only DP-BAI wrong: 10
    oth[10:60] = True  # only the other wrong: 50
    c = rep.compare(bai, oth, 0.01)
    assert c["test"] == "McNemar" and c["p_lower"] == rep.mcnemar_less(bai, oth)
    assert c["power"] == pytest.approx(0.99799, abs=1e-5)
    big = rng.random(5000) < 0.05
    f = rep.compare(bai, big, 0.01)
    assert f["test"] == "Fisher" and f["p_lower"] == rep.fisher_less(10, 1000, int(big.sum()), 5000)


def test_power_closed_form():
    # Cohen's h for (0.1, 0.2) = 2 asin √0.2 − 2 asin √0.1 = 0.2838; with n = 500 each and
    # α = 0.05: Φ(0.2838 √250 − 1.6449) = Φ(2.8423) = 0.99776; 80% power needs
    # 2 ((1.6449 + 0.8416)/0.2838)² = 153.5 -> 154 runs. The observed rates in the wrong order
    # give no power beyond the level.
    power, need = rep.power_less(0.1, 0.2, 500, 500, 0.05)
    assert power == pytest.approx(0.99776, abs=1e-4) and need == 154
    assert rep.power_less(0.3, 0.2, 500, 500, 0.05) == (0.05, math.inf)


def test_privacy_noise_ratio_where_the_designs_coincide_and_where_they_do_not():
    # Soare-type: the G-optimal design is uniform on e_1..e_4 (the Max-Det collection) and at
    # T = 10^4 both pull each 1250 times (DP-BAI: ⌊10^4/(2·4)⌋; OD-LinBAI: ⌈(10^4 − 6)/2 · 1/4⌉),
    # so the estimators, and their privacy noise, are the same: ratio 1. On the K = 64 sphere
    # the design spreads over many more arms than the 11 Max-Det arms (ratio > 1.5: the
    # instance where the paper's advantage can show, R4).
    a, mu = rep._instance(rep.INSTANCES["R1"].env)
    r = rep.privacy_noise_ratio(a, mu, 10_000)
    assert r["runner_up"] == pytest.approx(1.0, rel=1e-9) and r["support"] == r["max_det"] == 4
    a, mu = rep._instance(rep.INSTANCES["R4"].env)
    r = rep.privacy_noise_ratio(a, mu, 8000)
    assert r["runner_up"] > rep.RATIO_DIFFER and r["support"] > r["max_det"] == 11


def test_sampling_noise_ratio_where_the_designs_coincide_and_where_they_do_not():
    # Soare-type at T = 1000: both pull e_1..e_4 125 times each (DP-BAI ⌊1000/(2·4)⌋,
    # OD-LinBAI's design uniform on them) and both estimates are the plain means: ratio 1. On
    # R4 least squares on the 47-arm design has the smaller sampling variance: ratio < 1 (the
    # prediction beside the ε = ∞ exponent check; docs/dpbai.md).
    a, mu = rep._instance(rep.INSTANCES["R1"].env)
    r = rep.sampling_noise_ratio(a, mu, 1000)
    assert r["runner_up"] == pytest.approx(1.0, rel=1e-9) and r["low"] == pytest.approx(1.0)
    a, mu = rep._instance(rep.INSTANCES["R4"].env)
    r = rep.sampling_noise_ratio(a, mu, 1000)
    assert r["low"] <= r["runner_up"] <= r["high"] < 1 / 1.5


def test_exponent_ratio_of_exact_exponentials():
    # DP-BAI 0.4 exp(-T/2000), OD-LinBAI 0.3 exp(-T/1000), k = n p exactly: slope ratio 1/2.
    # Its interval: each slope's binomial SE is 1/sqrt(Σ w (T - T̄)²), w = k/(1 - p) (the
    # weights of the fit), combined on the log scale: ratio exp(± 1.96 sqrt(Σ (se/slope)²)).
    import pandas as pd

    T = np.array([500, 750, 1000])
    n = 10**6
    rows, se = [], {}
    for agent, c, tau in (("dp_bai", 0.4, 2000), ("dp_od_linbai", 0.3, 1000)):
        p = c * np.exp(-T / tau)
        k = n * p
        w = k / (1 - p)
        se[agent] = (1 / np.sqrt(np.sum(w * (T - np.sum(w * T) / np.sum(w)) ** 2))) * tau
        rows += [{"agent": agent, "T": t, "errors": kk, "n": n} for t, kk in zip(T, k, strict=True)]
    e = rep.exponent_ratio(pd.DataFrame(rows))
    assert e["ratio"] == pytest.approx(0.5, rel=1e-9)
    half = 1.96 * math.hypot(se["dp_bai"], se["dp_od_linbai"])
    assert e["low"] == pytest.approx(0.5 * math.exp(-half), rel=1e-6)
    assert e["high"] == pytest.approx(0.5 * math.exp(half), rel=1e-6)


@pytest.mark.slow
def test_reduced_reproduction_end_to_end(tmp_path, monkeypatch, capsys):
    # R1 on T ∈ {1000, 3000}, 100 repetitions (the quick grid shrunk): every algorithm and ε
    # runs through the engine, the tables, figure and checks are written, and a second call
    # finds every run finished (resume) and gives the same tables.
    import dataclasses

    from experiments.reproduce import reproduce

    monkeypatch.setitem(rep.GRIDS, "quick", rep.Grid(100, 100))
    r1 = dataclasses.replace(rep.INSTANCES["R1"], quick=(1000, 3000))
    monkeypatch.setitem(rep.INSTANCES, "R1", r1)
    r = reproduce("dpbai_chen2024", tmp_path, quick=True, only=["R1"], progress=False)
    for name in ("R1_errors.md", "R1_slopes.md", "R1_comparisons.md", "R1_error_vs_T.png"):
        assert (tmp_path / name).is_file()
    errors = (tmp_path / "R1_errors.csv").read_text()
    assert "DP-OD-LinBAI" in errors and "OD-LinBAI" in errors and "DP-SH" in errors
    checks = [c for c in r.checks if c.item == "R1"]
    assert len(checks) >= 3 and all(isinstance(c.ok, bool) for c in checks)
    assert any("coincide" in c.quantity for c in checks)  # R1: ratio 1
    capsys.readouterr()
    reproduce("dpbai_chen2024", tmp_path, quick=True, only=["R1"], progress=False)
    out = capsys.readouterr().out
    assert "5 of 5 sweep jobs finished, not recomputed" in out
    assert (tmp_path / "R1_errors.csv").read_text() == errors
