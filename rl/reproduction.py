"""The reproduction of Zhou, Wang & Du, "Horizon-Free and Variance-Dependent Reinforcement Learning
for Latent Markov Decision Processes" (ICML 2023, arXiv:2210.11604): ``regretlab-reproduce
latent_mdp_zhou2023`` ("Reproduction" in docs/latent_mdp.md).

The paper is theoretical: as far as we could establish (its abstract and the opening of §3 were
available to us) it has no experiments, so each item checks a *claim* of its abstract with the
learners as reconstructed in `rl.optimistic` and `rl.posterior` (bonus constants, trigger and clip
after MVP, Zhang, Ji & Du, COLT 2021, Algorithm 1: reconstructed, see their docstrings). The
claims: regret Õ(√(Var* M Γ S A K)) — √K in the number of episodes K, only logarithmic in the
horizon H ("horizon-free"), √Var* in the variance, √(MΓSA) in the sizes — against L-UCRL's
Õ(√(M S² A H³ K)) (Kwon, Efroni, Caramanis & Mannor, NeurIPS 2021) rescaled to episode totals
≤ 1, i.e. Õ(√(M S² A H K)). Every threshold is stated below, before the run; nothing is tuned to
pass. The bounds are upper bounds with a lower-order term (polynomial in M, S, A, ι, independent
of K); at the K that exact planning over histories allows the lower-order term can dominate, and
the checks then fail as measured.

**Pseudo-regret.** Every curve is the exact pseudo-regret Σ_k (V* − V^{π_k}), π_k the learner's
policy in episode k evaluated exactly in the true LMDP (`rl.optimistic.evaluate_policy`), V* the
optimal history-dependent value (`rl.planning`). The engine records the same quantity as the
env's primary metric ``pseudo_regret`` (`rl.latent_mdp.LatentMDP.agent_metrics`), but only as
cumulative totals on its recording grid; the items need every episode's value (slopes, tail
windows), so they run the measurement wrapper `rl.optimistic.PseudoRegret` (which keeps the
per-episode curve and equals the engine's metric, tested) through the engine's one rollout
(`experiments.rollout.rollout`, jit + vmap over seeds, seed s's run key
``split(key(seed), seeds)[s]`` as in ``regretlab``), which also returns the *realised* regret
(the env's ``regret`` metric): E1 checks that the two agree in expectation.

**Slopes and convergence.** A slope of the cumulative regret over k ∈ [K/10, K] is dominated by
what was paid before K/10: a learner paying 0.15 per episode for 2000 episodes and 0.01 per
episode ever after (linear regret) has slope 0.20 at K = 2·10⁴. Each slope check of a claimed
rate K^α therefore also asks that the per-episode pseudo-regret falls: its mean over the last
K/10 episodes divided by its mean over [K/10, K/5] (95% bootstrap interval over seeds) must reach
ρ(α) = (1 − 0.9^α)/(0.1^α (2^α − 1)), the ratio of exact regret c k^α (ρ(1/2) = 0.39,
ρ(0.2) = 0.22; 1 for linear regret) (`tail_ratio`, `rate_ratio`, `converges_like`).

* E1 (`regret_vs_k`): exact pseudo-regret against the number of episodes K (the √K claim). Garnet
  M = 2, S = 3, A = 2, H = 4, Γ = 2 (``instance_seed=1``: V* = 0.7446 > best Markov policy 0.6722,
  so the history matters). Learners at the theory constants (``bonus_scale = 1``) and tuned. Checks:
  (a) each optimistic learner's log-log slope of the mean cumulative pseudo-regret over k ∈
  [K/10, K] is at most 1/2 (its 95% bootstrap interval over seeds reaches 0.5 or below) and its
  per-episode pseudo-regret falls accordingly (last K/10 ÷ [K/10, K/5] reaches ρ(1/2), "Slopes and
  convergence"): the Õ(√K) upper bound; (b) the tuned value-optimistic learner's slope ≈ 1/2 ([0.4,
  0.6] overlaps its interval): the √K shape expected at large K; (c) context-agnostic UCBVI is
  linear: slope ≥ 0.9, and its pseudo-regret in *every* episode of every seed ≥ V* − (best Markov
  value) (exact: it plays Markov policies); (d) the value-optimistic learner below the L-UCRL-style
  one (paired difference of the totals at K, 95% t-interval below 0), at theory constants and
  tuned, and (d') on the same footing (full size): each bonus at the width of its own concentration
  inequality — the value-optimistic learner at bonus_scale 0.02 (c₁, c₃ = 1.02, 1.21: within 4% of
  the empirical Bernstein bound's 1 and 7/6 on ι, Maurer & Pontil 2009, Thm 4) against the
  L-UCRL-style one at 1 (Weissman's L1 width); MVP's c₁ = 460/9, c₃ = 544/9 are constants of its
  regret analysis, not of a confidence width, so (d) compares unlike bonuses (added after the audit
  in docs/latent_mdp.md; (d) is still run and reported); (e) realised − pseudo-regret totals have
  mean 0 (95% t-interval over seeds, each seed's difference averaged over the agents, which share
  its draws, contains 0: a martingale).
* E1s (`bonus_sweep`): regret at K against ``bonus_scale`` on E1's instance, both optimistic
  learners over a log grid (and 0), one compiled program per learner with the scale traced
  (`pseudo_regret_scales`). The theory's bound holds at the constants of the analysis (scale 1)
  and says nothing of smaller scales. Checks: (a) the tuned scale of E1 beats the theory
  constants (paired difference at K below 0; the premise of reporting a tuned scale, not a
  claim of the paper); (b) a U shape (best scale interior, both ends worse: the optimism
  heuristic of under- against over-exploration, not a claim of the paper).
* E2 (`horizon`): regret at fixed K against the horizon H (the horizon-free claim). The M = 2
  likelihood-ratio lattice (S = 3, A = 2, ρ = 3, ``instance_seed=2``), H = 2, 4, 8, 16, 32, 64
  (quick 2, 4, 8, 16). The learners plan with **point-based value iteration** (``planner:
  points``, `rl.points`, n = 64 lattice points per (h, s); Pineau, Gordon & Thrun, IJCAI 2003) at
  every H, not with the paper's exact history solver: the dense history planner has
  S (A M S)^(h−1) nodes at step h and stops at H = 6 (H = 7: 9.8·10⁶ nodes, 7.7 GB for a 10-seed
  plan). The point plan is a lower bound on the exact optimistic plan's value (with zero bonus on
  this instance: equal to V* up to round-off for H ≤ 8, 3.9·10⁻⁴ below it at H = 64); the
  pseudo-regret stays exact (the executed policy graph is valued exactly in the true LMDP, V* by
  `rl.planning`'s belief-merged DP). One planner across the grid, so that the slope in H is not a
  change of planner. Regret at K against H, tuned learners. Checks: the value-optimistic
  learner's log-log slope in H is ≤ 0.15 (horizon-free up to the log H of ι: d log √ι / d log H
  ≈ 1/(2 ln(2MSAHK/δ)) < 0.1 here); the L-UCRL-style learner's slope exceeds the
  value-optimistic one's (its rescaled bound grows like √H).
* E3 (`variance`): regret against Var* (the variance-dependence claim). Interpolations
  (1 − ε)·deterministic + ε·garnet (M = 2, S = 3, A = 2, H = 4), ε from 0; the Var* candidates
  exact (`rl.instances.var_star`): conditional and total at the optimal policy π*, and, as
  diagnostics beside them, both maximised over the deterministic context-blind Markov policies (a
  lower bound on the maximum over all policies, the form max_π Σ_m w_m Var^π_m the definition may
  take). The x-axis and the checks use the **conditional Var* at π*** — the candidate the item
  used before the max form was computed (so its results stay comparable) and, like the max form,
  exactly 0 at ε = 0; which form the paper means was not checked, so the slope against the max
  form is printed in the check's note. Checks: at ε = 0 the conditional Var* is 0 (up to 1e-12
  of float64 round-off) and the tuned learner's pseudo-regret saturates — log-log slope over
  [K/10, K] ≤ 0.2 (a lower-order c·log K term has slope 1/ln K ≈ 0.1–0.13 here) and the
  per-episode pseudo-regret falls accordingly (ratio reaches ρ(0.2)), at K = 4·10⁴ (full; the
  exploration phase at ε = 0 lasts ≈ 2·10⁴ episodes, docs "Audit"); over ε > 0 the regret at K
  grows like √Var* (log-log slope against the conditional Var* over the ε > 0 instances: its
  interval contains 0.5).
* E4 (`scaling`): regret at fixed K against M, Γ, S and A (the √(MΓSA) claim). Garnet H = 3
  around M = 2, Γ = 2, S = 3, A = 2, one parameter at a time (M, Γ, S, A). Checks: each
  parameter's log-log slope of the regret at K is ≤ 1/2 (interval reaches 0.5 or below): the
  √(MΓSA) of the bound.
* E6 (`solvers`): agreement of the exact planners and the learners' planner on tiny instances,
  and both of the paper's solvers side by side. Checks: the exact planners (history tree,
  belief-merged, alpha vectors, brute force over all deterministic history-dependent policies)
  and the learners' JAX planner (true model, no bonus) agree on random tiny instances
  (|difference| ≤ 1e-9 in float64 NumPy, ≤ 1e-5 for the float32 JAX planner); the
  value-optimistic plan is optimistic on **empirical** models: on 10 empirical LMDPs per
  instance (n = 10⁵ samples per (m, s, a)), planned with the Bernstein bonus at the theory
  constants, V̄ ≥ V* in a fraction ≥ 1 − δ = 0.9 of the draws (the optimism that holds with
  probability ≥ 1 − δ), with the unbonused V̂* ≥ V* fraction (≈ 1/2) and the fraction clipped at
  1 reported beside it (so the check could fail: on the true model any bonus ≥ 0 would pass); the
  model-optimistic learner
  (`rl.model_optimistic`, reconstructed) and the value-optimistic one, tuned alike, have
  comparable regret on M = S = A = 2, H = 3 (ratio of the totals at K within [1/2, 2]); the
  model-optimistic value is ≥ the empirical V* on every empirical model and ≥ V* wherever its
  set contains the true P, with at least one draw covered (else nothing was tested and the
  check fails; the paper's order between the two solvers' values was not checked, so both are
  reported).

E5 (the Γ = 2 lower-bound family) is not reproduced: its construction is in the paper's
appendix, which was not available to us.

Sizes: full: E1 K = 2·10⁴, 20 seeds; E1s K = 2·10⁴, 10 seeds, 11 scales; E2/E4 K = 10⁴, E3
K = 4·10⁴, 10 seeds. Quick: K = 2000, 6 seeds (E1s–E4: 4 seeds), fewer agents and grid points.
Compilation dominates: about 20 distinct programs (one per learner and instance shape), 10–40 s
each on 2 cores (up to 2 minutes when the machine is shared); the quick run took 3.1 min of
process CPU (12 min wall at load 12), the full run 8.8 min of process CPU (39 min wall at load
15), both before E1s and before H = 6 joined E2; E1s alone at full size: 1.9 min of process CPU
(4.5 min wall at load 6–8); E2 alone at full size (H = 2..6, the learners' ``replan: lanes``):
311 CPU-s (22 min wall at load 4–16); E2 now, with the point-based planner at H = 2..64: 404
CPU-s (6.4 min wall at load 2–5; quick, H = 2..16: 79 CPU-s).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from experiments.reproduce import Reproduction, fmt_ci, loglog_slope

TITLE = (
    "Zhou, Wang & Du, Horizon-Free and Variance-Dependent Reinforcement Learning for Latent "
    "Markov Decision Processes (ICML 2023)"
)
TUNED_VO = 0.02  # tuned bonus_scale of the value-optimistic learner (docs/latent_mdp.md)
TUNED_LUCRL = 0.1  # tuned bonus_scale of the L-UCRL-style learner
TUNED_UCBVI = 0.02
SLOPE_WINDOW = 10  # slopes in k over [K / SLOPE_WINDOW, K]
GRID = 25  # log-spaced points of the slope fits


def sizes(r: Reproduction) -> dict:
    if r.quick:
        return {
            "K1": 2000,
            "seeds1": 6,
            "K1s": 2000,
            "seeds1s": 4,
            "scales": [0.0, 0.001, 0.02, 0.1, 1.0],
            "K": 2000,
            "K3": 2000,
            "seeds": 4,
            "horizons": [2, 4, 8, 16],
            "epsilons": [0.0, 0.1, 0.4],
            "scaling": {"M": [1, 2, 3], "Gamma": [1, 2, 3], "S": [2, 3, 4], "A": [2, 3]},
            "brute": 3,
            "tiny": 6,
            "K6": 2000,
            "seeds6": 4,
        }
    return {
        "K1": 20_000,
        "seeds1": 20,
        "K1s": 20_000,
        "seeds1s": 10,
        "scales": [0.0, 1e-4, 3e-4, 0.001, 0.003, 0.01, 0.02, 0.05, 0.1, 0.3, 1.0],
        "K": 10_000,
        "K3": 40_000,
        "seeds": 10,
        "horizons": [2, 4, 8, 16, 32, 64],
        "epsilons": [0.0, 0.02, 0.05, 0.1, 0.2, 0.4],
        "scaling": {"M": [1, 2, 3, 4], "Gamma": [1, 2, 3], "S": [2, 3, 4, 6], "A": [2, 3]},
        "brute": 6,
        "tiny": 20,
        "K6": 20_000,
        "seeds6": 10,
    }


# --------------------------------------------------------------------------- agents
def make_agent(name: str, max_nodes: int | None = None, planner: str | None = None):
    """A learner by the reproduction's name: ``config[@bonus_scale]`` (e.g.
    ``latent_value_optimistic@0.02``); without a scale the theory constants. ``max_nodes``: the
    history planner's node budget (default `rl.optimistic.MAX_PLAN_NODES`). ``planner``: the
    value-optimistic and L-UCRL-style learners' planner (default histories; E2: points)."""
    from rl.optimistic import LatentValueOptimistic, UCBVIAgnostic
    from rl.posterior import LatentPSRL

    base, _, scale = name.partition("@")
    kw = {"bonus_scale": float(scale)} if scale else {}
    if max_nodes is not None:
        kw["max_nodes"] = max_nodes
    vo = {"planner": planner} if planner is not None else {}
    if base == "latent_value_optimistic":
        return LatentValueOptimistic(**kw, **vo)
    if base == "latent_lucrl":
        return LatentValueOptimistic(bonus="hoeffding", **kw, **vo)
    if base == "latent_psrl":
        return LatentPSRL()
    if base == "latent_model_optimistic":
        from rl.model_optimistic import LatentModelOptimistic

        return LatentModelOptimistic(**kw)
    if base == "ucbvi_agnostic":
        return UCBVIAgnostic(**kw)
    raise KeyError(f"agent: unknown learner {name!r}")


def pseudo_regret_program(env, agent, episodes: int):
    """``f(keys) -> (curve (seeds, K), realised (seeds,), refreshes (seeds,))``: vmap over run
    keys of one `experiments.rollout.rollout` of ``PseudoRegret(agent, episodes)`` (not jitted;
    `pseudo_regret` jits it, bench/latent_mdp.py times its compile and run apart)."""
    import jax

    from experiments.rollout import rollout
    from rl.optimistic import PseudoRegret

    H = env.episode_length
    wrapped = PseudoRegret(agent, episodes)
    params = env.default_params()

    def one(key):
        out = rollout(env, params, wrapped, key, H * episodes, horizon=episodes)
        inner = out.agent_state.inner  # re-plans: refreshes, or every episode (UCBVI)
        refreshes = inner.refreshes if hasattr(inner, "refreshes") else inner.episodes
        return out.agent_state.curve, out.totals["regret"], refreshes

    return jax.vmap(one)


def run_keys(seeds: int, seed: int = 0):
    """The run keys of ``regretlab seed=seed seeds=seeds`` (seed s: ``split(key(seed))[s]``)."""
    import jax

    return jax.random.split(jax.random.key(seed), seeds)


def pseudo_regret(env, agent, episodes: int, seeds: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Exact per-episode pseudo-regret V* − V^{π_k} of `agent` on `env` (float64, shape
    (seeds, episodes)), the realised regret totals (seeds,) and the re-plan counts, from one
    jit(vmap(rollout)) over the run keys of ``regretlab seed=seed seeds=seeds``."""
    import jax

    curve, realised, refreshes = jax.jit(pseudo_regret_program(env, agent, episodes))(
        run_keys(seeds, seed)
    )
    return {
        "curve": np.asarray(curve, np.float64),
        "realised": np.asarray(realised, np.float64),
        "refreshes": np.asarray(refreshes, np.int64),
    }


def cached(r: Reproduction, name: str, compute) -> dict[str, np.ndarray]:
    """``compute()`` saved as ``runs/NAME.npz``; an interrupted reproduction finds it."""
    from experiments.results import atomic_write

    path = r.out_dir / "runs" / f"{name}.npz"
    if path.is_file():
        with np.load(path) as f:
            return {k: f[k] for k in f.files}
    out = compute()
    path.parent.mkdir(parents=True, exist_ok=True)

    def write(p):
        with open(p, "wb") as fh:
            np.savez(fh, **out)

    atomic_write(path, write)
    return out


def fingerprint(env, agent, *parts) -> str:
    """The cache key of a run: a hash of the code revision (`experiments.results.git_revision`:
    HEAD, with ``-dirty`` when tracked files differ from it, so a rerun after a committed code
    change recomputes), the learner's class and every setting that changes its run (all its
    dataclass fields — bonus, bonus_scale, delta, planner, points, ... — except ``max_nodes``,
    a node budget that refuses or admits an instance but never changes a run), `parts` (K,
    seeds, ...) and the instance's arrays."""
    import dataclasses
    import hashlib

    from experiments.results import git_revision

    settings = tuple(
        (f.name, getattr(agent, f.name)) for f in dataclasses.fields(agent) if f.name != "max_nodes"
    )
    key = (git_revision(), type(agent).__name__, settings, env.episode_length, *parts)
    h = hashlib.sha1(repr(key).encode())
    for x in env.model[:4]:
        h.update(np.ascontiguousarray(x).tobytes())
    return h.hexdigest()[:10]


def run_agent(
    r: Reproduction,
    name: str,
    env,
    agent: str,
    K: int,
    seeds: int,
    max_nodes: int | None = None,
    planner: str | None = None,
) -> dict:
    """`pseudo_regret` of `agent` on `env`, cached under a name that `fingerprint`s the code
    revision, the learner's settings, the instance's arrays, K and the seeds (a changed
    instance, size, setting or code never reuses a stale run)."""
    learner = make_agent(agent, max_nodes, planner)
    if r.progress:
        print(f"   {name} {agent}: K = {K}, {seeds} seeds", flush=True)
    return cached(
        r,
        f"{name}_{agent}_{fingerprint(env, learner, K, seeds)}",
        lambda: pseudo_regret(env, learner, K, seeds, seed=0),
    )


def pseudo_regret_scales(
    env, agent, episodes: int, seeds: int, scales, seed: int = 0
) -> dict[str, np.ndarray]:
    """`pseudo_regret` of `agent` at each ``bonus_scale`` in `scales` (curve (scales, seeds,
    episodes), realised and refreshes (scales, seeds)), from **one** compiled program whose
    bonus_scale is a traced argument: the agent is rebuilt with the scale as the engine lifts a
    float hyperparameter into its program (`experiments.lift`: a shallow copy with the field
    replaced, no ``__init__``, so no validation sees a tracer). The program is called once per
    scale rather than vmapped over the scales: `cond_any` re-plans every lane of a batch when one
    lane refreshes, and lanes at different scales refresh in different episodes (so a batch of
    scales would re-plan more often; not measured). Per scale the
    result equals `pseudo_regret` of ``replace(agent, bonus_scale=scale)`` (same run keys;
    tests/test_latent_mdp_reproduction.py)."""
    import copy

    import jax

    def program(scale, keys):
        a = copy.copy(agent)
        object.__setattr__(a, "bonus_scale", scale)
        return pseudo_regret_program(env, a, episodes)(keys)

    keys = run_keys(seeds, seed)
    f = jax.numpy.result_type(float)  # the agents' float (float32 unless x64 is on)
    compiled = jax.jit(program).lower(np.asarray(1.0, f), keys).compile()
    outs = [jax.device_get(compiled(np.asarray(x, f), keys)) for x in scales]
    return {
        "curve": np.stack([np.asarray(o[0], np.float64) for o in outs]),
        "realised": np.stack([np.asarray(o[1], np.float64) for o in outs]),
        "refreshes": np.stack([np.asarray(o[2], np.int64) for o in outs]),
    }


# --------------------------------------------------------------------------- statistics
def slope_grid(K: int) -> np.ndarray:
    """Log-spaced episode counts in [K / SLOPE_WINDOW, K] (1-based, distinct)."""
    lo = max(1, K // SLOPE_WINDOW)
    return np.unique(np.round(np.geomspace(lo, K, GRID)).astype(int))


def k_slope(curve: np.ndarray, level: float = 0.95) -> tuple[float, float, float]:
    """Log-log slope of the mean cumulative pseudo-regret over k ∈ [K/10, K], with a bootstrap
    interval over seeds (seeds resampled with replacement; the slope of each resample's mean
    curve; percentile interval). Curves that are not positive there give nan."""
    from experiments.stats import bootstrap_means

    cum = np.cumsum(curve, axis=1)
    ks = slope_grid(curve.shape[1])
    y = cum[:, ks - 1]

    def slope(mean_curve):
        if np.any(mean_curve <= 0):
            return float("nan")
        return loglog_slope(ks, mean_curve)[0]

    point = slope(y.mean(0))
    boot = bootstrap_means(y, 400, seed=1)
    slopes = np.array([slope(b) for b in boot])
    slopes = slopes[np.isfinite(slopes)]
    if slopes.size < 0.9 * len(boot):
        return point, float("nan"), float("nan")
    q = (1 - level) / 2
    return point, float(np.quantile(slopes, q)), float(np.quantile(slopes, 1 - q))


# per-episode pseudo-regret at or below this is 0 (converged): the float32 evaluation of values
# <= 1 rounds at ~6e-8 per episode (a converged learner's tail reads -6e-8 .. 1e-7)
TAIL_ATOL = 1e-6


def rate_ratio(alpha: float) -> float:
    """ρ(α): the mean per-episode regret over the last K/10 episodes divided by the mean over
    [K/10, K/5] when the cumulative regret is exactly c k^α:
    ρ(α) = (1 − 0.9^α) / (0.1^α (2^α − 1)), independent of c and K, increasing in α, 1 at α = 1
    (linear regret: no decrease). ρ(1/2) = 0.392, ρ(0.2) = 0.222."""
    return (1 - 0.9**alpha) / (0.1**alpha * (2**alpha - 1))


def tail_ratio(curve: np.ndarray, level: float = 0.95) -> tuple[float, float, float]:
    """Convergence of the per-episode pseudo-regret: its mean over the last K/10 episodes
    divided by its mean over [K/10, K/5] (the start of the slope window), with a bootstrap
    interval over seeds (seeds resampled, ratio of the resampled means; 400 resamples, seed 1).
    A tail mean <= `TAIL_ATOL` is 0 (converged); a positive tail after a zero start is inf.

    Why beside the slope: the slope of the *cumulative* regret over [K/10, K] is dominated by
    what was paid before K/10, so a learner that pays a lot early and then a small constant
    amount per episode forever (linear regret) has a small slope (0.15 per episode for 2000
    episodes, then 0.01: slope 0.20 at K = 2·10⁴); its per-episode regret does not fall, and
    this ratio is 1. For cumulative regret c k^α the ratio is `rate_ratio(α)`, so a slope
    bound α pairs with the ratio bound ρ(α)."""
    from experiments.stats import bootstrap_means

    K = curve.shape[1]
    w = max(1, K // 10)
    y = np.stack([curve[:, w : 2 * w].mean(1), curve[:, K - w :].mean(1)], 1)  # (seeds, 2)

    def ratio(start, tail):
        if tail <= TAIL_ATOL:
            return 0.0
        return float(tail / start) if start > 0 else float("inf")

    point = ratio(*y.mean(0))
    boot = np.array([ratio(*b) for b in bootstrap_means(y, 400, seed=1)])
    q = (1 - level) / 2
    return point, float(np.quantile(boot, q)), float(np.quantile(boot, 1 - q))


def converges_like(curve: np.ndarray, alpha: float) -> tuple[str, bool]:
    """The slope check of a claimed rate K^α with its convergence companion: (text, ok), ok when
    the cumulative slope's interval reaches α (`k_slope`) **and** the per-episode ratio's
    interval reaches ρ(α) (`tail_ratio`, `rate_ratio`)."""
    sl, tr = k_slope(curve), tail_ratio(curve)
    text = f"{fmt_ci(*sl, digits=2)}; {fmt_ci(*tr, digits=2)}"
    return text, bool(sl[1] <= alpha and tr[1] <= rate_ratio(alpha))


def x_slope(x, totals: list[np.ndarray], level: float = 0.95) -> tuple[float, float, float]:
    """Log-log slope of the mean regret against `x`, one independent run per x (each a vector
    over seeds), with a bootstrap interval (every run's seeds resampled independently)."""
    from experiments.stats import bootstrap_means

    x = np.asarray(x, np.float64)
    means = np.array([t.mean() for t in totals])
    if np.any(means <= 0):
        return float("nan"), float("nan"), float("nan")
    point = loglog_slope(x, means)[0]
    boot = np.stack([bootstrap_means(t, 400, seed=2 + i) for i, t in enumerate(totals)], 1)
    slopes = np.array([loglog_slope(x, b)[0] if np.all(b > 0) else np.nan for b in boot])
    slopes = slopes[np.isfinite(slopes)]
    q = (1 - level) / 2
    return point, float(np.quantile(slopes, q)), float(np.quantile(slopes, 1 - q))


def t_interval(x: np.ndarray) -> tuple[float, float, float]:
    from experiments.stats import mean_ci

    m, lo, hi = mean_ci(np.asarray(x, np.float64))
    return float(m), float(lo), float(hi)


# --------------------------------------------------------------------------- E1
E1_ENV = {"num_contexts": 2, "num_states": 3, "num_actions": 2, "episode_length": 4}


def e1_agents(r: Reproduction) -> list[str]:
    quick = [
        "latent_value_optimistic",
        f"latent_value_optimistic@{TUNED_VO}",
        f"latent_lucrl@{TUNED_LUCRL}",
        "latent_psrl",
        "ucbvi_agnostic",
    ]
    if r.quick:
        return quick
    return [*quick[:2], "latent_lucrl", *quick[2:], f"ucbvi_agnostic@{TUNED_UCBVI}"]


def regret_vs_k(r: Reproduction) -> None:
    from rl.latent_mdp import LatentMDP
    from rl.planning import best_markov_value, markov_value

    s = sizes(r)
    K, seeds = s["K1"], s["seeds1"]
    env = LatentMDP(**E1_ENV, instance_seed=1)
    model = env.model
    M, S, A, H = model.sizes
    v_star, v_markov = env.v_star, best_markov_value(model)
    v_random = markov_value(model, np.full((H, S, A), 1.0 / A))
    runs = {a: run_agent(r, "E1", env, a, K, seeds) for a in e1_agents(r)}

    rows, slopes = [], {}
    for a, out in runs.items():
        tot = out["curve"].sum(1)
        m, lo, hi = t_interval(tot)
        sl = slopes[a] = k_slope(out["curve"])
        tail = out["curve"][:, -max(1, K // 10) :].mean()
        rows.append(
            {
                "agent": a,
                f"regret at K={K} (95% CI)": fmt_ci(m, lo, hi),
                "per episode, last K/10": tail,
                "slope [K/10, K] (95% CI)": fmt_ci(*sl, digits=2),
                "last K/10 ÷ [K/10, K/5] (95% CI)": fmt_ci(*tail_ratio(out["curve"]), digits=2),
                "refreshes": float(out["refreshes"].mean()),
            }
        )
    rows.append(
        {
            "agent": "latent_random (exact)",
            f"regret at K={K} (95% CI)": f"{K * (v_star - v_random):.4g}",
            "per episode, last K/10": v_star - v_random,
            "slope [K/10, K] (95% CI)": "1",
            "last K/10 ÷ [K/10, K/5] (95% CI)": "1",
            "refreshes": float("nan"),
        }
    )
    r.table(
        "E1",
        "regret_vs_k",
        pd.DataFrame(rows),
        f"Exact pseudo-regret, garnet M={M}, S={S}, A={A}, H={H}, Γ=2, instance_seed=1"
        f" (V* = {v_star:.4f}, best Markov {v_markov:.4f}), K = {K}, {seeds} seeds;"
        " `@x`: bonus_scale x, none: the theory constants (1).",
    )
    _plot_curves(r, runs, K)

    src = "Zhou, Wang & Du, abstract: Õ(√(Var* M Γ S A K))"
    for a in slopes:
        if a.startswith("ucbvi"):
            continue
        text, ok = converges_like(runs[a]["curve"], 0.5)
        r.check(
            "E1",
            f"{a}: log-log slope in K; per-episode pseudo-regret, last K/10 ÷ [K/10, K/5]",
            text,
            f"slope <= 0.5 and ratio <= ρ(0.5) = {rate_ratio(0.5):.2f} (each interval reaches"
            " it; ratio 1: not converging)",
            src if not a.startswith("latent_lucrl") else "Kwon et al. 2021: Õ(√(M S² A H³ K))",
            ok,
            "theory constants: the lower-order term c₃ι/n keeps β ≥ 1 for n ≲ 2·10³"
            if "@" not in a and a != "latent_psrl"
            else "",
        )
    tuned = f"latent_value_optimistic@{TUNED_VO}"
    sl = slopes[tuned]
    r.check(
        "E1",
        f"{tuned}: slope ≈ 0.5",
        fmt_ci(*sl, digits=2),
        "interval overlaps [0.4, 0.6]",
        "√K shape expected at large K",
        sl[2] >= 0.4 and sl[1] <= 0.6,
        "below 0.5: this K is still in the lower-order regime" if sl[2] < 0.4 else "",
    )
    gap = v_star - v_markov
    for a in runs:
        if not a.startswith("ucbvi"):
            continue
        c = runs[a]["curve"]
        r.check(
            "E1",
            f"{a} (Markov policies): slope; min per-episode pseudo-regret",
            f"{fmt_ci(*slopes[a], digits=2)}; {c.min():.4f}",
            f"slope >= 0.9; every episode >= V* − best Markov = {gap:.4f}",
            "linear where the history matters (exact bound for Markov policies)",
            slopes[a][0] >= 0.9 and c.min() >= gap - 1e-5,  # float32 evaluation round-off
        )
    # (d) as first stated (theory constants; tuned), then (d') on the same footing: each bonus at
    # the width of its own concentration inequality -- bonus_scale 0.02 puts MVP's c1, c3 at
    # 1.02, 1.21, within 4% of the empirical Bernstein bound's 1 and 7/6 on this ι (Maurer &
    # Pontil 2009, Thm 4, ln(2/δ) = ι/2), bonus_scale 1 is Weissman's L1 width for the Hoeffding
    # one. MVP's c1 = 460/9, c3 = 544/9 are constants of its regret analysis, not of a
    # confidence width, so (d) at "theory constants" compares unlike things (docs: "Audit").
    pairs = [("latent_value_optimistic", "latent_lucrl", "")] if not r.quick else []
    pairs.append((tuned, f"latent_lucrl@{TUNED_LUCRL}", ""))
    if not r.quick:
        pairs.append((tuned, "latent_lucrl", "same footing (concentration widths): "))
    for vo, lu, what in pairs:
        d = runs[vo]["curve"].sum(1) - runs[lu]["curve"].sum(1)
        m, lo, hi = t_interval(d)
        r.check(
            "E1",
            f"{what}{vo} − {lu} at K",
            fmt_ci(m, lo, hi),
            "< 0 (interval below 0)",
            "Bernstein vs Hoeffding bonus (abstract vs Kwon et al. 2021)",
            hi < 0,
            ""
            if what
            else "unlike footing: MVP's analysis constants (or 0.02 of them) vs a concentration"
            " width (or 0.1 of it); see the same-footing check",
        )
    # the agents share each seed's draws (common random numbers), so their differences are
    # correlated: the seeds are the independent units (per seed, the mean over the agents)
    d = np.mean([out["realised"] - out["curve"].sum(1) for out in runs.values()], axis=0)
    m, lo, hi = t_interval(d)
    r.check(
        "E1",
        "realised − pseudo-regret at K (per seed, mean over the agents)",
        fmt_ci(m, lo, hi),
        "interval contains 0 (martingale)",
        "definition of pseudo-regret",
        lo <= 0 <= hi,
    )


# --------------------------------------------------------------------------- E1s
E1S_ENV = {**E1_ENV, "instance_seed": 1}  # E1's instance (a test swaps in a tiny one)
# the scale at which each bonus is the width of its own concentration inequality (E1's (d'))
WIDTH = {"latent_value_optimistic": TUNED_VO, "latent_lucrl": 1.0}
TUNED = {"latent_value_optimistic": TUNED_VO, "latent_lucrl": TUNED_LUCRL}


def run_scales(r: Reproduction, name: str, env, base: str, scales, K: int, seeds: int) -> dict:
    """`pseudo_regret_scales` of learner `base` (theory-constant agent of `make_agent`) at
    `scales`, cached as one run whose name `fingerprint`s the code revision, the learner's
    settings, the instance, scales, K and seeds; the compile and run seconds (wall and process
    CPU) are kept beside the curves."""
    import time

    key = fingerprint(env, make_agent(base), tuple(map(float, scales)), K, seeds)
    if r.progress:
        print(f"   {name} {base}: bonus_scale {scales}, K = {K}, {seeds} seeds", flush=True)

    def compute():
        t, c = time.perf_counter(), time.process_time()
        out = pseudo_regret_scales(env, make_agent(base), K, seeds, scales)
        out["seconds"] = np.array([time.perf_counter() - t, time.process_time() - c])
        return out

    return cached(r, f"{name}_{base}_{key}", compute)


def bonus_sweep(r: Reproduction) -> None:
    """E1s (`bonus_scale`): regret at K against the bonus scale on E1's instance.

    Both optimistic learners (value-optimistic, Bernstein; L-UCRL-style, Hoeffding) over a log
    grid of ``bonus_scale`` (full: 0.001 … 1, K = 2·10⁴, 10 seeds; quick: 4 scales, K = 2000,
    4 seeds), one compiled program per learner with the scale a traced argument
    (`pseudo_regret_scales`); every scale runs on the same run keys (common random numbers), so
    differences between scales are paired over seeds. What the theory says: the regret bound
    (Zhou, Wang & Du, abstract; Kwon et al. 2021 for L-UCRL) is stated at the constants of the
    analysis (``bonus_scale = 1``), which keep every confidence set valid with probability
    ≥ 1 − δ; it says nothing about smaller scales, which may lose optimism. Checks: (a) the
    scale E1 reports as tuned (0.02 value-optimistic, 0.1 L-UCRL-style) has lower regret at K
    than the theory constants (paired difference, 95% t-interval below 0) — the premise of
    reporting a tuned scale, not a claim of the paper; (b) a U shape: the grid's best scale is
    interior and both ends are worse than it (paired intervals above 0) — the optimism heuristic
    (too small a bonus under-explores, too large over-explores), not a claim of the paper."""
    from rl.latent_mdp import LatentMDP

    s = sizes(r)
    K, seeds, scales = s["K1s"], s["seeds1s"], [float(x) for x in s["scales"]]
    env = LatentMDP(**E1S_ENV)
    runs = {b: run_scales(r, "E1s", env, b, scales, K, seeds) for b in WIDTH}
    rows, totals = [], {}
    for b, out in runs.items():
        tots = totals[b] = out["curve"].sum(2)  # (scales, seeds)
        for i, x in enumerate(scales):
            tag = []
            if x == 1.0:
                tag.append("theory constants")
            if x == TUNED[b]:
                tag.append("tuned (E1)")
            if x == WIDTH[b]:
                tag.append("concentration width")
            if x == 0:
                tag.append("no bonus (certainty equivalence)")
            rows.append(
                {
                    "agent": b,
                    "bonus_scale": x,
                    "role": ", ".join(tag),
                    f"regret at K={K} (95% CI)": fmt_ci(*t_interval(tots[i])),
                    "per episode, last K/10": out["curve"][i][:, -max(1, K // 10) :].mean(),
                    "slope [K/10, K] (95% CI)": fmt_ci(*k_slope(out["curve"][i]), digits=2),
                    "re-plans": float(out["refreshes"][i].mean()),
                }
            )
    secs = {b: out["seconds"] for b, out in runs.items() if "seconds" in out}
    timing = "; ".join(
        f"{b}: {w:.0f} s wall, {c:.0f} CPU-s (compile included)" for b, (w, c) in secs.items()
    )
    r.table(
        "E1",
        "bonus_scale",
        pd.DataFrame(rows),
        f"E1s: exact pseudo-regret at K against bonus_scale, garnet M=2, S=3, A=2, H=4, Γ=2,"
        f" instance_seed=1 (V* = {env.v_star:.4f}), K = {K}, {seeds} seeds (the same run keys"
        f" at every scale). 1 = theory constants. One program per learner; {timing}.",
    )
    r.outputs[-1] = ("E1s", *r.outputs[-1][1:])  # E1_bonus_scale.md, listed under E1s
    _plot_scales(r, scales, totals)
    for b, tots in totals.items():
        i1, it = scales.index(1.0), scales.index(TUNED[b])
        m, lo, hi = t_interval(tots[it] - tots[i1])
        r.check(
            "E1s",
            f"{b}: regret at K, bonus_scale {TUNED[b]:g} (tuned) − 1 (theory)",
            fmt_ci(m, lo, hi),
            "< 0 (interval below 0)",
            "premise of a tuned scale; the bound holds at scale 1 only (abstract; analysis"
            " constants)",
            hi < 0,
        )
        means = tots.mean(1)
        best = int(np.argmin(means))
        ends = [0, len(scales) - 1]
        diffs = [t_interval(tots[e] - tots[best]) for e in ends if e != best]
        ok = best not in ends and all(d[1] > 0 for d in diffs)
        r.check(
            "E1s",
            f"{b}: best scale of the grid; ends − best at K",
            f"{scales[best]:g}; " + "; ".join(fmt_ci(*d) for d in diffs),
            "best interior, both ends above it (U shape)",
            "optimism heuristic (under- vs over-exploration), not a claim of the paper",
            ok,
            f"concentration width: bonus_scale {WIDTH[b]:g}",
        )


# --------------------------------------------------------------------------- E2
# S = 3, instance_seed = 2: V* exceeds the best Markov value from H = 4 on (on S = 2 every
# lattice instance we tried has V* = best Markov = the context-aware value: no history effect)
E2_ENV = {"num_states": 3, "num_actions": 2, "rho": 3.0, "instance_seed": 2}


# the learners' planner in E2, at every H (one planner across the grid, so that the slope in H
# is not a change of planner): point-based value iteration on the lattice of resolution
# `rl.points.POINTS` (an approximation of the exact history planner, which stops at H = 6;
# rl/points.py). Their pseudo-regret stays exact: the controller is valued exactly.
E2_PLANNER = "points"


def horizon(r: Reproduction) -> None:
    from rl.latent_mdp import LatentMDP

    s = sizes(r)
    K, seeds = s["K"], s["seeds"]
    agents = [f"latent_value_optimistic@{TUNED_VO}", f"latent_lucrl@{TUNED_LUCRL}"]
    rows, totals = [], {a: [] for a in agents}
    for H in s["horizons"]:
        env = LatentMDP(instance="lattice", **E2_ENV, episode_length=H)
        for a in agents:
            out = run_agent(r, f"E2_H{H}", env, a, K, seeds, planner=E2_PLANNER)
            tot = out["curve"].sum(1)
            totals[a].append(tot)
            rows.append(
                {
                    "H": H,
                    "agent": a,
                    "V*": env.v_star,
                    f"regret at K={K} (95% CI)": fmt_ci(*t_interval(tot)),
                    "re-plans per seed": float(out["refreshes"].mean()),
                }
            )
    r.table(
        "E2",
        "regret_vs_h",
        pd.DataFrame(rows),
        f"Lattice M=2, S=3, A=2, ρ=3, instance_seed=2 (episode totals ≤ 1), K = {K},"
        f" {seeds} seeds; learners with planner={E2_PLANNER} (point-based value iteration,"
        f" n = {make_agent(agents[0], planner=E2_PLANNER).points}: an approximation of the exact"
        " history planner; pseudo-regret exact).",
    )
    slopes = {a: x_slope(s["horizons"], totals[a]) for a in agents}
    _plot_vs(r, "E2", "regret_vs_h", s["horizons"], totals, "horizon H", logx=True)
    vo, lu = agents
    means = np.array([t.mean() for t in totals[vo]])
    local = np.diff(np.log(means)) / np.diff(np.log(np.asarray(s["horizons"], np.float64)))
    r.check(
        "E2",
        f"{vo}: log-log slope in H",
        fmt_ci(*slopes[vo], digits=2),
        "<= 0.15 (horizon-free up to log H)",
        "Zhou, Wang & Du, abstract (only logarithmic in H)",
        slopes[vo][1] <= 0.15,
        "slopes between neighbouring H: " + ", ".join(f"{x:.2f}" for x in local),
    )
    r.check(
        "E2",
        f"{lu} slope − {vo} slope",
        f"{slopes[lu][0] - slopes[vo][0]:.2f}",
        "> 0 (L-UCRL's rescaled bound grows like √H)",
        "Kwon et al. 2021 rescaled: Õ(√(M S² A H K))",
        slopes[lu][0] > slopes[vo][0],
    )


# --------------------------------------------------------------------------- E3
def variance(r: Reproduction) -> None:
    from rl.instances import var_star
    from rl.latent_mdp import LatentMDP

    s = sizes(r)
    K, seeds = s["K3"], s["seeds"]
    agent = f"latent_value_optimistic@{TUNED_VO}"
    rows, curves, totals, vs, vmax = [], {}, [], [], []
    for eps in s["epsilons"]:
        env = LatentMDP(instance="interpolation", **E1_ENV, epsilon=eps, instance_seed=0)
        out = run_agent(r, f"E3_eps{eps:g}", env, agent, K, seeds)
        curves[eps] = out["curve"]
        tot = out["curve"].sum(1)
        vc, vt = var_star(env.model, "conditional"), var_star(env.model, "total")
        mc = var_star(env.model, "conditional", over="markov")
        mt = var_star(env.model, "total", over="markov")
        totals.append(tot)
        vs.append(vc)
        vmax.append(mc)
        rows.append(
            {
                "epsilon": eps,
                "Var* (conditional, at π*; the x-axis)": vc,
                "Var* (total, at π*)": vt,
                "max over Markov π (conditional)": mc,
                "max over Markov π (total)": mt,
                "V*": env.v_star,
                f"regret at K={K} (95% CI)": fmt_ci(*t_interval(tot)),
                "slope in K (95% CI)": fmt_ci(*k_slope(out["curve"]), digits=2),
                "last K/10 ÷ [K/10, K/5] (95% CI)": fmt_ci(*tail_ratio(out["curve"]), digits=2),
            }
        )
    r.table(
        "E3",
        "regret_vs_var",
        pd.DataFrame(rows),
        f"(1 − ε)·deterministic + ε·garnet, M=2, S=3, A=2, H=4, {agent}, K = {K}, {seeds} seeds."
        " Var* candidates (reconstructed: the paper's definition was not checked): at the"
        " optimal policy π*, and maximised over the deterministic context-blind Markov policies"
        " (a lower bound on the maximum over all policies). The x-axis and the checks use the"
        " conditional Var* at π*, as before the max-form column was added.",
    )
    _plot_var(r, vs, totals)
    text0, ok0 = converges_like(curves[0.0], 0.2)
    r.check(
        "E3",
        "ε = 0: conditional Var*; slope in K; per-episode pseudo-regret, last K/10 ÷ [K/10, K/5]",
        f"{vs[0]:.3g}; {text0}",
        f"Var* = 0 (<= 1e-12: float64 round-off); slope <= 0.2 (saturation: log K only) and"
        f" ratio <= ρ(0.2) = {rate_ratio(0.2):.2f} (each interval reaches it)",
        "Zhou, Wang & Du, abstract (√Var* factor)",
        vs[0] <= 1e-12 and ok0,
    )
    # the ε > 0 instances (their Var* > 0; at ε = 0 it is 0 up to round-off, off a log axis)
    pos = [i for i, e in enumerate(s["epsilons"]) if e > 0]
    sl = x_slope([vs[i] for i in pos], [totals[i] for i in pos])
    slm = x_slope([vmax[i] for i in pos], [totals[i] for i in pos])
    r.check(
        "E3",
        "regret at K against Var* (ε > 0), log-log slope",
        fmt_ci(*sl, digits=2),
        "interval contains 0.5 (√Var*)",
        "Zhou, Wang & Du, abstract",
        sl[1] <= 0.5 <= sl[2],
        "instances differ beyond Var* (gaps, V*); against the max-over-Markov Var* (not a check):"
        f" {fmt_ci(*slm, digits=2)}",
    )


# --------------------------------------------------------------------------- E4
E4_BASE = {"M": 2, "Gamma": 2, "S": 3, "A": 2}
E4_H = 3


def scaling(r: Reproduction) -> None:
    from rl.latent_mdp import LatentMDP

    s = sizes(r)
    K, seeds = s["K"], s["seeds"]
    agent = f"latent_value_optimistic@{TUNED_VO}"
    rows, series = [], {}
    for p, values in s["scaling"].items():
        tots = []
        for v in values:
            c = {**E4_BASE, p: v}
            env = LatentMDP(
                num_contexts=c["M"],
                num_states=c["S"],
                num_actions=c["A"],
                degree=min(c["Gamma"], c["S"]),
                episode_length=E4_H,
                instance_seed=0,
            )
            tag = f"M{c['M']}_G{c['Gamma']}_S{c['S']}_A{c['A']}"
            out = run_agent(r, f"E4_{tag}", env, agent, K, seeds)
            tot = out["curve"].sum(1)
            tots.append(tot)
            rows.append(
                {
                    "parameter": p,
                    "value": v,
                    "M Γ S A": c["M"] * c["Gamma"] * c["S"] * c["A"],
                    "V*": env.v_star,
                    f"regret at K={K} (95% CI)": fmt_ci(*t_interval(tot)),
                }
            )
        series[p] = (values, tots)
    r.table(
        "E4",
        "scaling",
        pd.DataFrame(rows),
        f"Garnet H = {E4_H}, base M=2, Γ=2, S=3, A=2 (instance_seed=0 at every size), {agent},"
        f" K = {K}, {seeds} seeds.",
    )
    _plot_scaling(r, series)
    for p, (values, tots) in series.items():
        sl = x_slope(values, tots)
        r.check(
            "E4",
            f"regret at K against {p}: log-log slope",
            fmt_ci(*sl, digits=2),
            "<= 0.5 (interval reaches 0.5)",
            "Zhou, Wang & Du, abstract: √(M Γ S A)",
            sl[1] <= 0.5,
            "each size is a different random instance",
        )


# --------------------------------------------------------------------------- E6
def _jax_planner_value(model) -> float:
    """The learners' JAX planner (`rl.optimistic.plan_histories`) on the true model without a
    bonus: V* (up to float32 round-off)."""

    from rl.optimistic import model_inputs

    M, S, A, H = model.sizes
    m = model
    inputs = model_inputs(
        m.weights, m.init, m.transitions, m.rewards, np.ones((M, S, A)), 1.0, 0.0
    )  # counts, ι and bonus_scale are not read without a bonus
    return float(_jitted_plan(H, "none")(inputs).value)


E6_OPT_N = 100_000  # samples per (m, s, a) (and episodes) of each empirical model
E6_OPT_DRAWS = 10  # empirical models per instance
E6_DELTA = 0.1  # the confidence level of ι (the learners' default δ)


def empirical_optimism(model, n: int, draws: int, seed: int) -> dict[str, np.ndarray]:
    """The value-optimistic solver's optimism on empirical models (Zhou, Wang & Du's optimism:
    with probability >= 1 − δ the bonus-augmented plan of the empirical LMDP is >= V*, [R]
    reconstructed; MVP's Lemma for the tabular case). Each of `draws` empirical models: n
    multinomial samples of every P_m(·|s, a), n episodes' contexts and first states (as
    `rl.model_optimistic.compare_solvers`), the known rewards; planned by the learners' JAX
    planner with the Bernstein bonus at the theory constants (bonus_scale 1, count n,
    ι = 2 ln(2 M S A H n / δ)) and without a bonus.

    Returns float64 arrays over draws: ``optimistic`` (V̄), ``v_hat`` (the empirical V̂*, no
    bonus: the control, >= V* in about half of the draws) and ``v_star`` (V*, repeated)."""
    from rl.optimistic import iota, model_inputs
    from rl.planning import history_tree_value

    M, S, A, H = model.sizes
    rng = np.random.default_rng(seed)
    io = float(iota(M, S, A, H, n, E6_DELTA))
    out: dict[str, list] = {"optimistic": [], "v_hat": []}
    for _ in range(draws):
        counts = np.stack([rng.multinomial(n, p) for p in model.transitions.reshape(-1, S)])
        ctx = np.maximum(rng.multinomial(n, model.weights), 1)
        init = np.stack([rng.multinomial(c, model.init[m]) for m, c in enumerate(ctx)])
        hat = (
            ctx / ctx.sum(),
            init / init.sum(1, keepdims=True),
            counts.reshape(M, S, A, S) / n,
            model.rewards,
        )
        nn = np.full((M, S, A), float(n))
        out["optimistic"].append(
            float(_jitted_plan(H, "bernstein")(model_inputs(*hat, nn, io, 1.0)).value)
        )
        out["v_hat"].append(float(_jitted_plan(H, "none")(model_inputs(*hat, nn, io, 0.0)).value))
    res = {k: np.asarray(v, np.float64) for k, v in out.items()}
    res["v_star"] = np.full(draws, history_tree_value(model))
    return res


_PLANS: dict = {}


def _jitted_plan(H: int, kind: str):
    import jax

    from rl.optimistic import plan_histories

    if (H, kind) not in _PLANS:
        _PLANS[H, kind] = jax.jit(lambda x: plan_histories(x, H, kind))
    return _PLANS[H, kind]


def solvers(r: Reproduction) -> None:
    from rl import instances
    from rl.planning import (
        alpha_vectors,
        belief_value,
        brute_force_value,
        history_tree_value,
    )

    s = sizes(r)
    rows = []
    worst_np, worst_jax = 0.0, 0.0
    opt_ok, hat_ok, clipped = [], [], []
    for i in range(s["tiny"]):
        H = 2 if i < s["brute"] else 3
        model = instances.garnet(
            num_contexts=2, num_states=2, num_actions=2, horizon=H, degree=2, seed=100 + i
        )
        v = {
            "history": history_tree_value(model),
            "belief": belief_value(model),
            "alpha": alpha_vectors(model)[0],
        }
        if i < s["brute"]:
            v["brute force"] = brute_force_value(model)
        jv = _jax_planner_value(model)
        ref = v["history"]
        worst_np = max(worst_np, max(abs(x - ref) for x in v.values()))
        worst_jax = max(worst_jax, abs(jv - ref))
        emp = empirical_optimism(model, E6_OPT_N, E6_OPT_DRAWS, seed=i)
        # float32 planner against the float64 V*: 1e-6 is ~10 ulps of values <= 1
        opt_ok.append(emp["optimistic"] >= emp["v_star"] - 1e-6)
        hat_ok.append(emp["v_hat"] >= emp["v_star"] - 1e-6)
        clipped.append(emp["optimistic"] >= 1.0 - 1e-6)
        rows.append(
            {
                "instance": f"garnet seed {100 + i}",
                "H": H,
                **{
                    k: v.get(k, float("nan")) for k in ("history", "belief", "alpha", "brute force")
                },
                "JAX planner": jv,
                "V̄ − V* (empirical + bonus), min over draws": float(
                    (emp["optimistic"] - emp["v_star"]).min()
                ),
                "V̂* ≥ V* (no bonus), fraction": float(hat_ok[-1].mean()),
            }
        )
    r.table(
        "E6",
        "planners",
        pd.DataFrame(rows),
        "V* of random tiny LMDPs (M = S = A = 2, Γ = 2) by every exact planner and the learners'"
        f" JAX planner (true model, no bonus). Optimism on empirical models: {E6_OPT_DRAWS}"
        f" empirical LMDPs per instance from n = {E6_OPT_N:,} samples per (m, s, a), planned with"
        " the Bernstein bonus at the theory constants (V̄) and without a bonus (V̂*, the"
        " control).",
    )
    r.check(
        "E6",
        "NumPy planners and brute force: max |V − V_history|",
        f"{worst_np:.2g}",
        "<= 1e-9",
        "exact planning (float64)",
        worst_np <= 1e-9,
    )
    r.check(
        "E6",
        "learners' JAX planner (no bonus, true model): max |V − V*|",
        f"{worst_jax:.2g}",
        "<= 1e-5",
        "the value-optimistic solver plans exactly (float32)",
        worst_jax <= 1e-5,
    )
    opt_frac = float(np.concatenate(opt_ok).mean())
    hat_frac = float(np.concatenate(hat_ok).mean())
    clip_frac = float(np.concatenate(clipped).mean())
    r.check(
        "E6",
        "value-optimistic plan on empirical models (theory constants) >= V*: fraction of draws",
        f"{opt_frac:.3g} (no bonus: {hat_frac:.3g}; clipped at 1: {clip_frac:.3g})",
        f">= 1 − δ = {1 - E6_DELTA:g}",
        "optimism with probability >= 1 − δ (the value-optimistic solver; MVP's analysis)",
        opt_frac >= 1 - E6_DELTA,
        f"{s['tiny']} instances x {E6_OPT_DRAWS} empirical models, n = {E6_OPT_N:,} per (m, s, a)",
    )
    _both_solvers(r)


E6_ENV = {"num_contexts": 2, "num_states": 2, "num_actions": 2, "episode_length": 3}


def model_optimism(c: dict) -> tuple[bool, bool, np.ndarray]:
    """E6's last check from `rl.model_optimistic.compare_solvers`' output: (the model-optimistic
    value >= V̂* on every draw, >= V* on every draw whose set covers the true P **and at least
    one draw is covered** — with none covered nothing was tested, so it fails rather than pass
    vacuously —, the covered mask). 1e-9: float64 round-off of the NumPy solvers."""
    ok_hat = bool(np.all(c["model_optimistic"] >= c["v_hat"] - 1e-9))
    cov = np.asarray(c["covered"]).astype(bool)
    ok_star = bool(cov.any() and np.all(c["model_optimistic"][cov] >= float(c["v_star"]) - 1e-9))
    return ok_hat, ok_star, cov


def _both_solvers(r: Reproduction) -> None:
    """The value-optimistic (A1) and the model-optimistic (A2, `rl.model_optimistic`) learners
    side by side on a tiny LMDP, tuned alike, and both solvers' optimistic values on empirical
    models (`rl.model_optimistic.compare_solvers`)."""
    from rl.latent_mdp import LatentMDP
    from rl.model_optimistic import compare_solvers

    s = sizes(r)
    K, seeds = s["K6"], s["seeds6"]
    env = LatentMDP(**E6_ENV, instance_seed=0)
    agents = [f"latent_value_optimistic@{TUNED_VO}", f"latent_model_optimistic@{TUNED_VO}"]
    runs = {a: run_agent(r, "E6", env, a, K, seeds) for a in agents}
    rows = [
        {
            "agent": a,
            f"regret at K={K} (95% CI)": fmt_ci(*t_interval(out["curve"].sum(1))),
            "slope [K/10, K] (95% CI)": fmt_ci(*k_slope(out["curve"]), digits=2),
            "re-plans": float(out["refreshes"].mean()),
        }
        for a, out in runs.items()
    ]
    r.table(
        "E6",
        "learners",
        pd.DataFrame(rows),
        f"Both solvers as learners, garnet M = S = A = 2, H = 3, instance_seed=0"
        f" (V* = {env.v_star:.4f}), bonus_scale {TUNED_VO} for both, K = {K}, {seeds} seeds.",
    )
    tot = [runs[a]["curve"].sum(1) for a in agents]
    ratio = tot[1].mean() / tot[0].mean()
    r.check(
        "E6",
        "model- / value-optimistic regret at K",
        f"{ratio:.3g}",
        "within [1/2, 2] (comparable)",
        "both solvers carry the same Õ(√K) bound (abstract)",
        0.5 <= ratio <= 2.0,
    )
    c = compare_solvers(env.model, 10_000, bonus="hoeffding", bonus_scale=1.0, draws=10)
    table = pd.DataFrame(
        {
            "draw": np.arange(len(c["v_hat"])),
            "V̂* (empirical)": c["v_hat"],
            "model-optimistic": c["model_optimistic"],
            "value-optimistic": c["value_optimistic"],
            "true P in the set": c["covered"],
        }
    )
    r.table(
        "E6",
        "optimistic_values",
        table,
        "Optimistic values of both solvers on empirical models of the same instance (n = 10⁴"
        " samples per (m, s, a), Hoeffding L1 sets at the theory constant;"
        f" V* = {float(c['v_star']):.4f}).",
    )
    ok_hat, ok_star, cov = model_optimism(c)
    r.check(
        "E6",
        "model-optimistic value >= V̂* (every draw); >= V* (draws whose set covers P)",
        f"{ok_hat}; {ok_star} ({int(cov.sum())}/{cov.size} covered)",
        "True; True (at least one draw covered)",
        "optimism over a confidence set containing P̂ (and P)",
        ok_hat and ok_star,
    )


# --------------------------------------------------------------------------- figures
def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _plot_curves(r: Reproduction, runs: dict[str, dict], K: int) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    k = np.unique(np.round(np.geomspace(1, K, 200)).astype(int))
    for a, out in runs.items():
        cum = np.cumsum(out["curve"], 1)[:, k - 1]
        m = cum.mean(0)
        se = cum.std(0, ddof=1) / math.sqrt(cum.shape[0]) if cum.shape[0] > 1 else 0 * m
        ax.plot(k, np.maximum(m, 1e-3), label=a)
        ax.fill_between(k, np.maximum(m - 2 * se, 1e-3), np.maximum(m + 2 * se, 1e-3), alpha=0.2)
    ref = np.sqrt(k / K) * max(np.cumsum(o["curve"], 1)[:, -1].mean() for o in runs.values())
    ax.plot(k, ref, "k:", label="∝ √K")
    ax.set(xscale="log", yscale="log", xlabel="episode k", ylabel="cumulative pseudo-regret")
    ax.legend(fontsize=7)
    fig.tight_layout()
    r.figure("E1", "regret_vs_k", fig)


def _plot_scales(r, scales, totals: dict[str, np.ndarray]) -> None:
    """E1s: regret at K against bonus_scale (log-log), mean ± 95% t-interval over seeds; dotted
    lines at each bonus's concentration width, dashed at the theory constants, dash-dotted at
    bonus_scale 0 (off the log axis)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4))
    x = np.asarray(scales)
    pos = x > 0
    for b, tots in totals.items():
        ci = np.array([t_interval(t) for t in tots])
        line = ax.errorbar(
            x[pos],
            ci[pos, 0],
            yerr=[ci[pos, 0] - ci[pos, 1], ci[pos, 2] - ci[pos, 0]],
            marker="o",
            capsize=3,
            label=b,
        )
        ax.axvline(WIDTH[b], ls=":", color=line[0].get_color(), lw=1)
    if not pos.all():  # bonus_scale 0 has no place on a log axis: horizontal lines
        zero = {b: float(tots[~pos].mean()) for b, tots in totals.items()}
        if len(set(zero.values())) == 1:  # no bonus: both learners plan alike
            ax.axhline(next(iter(zero.values())), ls="-.", color="k", lw=1, label="0 (no bonus)")
        else:
            for b, v in zero.items():
                ax.axhline(v, ls="-.", lw=1, label=f"{b} at 0 (no bonus)")
    ax.axvline(1.0, ls="--", color="k", lw=1, label="theory constants")
    ax.set(xscale="log", yscale="log", xlabel="bonus_scale", ylabel="pseudo-regret at K")
    ax.set_title("dotted: each bonus at its concentration width", fontsize=8)
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    r.figure("E1", "bonus_scale", fig)
    r.outputs[-1] = ("E1s", *r.outputs[-1][1:])  # E1_bonus_scale.png, listed under E1s


def _plot_vs(r, item, name, x, totals: dict[str, list], xlabel, logx=False):
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4))
    for a, ts in totals.items():
        m = np.array([t.mean() for t in ts])
        e = np.array([t.std(ddof=1) / math.sqrt(t.size) if t.size > 1 else 0 for t in ts])
        ax.errorbar(x, m, yerr=2 * e, marker="o", capsize=3, label=a)
    if logx:
        ax.set_xscale("log")
        ax.xaxis.set_minor_locator(plt.NullLocator())
        ax.set_xticks(x, [str(v) for v in x])
    ax.set(xlabel=xlabel, ylabel="pseudo-regret at K")
    ax.legend(fontsize=7)
    fig.tight_layout()
    r.figure(item, name, fig)


def _plot_var(r, vs, totals):
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4))
    m = np.array([t.mean() for t in totals])
    e = np.array([t.std(ddof=1) / math.sqrt(t.size) if t.size > 1 else 0 for t in totals])
    x = np.maximum(np.asarray(vs), 1e-6)
    ax.errorbar(x, m, yerr=2 * e, marker="o", capsize=3)
    ax.set(
        xscale="log",
        xlabel="Var* (conditional, at π*; 0 shown at 1e-6)",
        ylabel="pseudo-regret at K",
    )
    fig.tight_layout()
    r.figure("E3", "regret_vs_var", fig)


def _plot_scaling(r, series):
    plt = _plt()
    fig, axes = plt.subplots(1, len(series), figsize=(3.2 * len(series), 3.4), squeeze=False)
    for ax, (p, (values, tots)) in zip(axes[0], series.items(), strict=True):
        m = np.array([t.mean() for t in tots])
        e = np.array([t.std(ddof=1) / math.sqrt(t.size) if t.size > 1 else 0 for t in tots])
        ax.errorbar(values, m, yerr=2 * e, marker="o", capsize=3)
        ax.set(xscale="log", yscale="log", xlabel=p, ylabel="pseudo-regret at K")
        ax.xaxis.set_minor_locator(plt.NullLocator())
        ax.set_xticks(values, [str(v) for v in values])
    fig.tight_layout()
    r.figure("E4", "scaling", fig)


ITEMS: dict[str, Any] = {
    "E1": regret_vs_k,
    "E1s": bonus_sweep,
    "E2": horizon,
    "E3": variance,
    "E4": scaling,
    "E6": solvers,
}
