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
* R2: Yang & Tan 2022, §5.1 (d = 2 lifted to 3, K = 20, φ sd 0.09): the lift changes the run,
  not only the scale: d = 3 gives OD-LinBAI ⌈log2 3⌉ = 2 phases (keep 2, then 1) where the
  paper's d = 2 has one, with another budget split, and halves the gaps;
* R3, R4: unit-sphere arms (d = 10 lifted to 11, K = 16 and K = 64, α = 0.1).

Where DP-BAI and DP-OD-LinBAI can differ at all is computed before any run
(`privacy_noise_ratio`): the variance of the privacy noise in phase 1's estimate of the gap
between the best arm and the runner-up, DP-OD-LinBAI over DP-BAI at the same budget (both scale
as 1/(ε T)², so the ratio depends on the features only, up to rounding). DP-BAI's noise is
Σ_j α_ij Laplace(1/(ε n)) over its d Max-Det arms; DP-OD-LinBAI's least squares turns the
Laplace(1/(ε n_i)) of every design arm into Laplace(1/ε) terms in the normal equations, one per
support arm, so its noise grows with the support of the G-optimal design (up to d(d + 1)/2
arms). On R1 and R2 the support *is* the Max-Det collection (ratio 1.00: the two algorithms
coincide up to rounding), on R3 the ratio is 1.23 and on R4 2.10 (runner-up; up to 4.25 over
the other arms).

Grid. Full: T ∈ {10^3, 3·10^3, 10^4, 3·10^4, 10^5} (R4: also 500, 750, 2·10^3, 4·10^3,
8·10^3, where its curves decay), 2000 repetitions per point and 10^4 where the error is below
10^-2 (a second pass). Quick: R1 on T ∈ {10^3, 3·10^3, 10^4} and R4 on T ∈ {500, 750, 10^3,
2·10^3, 4·10^3, 8·10^3}, 1000 repetitions (R2, R3 run in the full reproduction).

Checks (the qualitative claims of the paper's abstract and reviews, fixed before running; each
comparison of two error probabilities is one-sided at level 0.05 with a Bonferroni correction
over the T grid; the power of the test at the observed rates is reported beside each failed
comparison, so that "not resolved at these sizes" is told apart from "not so"). The test:
every agent's sweep at a T runs the same number of repetitions from the same seed, so the
runs get the same run keys (`experiments.simulate`: ``split(key(seed), seeds)``; common
random numbers) and the two error indicators of a seed are *paired*: McNemar's exact test
(McNemar, Psychometrika 1947; the exact form is the binomial test of the discordant pairs,
`mcnemar_less`). Where the two points ran different numbers of repetitions (the full grid's
second pass at 10^4 for one agent only) the keys differ, the samples are independent, and the
test is Fisher's exact test (`fisher_less`).

* "DP-BAI markedly better than DP-OD-LinBAI at small ε", where the instance lets them differ
  (`privacy_noise_ratio` >= 1.5): for ε ∈ {0.1, 0.5}, DP-BAI's error significantly below
  DP-OD-LinBAI's at some T and significantly above at none; where they coincide by construction
  (ratio <= 1.05), the check is instead that no T shows a significant difference in either
  direction at any finite ε; in between, the comparison is reported, not checked;
* "DP-BAI better than DP-SH at small ε": the same one-sided test, ε ∈ {0.1, 0.5}, every instance;
* "the gap grows as ε shrinks" (instances with ratio >= 1.5): the mean over T of
  log((p_OD + 1/n)/(p_BAI + 1/n)) is larger at ε = 0.1 than at ε = 5;
* "log(error) about linear in T": for every DP-BAI curve with at least 3 points in the decay
  regime (>= 5 errors and error <= 0.5), the weighted least-squares fit of log(error) on T has
  R² >= 0.9 (curves with fewer points are reported, not checked);
* "as ε → ∞ DP-BAI is within a constant factor in the exponent of OD-LinBAI": the ratio of
  their fitted slopes lies in [1/4, 4] (checked where both have >= 2 decay points). On R4,
  where OD-LinBAI's error falls below 5 in 1000 by T = 750, both run at ε = ∞ on their own
  (`exponent_check`, quick and full): T ∈ {500, 750, 1000}, 10^4 repetitions each (5 to 250
  errors for OD-LinBAI), and the check is that the ratio's 95% interval (delta method on the
  two slopes' binomial standard errors) lies inside [1/4, 4]. The band: the claim is only "a
  constant factor", so its width is a choice, fixed before the dedicated runs; what the
  structure predicts is computed beside it (`sampling_noise_ratio`: phase 1's sampling
  variance of the estimated gap to the nearest arms, OD-LinBAI over DP-BAI, 1.00 on R1 and
  0.37-0.48 on R4, where least squares on the 47-arm design beats the 11 Max-Det means), and
  [1/4, 4] holds that prediction with a factor of ~1.5 to spare on R4 for what phase 1 does
  not decide (later phases, budget rounding) without admitting an order of magnitude.

Hardness. The fitted slope of log(error) against T is reported beside H = H_BAI + H_pri/ε with
the **reconstructed** (recalled, unverified) definitions H_BAI = max_{2 <= i <= d∧K} i/Δ_(i)²
and H_pri = max_{2 <= i <= d∧K} i/Δ_(i) (Δ_(i): gap of the i-th best arm; d: the features'
dimension); the theory's error bound is exp(−Θ(T/(H log d))), so −slope·H log2 d should stay
within constant factors across ε and instances. It is reported, not checked (the constants are
not known to us).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

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
SMALL_EPS = (0.1, 0.5)  # "small ε": where the paper's advantage is claimed
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
ALPHA = 0.05  # level of each comparison (Bonferroni over the T grid)
RATIO_DIFFER, RATIO_SAME = 1.5, 1.05  # privacy_noise_ratio: "can differ" / "coincide"


@dataclass(frozen=True)
class Grid:
    seeds: int
    seeds_small: int


GRIDS = {"quick": Grid(1000, 1000), "full": Grid(2000, 10_000)}
FULL_T = (1000, 3000, 10_000, 30_000, 100_000)


@dataclass(frozen=True)
class Instance:
    label: str
    env: tuple[str, ...]  # env overrides
    quick: tuple[int, ...]  # T grid of the quick reproduction (empty: not in it)
    full: tuple[int, ...] = FULL_T
    exponent_T: tuple[int, ...] = ()  # dedicated ε = ∞ runs for the exponent check (both grids)


INSTANCES = {
    "R1": Instance(
        "Soare-type, d = 4, K = 5, ω = 0.3",
        ("env.instance=soare", "env.omega=0.3"),
        (1000, 3000, 10_000),
    ),
    "R2": Instance(
        "Yang & Tan §5.1, d = 2 (lifted 3), K = 20",
        ("env.instance=od_linbai", "env.K=20", "env.phi_sd=0.09", "env.instance_seed=0"),
        (),
    ),
    "R3": Instance(
        "unit sphere, d = 10 (lifted 11), K = 16, α = 0.1",
        ("env.instance=sphere", "env.K=16", "env.d=10", "env.alpha=0.1", "env.instance_seed=0"),
        (),
    ),
    "R4": Instance(
        "unit sphere, d = 10 (lifted 11), K = 64, α = 0.1",
        ("env.instance=sphere", "env.K=64", "env.d=10", "env.alpha=0.1", "env.instance_seed=0"),
        (500, 750, 1000, 2000, 4000, 8000),
        tuple(sorted({*FULL_T, 500, 750, 2000, 4000, 8000})),
        exponent_T=(500, 750, 1000),
    ),
}
EXPONENT_SEEDS = 10_000  # repetitions of the dedicated ε = ∞ runs (`exponent_runs`)
EXPONENT_Z = 1.96  # the ratio's interval: ± 1.96 SE of its log (delta method)


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
    r: Reproduction,
    item: str,
    env: list[str],
    agent: str,
    T: int,
    seeds: int,
    eps: list[float],
    tag: str | None = None,
) -> dict[float, np.ndarray]:
    """{ε: per-seed error indicators (ordered by seed)} of one agent at one T, the ε values
    swept in one program (`tag`: the run directory's suffix; default "" for every ε, "_small"
    for a second pass)."""
    if tag is None:
        tag = "" if len(eps) == len(EPSILONS) else "_small"
    name = f"{item}/{agent}_T{T}_s{seeds}{tag}"
    overrides = [
        "env=linear_bai",
        *env,
        f"agents=[{agent}]",
        f"horizon={T}",
        f"seeds={seeds}",
        f"sweep.agents.{agent}.epsilon={_eps_list(eps)}",
    ]
    out = {}
    for e, run in zip(eps, run_sweep(r, name, overrides), strict=True):
        out[e] = np.round(run.final(agent, "error")).astype(bool)
    return out


Indicators = dict[tuple[str, float, int], np.ndarray]  # (agent, ε, T) -> per-seed errors


def collect(
    r: Reproduction, item: str, env: list[str], Ts: tuple[int, ...], g: Grid
) -> tuple[pd.DataFrame, Indicators]:
    """Errors of every (agent, ε, T), and the per-seed error indicators behind them (for the
    paired tests, `comparisons`); points below `SMALL` rerun with `g.seeds_small`."""
    rows, indicators = [], {}
    for T in Ts:
        for agent in AGENTS:
            res = point_runs(r, item, env, agent, T, g.seeds, list(EPSILONS))
            small = [e for e, x in res.items() if x.mean() < SMALL]
            if small and g.seeds_small > g.seeds:
                res.update(point_runs(r, item, env, agent, T, g.seeds_small, small))
            for e, x in res.items():
                indicators[(agent, e, T)] = x
                rows.append(
                    {"agent": agent, "epsilon": e, "T": T, "errors": int(x.sum()), "n": x.size}
                )
    df = pd.DataFrame(rows)
    df["error"] = df["errors"] / df["n"]
    lo, hi = clopper_pearson_ci(df["errors"].to_numpy(), df["n"].to_numpy())
    df["low"], df["high"] = lo, hi
    df["algorithm"] = [
        NAMES[(a, math.isfinite(e))] for a, e in zip(df.agent, df.epsilon, strict=True)
    ]
    return df, indicators


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
    0.5); weights k/(1 - p) = 1/Var(log p̂) (delta method). Slope, its SE from the residuals
    (>= 3 points) and from the weights alone (``se_model``: the binomial sampling error of the
    slope, >= 2 points), R², points used."""
    p = k / n
    use = (k >= DECAY_MIN_ERRORS) & (p <= DECAY_MAX)
    out = {"points": int(use.sum()), "slope": np.nan, "se": np.nan, "r2": np.nan}
    out["se_model"] = np.nan
    if use.sum() < 2:
        return out
    x, y, w = T[use].astype(float), np.log(p[use]), k[use] / (1 - p[use])
    A = np.stack([x, np.ones_like(x)], 1) * np.sqrt(w)[:, None]
    coef, *_ = np.linalg.lstsq(A, y * np.sqrt(w), rcond=None)
    out["slope"] = float(coef[0])
    # the SE the binomial sampling alone gives (weights = inverse variances): any >= 2 points
    out["se_model"] = float(1 / np.sqrt(np.sum(w * (x - np.sum(w * x) / np.sum(w)) ** 2)))
    if use.sum() >= 3:
        resid = y - (coef[0] * x + coef[1])
        ybar = np.sum(w * y) / np.sum(w)
        out["r2"] = float(1 - np.sum(w * resid**2) / np.sum(w * (y - ybar) ** 2))
        dof = use.sum() - 2
        s2 = np.sum(w * resid**2) / dof
        xbar = np.sum(w * x) / np.sum(w)
        out["se"] = float(np.sqrt(s2 / np.sum(w * (x - xbar) ** 2)))
    return out


def fisher_less(k1: int, n1: int, k2: int, n2: int) -> float:
    """One-sided p-value of Fisher's exact test of p1 < p2 (k errors in n runs each)."""
    from scipy import stats

    return float(stats.fisher_exact([[k1, n1 - k1], [k2, n2 - k2]], alternative="less").pvalue)


def mcnemar_less(x1: np.ndarray, x2: np.ndarray) -> float:
    """One-sided p-value of McNemar's exact test of p1 < p2 for paired error indicators (the
    same seeds, hence the same run keys; McNemar, Psychometrika 1947): given the b + c
    discordant pairs (b: only the first wrong, c: only the second), b ~ Binomial(b + c, 1/2)
    under p1 = p2, and the p-value is P[B <= b] (1 without discordant pairs)."""
    from scipy import stats

    x1, x2 = np.asarray(x1, bool), np.asarray(x2, bool)
    if x1.shape != x2.shape:
        raise ValueError(f"paired indicators need the same seeds (got {x1.size} and {x2.size})")
    b, c = int(np.sum(x1 & ~x2)), int(np.sum(~x1 & x2))
    if b + c == 0:
        return 1.0
    return float(stats.binomtest(b, b + c, 0.5, alternative="less").pvalue)


def power_paired_less(x1: np.ndarray, x2: np.ndarray, alpha: float) -> tuple[float, float]:
    """(power, n for 80% power) of McNemar's one-sided level-`alpha` test of p1 < p2 if the
    observed discordance were the truth: p_b, p_c the shares of pairs where only the first /
    only the second is wrong, ψ = p_b + p_c, Δ = p_c - p_b; the normal approximation
    power = Φ((√n Δ - z_{1-α} √ψ) / √(ψ - Δ²)), n_80 = ((z_{1-α} √ψ + z_0.8 √(ψ - Δ²)) / Δ)²
    (Connor, Biometrics 1987); (alpha, inf) when Δ <= 0."""
    from scipy import stats

    x1, x2 = np.asarray(x1, bool), np.asarray(x2, bool)
    n = x1.size
    pb, pc = np.mean(x1 & ~x2), np.mean(~x1 & x2)
    psi, delta = pb + pc, pc - pb
    if delta <= 0:
        return alpha, math.inf
    z = stats.norm.ppf(1 - alpha)
    sd = math.sqrt(max(psi - delta**2, 1e-300))
    power = float(stats.norm.cdf((math.sqrt(n) * delta - z * math.sqrt(psi)) / sd))
    need = ((z * math.sqrt(psi) + stats.norm.ppf(0.8) * sd) / delta) ** 2
    return power, float(math.ceil(need))


def power_less(p1: float, p2: float, n1: int, n2: int, alpha: float) -> tuple[float, float]:
    """(power, n per algorithm for 80% power) of a one-sided level-`alpha` test of p1 < p2 when
    the true rates are (p1, p2): the normal approximation on Cohen's h = 2 asin√p2 − 2 asin√p1
    (power = Φ(h √(n1 n2/(n1 + n2)) − z_{1−α})); (alpha, inf) when p1 >= p2."""
    from scipy import stats

    h = 2 * math.asin(math.sqrt(p2)) - 2 * math.asin(math.sqrt(p1))
    if h <= 0:
        return alpha, math.inf
    z = stats.norm.ppf(1 - alpha)
    power = float(stats.norm.cdf(h * math.sqrt(n1 * n2 / (n1 + n2)) - z))
    need = 2 * ((z + stats.norm.ppf(0.8)) / h) ** 2
    return power, float(math.ceil(need))


def privacy_noise_ratio(features: np.ndarray, means: np.ndarray, T: int) -> dict:
    """Phase 1's privacy-noise variance of the estimated gap μ̂_best − μ̂_i, DP-OD-LinBAI over
    DP-BAI, at budget T (module docstring): i = the runner-up, and the largest over i.

    DP-BAI: μ̂_i = Σ_j α_ij μ̃_j over the Max-Det arms B_1, each with Laplace(1/(ε n)),
    n = ⌊T/(M |B_1|)⌋: variance 2 ‖α_best − α_i‖² / (ε n)². DP-OD-LinBAI: θ̂ = V^- Σ_s n_s μ̃_s a_s
    over the design's support (n_s = ⌈π_s m⌉, V = Σ n_s a_s a_s^T), so the noise of
    ⟨a_best − a_i, θ̂⟩ is Σ_s w_s Laplace(1/ε) with w_s = (a_best − a_i)^T V^- a_s: variance
    2 ‖w‖² / ε². ε cancels in the ratio.
    """
    from privacy.dpbai import coefficients, make_plan, max_det_subset
    from privacy.od_linbai import plan

    a = np.asarray(features, np.float64)
    order = np.argsort(means)[::-1]
    basis, _ = max_det_subset(a)
    n = T // (make_plan(a).phases * len(basis))
    alpha = coefficients(a, basis)
    rows = tuple(tuple(float(x) for x in r) for r in a)
    alloc = np.asarray(plan(rows, int(T)).first_alloc, np.float64)
    sup = alloc > 0
    v_inv = np.linalg.pinv((a[sup] * alloc[sup, None]).T @ a[sup])
    best = order[0]
    ratios = []
    for i in order[1:]:
        bai = 2 * np.sum((alpha[best] - alpha[i]) ** 2) / n**2
        w = (a[best] - a[i]) @ v_inv @ a[sup].T
        ratios.append(2 * np.sum(w**2) / bai)
    return {
        "runner_up": float(ratios[0]),
        "max": float(max(ratios)),
        "support": int(sup.sum()),
        "max_det": len(basis),
    }


def sampling_noise_ratio(features: np.ndarray, means: np.ndarray, T: int) -> dict:
    """Phase 1's *sampling*-noise variance of the estimated gap μ̂_best − μ̂_i without privacy
    noise, OD-LinBAI over DP-BAI, at budget T (Bernoulli rewards, variance μ(1 − μ) each):
    i = the runner-up, and the range over the three nearest competitors.

    DP-BAI: μ̂_i = Σ_j α_ij μ̄_j over the Max-Det arms, n pulls each: variance
    Σ_j (α_best,j − α_ij)² μ_j (1 − μ_j) / n. OD-LinBAI: θ̂ = V^-1 Σ_s a_s S_s, S_s the sum of
    n_s rewards of design arm s, V = Σ n_s a_s a_s^T: variance Σ_s w_s² n_s μ_s (1 − μ_s),
    w_s = (a_best − a_i)^T V^-1 a_s. A fixed-budget error decays as exp(−T Δ²/(c · T·variance))
    (T·variance does not depend on T up to rounding), so the ratio predicts the slope ratio of
    log(error) against T, DP-BAI over OD-LinBAI, as far as phase 1 decides the error.
    """
    from privacy.dpbai import coefficients, make_plan, max_det_subset
    from privacy.od_linbai import plan

    a = np.asarray(features, np.float64)
    mu = np.asarray(means, np.float64)
    order = np.argsort(mu)[::-1]
    basis, _ = max_det_subset(a)
    n = T // (make_plan(a).phases * len(basis))
    alpha = coefficients(a, basis)
    alloc = np.asarray(plan(tuple(tuple(float(x) for x in r) for r in a), int(T)).first_alloc)
    sup = alloc > 0
    v_inv = np.linalg.pinv((a[sup] * alloc[sup, None]).T @ a[sup])
    var = mu * (1 - mu)
    best = order[0]
    ratios = []
    for i in order[1:4]:
        bai = np.sum((alpha[best] - alpha[i]) ** 2 * var[basis]) / n
        w = (a[best] - a[i]) @ v_inv @ a[sup].T
        ratios.append(float(np.sum(w**2 * alloc[sup] * var[sup]) / bai))
    return {"runner_up": ratios[0], "low": min(ratios), "high": max(ratios)}


def _instance(env_overrides) -> tuple[np.ndarray, np.ndarray]:
    """(features, means) of the instance (the env built as the runs build it)."""
    from bandits.linear_bai import instance_arrays, linear_bai

    kw = {}
    for o in env_overrides:
        k, v = o.split("=", 1)
        k = k.removeprefix("env.")
        kw[k] = v if k == "instance" else (float(v) if "." in v else int(v))
    a, _, means = instance_arrays(linear_bai(**kw))
    return a, means


def item(r: Reproduction, key: str) -> None:
    inst = INSTANCES[key]
    g = GRIDS["quick" if r.quick else "full"]
    Ts = inst.quick if r.quick else inst.full
    if not Ts:
        print(f"{key}: not in the quick reproduction (run without --quick)")
        return
    features, means = _instance(inst.env)
    d = features.shape[1]
    ratio = privacy_noise_ratio(features, means, Ts[-1])
    print(
        f"{key}: phase-1 privacy-noise variance ratio DP-OD-LinBAI / DP-BAI"
        f" {ratio['runner_up']:.2f} (runner-up; max {ratio['max']:.2f}); design support"
        f" {ratio['support']} arms, Max-Det collection {ratio['max_det']}"
    )
    df, indicators = collect(r, key, list(inst.env), Ts, g)
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
                "-slope·H·log2 d": -f["slope"] * H * math.log2(d),
            }
        )
    fits = pd.DataFrame(fits)
    comps = comparisons(df, indicators)
    _checks(r, key, df, fits, comps, ratio, dedicated=bool(inst.exponent_T))
    _tables(r, key, inst.label, df, fits, comps, h_bai, h_pri, g, ratio)
    r.figure(key, "error_vs_T", _figure(df, inst.label))
    if inst.exponent_T:
        exponent_check(r, key, list(inst.env), inst.exponent_T, features, means)


def exponent_runs(r: Reproduction, key: str, env: list[str], Ts: tuple[int, ...]) -> pd.DataFrame:
    """DP-BAI and OD-LinBAI (DP-OD-LinBAI at ε = ∞) at ε = ∞ only, `EXPONENT_SEEDS`
    repetitions at each T of `Ts` (its own run directories, ``..._inf``)."""
    rows = []
    for agent in AGENTS[:2]:
        for T in Ts:
            (x,) = point_runs(r, key, env, agent, T, EXPONENT_SEEDS, [math.inf], "_inf").values()
            k, n = int(x.sum()), x.size
            rows.append({"agent": agent, "algorithm": NAMES[(agent, False)], "T": T,
                         "errors": k, "n": n, "error": k / n})  # fmt: skip
    return pd.DataFrame(rows)


def exponent_ratio(runs: pd.DataFrame) -> dict:
    """The slope ratio DP-BAI / OD-LinBAI of log(error) against T (`decay_fit` of each) and its
    interval: ratio · exp(± EXPONENT_Z · SE of its log), the SE from the two slopes' binomial
    SEs (``se_model``) by the delta method; NaN where either has < 2 decay points."""
    fit = {}
    for agent in AGENTS[:2]:
        c = runs[runs.agent == agent].sort_values("T")
        fit[agent] = decay_fit(c["T"].to_numpy(), c["errors"].to_numpy(), c["n"].to_numpy())
    b, o = fit["dp_bai"], fit["dp_od_linbai"]
    ratio = b["slope"] / o["slope"]
    se_log = math.hypot(b["se_model"] / b["slope"], o["se_model"] / o["slope"])
    lo, hi = ratio * math.exp(-EXPONENT_Z * se_log), ratio * math.exp(EXPONENT_Z * se_log)
    return {"ratio": ratio, "low": lo, "high": hi, "bai": b, "od": o}


def exponent_check(r, key, env, Ts, features, means) -> None:
    """ "As ε → ∞ DP-BAI approaches OD-LinBAI within a constant factor in the exponent": the
    slope ratio's 95% interval inside [1/SLOPE_FACTOR, SLOPE_FACTOR] (module docstring), with
    the phase-1 sampling-variance prediction (`sampling_noise_ratio`) beside it."""
    runs = exponent_runs(r, key, env, Ts)
    e = exponent_ratio(runs)
    pred = sampling_noise_ratio(features, means, max(Ts))
    slopes = f"slopes {e['bai']['slope']:.3g} / {e['od']['slope']:.3g}"
    errs = "; ".join(
        f"{a} {', '.join(f'{k}/{n}' for k, n in zip(c.errors, c.n, strict=True))}"
        for a, c in runs.groupby("algorithm", sort=False)
    )
    points = min(e["bai"]["points"], e["od"]["points"])
    ok = points >= 2 and e["low"] >= 1 / SLOPE_FACTOR and e["high"] <= SLOPE_FACTOR
    r.check(
        key,
        "ε = ∞: DP-BAI's exponent within a constant factor of OD-LinBAI's (dedicated runs)",
        f"slope ratio {e['ratio']:.3g} [{e['low']:.3g}, {e['high']:.3g}] ({slopes}; errors at"
        f" T = {', '.join(map(str, Ts))}: {errs})",
        f"95% interval inside [1/{SLOPE_FACTOR:g}, {SLOPE_FACTOR:g}]",
        "Chen et al., ICLR 2024, reviews (ε → ∞ comparison)",
        bool(ok),
        f"phase-1 sampling-variance prediction {pred['runner_up']:.2f} (runner-up; "
        f"{pred['low']:.2f}-{pred['high']:.2f} over the 3 nearest arms)",
    )
    t = runs.copy()
    t["slope"] = [e["bai" if a == "dp_bai" else "od"]["slope"] for a in t.agent]
    r.table(
        key,
        "exponent",
        t[["algorithm", "T", "errors", "n", "error", "slope"]],
        f"**{key}: the ε = ∞ exponent** ({EXPONENT_SEEDS} repetitions per point): slope ratio"
        f" DP-BAI / OD-LinBAI {e['ratio']:.3g}, 95% interval [{e['low']:.3g}, {e['high']:.3g}];"
        f" predicted from phase 1's sampling variances {pred['runner_up']:.2f}"
        f" ({pred['low']:.2f}-{pred['high']:.2f}).",
    )


def comparisons(df: pd.DataFrame, indicators: Indicators) -> pd.DataFrame:
    """DP-BAI against DP-OD-LinBAI and DP-SH at every (ε, T): the error rates, the one-sided
    p-values both ways and the power (and n for 80%) of the test of "DP-BAI lower" at the
    observed rates, at the Bonferroni level ALPHA / |T|. `indicators`: the per-seed errors of
    `collect`. Two points with the same repetitions ran on the same run keys: paired, McNemar's
    exact test (`mcnemar_less`, `power_paired_less`); otherwise independent samples, Fisher's
    exact test (`fisher_less`, `power_less`). The ``test`` column says which."""
    level = ALPHA / df["T"].nunique()
    rows = []
    for e in EPSILONS:
        for other in AGENTS[1:]:
            for T in sorted(df["T"].unique()):
                where = {"epsilon": e, "other": other, "T": int(T), "level": level}
                bai, oth = indicators[("dp_bai", e, T)], indicators[(other, e, T)]
                rows.append(where | compare(bai, oth, level))
    cols = ["epsilon", "other", "T", "p_bai", "p_other", "test", "p_lower", "p_higher"]
    return pd.DataFrame(rows)[[*cols, "power", "n_80", "level", "n_bai", "n_other"]]


def compare(bai: np.ndarray, other: np.ndarray, level: float) -> dict:
    """One comparison of `comparisons`: paired (McNemar) when the two indicator vectors come
    from the same seeds (the same length: the same run keys), else independent (Fisher)."""
    kb, nb, ko, no = int(bai.sum()), bai.size, int(other.sum()), other.size
    if nb == no:
        power, need = power_paired_less(bai, other, level)
        lower, higher = mcnemar_less(bai, other), mcnemar_less(other, bai)
        test = "McNemar"
    else:
        power, need = power_less(kb / nb, ko / no, nb, no, level)
        lower, higher = fisher_less(kb, nb, ko, no), fisher_less(ko, no, kb, nb)
        test = "Fisher"
    return {
        "p_bai": kb / nb,
        "p_other": ko / no,
        "n_bai": nb,
        "n_other": no,
        "test": test,
        "p_lower": lower,
        "p_higher": higher,
        "power": power,
        "n_80": need,
    }


def mean_log_ratio(c: pd.DataFrame) -> tuple[float, float]:
    """(g, var g): g = the mean over the T grid of ln((p_other + 1/n) / (p_bai + 1/n)) (1/n
    keeps zero rates finite), and its delta-method variance, each rate's binomial variance
    p(1 - p)/n scaled by 1/(p + 1/n)^2 and the two rates of a point taken as independent (their
    paired errors, on common run keys, correlate positively, so this overstates the variance)."""
    pb, nb = c.p_bai.to_numpy(), c.n_bai.to_numpy()
    po, no = c.p_other.to_numpy(), c.n_other.to_numpy()
    lr = np.log((po + 1 / no) / (pb + 1 / nb))
    var = po * (1 - po) / no / (po + 1 / no) ** 2 + pb * (1 - pb) / nb / (pb + 1 / nb) ** 2
    return float(lr.mean()), float(var.sum() / lr.size**2)


def _detail(c: pd.DataFrame) -> str:
    return "; ".join(
        f"T={t}: {pb:.3g} vs {po:.3g} (p={pl:.2g})"
        for t, pb, po, pl in zip(c["T"], c.p_bai, c.p_other, c.p_lower, strict=True)
    )


def _power_note(c: pd.DataFrame) -> str:
    """Where no T was significant: the best power at the observed rates, and the n it needs."""
    i = int(np.argmax(c["power"].to_numpy()))
    row = c.iloc[i]
    if not math.isfinite(row.n_80):
        return "DP-BAI's observed error is not below at any T (power moot)"
    return (
        f"power at the observed rates {row.power:.2f} (T={row['T']}); 80% power needs"
        f" ~{row.n_80:.0f} repetitions per algorithm"
    )


def _checks(r, key, df, fits, comps, ratio, dedicated: bool = False) -> None:
    src = "Chen et al., ICLR 2024: abstract and reviews (the paper's figures are unavailable)"
    level = comps["level"].iloc[0]
    kinds = " / ".join(sorted(set(comps["test"]), reverse=True))  # McNemar (paired), Fisher
    test = f"one-sided {kinds} exact, level {ALPHA:g}/{df['T'].nunique()} per T (Bonferroni)"
    rr = ratio["runner_up"]
    why = f"phase-1 privacy-noise variance ratio {rr:.2f}"

    def sel(other, e):
        return comps[(comps.other == other) & (comps.epsilon == e)].sort_values("T")

    def better_check(other, e, name):
        c = sel(other, e)
        below = bool((c.p_lower < level).any())
        above = bool((c.p_higher < level).any())
        ok = below and not above
        note = "" if ok else ("significantly above at some T" if above else _power_note(c))
        r.check(
            key,
            f"DP-BAI markedly better than {name}, ε = {e:g}",
            _detail(c),
            f"significantly below at some T, above at none ({test})",
            src,
            ok,
            note,
        )

    for e in SMALL_EPS:
        better_check("dp_sh", e, "DP-SH")
    if rr >= RATIO_DIFFER:
        for e in SMALL_EPS:
            better_check("dp_od_linbai", e, "DP-OD-LinBAI")
        gaps = {e: mean_log_ratio(sel("dp_od_linbai", e)) for e in (0.1, 5.0)}
        (g_small, v_small), (g_large, v_large) = gaps[0.1], gaps[5.0]
        z = (g_small - g_large) / math.sqrt(v_small + v_large)
        r.check(
            key,
            "the DP-BAI / DP-OD-LinBAI gap grows as ε shrinks",
            f"mean log error ratio {g_small:.2f} at ε = 0.1, {g_large:.2f} at ε = 5 (z = {z:.2f})",
            f"larger at ε = 0.1 than at ε = 5, z >= {NormalDist().inv_cdf(1 - ALPHA):.3g}"
            f" (one-sided, level {ALPHA:g}; `mean_log_ratio`)",
            src,
            z >= NormalDist().inv_cdf(1 - ALPHA),
            why,
        )
    elif rr <= RATIO_SAME:
        c = comps[(comps.other == "dp_od_linbai") & np.isfinite(comps.epsilon)]
        n_eps = c["epsilon"].nunique()  # Bonferroni over ε too: every (ε, T) point is a test
        hit = c[(c.p_lower < level / (2 * n_eps)) | (c.p_higher < level / (2 * n_eps))]
        r.check(
            key,
            "DP-BAI and DP-OD-LinBAI coincide here (every finite ε)",
            f"{len(hit)} of {len(c)} (ε, T) points differ significantly"
            + ("" if hit.empty else ": " + _detail(hit)),
            f"none (two-sided {kinds} exact, level {ALPHA:g}/({df['T'].nunique()} T x {n_eps} ε)"
            " per point)",
            "structure: the G-optimal design's support is the Max-Det collection",
            hit.empty,
            why + f" (design support {ratio['support']} = Max-Det {ratio['max_det']} arms)",
        )
    else:
        r.skip(
            key,
            "DP-BAI against DP-OD-LinBAI",
            f"{why}, between {RATIO_SAME} and {RATIO_DIFFER}: reported, not checked",
        )
    bai = fits[(fits.agent == "dp_bai") & (fits.points >= 3)]
    if len(bai):
        r.check(
            key,
            "log(error) linear in T (DP-BAI, curves with >= 3 decay points)",
            ", ".join(
                f"ε={'∞' if math.isinf(e) else f'{e:g}'}: R² {x:.3f}"
                for e, x in zip(bai.epsilon, bai.r2, strict=True)
            ),
            f"R² >= {R2_MIN} each",
            "Chen et al., ICLR 2024, abstract: error exp(-Θ(T/H))",
            bool((bai.r2 >= R2_MIN).all()),
        )
    else:
        r.skip(key, "log(error) linear in T", "no DP-BAI curve has 3 decay points at these sizes")
    if dedicated:  # the ε = ∞ exponent is checked on its own runs (`exponent_check`)
        return
    b = fits[(fits.agent == "dp_bai") & np.isinf(fits.epsilon)].iloc[0]
    o = fits[(fits.agent == "dp_od_linbai") & np.isinf(fits.epsilon)].iloc[0]
    if b.points >= 2 and o.points >= 2:
        ratio_s = b.slope / o.slope
        r.check(
            key,
            "ε = ∞: DP-BAI's exponent within a constant factor of OD-LinBAI's",
            f"slope ratio {ratio_s:.3g} ({b.slope:.3g} / {o.slope:.3g})",
            f"in [1/{SLOPE_FACTOR:g}, {SLOPE_FACTOR:g}]",
            "Chen et al., ICLR 2024, reviews (ε → ∞ comparison)",
            1 / SLOPE_FACTOR <= ratio_s <= SLOPE_FACTOR,
        )
    else:
        r.skip(key, "ε = ∞ exponent ratio", "too few decay points at ε = ∞")


def _eps_label(e: float) -> str:
    return "∞" if math.isinf(e) else f"{e:g}"


def _tables(r, key, label, df, fits, comps, h_bai, h_pri, g, ratio) -> None:
    t = df.copy()
    t["ε"] = [_eps_label(e) for e in t.epsilon]
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
        f"the error is below {SMALL:g}; exact Clopper–Pearson 95% intervals). Phase-1 "
        f"privacy-noise variance ratio DP-OD-LinBAI / DP-BAI: {ratio['runner_up']:.2f} "
        f"(runner-up), {ratio['max']:.2f} (largest); design support {ratio['support']} arms, "
        f"Max-Det collection {ratio['max_det']}.",
    )
    f = fits.copy()
    f["ε"] = [_eps_label(e) for e in f.epsilon]
    f = f[["ε", "algorithm", "points", "slope", "se", "r2", "H", "-slope·H·log2 d"]]
    r.table(
        key,
        "slopes",
        f,
        f"**{key}: fitted slope of log(error) against T** (weighted least squares over the decay "
        f"points: >= {DECAY_MIN_ERRORS} errors and error <= {DECAY_MAX}) beside the hardness "
        f"H = H_BAI + H_pri/ε, H_BAI = {h_bai:.4g}, H_pri = {h_pri:.4g} (reconstructed "
        "definitions, unverified); theory: error = exp(-Θ(T/(H log d))), so -slope·H·log2 d "
        "should be of order one and similar across ε.",
    )
    c = comps.copy()
    c["ε"] = [_eps_label(e) for e in c.epsilon]
    c["against"] = [NAMES[(o, math.isfinite(e))] for o, e in zip(c.other, c.epsilon, strict=True)]
    cols = ["ε", "against", "T", "p_bai", "p_other", "test", "p_lower", "p_higher", "power"]
    c = c[[*cols, "n_80"]]
    r.table(
        key,
        "comparisons",
        c,
        f"**{key}: DP-BAI against each baseline** (p_bai, p_other: error rates; test: McNemar's "
        "exact test where both ran on the same seeds (paired: the same run keys), Fisher's "
        "where the repetitions differ; p_lower / p_higher: its one-sided p-values of DP-BAI "
        f"lower / higher; power: of the test of 'DP-BAI lower' at level {ALPHA:g}/"
        f"{df['T'].nunique()} if the observed rates (paired: the observed discordance) were the "
        "truth (normal approximation), n_80: repetitions per algorithm for 80% power).",
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
