"""R1/R2 of the streaming reproduction (Wang, ICML 2023) at the quick size K = 1000, T = 1e9,
50 seeds, both modes: every check of `bandits.streaming.reproduction.headline` passes.

The checks compare with our re-runs of the authors' released code (10 seeds) with a
99% z-test plus a 1% floor, and with two closed forms (uniform's regret scale, naive/uniform =
ln K / (ln T)^{1/3}); the tolerances are justified in headline.py's docstring. Slow tier: 24
compiled programs (six agents x two instances x two modes).
"""

from __future__ import annotations

import pytest

from bandits.streaming.reproduction.headline import CHECKED
from experiments.reproduce import reproduce


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
