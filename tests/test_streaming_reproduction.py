"""R4, R6, R7 of the streaming reproduction (Wang, ICML 2023, arXiv:2306.02208):
`bandits.streaming.reproduction.rates`, `.lower_bound`, `.memory`.

Default tier: the independent references the items check against (the tower occupancy walk on
hand-computed schedules, log*, the design memory bounds, the exact win probability of the
lower-bound family against a numpy Monte Carlo, the slope fit on an exact power law, the closed
forms on hand arithmetic) and a mini R7 through `experiments.reproduce.reproduce` (the log tower at
K = 64: one compiled program, ~30-40 s of CPU, most of it XLA compile).
Slow tier: R4, R6 and R7 at their quick sizes, every check passing.
"""

from __future__ import annotations

import math
import sys
import types

import numpy as np
import pytest

from bandits.streaming.reproduction import lower_bound, memory, rates
from experiments import reproduce as rp


# --------------------------------------------------------------------------- R7 references
def test_tower_occupancy_hand_computed():
    # Two levels, b = (1, 1), C[0] = 2: level 0 is full after 3 reads (c = 3 > 2). Reads 1-3 hold
    # king + arriving = 2; the king is promoted to level 1 (held: 1); reads 4, 5 refill level 0:
    # read 5 holds level-1 king + level-0 king + arriving = 3.
    assert memory.tower_occupancy([1, 1], [2, 10**9], 3) == 2
    assert memory.tower_occupancy([1, 1], [2, 10**9], 4) == 2
    assert memory.tower_occupancy([1, 1], [2, 10**9], 5) == 3
    # Three levels, C = (0, 0, inf): every read fills level 0; the second promoted arm waits at
    # level 1 (king + waiting = 2 held), the third fills level 1, whose winner goes to level 2;
    # read 5 is the first to see kings at levels 1 and 2 plus the arriving arm.
    assert [memory.tower_occupancy([1, 1, 1], [0, 0, 10**9], K) for K in (1, 2, 4, 5)] == [
        1,
        2,
        2,
        3,
    ]
    # One level (the top level is never full): king + arriving.
    assert memory.tower_occupancy([5], [0], 100) == 2


def test_log_star_and_spec_bounds():
    # ln 5e4 = 10.8, ln 10.8 = 2.38, ln 2.38 = 0.87 <= 1: three applications (the authors' log*
    # tower has 4 = log* K + 1 levels at K = 5e4).
    assert memory.log_star(50_000) == 3
    assert memory.log_star(math.e) == 1 and memory.log_star(1.0) == 0
    assert memory.spec_bound("stream_uniform", 1000) == (2, True)
    assert memory.spec_bound("stream_goa", 1000) == (3, True)
    assert memory.spec_bound("stream_log", 1000) == (2 * 6, False)  # int(ln 1000) = 6
    assert memory.spec_bound("stream_loglog", 1000) == (2 * 2, False)  # int(ln ln 1000) = 1
    assert memory.spec_bound("stream_logstar", 50_000) == (2 * 4, False)
    # The towers' own slot counts lie between the occupancy walk and the design bound.
    for K in (64, 1000, 64_000):
        for agent in memory.TOWERS:
            walk = memory.reference_peak(agent, K, K**3)
            assert walk <= memory.memory_needed(agent, K, K**3) <= memory.spec_bound(agent, K)[0]


def _mini_r7(r: rp.Reproduction) -> None:
    memory.memory_item(r, ks=(64,), seeds=4, agents=("stream_log",))


@pytest.fixture
def mini_paper(monkeypatch):
    mod = types.ModuleType("mini_streaming_paper")
    mod.TITLE = "mini streaming R7"
    mod.ITEMS = {"R7": _mini_r7}
    monkeypatch.setitem(sys.modules, "mini_streaming_paper", mod)
    monkeypatch.setitem(rp.PAPERS, "mini_streaming", "mini_streaming_paper")
    return mod


def test_mini_r7_through_reproduce(mini_paper, tmp_path):
    r = rp.reproduce("mini_streaming", tmp_path, quick=True, only=["R7"], progress=False)
    # The log tower at K = 64, T = 64^3 (one compiled program, to stay fast): every seed's peak
    # equals the occupancy walk's, 3 (kings at levels 0 and 1 + the arriving arm), which is
    # <= its memory_needed (int(ln 64) + 1 = 5) <= the design bound 2 int(ln 64) = 8.
    assert [c.ok for c in r.checks] == [True], r.checks
    assert memory.reference_peak("stream_log", 64, 64**3) == 3
    assert "= 3 (occupancy walk" in r.checks[0].target and r.checks[0].ours == "3"
    report = (tmp_path / "report.md").read_text()
    assert "Checks (1/1 ok)" in report and "R7: peak memory" in report
    assert (tmp_path / "R7_peak_memory.csv").is_file()


# --------------------------------------------------------------------------- R6 references
def test_special_wins_matches_monte_carlo():
    # Numpy Monte Carlo of the king/challenger with strict '>' (the first maximum wins): the
    # binomial-sum formula must lie within 4 standard errors (a 6e-5 two-sided false alarm).
    rng = np.random.default_rng(7)
    for K, b, eps, n in ((20, 30, 0.1, 50_000), (200, 400, 0.02, 20_000)):
        x = rng.binomial(b, 0.5, size=(n, K - 1))
        pos = rng.integers(0, K - 1, n)
        x[np.arange(n), pos] = rng.binomial(b, 0.5 + eps, size=n)
        mc = np.mean(np.argmax(x, axis=1) == pos)
        want = lower_bound.special_wins(K, b, eps)
        assert abs(mc - want) <= 4 * math.sqrt(mc * (1 - mc) / n), (K, b, mc, want)


def test_uniform_expectation_bracket():
    # lambda/4 <= E[y] <= lambda/4 + 1/4 + lambda (eps + 1/K) (lower_bound docstring), lambda =
    # K b / (K^1/3 T^2/3): uniform is within a constant of K^1/3 T^2/3 on the family.
    for K, T in ((1000, 10**7), (1000, 10**11), (4000, 4000**3)):
        lam = K * lower_bound.uniform_batch(K, T) / (K ** (1 / 3) * T ** (2 / 3))
        eps = (K / T) ** (1 / 3)
        y = lower_bound.uniform_expectation(K, T)
        assert lam / 4 * (1 - 1 / K) * (1 - 2 * eps) <= y <= lam / 4 + 0.25 + lam * (eps + 1 / K)


def test_paired_slope_uses_the_pairing():
    # Every seed follows the same power law with its own factor c_i: the slope of the means is
    # 0.3 exactly and so is every paired resample's (se ~ 0), although the per-point spread is
    # large; unpaired noise (independent columns per point) gives a clearly positive se.
    rng = np.random.default_rng(3)
    x = np.array([1e7, 1e8, 1e9])
    c = rng.uniform(0.1, 2.0, size=40)
    s, se = lower_bound.paired_slope(x, np.outer(x**0.3, c))
    assert s == pytest.approx(0.3, abs=1e-12) and se < 1e-12
    noisy = np.outer(x**0.3, np.ones(40)) * rng.uniform(0.1, 2.0, size=(3, 40))
    assert lower_bound.paired_slope(x, noisy)[1] > 0.01


# --------------------------------------------------------------------------- R4 references
def test_slope_fit_recovers_a_power_law_and_propagates_se():
    x = np.array([1e3, 1e4, 1e5, 1e6])
    y = 3.0 * x**0.25
    s, se = rates.slope_fit(x, y, np.zeros(4))
    assert s == pytest.approx(0.25, abs=1e-12) and se < 1e-12
    # Two points: no residual se; the propagated one is sqrt(2) * (relative se) / ln(x2 / x1).
    s, se = rates.slope_fit([10.0, 1000.0], [1.0, 1.0], [0.01, 0.01])
    assert s == pytest.approx(0.0, abs=1e-12)
    assert se == pytest.approx(math.sqrt(2) * 0.01 / math.log(100.0))


def test_closed_forms_by_hand():
    # K = 1000, T = 1e9: uniform b = ceil((1e6)^(2/3) (ln 1e9)^(1/3)) = ceil(1e4 * 2.7464...)
    K, T = 1000, 10**9
    assert rates.batch("stream_uniform", K, T) == math.ceil(1e4 * math.log(1e9) ** (1 / 3))
    assert rates.batch("stream_naive", K, T) == math.ceil(math.log(1000) * 1e4)
    # g = 0.82 - E[TruncNormal(0.5, 0.1, [0, 0.8])]; the truncation at 5 sd below is negligible,
    # at 3 sd above it shifts the mean by -0.1 phi(3) / Phi(3) = -4.44e-4.
    assert abs(rates.GAP - (0.32 + 0.1 * 0.004432 / 0.99865)) < 1e-6
    want = rates.GAP * (K - 1) * rates.batch("stream_uniform", K, T) / (10 * 1e6)
    assert rates.closed_form("stream_uniform", K, T) == pytest.approx(want, rel=1e-12)
    # naive never finishes the stream when K b > T: no closed form there.
    assert math.isnan(rates.closed_form("stream_naive", 1000, 31_623))
    # (1000, 1e9) is in both sweeps and is run once.
    pts = rates.points(quick=True)
    assert len(pts) == len({(k, rates.horizon(k, a, b)) for k, a, b in pts}) == 5


def test_reference_means_are_one_clear_cut_instance():
    m = np.array(rates.reference_means(1000))
    # one planted best arm at 0.82, the others TruncNormal(0.5, 0.1) on [0, 0.8]
    assert m.shape == (1000,) and np.sum(m == 0.82) == 1 and m[m != 0.82].max() <= 0.8
    assert abs(m[m != 0.82].mean() - rates.TN_MEAN) < 4 * 0.1 / math.sqrt(999)


def test_lower_bound_constant_false_alarm_rate():
    # A seed whose last arm is 1 (probability 1/2) costs every algorithm >= g = (1 - 1/K)
    # (1 - 2 eps)/2 of K^{1/3} T^{2/3} (every body arm pulled >= 1/eps^2 times at a gap >= 1/2 -
    # eps). The c >= C_MIN check fails on a correct algorithm only if fewer than C_MIN n / g of
    # the n seeds have that tail: at most 0.03% per point at every size (C_MIN = 0.1 gave
    # P(Bin(20, 1/2) <= 4) = 0.59% per quick point, not the 0.13% the docstring stated).
    for quick in (True, False):
        n = lower_bound.SEEDS[quick]
        for K, T in lower_bound.POINTS[quick]:
            eps = (K / T) ** (1 / 3)
            g = (1 - 1 / K) * (1 - 2 * eps) / 2
            most = math.ceil(lower_bound.C_MIN * n / g) - 1  # good seeds with a mean < C_MIN
            rate = sum(math.comb(n, j) for j in range(most + 1)) / 2**n
            assert rate <= 3e-4, (quick, K, T, most, rate)


# --------------------------------------------------------------------------- slow: the items
def _run_item(tmp_path, item: str) -> rp.Reproduction:
    r = rp.reproduce("streaming_wang2023", tmp_path, quick=True, only=[item], progress=False)
    failed = [c for c in r.checks if not c.ok]
    assert not failed, failed
    return r


@pytest.mark.slow
def test_r4_quick_all_checks_pass(tmp_path):
    r = _run_item(tmp_path, "R4")
    q = {c.quantity for c in r.checks}
    assert "uniform growth in T (log-log slope, clear-cut regime points)" in q
    assert "naive growth in K (log-log slope, clear-cut regime points)" in q
    assert {"log* flat in T: |log-log slope|", "GoA flat in K: |log-log slope|"} <= q
    assert any(s.endswith("naive / uniform") for s in q)
    for f in ("R4_rates.png", "R4_rates.md", "R4_slopes.md"):
        assert (tmp_path / f).is_file(), f


@pytest.mark.slow
def test_r6_quick_all_checks_pass(tmp_path):
    r = _run_item(tmp_path, "R6")
    q = [c.quantity for c in r.checks]
    assert sum("slope of regret" in s for s in q) == len(lower_bound.AGENTS)
    assert sum("uniform regret" in s for s in q) == len(lower_bound.POINTS[True])
    assert (tmp_path / "R6_lower_bound.png").is_file()


@pytest.mark.slow
def test_r7_quick_all_checks_pass(tmp_path):
    r = _run_item(tmp_path, "R7")
    assert len(r.checks) == len(memory.KS[True]) * len(memory.CLASSES)
