"""The reproduction of Chen, Karthik, Chee & Tan, "Fixed-Budget Differentially Private Best Arm
Identification" (ICLR 2024, arXiv:2401.09073): ``regretlab-reproduce dpbai_chen2024``
(docs/dpbai.md, "Reproduction", shows the commands and the results).

What is reproduced: the error probability of the recommended arm against the budget T, for
ε ∈ {0.1, 0.5, 1, 5, ∞}, of DP-BAI (`privacy.dpbai`), DP-OD-LinBAI (`privacy.od_linbai`) and DP
Sequential Halving (`privacy.halving`), with the non-private OD-LinBAI (Yang & Tan, NeurIPS
2022) and Sequential Halving (Karnin, Koren & Somekh, ICML 2013) as the ε = ∞ members of the
same runs (no noise: the classes of the ``od_linbai`` and ``sh`` configs). Every point runs
through the engine (``regretlab`` configs, one program per (instance, T, algorithm) shared by
the five ε values through a sweep), so an interrupted reproduction resumes.

**The paper's own instance, grid and numbers are not available to us** (only its abstract and
reviews are); the algorithms are reconstructions (docs/dpbai.md) and the instances are ours:

* R1: Soare-type (d = 4, K = 5, ω = 0.3; Soare, Lazaric & Munos, NeurIPS 2014, §6, scaled);
* R2: Yang & Tan 2022, §5.1 (d = 2 lifted to 3, K = 20, φ sd 0.09);
* R3, R4: unit-sphere arms (d = 10 lifted to 11, K = 16 and K = 64, α = 0.1).

Grid (full): T ∈ {10^3, 3·10^3, 10^4, 3·10^4, 10^5}, 2000 repetitions per point and 10^4 where
the error is below 10^-2 (a second pass). Quick: T ∈ {10^3, 3·10^3, 10^4}, 300 repetitions
and 1000 below 10^-2, R1 and R3 only (R2, R4 run in the full reproduction).

Checks (the qualitative claims of the paper's abstract and reviews, fixed before running):

* "DP-BAI markedly better than DP-OD-LinBAI": per instance and finite ε, DP-BAI's exact 95%
  Clopper–Pearson interval never lies wholly above DP-OD-LinBAI's at any T, and lies wholly
  below it at some T;
* "the gap grows as ε shrinks": the mean over T of log((p_OD + 1/n)/(p_BAI + 1/n)) is larger at
  ε = 0.1 than at ε = 5;
* "log(error) about linear in T": for every DP-BAI curve with at least 3 points in the decay
  regime (>= 5 errors and error <= 0.5), the weighted least-squares fit of log(error) on T has
  R² >= 0.9 (curves with fewer points are reported, not checked);
* "as ε → ∞ DP-BAI is within a constant factor in the exponent of OD-LinBAI": the ratio of
  their fitted slopes lies in [1/4, 4] (checked where both have >= 2 decay points).

Hardness. The fitted slope of log(error) against T is reported beside H = H_BAI + H_pri/ε with
the **reconstructed** (recalled, unverified) definitions H_BAI = max_{2 <= i <= d∧K} i/Δ_(i)²
and H_pri = max_{2 <= i <= d∧K} i/Δ_(i) (Δ_(i): gap of the i-th best arm; d: the features'
dimension); the theory's error bound is exp(−Θ(T/(H log d))), so −slope·H should stay within
constant factors across ε and instances. It is reported, not checked (the constants are not
known to us).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from experiments.reproduce import Reproduction
from experiments.results import Run
from experiments.stats import clopper_pearson_ci

TITLE = (
    "Chen, Karthik, Chee & Tan, Fixed-Budget Differentially Private Best Arm Identification "
    "(ICLR 2024), with OD-LinBAI (Yang & Tan, NeurIPS 2022) and Sequential Halving (Karnin, "
    "Koren & Somekh, ICML 2013)"
)
EPSILONS = (0.1, 0.5, 1.0, 5.0, math.inf)
AGENTS = ("dp_bai", "dp_od_linbai", "dp_sh")
NAMES = {  # (agent config, private?) -> the algorithm's name in tables and figures
    ("dp_bai", True): "DP-BAI",
    ("dp_bai", False): "DP-BAI (ε = ∞)",
    ("dp_od_linbai", True): "DP-OD-LinBAI",
    ("dp_od_linbai", False): "OD-LinBAI",
    ("dp_sh", True): "DP-SH",
    ("dp_sh", False): "SH",
}
STYLE = {"dp_bai": ("C0", "o"), "dp_od_linbai": ("C1", "s"), "dp_sh": ("C2", "^")}
SMALL = 1e-2  # below this error, the point is rerun with `seeds_small` repetitions
DECAY_MIN_ERRORS, DECAY_MAX = 5, 0.5  # a point of the decay regime (slope fits)
R2_MIN = 0.9
SLOPE_FACTOR = 4.0


@dataclass(frozen=True)
class Grid:
    Ts: tuple[int, ...]
    seeds: int
    seeds_small: int


GRIDS = {
    "quick": Grid((1000, 3000, 10_000), 300, 1000),
    "full": Grid((1000, 3000, 10_000, 30_000, 100_000), 2000, 10_000),
}
INSTANCES = {  # item -> (label, env overrides, in the quick reproduction)
    "R1": ("Soare-type, d = 4, K = 5, ω = 0.3", ["env.instance=soare", "env.omega=0.3"], True),
    "R2": (
        "Yang & Tan §5.1, d = 2 (lifted 3), K = 20",
        ["env.instance=od_linbai", "env.K=20", "env.phi_sd=0.09", "env.instance_seed=0"],
        False,
    ),
    "R3": (
        "unit sphere, d = 10 (lifted 11), K = 16, α = 0.1",
        ["env.instance=sphere", "env.K=16", "env.d=10", "env.alpha=0.1", "env.instance_seed=0"],
        True,
    ),
    "R4": (
        "unit sphere, d = 10 (lifted 11), K = 64, α = 0.1",
        ["env.instance=sphere", "env.K=64", "env.d=10", "env.alpha=0.1", "env.instance_seed=0"],
        False,
    ),
}


# --------------------------------------------------------------------------- running
def run_sweep(r: Reproduction, name: str, overrides: list[str]) -> list[Run]:
    """Run (or find finished) a sweep composed from `overrides`, as ``regretlab`` would:
    one run directory per job under ``runs/NAME/<job>``, the jobs in shared programs."""
    from hydra import compose, initialize_config_dir

    from experiments.run import _conf_dir, _prepare_job, execute_sweep
    from experiments.sweep import expand

    overrides = [*overrides, "plot=false", f"progress={str(r.progress).lower()}"]
    with initialize_config_dir(config_dir=_conf_dir(), version_base="1.3"):
        cfg = compose("config", overrides=overrides)
    out = r.out_dir / "runs" / name
    jobs = expand(cfg, overrides, out)
    exps = [_prepare_job(job) for job in jobs]
    summaries = execute_sweep(jobs, exps, out)
    return [Run(job.directory, s) for job, s in zip(jobs, summaries, strict=True)]


def _eps_list(eps: list[float]) -> str:
    return "[" + ",".join("inf" if math.isinf(e) else f"{e:g}" for e in eps) + "]"


def point_runs(
    r: Reproduction, item: str, env: list[str], agent: str, T: int, seeds: int, eps: list[float]
) -> dict[float, tuple[int, int]]:
    """{ε: (errors, repetitions)} of one agent at one T, the ε values swept in one program."""
    name = f"{item}/{agent}_T{T}_s{seeds}" + ("" if len(eps) == len(EPSILONS) else "_small")
    overrides = [
        "env=linear_bai",
        *env,
        f"agents=[{agent}]",
        f"horizon={T}",
        f"seeds={seeds}",
        "chunk_size=100",  # a fixed-budget run takes a few dozen steps: one chunk
        f"sweep.agents.{agent}.epsilon={_eps_list(eps)}",
    ]
    out = {}
    for e, run in zip(eps, run_sweep(r, name, overrides), strict=True):
        err = run.final(agent, "error")
        out[e] = (int(np.round(err.sum())), int(err.size))
    return out


def collect(r: Reproduction, item: str, env: list[str], g: Grid) -> pd.DataFrame:
    """Errors of every (agent, ε, T); points below `SMALL` rerun with `g.seeds_small`."""
    rows = []
    for T in g.Ts:
        for agent in AGENTS:
            res = point_runs(r, item, env, agent, T, g.seeds, list(EPSILONS))
            small = [e for e, (k, n) in res.items() if k / n < SMALL]
            if small and g.seeds_small > g.seeds:
                res.update(point_runs(r, item, env, agent, T, g.seeds_small, small))
            for e, (k, n) in res.items():
                rows.append({"agent": agent, "epsilon": e, "T": T, "errors": k, "n": n})
    df = pd.DataFrame(rows)
    df["error"] = df["errors"] / df["n"]
    lo, hi = clopper_pearson_ci(df["errors"].to_numpy(), df["n"].to_numpy())
    df["low"], df["high"] = lo, hi
    df["algorithm"] = [
        NAMES[(a, math.isfinite(e))] for a, e in zip(df.agent, df.epsilon, strict=True)
    ]
    return df


# --------------------------------------------------------------------------- analysis
def hardness(means: np.ndarray, d: int) -> tuple[float, float]:
    """(H_BAI, H_pri) = (max_{2<=i<=d∧K} i/Δ_(i)², max_{2<=i<=d∧K} i/Δ_(i)) (reconstruction)."""
    mu = np.sort(np.asarray(means, np.float64))[::-1]
    top = min(d, mu.size)
    i = np.arange(2, top + 1)
    gaps = mu[0] - mu[1:top]
    return float(np.max(i / gaps**2)), float(np.max(i / gaps))


def decay_fit(T: np.ndarray, k: np.ndarray, n: np.ndarray) -> dict:
    """Weighted least squares of log(error) on T over the decay points (>= 5 errors, error <=
    0.5); weights k/(1 - p) = 1/Var(log p̂) (delta method). Slope, its SE, R², points used."""
    p = k / n
    use = (k >= DECAY_MIN_ERRORS) & (p <= DECAY_MAX)
    out = {"points": int(use.sum()), "slope": np.nan, "se": np.nan, "r2": np.nan}
    if use.sum() < 2:
        return out
    x, y, w = T[use].astype(float), np.log(p[use]), k[use] / (1 - p[use])
    A = np.stack([x, np.ones_like(x)], 1) * np.sqrt(w)[:, None]
    coef, *_ = np.linalg.lstsq(A, y * np.sqrt(w), rcond=None)
    out["slope"] = float(coef[0])
    if use.sum() >= 3:
        resid = y - (coef[0] * x + coef[1])
        ybar = np.sum(w * y) / np.sum(w)
        out["r2"] = float(1 - np.sum(w * resid**2) / np.sum(w * (y - ybar) ** 2))
        dof = use.sum() - 2
        s2 = np.sum(w * resid**2) / dof
        xbar = np.sum(w * x) / np.sum(w)
        out["se"] = float(np.sqrt(s2 / np.sum(w * (x - xbar) ** 2)))
    return out


def _instance(env_overrides: list[str]) -> tuple[np.ndarray, int]:
    """(means, d) of the instance (the env built as the runs build it)."""
    from bandits.linear_bai import instance_arrays, linear_bai

    kw = {}
    for o in env_overrides:
        k, v = o.split("=", 1)
        k = k.removeprefix("env.")
        kw[k] = v if k == "instance" else (float(v) if "." in v else int(v))
    a, _, means = instance_arrays(linear_bai(**kw))
    return means, a.shape[1]


def item(r: Reproduction, key: str) -> None:
    label, env, in_quick = INSTANCES[key]
    g = GRIDS["quick" if r.quick else "full"]
    if r.quick and not in_quick:
        print(f"{key}: not in the quick reproduction (run without --quick)")
        return
    df = collect(r, key, env, g)
    means, d = _instance(env)
    h_bai, h_pri = hardness(means, d)
    fits = []
    for (agent, e), sub in df.groupby(["agent", "epsilon"]):
        sub = sub.sort_values("T")
        f = decay_fit(sub["T"].to_numpy(), sub["errors"].to_numpy(), sub["n"].to_numpy())
        H = h_bai + (h_pri / e if math.isfinite(e) else 0.0)
        fits.append(
            {
                "agent": agent,
                "epsilon": e,
                "algorithm": NAMES[(agent, math.isfinite(e))],
                **f,
                "H": H,
                "-slope·H": -f["slope"] * H,
            }
        )
    fits = pd.DataFrame(fits)
    _checks(r, key, df, fits)
    _tables(r, key, label, df, fits, h_bai, h_pri, g)
    r.figure(key, "error_vs_T", _figure(df, label))


def _checks(r: Reproduction, key: str, df: pd.DataFrame, fits: pd.DataFrame) -> None:
    def curve(agent, e):
        return df[(df.agent == agent) & (df.epsilon == e)].sort_values("T")

    src = "Chen et al., ICLR 2024: abstract and reviews (the paper's figures are unavailable)"
    gaps = {}
    for e in EPSILONS[:-1]:
        b, o = curve("dp_bai", e), curve("dp_od_linbai", e)
        worse = (b["low"].to_numpy() > o["high"].to_numpy()).any()
        better = (b["high"].to_numpy() < o["low"].to_numpy()).any()
        gaps[e] = float(
            np.mean(
                np.log(
                    (o["error"].to_numpy() + 1 / o["n"].to_numpy())
                    / (b["error"].to_numpy() + 1 / b["n"].to_numpy())
                )
            )
        )
        r.check(
            key,
            f"DP-BAI below DP-OD-LinBAI, ε = {e:g}",
            "; ".join(
                f"T={T}: {pb:.3g} vs {po:.3g}"
                for T, pb, po in zip(b["T"], b["error"], o["error"], strict=True)
            ),
            "never significantly above; significantly below at some T (95% CP intervals)",
            src,
            (not worse) and better,
        )
    r.check(
        key,
        "the DP-BAI / DP-OD-LinBAI gap grows as ε shrinks",
        f"mean log error ratio {gaps[0.1]:.2f} at ε = 0.1, {gaps[5.0]:.2f} at ε = 5",
        "larger at ε = 0.1 than at ε = 5",
        src,
        gaps[0.1] > gaps[5.0],
    )
    bai = fits[(fits.agent == "dp_bai") & (fits.points >= 3)]
    if len(bai):
        r.check(
            key,
            "log(error) linear in T (DP-BAI, curves with >= 3 decay points)",
            ", ".join(f"ε={e:g}: R² {x:.3f}" for e, x in zip(bai.epsilon, bai.r2, strict=True)),
            f"R² >= {R2_MIN} each",
            "Chen et al., ICLR 2024, abstract: error exp(-Θ(T/H))",
            bool((bai.r2 >= R2_MIN).all()),
        )
    else:
        print(f"{key}: no DP-BAI curve has 3 decay points at these sizes: linearity not checked")
    b = fits[(fits.agent == "dp_bai") & np.isinf(fits.epsilon)].iloc[0]
    o = fits[(fits.agent == "dp_od_linbai") & np.isinf(fits.epsilon)].iloc[0]
    if b.points >= 2 and o.points >= 2:
        ratio = b.slope / o.slope
        r.check(
            key,
            "ε = ∞: DP-BAI's exponent within a constant factor of OD-LinBAI's",
            f"slope ratio {ratio:.3g} ({b.slope:.3g} / {o.slope:.3g})",
            f"in [1/{SLOPE_FACTOR:g}, {SLOPE_FACTOR:g}]",
            "Chen et al., ICLR 2024, reviews (ε → ∞ comparison)",
            1 / SLOPE_FACTOR <= ratio <= SLOPE_FACTOR,
        )
    else:
        print(f"{key}: too few decay points at ε = ∞ for the exponent ratio (not checked)")


def _tables(r, key, label, df, fits, h_bai, h_pri, g) -> None:
    t = df.copy()
    t["ε"] = ["∞" if math.isinf(e) else f"{e:g}" for e in t.epsilon]
    t["error (95% CP)"] = [
        f"{p:.3g} [{lo:.2g}, {hi:.2g}]" for p, lo, hi in zip(t.error, t.low, t.high, strict=True)
    ]
    wide = t.pivot_table(
        index=["ε", "algorithm"], columns="T", values="error (95% CP)", aggfunc="first"
    ).reset_index()
    wide.columns = [f"T = {c}" if isinstance(c, int | np.integer) else c for c in wide.columns]
    r.table(
        key,
        "errors",
        wide,
        f"**{key}: error probability** on {label} (repetitions: {g.seeds}, {g.seeds_small} where "
        f"the error is below {SMALL:g}; exact Clopper–Pearson 95% intervals).",
    )
    f = fits.copy()
    f["ε"] = ["∞" if math.isinf(e) else f"{e:g}" for e in f.epsilon]
    f = f[["ε", "algorithm", "points", "slope", "se", "r2", "H", "-slope·H"]]
    r.table(
        key,
        "slopes",
        f,
        f"**{key}: fitted slope of log(error) against T** (weighted least squares over the decay "
        f"points: >= {DECAY_MIN_ERRORS} errors and error <= {DECAY_MAX}) beside the hardness "
        f"H = H_BAI + H_pri/ε, H_BAI = {h_bai:.4g}, H_pri = {h_pri:.4g} (reconstructed "
        "definitions, unverified); theory: -slope·H = Θ(1/log d).",
    )


def _figure(df: pd.DataFrame, label: str):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(
        1, len(EPSILONS), figsize=(3.3 * len(EPSILONS), 3.6), sharey=True, constrained_layout=True
    )
    floor = 0.5 / df["n"].max()
    for ax, e in zip(axes, EPSILONS, strict=True):
        for agent in AGENTS:
            c = df[(df.agent == agent) & (df.epsilon == e)].sort_values("T")
            color, marker = STYLE[agent]
            p = c["error"].to_numpy()
            y = np.where(p > 0, p, np.nan)
            ax.errorbar(
                c["T"],
                y,
                yerr=[y - c["low"], c["high"] - y],
                color=color,
                marker=marker,
                ms=4,
                capsize=2,
                label=NAMES[(agent, math.isfinite(e))],
            )
            zero = p == 0
            ax.scatter(c["T"][zero], c["high"][zero], marker="v", color=color, s=18)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_ylim(bottom=floor)
        ax.set_title("ε = ∞" if math.isinf(e) else f"ε = {e:g}")
        ax.set_xlabel("budget T")
    axes[0].set_ylabel("error probability (▼: CP upper bound, no error seen)")
    axes[0].legend(fontsize=7)
    axes[-1].legend(fontsize=7)
    fig.suptitle(label, fontsize=9)
    return fig


def r1(r: Reproduction) -> None:
    """R1: Soare-type instance."""
    item(r, "R1")


def r2(r: Reproduction) -> None:
    """R2: Yang & Tan 2022, §5.1 instance."""
    item(r, "R2")


def r3(r: Reproduction) -> None:
    """R3: unit-sphere instance, K = 16."""
    item(r, "R3")


def r4(r: Reproduction) -> None:
    """R4: unit-sphere instance, K = 64."""
    item(r, "R4")


ITEMS = {"R1": r1, "R2": r2, "R3": r3, "R4": r4}
