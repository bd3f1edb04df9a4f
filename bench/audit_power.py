"""Power of the black-box auditor's default events (privacy/audit.py) on the vector-output
controls of tests/test_privacy_audit_controls.py (binary-tree counters over T = 8 with a leak that
shows only in combinations of releases; the Gaussian tree counter with σ halved; the correct
versions). docs/privacy.md (Auditor) shows the table this prints.

    uv run python bench/audit_power.py            # the table in docs/privacy.md (minutes)
    uv run python bench/audit_power.py --quick    # 3 seeds, smaller grid

For each broken control: the smallest n in the doubling grid 125, 250, … at which the default
audit (n_select = n_test = n outputs per input, the controls' 3 neighbouring pairs, α = 0.05)
flags it in >= 9 of 10 seeds (seeds 0..9), with the median ε_lb there and the family of the
flagging event; and, for comparison, how many of the 10 seeds the coordinate events alone
(`threshold_events`, the default before vector events) flag at the largest n of the grid. For the
correct controls: how many seeds are flagged (expected: about α · 10 or fewer) and the largest
ε_lb over the seeds, at n = 1000 and at the largest n.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]

from privacy.audit import audit, threshold_events  # noqa: E402
from tests.test_privacy_audit_controls import CONTROLS, EPS, PAIRS  # noqa: E402


def run(mech, delta, n, seeds, family=None):
    return [audit(mech, PAIRS, EPS, n, n, delta=delta, family=family, seed=s) for s in seeds]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="3 seeds, grid up to 4000")
    args = ap.parse_args()
    seeds = range(3 if args.quick else 10)
    need = len(seeds) - 1 if len(seeds) >= 10 else len(seeds)
    grid = [125 * 2**j for j in range(6 if args.quick else 8)]  # 125 … 16000
    cpu0, rows = time.process_time(), []
    for name, (mech, delta, correct) in CONTROLS.items():
        if correct:
            for n in (1000, grid[-1]):
                res = run(mech, delta, n, seeds)
                flags = sum(r.flagged for r in res)
                top = max(r.epsilon_lb for r in res)
                rows.append(
                    f"| {name} | n = {n}: {flags} of {len(seeds)} flagged | max ε_lb {top:.2f} "
                    f"(≤ {EPS:g}: pass) | — |"
                )
            continue
        found, path = None, []
        for n in grid:
            res = run(mech, delta, n, seeds)
            path.append(f"{n}: {sum(r.flagged for r in res)}")
            if sum(r.flagged for r in res) >= need:
                found = (n, res)
                break
        coords = run(mech, delta, grid[-1], seeds, family=threshold_events)
        c_flags = sum(r.flagged for r in coords)
        if found is None:
            rows.append(
                f"| {name} | not within n ≤ {grid[-1]} ({', '.join(path)}) | — "
                f"| {c_flags}/{len(seeds)} |"
            )
            continue
        n, res = found
        fams = Counter(max(r.candidates, key=lambda c: c[4])[0] for r in res if r.flagged)
        med = float(np.median([r.epsilon_lb for r in res]))
        rows.append(
            f"| {name} | **{n}** (flags by n: {', '.join(path)}) "
            f"| median ε_lb {med:.2f}; event family: "
            + ", ".join(f"{k} {v}" for k, v in fams.most_common())
            + f" | {c_flags} of {len(seeds)} flagged at n = {grid[-1]} |"
        )
    print(
        f"claimed ε = {EPS:g} (δ = 1e-3 for the Gaussian controls), T = 8, pairs: entry 0, 5 "
        f"or 6 flipped; n = outputs per input in each phase; seeds {seeds.start}..{seeds.stop - 1}"
    )
    print()
    print(
        "| control | smallest n flagging ≥ 9/10 seeds (correct: flags) | ε_lb | coordinates only |"
    )
    print("|---|---|---|---|")
    print("\n".join(rows))
    print(f"\nCPU time: {time.process_time() - cpu0:.0f} s")


if __name__ == "__main__":
    main()
