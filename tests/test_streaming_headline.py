"""R1/R2 of the streaming reproduction (Wang, ICML 2023) at the quick size K = 1000, T = 1e9,
50 seeds, both modes: every check of `bandits.streaming.reproduction.headline` passes (slow tier);
default tier: the checks made on stubbed per-seed regrets (no simulation).

The checks compare with our re-runs of the authors' released code (10 seeds) with a
99% z-test plus a 1% floor, and with two closed forms (uniform's regret scale, naive/uniform =
ln K / (ln T)^{1/3}); the tolerances are justified in headline.py's docstring. Slow tier: 24
compiled programs (six agents x two instances x two modes).
"""

from __future__ import annotations

import numpy as np
import pytest

from bandits.streaming.reproduction import headline
from bandits.streaming.reproduction.headline import CHECKED
from experiments.reproduce import Reproduction, reproduce


class _StubRun:
    """Per-seed final metrics of one cell, in place of a simulation."""

    def __init__(self, ratios: dict[str, list[float]]):
        n = len(next(iter(ratios.values())))
        self.uni = 8.79e6 * (1 + 0.01 * np.sin(np.arange(n)))
        self.ratios = ratios
        self.summary = {"seeds": n}

    def final(self, agent: str, metric: str) -> np.ndarray:
        if metric == "peak_memory":
            return np.full(self.uni.size, 3.0)
        name = headline.SHORT[agent]
        return self.uni * (1.0 if name == "uniform" else np.asarray(self.ratios[name]))


class _Stubbed(Reproduction):
    def __init__(self, out_dir, ratios):
        super().__init__("streaming_wang2023", out_dir, quick=True, progress=False)
        self.ratios = ratios

    def run(self, name, overrides):
        return _StubRun(self.ratios)


@pytest.mark.parametrize(
    "log_ratios, ok, bad",
    [
        ([0.42, 6.79, 0.40, 0.42, 0.41, 0.41], True, 1),
        ([0.42, 6.79, 5.1, 7.0, 0.41, 3.3], False, 4),
    ],
)
def test_quick_faithful_log_compares_the_median_seed(tmp_path, log_ratios, ok, bad):
    # Quick clear-cut faithful: the published log routine fails on some seeds (quirk b). The
    # re-run's 10-seed mean 2.15 is no target: with one catastrophic seed in 6 (per-seed ratios
    # as measured, mean 1.48) its tolerance, which grows with our own tail, accepted any mean in
    # ~[0.01, 4.3]. The median seed is checked instead, with the failed seeds counted.
    n = len(log_ratios)
    ratios = {"naive": [2.515] * n, "log": log_ratios, "loglog": [0.39] * n, "log*": [0.65] * n}
    r = _Stubbed(tmp_path, {**ratios, "GoA": [0.91] * n})
    headline.headline(r, "R1", "clear_cut")
    checks = {c.quantity: c for c in r.checks}
    assert "clear-cut faithful log / uniform" not in checks  # no mean-ratio check
    median = checks["clear-cut faithful log / uniform, median seed"]
    assert median.ok == ok and median.note.startswith(f"{bad}/{n} seeds catastrophic")
    assert "clear-cut corrected log / uniform, median seed" not in checks


@pytest.mark.slow
def test_r1_r2_quick_all_checks_pass(tmp_path):
    r = reproduce("streaming_wang2023", tmp_path, quick=True, only=["R1", "R2"], progress=False)
    failed = [c for c in r.checks if not c.ok]
    assert not failed, failed
    quantities = {c.quantity for c in r.checks}
    # The headline comparisons are among the checks (not silently skipped).
    for q in (
        "clear-cut faithful loglog / uniform",
        "clear-cut corrected log* / uniform",
        "mix-in faithful log / uniform",
        "clear-cut faithful log / uniform, median seed",
        "clear-cut corrected naive / uniform = ln K / (ln T)^1/3",
    ):
        assert q in quantities, q
    # Every ratio that headline.CHECKED names is checked in every cell, plus the closed forms.
    for (instance, mode), names in CHECKED.items():
        label = f"{instance.replace('_', '-')} {mode}"
        for name in names:
            assert f"{label} {name} / uniform" in quantities, (label, name)
    for mode in ("faithful", "corrected"):
        assert f"clear-cut {mode} uniform regret / (K^1/3 T^2/3)" in quantities, mode
    for f in ("R1_clear_cut_ratios.png", "R2_mix_in_ratios.png", "R1_clear_cut_faithful.md"):
        assert (tmp_path / f).is_file(), f
