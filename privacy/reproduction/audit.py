"""R7, R8 of our reproduction (docs/privacy.md): the black-box auditor (`privacy.audit`) on
known-leaky and known-correct mechanisms (`privacy.audit_mechanisms`).

The auditor reports ε_lb, a (1 - α) lower confidence bound on the ε of the mechanism (α = 0.05,
Clopper-Pearson on a fresh test sample after the event was selected on another sample), and
flags the mechanism when ε_lb > the claimed ε: a one-sided test of "the mechanism is ε-DP" at
level α, StatDP's p < 0.05 in other words. Every audit uses a fixed seed (the tests' seeds).

R7 (Mironov, CCS 2012; DP-Sniper's `exp_floating_point`, Bichsel et al., S&P 2021): claimed ε = 0.1,
inputs 0 and 1 (sensitivity 1).

* naive float Laplace (x + Lap(10) by NumPy's inverse-CDF formula, `np.log` of a 2^-53-grid
  uniform: `audit.naive_float_laplace`, a copy of `Generator.laplace`'s formula): the support
  witness — outputs of M(1) that M(0) cannot produce, decided exactly by `audit.reachable` — has
  P0 = 0 < P1, so no (ε, δ) with δ < P1 holds; the auditor with that event family must flag it,
  with ε_lb above DP-Sniper's learned-attack bound 0.2521 (the witness is stronger; our ε_lb is
  limited only by the sample size). The generic threshold family does not see the leak (its
  distribution-level ε is 0.1): shown, not checked.
* the framework's safe sampler (`noise.laplace_mechanism`: value on the 2^-40 grid + exact CKS20
  discrete Laplace) must not be flagged by either family, and every output of M(1) lies on the
  grid, which is the support of M(0) (discrete Laplace noise has full support): no support
  witness exists. DP-Sniper reports ε̂ = 0.1001 for snapping; our ε̂ is shown.
* the integer discrete Laplace (`audit_mechanisms.exact_laplace`): not flagged.

R8 (StatDP, Ding et al. CCS 2018, cmla-psu/statdp `algorithms.py`): claimed
ε = 0.7 (StatDP's benchmark), StatDP's input pairs; the correct mechanisms (noisy max with
Laplace / exponential noise returning the index, histogram, SVT) must pass, the broken ones
(max value instead of index, histogram with scale ε, iSVT1-4) must be flagged. n = 2·10^4
selection + 10^5 test samples in both modes (seconds; iSVT2-4 and noisy_max_v2b need that many).
Plus the mechanism of Jain et al. (`maxsum.SparseVectorMaxSum`, pure ε = 1):

* MaxSum, capped harness: T = 4, τ = 2T = 8, so the cap k = min(T, ⌈2T/τ⌉ + 1) = 2 < T binds
  and each of its 2k pieces (release, AboveThreshold) runs at ε/4; three neighbouring pairs
  (a record differing at t = 2, at t = 1, and a shift of every max_j S_t[j] by 1); events
  `release_change_events` (threshold events on the releases, on "the release changed at step
  t", on the number of changes and on min_t o[t], and their conjunctions). The mechanism must
  pass; its controls "no release noise" (`SVTWithoutReleaseNoise`), "no AboveThreshold noise"
  (query and threshold noise 0: for some first releases one stream re-releases at t = 2 and its
  neighbour cannot) and "all noise / 3" (really 3ε-DP) must be flagged. "uncapped" (cap T, not
  k) is shown: a record moves at most T releases at ε/(2k) each and one AboveThreshold epoch, so
  at T = 4 it is hardly less private than the mechanism; the cap's effect is checked directly
  (capped runs never change more than k - 1 times, uncapped ones do). Before this harness R8 ran
  τ = 1, where k = T (the cap never bound) and only the no-release-noise control existed: no
  AboveThreshold noise (ε_lb 0.38) and noise / 3 (0.34) passed there.
* SumSelect on neighbouring 4-step streams and MaxSum in the adaptive game (a deterministic
  adversary picks the records from the last release; the challenge record at step 2 is (1, 1)
  vs (0, 0), T = 5), τ = 1, with the no-release-noise control.
"""

from __future__ import annotations

from types import SimpleNamespace

import jax.numpy as jnp
import numpy as np
import pandas as pd

from experiments.reproduce import Reproduction
from privacy import audit_mechanisms as am
from privacy import noise
from privacy.audit import (
    EventFamily,
    audit,
    impossible_outputs,
    support_events,
    threshold_events,
)
from privacy.maxsum import MaxSumSpec, SparseVectorMaxSum
from privacy.reproduction.common import cached_json

# DP-Sniper (Bichsel et al., S&P 2021), eth-sri/dp-sniper
# eval_sp2021/reference-results/floating_point_data.log: eps = 0.2542, eps_lcb = 0.2521
DPSNIPER_FLOAT_LCB = 0.2521
R7_EPS = 0.1
R8_EPS = 0.7
GRID_K = noise.DEFAULT_GRID_K


def r7_sizes(quick: bool) -> dict:
    if quick:
        return dict(n_select=2_000, n_test=5_000, n_witness=20_000)
    return dict(n_select=5_000, n_test=20_000, n_witness=100_000)


def safe_laplace(epsilon: float):
    """`noise.laplace_mechanism` (2^-40 grid + exact discrete Laplace) as an audited mechanism."""

    def m(x, n, rng):
        # n independent scalar releases of x (each its own mechanism: one coordinate changes)
        return noise.laplace_mechanism(np.full(n, float(x)), 1.0, epsilon, rng, GRID_K, changed=1)

    return m


def _row(name: str, family: str, res, correct: bool) -> dict:
    return {
        "mechanism": name,
        "events": family,
        "claimed ε": res.claimed,
        "ε_lb (95%)": res.epsilon_lb,
        "ε̂": res.epsilon_hat,
        "flagged": bool(res.flagged),
        "expected": "pass" if correct else "flag",
        "event": res.event,
        "p0": res.p0,
        "p1": res.p1,
        "n test": res.n,
    }


def _audit(r, item, key, mech, pairs, eps, sizes, family=threshold_events, seed=0):
    """`audit` (cached in runs/ITEM/KEY.json)."""

    def run():
        res = audit(mech, pairs, eps, sizes["n_select"], sizes["n_test"], family=family, seed=seed)
        return res._asdict()

    return SimpleNamespace(**cached_json(r, item, key, run))


def r7(r: Reproduction) -> None:
    """R7: the floating-point attack regression."""
    sizes = r7_sizes(r.quick)
    scale = 1 / R7_EPS
    pairs = [(0, 1)]
    mechs = {
        "naive float Laplace": (am.float_laplace(R7_EPS), False),
        "safe Laplace (2^-40 grid + discrete Laplace)": (safe_laplace(R7_EPS), True),
        "integer discrete Laplace": (am.exact_laplace(R7_EPS), True),
    }
    rows, res = [], {}
    for name, (mech, correct) in mechs.items():
        families = (
            ("threshold", threshold_events),
            ("support (Mironov)", lambda pool: support_events(0, 1, scale)),
        )
        for fam_name, fam in families:
            key = f"{name.split(' (')[0].replace(' ', '_')}_{fam_name.split()[0]}"
            out = _audit(r, "R7", key, mech, pairs, R7_EPS, sizes, fam)
            res[(name, fam_name)] = out
            rows.append(_row(name, fam_name, out, correct))
    float_support = res[("naive float Laplace", "support (Mironov)")]
    r.check(
        "R7",
        "naive float Laplace (ε = 0.1, inputs 0/1) flagged by the support witness",
        f"ε_lb = {float_support.epsilon_lb:.2f} (p0 = {float_support.p0:.3f}, "
        f"p1 = {float_support.p1:.3f})",
        f"> 0.1 and ≥ DP-Sniper's LCB {DPSNIPER_FLOAT_LCB} (ε̂ 0.2542)",
        "DP-Sniper, S&P 2021: reference-results/floating_point_data.log",
        float_support.flagged and float_support.epsilon_lb >= DPSNIPER_FLOAT_LCB,
        "p1 = 0 exactly: ε_lb grows with the sample size",
    )
    rng = np.random.default_rng(0)
    w = cached_json(
        r,
        "R7",
        "impossible_outputs",
        lambda: impossible_outputs(0.0, 1.0, scale, sizes["n_witness"], rng)._asdict(),
    )
    r.check(
        "R7",
        "naive float Laplace: outputs of M(1) unreachable from M(0)",
        f"{100 * w['fraction']:.1f}% (95% lower bound {100 * w['fraction_lower']:.1f}%, "
        f"n = {w['n']})",
        "> 0 (no finite ε; no δ below the fraction)",
        "Mironov, CCS 2012",
        bool(w["flagged"]) and w["fraction_lower"] > 0,
    )
    for name, (_, correct) in mechs.items():
        if not correct:
            continue
        for fam_name in ("threshold", "support (Mironov)"):
            out = res[(name, fam_name)]
            r.check(
                "R7",
                f"{name}: not flagged ({fam_name} events)",
                f"ε_lb = {out.epsilon_lb:.3f}, ε̂ = {out.epsilon_hat:.3f}",
                "ε_lb ≤ 0.1 (DP-Sniper on snapping: ε̂ 0.1001, LCB 0.0979)",
                "DP-Sniper, S&P 2021: reference-results/floating_fixed_data.log",
                not out.flagged,
            )
    y = safe_laplace(R7_EPS)(1, sizes["n_test"], np.random.default_rng(1))
    on_grid = bool(np.all(np.ldexp(y, GRID_K) == np.round(np.ldexp(y, GRID_K))))
    r.check(
        "R7",
        "safe Laplace: every output of M(1) lies on the 2^-40 grid (= the support of M(0))",
        f"{'all' if on_grid else 'NOT all'} {y.size} outputs",
        "all (no support witness can exist)",
        "GRS12; CKS20 §5.2",
        on_grid,
    )
    r.table(
        "R7",
        "float_attack",
        pd.DataFrame(rows),
        f"**R7: floating-point attack regression**, claimed ε = {R7_EPS}, inputs 0 vs 1, "
        f"{sizes['n_select']} selection + {sizes['n_test']} test samples per input, α = 0.05. "
        "Threshold events: pooled-quantile half-lines; support events: outputs unreachable from "
        "one input by the naive float Laplace (exact check).",
    )


R8_SIZES = dict(n_select=20_000, n_test=100_000)


def r8_sizes(quick: bool) -> dict:
    """Jain et al.'s SVT audits (jitted rollouts: ~15 s each); StatDP's battery uses R8_SIZES."""
    return dict(n_select=2_000, n_test=5_000) if quick else dict(n_select=5_000, n_test=20_000)


STREAM0 = np.array([[1, 0], [1, 1], [0, 1], [1, 0]], float)
STREAM1 = np.array([[1, 0], [0, 0], [0, 1], [1, 0]], float)  # one record differs
SELECT0 = np.array([[0, 1], [1, 0], [1, 0], [0, 1]], float)
SELECT1 = np.array([[1, 0], [1, 0], [1, 0], [0, 1]], float)  # flips the arg-max at t = 1

# The capped harness (MaxSum): T = 4, τ = 2T = 8, so k = min(T, ⌈2T/τ⌉ + 1) = 2 < T (the cap
# binds) and each of the 2k pieces runs at ε/4 = 0.25 (release scale 4, AboveThreshold query and
# threshold scales 16 and 8: restarts are noise-driven, about half the runs have one).
SVT_EPS = 1.0
SVT_T = 4
SVT_TAU = 2.0 * SVT_T
CONST0 = np.array([[1, 0], [0, 0], [0, 0], [0, 0]], float)  # max_j S_t[j] = 1 for all t
CONST1 = np.zeros((SVT_T, 2))  # ... = 0: every release shifts by exactly 1
SVT_PAIRS = [
    (STREAM0, STREAM1),  # differs at t = 2: the AboveThreshold decision leaks
    (STREAM0, np.array([[0, 0], [1, 1], [0, 1], [1, 0]], float)),  # differs at t = 1
    (CONST0, CONST1),
]


def svt_sizes(quick: bool) -> dict:
    """The capped harness's audits (a compile of ~2 s each, then ~0.1 s per 25 000 runs)."""
    return dict(n_select=5_000, n_test=20_000) if quick else dict(n_select=20_000, n_test=100_000)


def release_statistics(o: np.ndarray) -> np.ndarray:
    """Columns audited for a continual release sequence o (n, T): o itself, whether the release
    changed at step t (o[t] != o[t - 1], t = 2..T: the AboveThreshold decisions, which equality
    of consecutive releases shows), the number of changes and min_t o[t] (with the number of
    changes fixed, {min >= c} is the event that every fresh release is high: the releases' leaks
    multiply). Post-processing of the releases, so an event on these columns is an event on o."""
    o = np.asarray(o, float).reshape(len(o), -1)
    changed = (o[:, 1:] != o[:, :-1]).astype(float)
    return np.concatenate([o, changed, changed.sum(1, keepdims=True), o.min(1, keepdims=True)], 1)


def release_change_events(pool: np.ndarray) -> EventFamily:
    """`threshold_events` on `release_statistics`: half-lines on each release, equalities on the
    change indicators and the change count, and their conjunctions (changed at t, or c changes)
    ∧ (a release, or the minimum, >= / <= a pooled quantile)."""
    fam = threshold_events(release_statistics(pool))
    return EventFamily(fam.names, lambda o: fam.indicator(release_statistics(o)))


class SVTWithoutThresholdNoise(SparseVectorMaxSum):
    """Control: `SparseVectorMaxSum` with AboveThreshold's query and threshold noise 0 (releases
    noisy). Not DP at any ε: for some first releases one stream re-releases and its neighbour
    cannot."""

    def init(self, key, spec):
        state = super().init(key, spec)
        return state._replace(scales=state.scales.at[1:3].set(0.0))


class SVTThirdNoise(SparseVectorMaxSum):
    """Control: every noise scale of `SparseVectorMaxSum` divided by 3 (its guarantee is 3ε),
    still claiming ε."""

    def init(self, key, spec):
        state = super().init(key, spec)
        return state._replace(scales=state.scales.at[1:].multiply(1 / 3))


class SVTUncapped(SparseVectorMaxSum):
    """Control: `SparseVectorMaxSum` without its epoch cap (cap = T instead of k), the budget
    still split over k epochs: (number of epochs) ε/k-DP, up to T ε / k."""

    def init(self, key, spec):
        state = super().init(key, spec)
        return state._replace(cap=jnp.asarray(spec.horizon, jnp.int32))


# label -> (class, correct, checked). The uncapped control is shown, not checked: without the cap
# a record moves at most T releases at ε/(2k) each plus one AboveThreshold epoch, so at T = 4 its
# loss is hardly above ε, and above it only in runs that restart at nearly every step (at T = 8
# the auditor's ε_lb stayed below 0.3 too); the cap's effect is checked directly instead.
SVT_CONTROLS = {
    "correct": (SparseVectorMaxSum, True, True),
    "no release noise": (am.SVTWithoutReleaseNoise, False, True),
    "no AboveThreshold noise": (SVTWithoutThresholdNoise, False, True),
    "all noise / 3": (SVTThirdNoise, False, True),
    "uncapped": (SVTUncapped, False, False),
}


def max_changes(agent, stream: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """The number of release changes of each of n runs of `agent` on `stream` (MaxSum)."""
    o = am.maxsum_releases(agent, "maxsum")(stream, n, np.random.default_rng(seed))
    return (o[:, 1:] != o[:, :-1]).sum(1)


def _svt_capped(r: Reproduction, rows: list[dict]) -> None:
    """R8, the capped harness: the mechanism and its four controls on `SVT_PAIRS`."""
    sizes = svt_sizes(r.quick)
    agent = SparseVectorMaxSum("maxsum", epsilon=SVT_EPS, threshold=SVT_TAU)
    k = agent.calibration(MaxSumSpec(SVT_T, 2, "maxsum")).epochs
    n = sizes["n_test"]
    caps = cached_json(
        r,
        "R8",
        f"svtcap_changes_T{SVT_T}",
        lambda: {
            "capped": int(max_changes(agent, STREAM0, n).max()),
            "uncapped": float(np.mean(max_changes(SVTUncapped(**_fields(agent)), STREAM0, n) >= k)),
        },
    )
    r.check(
        "R8",
        f"capped harness: the cap binds (T = {SVT_T}, τ = {SVT_TAU:g}, k = {k})",
        f"max changes {caps['capped']} (capped); {100 * caps['uncapped']:.1f}% of uncapped runs "
        f"make ≥ {k}",
        f"k < T, capped ≤ k - 1 = {k - 1} changes, uncapped > k - 1 in some runs",
        "Jain et al., ICML 2023 (epoch cap; reconstructed)",
        k < SVT_T and caps["capped"] <= k - 1 and caps["uncapped"] > 0,
    )
    for label, (cls, correct, checked) in SVT_CONTROLS.items():
        mech = am.maxsum_releases(cls(**_fields(agent)), "maxsum")
        key = f"svtcap_{label.replace(' ', '_').replace('/', '')}"
        out = _audit(r, "R8", key, mech, SVT_PAIRS, SVT_EPS, sizes, release_change_events, 4)
        name = f"Jain et al.'s SVT maxsum, capped harness: {label}"
        rows.append(_row(name, "release changes", out, correct))
        if checked:
            r.check(
                "R8",
                name,
                f"ε_lb = {out.epsilon_lb:.3f}{' (flagged)' if out.flagged else ''}",
                f"{'≤' if correct else '>'} {SVT_EPS:g}",
                "Jain et al., ICML 2023 (reconstructed); SVT: Dwork & Roth 2014, Alg. 1",
                out.flagged != correct,
            )


def _fields(agent: SparseVectorMaxSum) -> dict:
    return dict(problem=agent.problem, epsilon=agent.epsilon, threshold=agent.threshold)


def r8(r: Reproduction) -> None:
    """R8: StatDP's battery and the sparse-vector mechanism of Jain et al. (ICML 2023)."""
    rows = []
    for name, (factory, correct, pairs) in am.STATDP_BATTERY.items():
        out = _audit(r, "R8", name, factory(R8_EPS), pairs, R8_EPS, R8_SIZES, seed=1)
        rows.append(_row(name, "threshold", out, correct))
        r.check(
            "R8",
            f"StatDP {name} ({'correct' if correct else 'broken'})",
            f"ε_lb = {out.epsilon_lb:.3f}{' (flagged)' if out.flagged else ''}",
            f"{'≤' if correct else '>'} {R8_EPS}",
            "StatDP (Ding et al., CCS 2018): algorithms.py",
            out.flagged != correct,
        )
    sizes = r8_sizes(r.quick)
    _svt_capped(r, rows)
    cases = [
        ("sumselect", "fixed", [(SELECT0, SELECT1)], 2),
        ("maxsum", "adaptive", [(np.array([1.0, 1.0]), np.array([0.0, 0.0]))], 3),
    ]
    for problem, kind, pairs, seed in cases:
        for cls, correct in ((SparseVectorMaxSum, True), (am.SVTWithoutReleaseNoise, False)):
            agent = cls(problem, epsilon=1.0, threshold=1.0)
            if kind == "adaptive":
                mech = am.maxsum_adaptive_mechanism(agent, 5, 1, problem)
            else:
                mech = am.maxsum_releases(agent, problem)
            label = f"Jain et al.'s SVT {problem}, {kind} stream" + (
                "" if correct else ", no release noise"
            )
            key = f"paperB_{problem}_{kind}_{cls.__name__}"
            out = _audit(r, "R8", key, mech, pairs, 1.0, sizes, seed=seed)
            rows.append(_row(label, "threshold", out, correct))
            r.check(
                "R8",
                label,
                f"ε_lb = {out.epsilon_lb:.3f}{' (flagged)' if out.flagged else ''}",
                f"{'≤' if correct else '>'} 1.0",
                "Jain et al., ICML 2023 (T^(1/3) mechanism, reconstructed); SVT: Dwork & Roth 2014",
                out.flagged != correct,
            )
    r.table(
        "R8",
        "battery",
        pd.DataFrame(rows),
        f"**R8: the auditor on StatDP's battery** (claimed ε = {R8_EPS}; "
        f"{R8_SIZES['n_select']} + {R8_SIZES['n_test']} samples) **and Jain et al.'s SVT** "
        f"(pure ε = 1; capped harness T = {SVT_T}, τ = {SVT_TAU:g}, k = 2: "
        f"{svt_sizes(r.quick)['n_select']} + {svt_sizes(r.quick)['n_test']} samples; the "
        f"others {sizes['n_select']} + {sizes['n_test']}). ε_lb: 95% lower confidence bound; "
        "flagged = ε_lb > claimed ε; the uncapped control is shown, not checked.",
    )
