"""R4 of our reproduction of Wang (ICML 2023, arXiv:2306.02208): the rate check.

Regret / (K^{1/3} T^{2/3}) of streaming uniform exploration, naive eps-best, log* (Aggressive
Selective Promotion instantiation) and Game-of-Arms (corrected mode, clear-cut instances, a fresh
instance per seed) against T at K = 1000 (T = K^beta, beta from 1.5 to 3) and against K at
T = K^3 (alpha = 1, K from 250 to 64 000), on log-log axes with fitted slopes.

Theory (Wang, abstract; batch sizes of the authors' released code): uniform is O(K^{1/3} T^{2/3} (ln
T)^{1/3}), naive O(K^{1/3} T^{2/3} ln K), log* and GoA O(K^{1/3} T^{2/3}). In clear-cut instances
the first two have closed forms. Uniform pulls every arm b_u = ceil((T/K)^{2/3} (ln T)^{1/3}) times,
naive b_n = ceil(ln K (T/K)^{2/3}) times, then commits the remaining T - K b pulls to its king, so

    regret = b sum_i gap_i + (T - K b) chosen_gap,  E[b sum_i gap_i] = b (K - 1) g,

g = 0.82 - E[TruncNormal(0.5, 0.1, [0, 0.8])] = 0.3204 (scipy). Once the 0.82 arm is reliably
found (the commit part vanishes: the *clear-cut regime*) the normalised regret is
g (1 - 1/K) K b / (K^{1/3} T^{2/3}) ~ g (ln T)^{1/3} for uniform and ~ g ln K for naive, and
naive / uniform ~ ln K / (ln T)^{1/3}. Checks (tolerances in each check's row):

* exploration part (regret minus the measured commit part (T - K b) chosen_gap) = b (K - 1) g
  at every point, within the 99% CI + 0.1% (the CI covers the instance's random means; 0.1% the
  float sums);
* uniform's fitted log-log slope in T over the regime points (commit part < 1% of the regret)
  equals the closed form's slope over the same points, within 3 se + 0.003 (3 se: a 0.3%
  two-sided test, se from the per-point standard errors or the fit's residuals, whichever is
  larger; 0.003: a commit part below 1% that changes across the points biases the slope by at
  most 0.01 / ln(T_max / T_min) <= 0.003), and it is > 0 (the growth is seen); naive's slope in K
  likewise against g ln K's;
* naive / uniform = the closed-form ratio (~ ln K / (ln T)^{1/3}) at the regime points, 99% CI
  of the paired ratio + 0.5%;
* log* and GoA roughly flat: |slope| < 0.1 in both sweeps. 0.1 is below the smallest power-law
  exponent gap between the candidate rates (K^{1/3} T^{2/3} vs K^{1/2} T^{1/2} or T^{2/3}: 1/6),
  so a wrong polynomial rate fails it; log factors have local slopes 1/(3 ln T) ~ 0.02 and
  1/ln K ~ 0.1-0.18 and are not what this check separates (the first two checks do that).

Full-memory references (not streaming: they hold all K arms): UCB1 and Thompson sampling on one
clear-cut instance (the means `StreamingBandit.all_means(key(0))` of the clear-cut generator at
K = 1000, in x64), played round by round with ``env=bernoulli`` at the T-sweep points with
T <= 1e7, within a budget of agent-rounds per point (each round touches all K = 1000 arms:
Thompson draws 1000 Betas per round), so Thompson runs only at the smallest T.

Sizes: full: beta in {1.5, 1.75, 2, 2.25, 2.5, 2.75, 3}, K in {250, 1000, 4000, 16000, 64000},
50 seeds; quick: beta in {1.5, 2.75, 3}, K in {250, 1000, 4000}, 20 seeds. (K, T) = (1000, 1e9)
is shared by the sweeps.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

from bandits.streaming.common import count
from experiments.reproduce import Reproduction, fmt_ci, loglog_slope
from experiments.stats import mean_ci, ratio_ci

AGENTS = ("stream_uniform", "stream_naive", "stream_logstar", "stream_goa")
SHORT = {
    "stream_uniform": "uniform",
    "stream_naive": "naive",
    "stream_logstar": "log*",
    "stream_goa": "GoA",
    "ucb1": "UCB1 (full memory)",
    "thompson": "Thompson (full memory)",
}
K_FIXED = 1000
BETAS = {False: (1.5, 1.75, 2.0, 2.25, 2.5, 2.75, 3.0), True: (1.5, 2.75, 3.0)}
KS = {False: (250, 1000, 4000, 16000, 64000), True: (250, 1000, 4000)}
ALPHA_K = 1.0  # K sweep: T = ALPHA_K K^3
SEEDS = {False: 50, True: 20}
REF_MAX_T = 10**7
# agent-rounds per reference point. Measured at K = 1000 on the shared 2-core machine: UCB1
# 5e4-7e4 rounds/s, Thompson 0.8e3-2e3 rounds/s (K Beta draws per round): at most ~7 minutes
# per point and agent (full), ~2 minutes (quick).
REF_BUDGET = {
    False: {"ucb1": 2 * 10**7, "thompson": 4 * 10**5},
    True: {"ucb1": 5 * 10**6, "thompson": 10**5},
}
REF_MIN_SEEDS = 2
REGIME = 0.01  # clear-cut regime: commit part < 1% of the regret
FLAT = 0.1

TN_MEAN = 0.5 + 0.1 * float(stats.truncnorm.mean(-5.0, 3.0))
GAP = 0.82 - TN_MEAN  # g: expected gap of a non-best clear-cut arm


def horizon(K: int, alpha: float, beta: float) -> int:
    """T = round(alpha K^beta)."""
    return round(alpha * float(K) ** beta)


def points(quick: bool) -> list[tuple[int, float, float]]:
    """(K, alpha, beta) of every streaming run: T sweep, then K sweep, without duplicates."""
    pts = [(K_FIXED, 1.0, b) for b in BETAS[quick]] + [(K, ALPHA_K, 3.0) for K in KS[quick]]
    out: list[tuple[int, float, float]] = []
    for p in pts:
        if all((q[0], horizon(*q)) != (p[0], horizon(*p)) for q in out):
            out.append(p)
    return out


def overrides(K: int, T: int, alpha: float, beta: float, seeds: int) -> list[str]:
    """Overrides of one streaming point (without the agents)."""
    return [
        "experiment=streaming_wang2023",
        f"env.K={K}",
        f"horizon={T}",
        f"env.alpha={alpha:g}",
        f"env.beta={beta:g}",
        f"seeds={seeds}",
    ]


def run_point(r: Reproduction, K: int, alpha: float, beta: float, seeds: int | None = None):
    seeds = SEEDS[r.quick] if seeds is None else seeds
    T = horizon(K, alpha, beta)
    agents = f"agents=[{','.join(AGENTS)}]"
    return r.run(f"rate-K{K}-T{T}", [*overrides(K, T, alpha, beta, seeds), agents])


def batch(agent: str, K: int, T: int) -> int:
    """Integer pulls per arm of uniform or naive (authors' code), corrected mode."""
    if agent == "stream_uniform":
        return count((T / K) ** (2.0 / 3.0) * math.log(T) ** (1.0 / 3.0), "corrected")
    return count(math.log(K) / (K / T) ** (2.0 / 3.0), "corrected")


def closed_form(agent: str, K: int, T: int) -> float:
    """E[exploration regret] / (K^{1/3} T^{2/3}) = g (K - 1) b / scale (uniform, naive); nan
    when the K b pulls of the stream exceed T (the algorithm then never finishes the stream)."""
    b = batch(agent, K, T)
    if K * b > T:
        return float("nan")
    return GAP * (K - 1) * b / (K ** (1 / 3) * T ** (2 / 3))


def slope_fit(x, y, se) -> tuple[float, float]:
    """Log-log least-squares slope of y on x and its se: the larger of the residual se
    (`loglog_slope`, nan with 2 points) and the se propagated from the per-point se of y."""
    x, y, se = (np.asarray(v, np.float64) for v in (x, y, se))
    s, se_res = loglog_slope(x, y)
    lx = np.log(x)
    w = (lx - lx.mean()) / np.sum((lx - lx.mean()) ** 2)
    se_prop = float(np.sqrt(np.sum(w**2 * (se / y) ** 2)))
    return s, float(np.nanmax([se_res, se_prop]))


def reference_means(K: int = K_FIXED) -> list[float]:
    """One clear-cut instance (key 0 of the generator of bandits/streaming/instances.py, x64)."""
    import jax

    from bandits.streaming.env import streaming_bandit

    with jax.enable_x64(True):
        env = streaming_bandit(K=K, horizon=K * K, instance="clear_cut")
        return [float(m) for m in np.asarray(env.all_means(jax.random.key(0)))]


def reference_runs(r: Reproduction) -> list[tuple[str, int, object]]:
    """(agent, T, run) of UCB1 and Thompson at the T-sweep points with T <= 1e7."""
    out = []
    means = None
    for beta in BETAS[r.quick]:
        T = horizon(K_FIXED, 1.0, beta)
        if T > REF_MAX_T:
            continue
        for agent in ("ucb1", "thompson"):
            seeds = min(SEEDS[r.quick], REF_BUDGET[r.quick][agent] // T)
            if seeds < REF_MIN_SEEDS:
                continue
            if means is None:
                means = reference_means()
            mean_list = "[" + ",".join(f"{m:.17g}" for m in means) + "]"
            ov = [
                "env=bernoulli",
                f"env.means={mean_list}",
                f"horizon={T}",
                f"seeds={seeds}",
                f"agents=[{agent}]",
            ]
            out.append((agent, T, r.run(f"rate-ref-{agent}-T{T}", ov)))
    return out


def collect(r: Reproduction) -> pd.DataFrame:
    """One row per (sweep point, agent): normalised regret, its CI and se, the commit part."""
    rows = []
    for K, a, b in points(r.quick):
        T = horizon(K, a, b)
        run = run_point(r, K, a, b)
        scale = K ** (1 / 3) * T ** (2 / 3)
        for agent in AGENTS:
            reg = run.final(agent, "regret")
            row = _row(agent, K, T, reg / scale)
            row["regret"] = reg
            if agent in ("stream_uniform", "stream_naive"):
                bb = batch(agent, K, T)
                commit = max(T - K * bb, 0) * run.final(agent, "chosen_gap") / scale
                row["commit"] = commit
                row["commit_share"] = float(commit.mean() / row["mean"])
                row["cf"] = closed_form(agent, K, T)
            rows.append(row)
    for agent, T, run in reference_runs(r):
        rows.append(
            _row(
                agent, K_FIXED, T, run.final(agent, "regret") / (K_FIXED ** (1 / 3) * T ** (2 / 3))
            )
        )
    return pd.DataFrame(rows)


def _row(agent: str, K: int, T: int, y: np.ndarray) -> dict:
    m, lo, hi = mean_ci(y)
    se = float(np.std(y, ddof=1) / math.sqrt(y.size)) if y.size > 1 else float("nan")
    return {
        "agent": agent,
        "K": K,
        "T": T,
        "seeds": y.size,
        "y": y,
        "mean": m,
        "lo": lo,
        "hi": hi,
        "se": se,
    }


def sweeps(df: pd.DataFrame) -> dict[str, tuple[str, pd.DataFrame]]:
    """{"T": (x column, rows at K = 1000), "K": (x column, rows at T = K^3)}."""
    return {
        "T": ("T", df[df["K"] == K_FIXED]),
        "K": ("K", df[df["T"] == df["K"].astype(np.int64) ** 3]),
    }


def r4(r: Reproduction) -> None:
    """R4: rate check (module docstring)."""
    item = "R4"
    df = collect(r)
    slopes = []
    for sweep, (x, d) in sweeps(df).items():
        for agent in (*AGENTS, "ucb1", "thompson"):
            a = d[d["agent"] == agent].sort_values(x)
            if len(a) < 2:
                continue
            s, se = slope_fit(a[x], a["mean"], a["se"])
            cf = np.nan
            if agent in ("stream_uniform", "stream_naive"):
                cfy = [closed_form(agent, k, t) for k, t in zip(a["K"], a["T"], strict=True)]
                if np.all(np.isfinite(cfy)):
                    cf = loglog_slope(a[x], cfy)[0]
            slopes.append(
                {
                    "sweep": sweep,
                    "agent": agent,
                    "slope": s,
                    "se": se,
                    "closed-form slope": cf,
                    "points": len(a),
                }
            )
    slopes = pd.DataFrame(slopes)
    _exploration_checks(r, item, df)
    _growth_checks(r, item, df)
    _ratio_checks(r, item, df)
    _flat_checks(r, item, slopes)
    _tables(r, item, df, slopes)
    r.figure(item, "rates", _figure(df, slopes))


def _regime(d: pd.DataFrame, agent: str) -> pd.DataFrame:
    a = d[d["agent"] == agent]
    return a[np.isfinite(a["cf"]) & (a["commit_share"] < REGIME)]


def _exploration_checks(r: Reproduction, item: str, df: pd.DataFrame) -> None:
    """Regret minus the measured commit part = b (K - 1) g at every point (uniform, naive)."""
    for agent in ("stream_uniform", "stream_naive"):
        a = df[(df["agent"] == agent) & np.isfinite(df["cf"])]
        worst, ok = 0.0, True
        for row in a.itertuples():
            m, lo, hi = mean_ci(row.y - row.commit, 0.99)
            rel = m / row.cf - 1
            tol = (hi - lo) / 2 / m + 0.001
            ok &= abs(rel) <= tol
            worst = max(worst, abs(rel))
        r.check(
            item,
            f"{SHORT[agent]}: exploration regret / (g (K-1) b) - 1 at all {len(a)} points",
            f"max |.| = {worst:.2%}",
            "0 within the 99% CI + 0.1% at each point",
            "closed form (authors' code batch sizes; g from scipy truncnorm)",
            ok,
        )


def _growth_checks(r: Reproduction, item: str, df: pd.DataFrame) -> None:
    """Uniform's growth in T and naive's in K over the clear-cut regime vs the closed forms."""
    for agent, sweep in (("stream_uniform", "T"), ("stream_naive", "K")):
        x, d = sweeps(df)[sweep]
        a = _regime(d, agent).sort_values(x)
        law = "g (ln T)^1/3" if agent == "stream_uniform" else "g ln K"
        name = f"{SHORT[agent]} growth in {sweep} (log-log slope, clear-cut regime points)"
        if len(a) < 2:
            r.check(
                item,
                name,
                f"{len(a)} regime point(s)",
                "slope of " + law,
                "cf",
                False,
                note="too few points with commit part < 1%",
            )
            continue
        s, se = slope_fit(a[x], a["mean"], a["se"])
        want = loglog_slope(a[x], a["cf"])[0]
        tol = 3 * se + 0.003
        r.check(
            item,
            name,
            f"{s:.4f} ± {se:.4f} ({len(a)} points, {x} = {a[x].min():.3g}–{a[x].max():.3g})",
            f"{want:.4f} ± {tol:.4f} (slope of {law}); > 0",
            "closed form; abstract (O(K^1/3 T^2/3 log^1/3 T) / log K)",
            abs(s - want) <= tol and s - 3 * se > 0,
        )


def _ratio_checks(r: Reproduction, item: str, df: pd.DataFrame) -> None:
    """naive / uniform = closed-form ratio (~ ln K / (ln T)^{1/3}) at points where both are in
    the clear-cut regime."""
    uni = df[df["agent"] == "stream_uniform"].set_index(["K", "T"])
    nai = df[df["agent"] == "stream_naive"].set_index(["K", "T"])
    for key in uni.index:
        u, n = uni.loc[key], nai.loc[key]
        if not (np.isfinite(n["cf"]) and max(u["commit_share"], n["commit_share"]) < REGIME):
            continue
        ratio, lo, hi = ratio_ci(n["y"], u["y"], 0.99)
        want = n["cf"] / u["cf"]
        K, T = key
        approx = math.log(K) / math.log(T) ** (1 / 3)
        tol = (hi - lo) / 2 + 0.005 * want
        r.check(
            item,
            f"K = {K}, T = {T:.3g}: naive / uniform",
            fmt_ci(ratio, lo, hi, digits=4),
            f"{want:.4f} ± {tol:.3f} (ln K / (ln T)^1/3 = {approx:.4f})",
            "closed form (batch sizes of the authors' code)",
            abs(ratio - want) <= tol,
        )


def _flat_checks(r: Reproduction, item: str, slopes: pd.DataFrame) -> None:
    for row in slopes[slopes["agent"].isin(["stream_logstar", "stream_goa"])].itertuples():
        r.check(
            item,
            f"{SHORT[row.agent]} flat in {row.sweep}: |log-log slope|",
            f"{row.slope:+.3f} ± {row.se:.3f} ({row.points} points)",
            f"< {FLAT}",
            "abstract: O(K^1/3 T^2/3) (log* memory; GoA as run by the authors)",
            abs(row.slope) < FLAT,
        )


def _tables(r: Reproduction, item: str, df: pd.DataFrame, slopes: pd.DataFrame) -> None:
    t = df.sort_values(["K", "T"], kind="stable").copy()
    t["algorithm"] = t["agent"].map(SHORT)
    t["T"] = t["T"].map(lambda v: f"{v:.4g}")
    t["regret / (K^1/3 T^2/3) (95% CI)"] = [
        fmt_ci(m, lo, hi, digits=4) for m, lo, hi in zip(t["mean"], t["lo"], t["hi"], strict=True)
    ]
    cols = ["K", "T", "algorithm", "seeds", "regret / (K^1/3 T^2/3) (95% CI)", "cf", "commit_share"]
    t = t[cols]
    t = t.rename(columns={"cf": "closed form", "commit_share": "commit share"})
    r.table(
        item,
        "rates",
        t,
        f"**{item}: regret / (K^1/3 T^2/3)**, clear-cut instances, corrected mode "
        "(streaming: a fresh instance per seed). Closed form: g (K-1) b / (K^1/3 T^2/3), the "
        f"expected exploration regret (g = {GAP:.4f}; – where K b > T). Commit share: the "
        "measured commit part (T - K b) chosen_gap over the regret. UCB1 and Thompson (full "
        "memory, played round by round with `env=bernoulli`) play one fixed clear-cut instance: "
        "the means of `StreamingBandit.all_means(key(0))` at K = 1000, drawn by the clear-cut "
        "generator of bandits/streaming/instances.py, with fewer seeds (a budget of agent-rounds "
        "per point; Thompson draws K Betas per round).",
    )
    s = slopes.copy()
    s["algorithm"] = s["agent"].map(SHORT)
    s = s[["sweep", "algorithm", "points", "slope", "se", "closed-form slope"]]
    r.table(
        item,
        "slopes",
        s,
        f"**{item}: fitted log-log slopes** of regret / (K^1/3 T^2/3): sweep T at K = "
        f"{K_FIXED}, sweep K at T = K^3; se = max(residual se, se propagated from the seeds).",
    )


def _figure(df: pd.DataFrame, slopes: pd.DataFrame):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11.5, 4.4))
    colors = dict(
        zip(
            (*AGENTS, "ucb1", "thompson"),
            plt.rcParams["axes.prop_cycle"].by_key()["color"],
            strict=False,
        )
    )
    for ax, (sweep, (x, d)) in zip(axes, sweeps(df).items(), strict=True):
        for agent in (*AGENTS, "ucb1", "thompson"):
            a = d[d["agent"] == agent].sort_values(x)
            if a.empty:
                continue
            sl = slopes[(slopes["sweep"] == sweep) & (slopes["agent"] == agent)]
            label = SHORT[agent] + (f" (slope {sl['slope'].iloc[0]:+.3f})" if len(sl) else "")
            err = np.stack([a["mean"] - a["lo"], a["hi"] - a["mean"]])
            ls = ":" if agent in ("ucb1", "thompson") else "-"
            ax.errorbar(
                a[x],
                a["mean"],
                yerr=err,
                marker="o",
                ms=4,
                capsize=3,
                ls=ls,
                color=colors[agent],
                label=label,
            )
            if agent in ("stream_uniform", "stream_naive"):
                cf = a[np.isfinite(a["cf"])]
                ax.plot(cf[x], cf["cf"], "--", lw=1, color=colors[agent])
        ax.set(xscale="log", yscale="log")
        ax.legend(fontsize=7)
    axes[0].set(xlabel=f"T (K = {K_FIXED})", ylabel="regret / (K^{1/3} T^{2/3})")
    axes[1].set(xlabel="K (T = K^3)")
    fig.suptitle("R4: rate check (dashed: closed form g (K-1) b / (K^1/3 T^2/3))", fontsize=10)
    fig.tight_layout()
    return fig
