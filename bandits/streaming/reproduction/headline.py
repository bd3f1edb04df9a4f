"""R1, R2, R8 of our reproduction of Wang (ICML 2023, arXiv:2306.02208): the six algorithms of the
authors' released code on the clear-cut (R1) and mix-in (R2) instances, as regret ratios to
streaming uniform exploration, in both modes (R8: faithful vs corrected).

Paper scale: K = 50 000, T = 1000 K^3 = 1.25e17, 50 seeds (``experiment=streaming_wang2023``).
Quick: K = 1000, T = 1000 K^2 = 1e9, 50 seeds, where we also re-ran the authors' code.

Targets: our re-runs of the authors' released code (10 seeds each; docs/streaming.md). Faithful mode
is compared with "orig" (the published code); corrected mode with "both fixes" (regret charged to
the pulled arm, real empirical best), which still uses the authors' Gaussian batch approximation,
the GoA Delta oracle and GoA's unmeasured first-king estimate eps/2, so corrected targets are
checked only where our reading of the re-runs makes a claim that does not depend on them
(clear-cut, where every arm's batch is far above 1e5 pulls and the approximation only widens the
noise of already-separated means; there the first-king estimate moves GoA by < 0.1%), and
otherwise shown for reference. Tolerance: the re-run's standard error is unknown; we estimate it
as our per-seed spread over sqrt(10) and accept when
|ours - target| <= 2.58 sqrt(se_ours^2 + se_rerun^2) + 1% of the target (a two-sided 99% z-test:
many checks are made, a 1% false alarm rate per check is tolerable; the 1% floor covers the
re-run table's 2-3 significant digits and the authors' real-valued batch sizes against our
integer pull counts, e.g. naive/uniform in clear-cut is ln K / (ln T)^{1/3} = 2.5149 at K = 1000,
T = 1e9, which the table prints as 2.52).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

from experiments.reproduce import Reproduction, fmt_ci
from experiments.stats import mean_ci, ratio_ci

AGENTS = (
    "stream_uniform",
    "stream_naive",
    "stream_log",
    "stream_loglog",
    "stream_logstar",
    "stream_goa",
)
SHORT = {
    "stream_uniform": "uniform",
    "stream_naive": "naive",
    "stream_log": "log",
    "stream_loglog": "loglog",
    "stream_logstar": "log*",
    "stream_goa": "GoA",
    "stream_jin": "jin (stand-in)",
}
RERUN_SEEDS = 10
Z99 = 2.576

# Our re-runs of the authors' released code (10 seeds): (instance, mode) -> uniform's absolute
# mean regret, then ratios to uniform.
# "orig" = the published code (our faithful mode); "both fixes" = reference for corrected mode.
TARGETS_FULL = {
    ("clear_cut", "faithful"): (
        1.005e13,
        {"naive": 3.18, "log": None, "loglog": 0.318, "log*": 0.518, "GoA": 0.733},
    ),
    ("mix_in", "faithful"): (
        2.17e13,
        {"naive": 2.38, "log": 0.51, "loglog": 0.35, "log*": 0.51, "GoA": 1.13},
    ),
    ("clear_cut", "corrected"): (
        1.005e13,
        {"naive": 3.18, "log": 0.351, "loglog": 0.338, "log*": 0.627, "GoA": 0.734},
    ),
    ("mix_in", "corrected"): (
        1.97e13,
        {"naive": 2.62, "log": 0.78, "loglog": 0.52, "log*": 0.59, "GoA": 1.04},
    ),
}
TARGETS_QUICK = {  # K = 1000, T = 1e9
    ("clear_cut", "faithful"): (
        8.79e6,
        {"naive": 2.52, "log": 2.15, "loglog": 0.39, "log*": 0.65, "GoA": 0.91},
    ),
    ("mix_in", "faithful"): (
        1.37e7,
        {"naive": 2.52, "log": 0.46, "loglog": 0.38, "log*": 0.68, "GoA": 0.93},
    ),
    ("clear_cut", "corrected"): (
        None,
        {"naive": 2.52, "log": 0.43, "loglog": 0.59, "log*": 0.76, "GoA": 0.92},
    ),
    ("mix_in", "corrected"): (
        None,
        {"naive": 2.52, "log": 0.43, "loglog": 0.58, "log*": 0.82, "GoA": 0.96},
    ),
}
# Which targets are checked (the rest are shown). Faithful log in clear-cut has catastrophic
# seeds (quirk b): its mean is not a stable target at either size (K = 50 000: the re-runs gave
# 50.6 and 0.34, one catastrophic seed or none in 10; K = 1000, T = 1e9: 2.15, "fails on some
# seeds"), and a 10-seed mean driven by rare huge seeds, with a tolerance that grows with our own
# heavy tail, accepts almost anything (~[0.01, 4.3] with one catastrophic seed in 6). So the
# table shows the mean, and `_check_log_median` checks the median seed and reports how many
# seeds failed.
CHECKED = {
    ("clear_cut", "faithful"): ("naive", "loglog", "log*", "GoA"),
    ("mix_in", "faithful"): ("naive", "log", "loglog", "log*"),
    ("clear_cut", "corrected"): ("naive", "log", "loglog", "log*", "GoA"),
    ("mix_in", "corrected"): (),
}


def sizes(quick: bool) -> list[str]:
    if quick:
        return ["env.K=1000", "env.beta=2", "horizon=1000000000", "seeds=50"]
    return []


def run_cell(r: Reproduction, instance: str, mode: str):
    tag = f"{instance}-{mode}"
    overrides = ["experiment=streaming_wang2023", f"env.instance={instance}", f"env.mode={mode}"]
    return r.run(tag, [*overrides, *sizes(r.quick)])


def ratio_table(run, instance: str, mode: str, quick: bool) -> pd.DataFrame:
    """Per algorithm: mean regret, ratio to uniform with paired CI, the re-run target."""
    uni = run.final("stream_uniform", "regret")
    target_uni, targets = (TARGETS_QUICK if quick else TARGETS_FULL)[(instance, mode)]
    rows = []
    for agent in AGENTS:
        reg = run.final(agent, "regret")
        m, lo, hi = mean_ci(reg)
        ratio, rlo, rhi = ratio_ci(reg, uni)
        name = SHORT[agent]
        target = target_uni if agent == "stream_uniform" else targets.get(name)
        rows.append(
            {
                "algorithm": name,
                "mean regret": m,
                "95% CI": f"[{lo:.3g}, {hi:.3g}]",
                "ratio to uniform": ratio,
                "ratio 95% CI": f"[{rlo:.3g}, {rhi:.3g}]",
                "median seed ratio": float(np.median(reg / uni)),
                "re-run of authors' code": np.nan if target is None else float(target),
                "peak memory": run.final(agent, "peak_memory").max(),
            }
        )
    return pd.DataFrame(rows)


def _check_ratio(r: Reproduction, item: str, run, agent: str, target: float, label: str) -> None:
    reg, uni = run.final(agent, "regret"), run.final("stream_uniform", "regret")
    ratio, lo, hi = ratio_ci(reg, uni)
    n = reg.size
    se = (hi - lo) / 2 / 1.96 * math.sqrt(n / (n - 1)) if n > 1 else 0.0
    se_rerun = se * math.sqrt(n / RERUN_SEEDS)
    tol = Z99 * math.hypot(se, se_rerun) + 0.01 * target
    r.check(
        item,
        f"{label} {SHORT[agent]} / uniform",
        fmt_ci(ratio, lo, hi),
        f"{target:.3g} ± {tol:.2g}",
        "our re-run of the authors' released code, 10 seeds",
        abs(ratio - target) <= tol,
    )


def headline(r: Reproduction, item: str, instance: str) -> None:
    tables = {}
    for mode in ("faithful", "corrected"):
        run = run_cell(r, instance, mode)
        df = tables[mode] = ratio_table(run, instance, mode, r.quick)
        K, T = (1000, 10**9) if r.quick else (50_000, 125 * 10**15)
        charging = "the authors' charging" if mode == "faithful" else "pulled arms' pseudo-regret"
        r.table(
            item,
            f"{instance}_{mode}",
            df,
            f"**{item}: {instance.replace('_', '-')}, {mode} mode** — K = {K}, T = {T:.3g}, "
            f"{run.summary['seeds']} seeds; regret in the env's accounting ({charging}); "
            "ratio CI by the paired delta method (same instance per seed).",
        )
        label = f"{instance.replace('_', '-')} {mode}"
        targets = (TARGETS_QUICK if r.quick else TARGETS_FULL)[(instance, mode)][1]
        for agent in AGENTS[1:]:
            target = targets[SHORT[agent]]
            if SHORT[agent] in CHECKED[(instance, mode)] and target is not None:
                _check_ratio(r, item, run, agent, target, label)
        claims(r, item, run, instance, mode, K, T)
    r.figure(item, f"{instance}_ratios", ratio_figure(tables, instance, K, T))


def ratio_figure(tables: dict[str, pd.DataFrame], instance: str, K: int, T: int):
    """Bars: ratio to uniform with 95% CI per algorithm, faithful and corrected side by side;
    diamonds: our re-runs of the authors' released code (10 seeds)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 3.8), constrained_layout=True)
    names = list(tables["faithful"]["algorithm"])[1:]
    x = np.arange(len(names))
    for j, (mode, colour) in enumerate((("faithful", "tab:orange"), ("corrected", "tab:blue"))):
        df = tables[mode].iloc[1:]
        lo_hi = np.array([[float(v) for v in c.strip("[]").split(",")] for c in df["ratio 95% CI"]])
        ratio = df["ratio to uniform"].to_numpy()
        err = np.abs(lo_hi.T - ratio)
        off = (j - 0.5) * 0.38
        ax.bar(x + off, ratio, 0.36, yerr=err, color=colour, alpha=0.8, capsize=3, label=mode)
        ax.plot(x + off, df["re-run of authors' code"], "kD", ms=4, label="re-run" if j else None)
    ax.axhline(1.0, color="grey", lw=0.8, ls="--")
    ax.set_xticks(x, names)
    ax.set_yscale("log")
    ax.set_ylabel("regret / uniform exploration")
    ax.set_title(f"{instance.replace('_', '-')}: K = {K}, T = {T:.3g}")
    ax.legend(fontsize=8)
    return fig


def claims(r: Reproduction, item: str, run, instance: str, mode: str, K: int, T: int) -> None:
    """The paper's claims and our re-runs' qualitative findings for this cell."""
    uni = run.final("stream_uniform", "regret")
    label = f"{instance.replace('_', '-')} {mode}"
    if instance == "clear_cut":
        # Exploration dominates: each of the K - 1 other arms gets b = (T/K)^{2/3} (ln T)^{1/3}
        # pulls at an expected gap 0.82 - E[TruncNormal(0.5, 0.1, [0, 0.8])] (the best arm is
        # found, so the commit phase adds ~0): regret / (K^1/3 T^2/3) = gap (1 - 1/K) (ln T)^1/3.
        tn = 0.5 + 0.1 * stats.truncnorm.mean(-5.0, 3.0)
        want = (0.82 - tn) * (1 - 1 / K) * math.log(T) ** (1 / 3)
        m, lo, hi = mean_ci(uni)
        scale = K ** (1 / 3) * T ** (2 / 3)
        r.check(
            item,
            f"{label} uniform regret / (K^1/3 T^2/3)",
            fmt_ci(m / scale, lo / scale, hi / scale),
            f"{want:.4g} ± 1%",
            "closed form; our re-run of the authors' code (≈ 1.09 at K = 5e4)",
            abs(m / scale - want) <= 0.01 * want + (hi - lo) / scale / 2,
        )
        exact = math.log(K) / math.log(T) ** (1 / 3)
        naive = ratio_ci(run.final("stream_naive", "regret"), uni)
        r.check(
            item,
            f"{label} naive / uniform = ln K / (ln T)^1/3",
            fmt_ci(*naive, digits=5),
            f"{exact:.5g} ± 0.5%",
            "closed form (batch sizes of the authors' code)",
            abs(naive[0] - exact) <= 0.005 * exact,
        )
    if mode == "faithful" and instance == "clear_cut":
        _check_log_median(r, item, run, label)
    if mode == "faithful" and instance == "clear_cut" and not r.quick:
        ratio, lo, hi = ratio_ci(run.final("stream_loglog", "regret"), uni)
        r.check(
            item,
            f"{label} loglog reduction (paper: 'up to 70%')",
            f"{100 * (1 - ratio):.0f}% [{100 * (1 - hi):.0f}, {100 * (1 - lo):.0f}]",
            "≈ 68% (ratio ≈ 0.32)",
            "Wang, ICML 2023, abstract; our re-run of the authors' code",
            ratio <= 0.35,
        )
    naive, nlo, nhi = ratio_ci(run.final("stream_naive", "regret"), uni)
    r.check(
        item,
        f"{label} naive above uniform (ln K vs (ln T)^1/3)",
        fmt_ci(naive, nlo, nhi),
        "1.4–3.3",
        "authors' code batch sizes (ln K vs (ln T)^1/3); our re-runs",
        nlo > 1.0 and 1.4 <= naive <= 3.3,
    )
    if instance == "clear_cut":
        for agent in ("stream_loglog", "stream_logstar", "stream_goa"):
            ratio, lo, hi = ratio_ci(run.final(agent, "regret"), uni)
            r.check(
                item,
                f"{label} {SHORT[agent]} below uniform",
                fmt_ci(ratio, lo, hi),
                "< 1",
                "Wang, ICML 2023, abstract and §1; our re-runs",
                hi < 1.0,
            )


CATASTROPHIC = 2.0  # a seed whose log / uniform ratio exceeds this failed (quirk b)


def _check_log_median(r: Reproduction, item: str, run, label: str) -> None:
    """Faithful clear-cut log: quirk (b) makes the published routine fail catastrophically on
    some seeds, so compare the median seed, and report how many seeds failed (ratio > 2).

    Full size: the re-run without a catastrophic seed, 0.34 (± 0.01). Quick size (K = 1000,
    T = 1e9): the re-run reports only its 10-seed mean, 2.15, and that it "fails on some seeds";
    the claim checked is that the median seed does not fail (ratio < 1, below uniform)."""
    uni = run.final("stream_uniform", "regret")
    per_seed = run.final("stream_log", "regret") / uni
    median = float(np.median(per_seed))
    if r.quick:
        target, source, ok = (
            "< 1 (most seeds do not fail)",
            "our re-run of the authors' code: mean 2.15 over 10 seeds, 'fails on some seeds'",
            median < 1.0,
        )
    else:
        target, source, ok = (
            "0.34 ± 0.01",
            "our re-run of the authors' code without a catastrophic seed",
            abs(median - 0.34) <= 0.01,
        )
    bad = int(np.sum(per_seed > CATASTROPHIC))
    r.check(
        item,
        f"{label} log / uniform, median seed",
        f"{median:.3g}",
        target,
        source,
        ok,
        note=f"{bad}/{per_seed.size} seeds catastrophic (ratio > {CATASTROPHIC:g})",
    )


def r1(r: Reproduction) -> None:
    """R1 (+ R8): clear-cut, both modes."""
    headline(r, "R1", "clear_cut")


def r2(r: Reproduction) -> None:
    """R2 (+ R8): mix-in, both modes."""
    headline(r, "R2", "mix_in")
