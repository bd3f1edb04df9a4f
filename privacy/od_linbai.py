"""G-optimal designs and OD-LinBAI (Yang & Tan, NeurIPS 2022), with its private extension.

Yang & Tan, "Minimax Optimal Fixed-Budget Best Arm Identification in Linear Bandits"
(NeurIPS 2022, arXiv:2206.04685), Algorithm 1 (OD-LinBAI).

Pure functions:

* `g_optimal_design(features, mask)` (JAX, jit/vmap-able): a G-optimal design on the active arms
  ``mask`` of a fixed-shape (K, d) feature matrix, computed in the span of the active arms (the
  projection of Algorithm 1, line 4, "project onto the span if the rank dropped", done with a
  generalised inverse, `psd_solve`). It minimises g(π) = max_i a_i^T A(π)^+ a_i over the simplex,
  A(π) = Σ_i π_i a_i a_i^T. By the Kiefer–Wolfowitz theorem (Kiefer & Wolfowitz 1960; Lattimore &
  Szepesvári, "Bandit Algorithms", 2020, Theorem 21.1) the G- and D-optimal designs coincide and
  min_π g(π) = r, the dimension of the span. Algorithm: Frank–Wolfe on log det A(π) with exact line
  search (Fedorov–Wynn, with Wolfe–Atwood away steps; Todd, "Minimum-Volume Ellipsoids", SIAM 2016,
  §3). **Stopping rule**: stop as soon as max_i g_i(π) <= (1 + tol) r, which certifies by the
  Kiefer–Wolfowitz theorem that π is within the factor (1 + tol) of G-optimal, or after `max_iter`
  iterations (the achieved value is returned as ``max_variance``).
* `g_optimal_design_host(features)` (NumPy, float64): the same iteration on public features at
  trace time (OD-LinBAI's first phase depends on public data only), followed by a Carathéodory
  support reduction to at most r(r + 1)/2 arms (the support bound of Lattimore & Szepesvári,
  Theorem 21.1, which OD-LinBAI's rounding reserve min(K, d(d + 1)/2) pays for).
* `od_linbai_budget(T, K, d)`: the exact budget split of Algorithm 1, line 2:
  m = (T − min(K, d(d+1)/2) − Σ_{r=1}^{⌈log2 d⌉−1} ⌈d/2^r⌉) / ⌈log2 d⌉ (real-valued), and the
  number of arms kept after each phase, ⌈d/2^r⌉ (the first phase keeps ⌈d/2⌉ arms whatever K is).
* `allocation(weights, m)`: pull counts ⌈π_i m⌉ on the support (Algorithm 1, line 7); the
  subtracted terms of the budget split pay for the rounding up.
* `ordinary_least_squares`: line 9 of Algorithm 1 (line 11's elimination is
  `privacy.fixed_budget.top_mask`).

Agent: `ODLinBAI` (OD-LinBAI for ε = inf; DP-OD-LinBAI, a reconstruction, for finite ε), built
on the shared fixed-budget bookkeeping and noise of `privacy.fixed_budget`.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from bandits.linear_bai import PullAll
from experiments.config import ConfigError, check_float
from experiments.protocol import AgentBase, step_key
from privacy.fixed_budget import (
    PhaseStats,
    PrivateReleases,
    best_arm,
    next_phase,
    noisy_means,
    phase_complete,
    phase_zeros,
    record,
    tie_key,
    top_mask,
    where_some,
)

DESIGN_TOL = 1e-3  # stopping rule: max_i g_i <= (1 + DESIGN_TOL) r
DESIGN_MAX_ITER = 2000  # Frank–Wolfe iterations (JAX); the host design allows more


# --------------------------------------------------------------------------- projection
def rank_rtol(K: int, d: int, dtype) -> float:
    """Relative pivot threshold below which a direction counts as outside the span: 16 max(K, d)
    machine epsilons of the largest diagonal entry (a Gram matrix computed in floating point is
    accurate to about max(K, d) eps times its norm)."""
    return 16.0 * max(K, d) * float(jnp.finfo(dtype).eps)


def psd_solve(A: jax.Array, B: jax.Array, rtol: float) -> tuple[jax.Array, jax.Array]:
    """X with A X = B for a symmetric positive semi-definite A (d, d) and B (d, n) in its range.

    Gauss–Jordan elimination with diagonal pivoting (the largest remaining diagonal entry, as in
    pivoted Cholesky), stopping at pivots below `rtol` times the largest diagonal entry of A:
    the unreduced coordinates get 0, so X = G B for a generalised inverse G of A. This is the
    projection onto the span of Yang & Tan 2022, Algorithm 1, line 4, without coordinates: for
    vectors a, b in the range of A, a^T G b = a^T A^+ b for every generalised inverse G, so the
    design variances a_i^T A^{-1} a_i and the least-squares fitted values ⟨a_i, θ̂⟩ of arms in
    the span are those computed in an orthonormal basis of the span. Returns (X, rank).
    A fixed loop of d eliminations of O(d (d + n)) each (cheap under vmap, unlike eigh).
    """
    d = A.shape[0]
    tol = rtol * jnp.max(jnp.diagonal(A))
    idx = jnp.arange(d)

    def body(_, c):
        M, R, used, rank = c
        diag = jnp.where(used, -jnp.inf, jnp.diagonal(M))
        k = jnp.argmax(diag)
        piv = diag[k]
        ok = piv > tol
        hot = idx == k
        f = jnp.where(hot, 0.0, M[:, k] / jnp.where(ok, piv, 1.0))
        M2 = M - f[:, None] * M[k][None, :]
        R2 = R - f[:, None] * R[k][None, :]
        M2 = jnp.where(hot[:, None], M[k][None, :] / jnp.where(ok, piv, 1.0), M2)
        R2 = jnp.where(hot[:, None], R[k][None, :] / jnp.where(ok, piv, 1.0), R2)
        return (
            jnp.where(ok, M2, M),
            jnp.where(ok, R2, R),
            used | (hot & ok),
            rank + ok.astype(jnp.int32),
        )

    init = (A, B, jnp.zeros((d,), bool), jnp.zeros((), jnp.int32))
    _, R, used, rank = jax.lax.fori_loop(0, d, body, init)
    return jnp.where(used[:, None], R, 0.0), rank


def span_rank(features: jax.Array, mask: jax.Array) -> jax.Array:
    """Dimension of span{a_i : mask_i} (the pivots of `psd_solve` on the active Gram matrix)."""
    X = jnp.where(mask[:, None], features, 0.0)
    K, d = X.shape
    _, rank = psd_solve(X.T @ X, jnp.zeros((d, 1), X.dtype), rank_rtol(K, d, X.dtype))
    return rank


class Design(NamedTuple):
    """A design on the active arms and its certificate."""

    weights: jax.Array  # (K,) π; zero off the active set
    max_variance: jax.Array  # max over active arms of a_i^T A(π)^+ a_i (>= rank; = rank optimal)
    rank: jax.Array  # dimension r of the span of the active arms
    iterations: jax.Array  # Frank–Wolfe iterations used


def _variances(X: jax.Array, pi: jax.Array, rtol: float) -> jax.Array:
    """g_i = a_i^T G a_i with G a generalised inverse of A(π) = Σ_j π_j a_j a_j^T: `psd_solve`
    with B = I gives G = the inverse of A on the pivot block, zero elsewhere."""
    d = X.shape[1]
    G, _ = psd_solve((X * pi[:, None]).T @ X, jnp.eye(d, dtype=X.dtype), rtol)
    return jnp.sum((X @ G) * X, axis=1)


def _fw_step(pi, g, active, r, xp=jnp):
    """One Fedorov–Wynn step with exact line search on log det, toward or away (Todd 2016, §3).

    Toward the arm j of largest g_j: π <- (1 − γ) π + γ e_j, γ = (g_j/r − 1)/(g_j − 1).
    Away from the support arm k of smallest g_k: π <- (1 + γ) π − γ e_k,
    γ = min((r − g_k)/(r (g_k − 1)), π_k/(1 − π_k)) (the cap removes k; γ = the cap if g_k <= 1).
    The away step is taken when r − g_k > g_j − r (the larger duality gap).
    """
    gt = xp.where(active, g, -xp.inf)
    j = xp.argmax(gt)
    gj = gt[j]
    ga = xp.where(active & (pi > 0), g, xp.inf)
    k = xp.argmin(ga)
    gk = ga[k]
    hot_j = xp.arange(pi.shape[0]) == j
    hot_k = xp.arange(pi.shape[0]) == k
    gamma_t = (gj / r - 1.0) / xp.maximum(gj - 1.0, 1e-30)
    toward = (1.0 - gamma_t) * pi + gamma_t * hot_j
    pk = pi[k]
    cap = pk / xp.maximum(1.0 - pk, 1e-30)
    line = (r - gk) / (r * xp.maximum(gk - 1.0, 1e-30))
    gamma_a = xp.where(gk > 1.0, xp.minimum(line, cap), cap)
    away = xp.maximum((1.0 + gamma_a) * pi - gamma_a * hot_k, 0.0)
    away = xp.where(hot_k & (gamma_a >= cap), 0.0, away)
    use_away = (r - gk > gj - r) & (pk < 1.0)
    new = xp.where(use_away, away, toward)
    return new / xp.sum(new)


def g_optimal_design(
    features: jax.Array,
    mask: jax.Array | None = None,
    *,
    tol: float = DESIGN_TOL,
    max_iter: int = DESIGN_MAX_ITER,
) -> Design:
    """A (1 + tol)-approximate G-optimal design on the active arms (pure; jit/vmap-able).

    `features` (K, d); `mask` (K,) bool, the active arms (default all), at least one active arm
    with a nonzero feature. Starts from the uniform design on the active arms (which is exactly
    optimal when the active arms are linearly independent: g_i = 1/π_i = r) and runs
    Fedorov–Wynn steps until max_i g_i <= (1 + tol) r or `max_iter` steps (module docstring).
    """
    X = jnp.asarray(features)
    K, d = X.shape
    mask = jnp.ones((K,), bool) if mask is None else jnp.asarray(mask, bool)
    X = jnp.where(mask[:, None], X, 0.0)
    rtol = rank_rtol(K, d, X.dtype)
    rank = span_rank(X, mask)
    r = rank.astype(X.dtype)
    pi0 = mask.astype(X.dtype) / jnp.maximum(jnp.sum(mask), 1)

    def cond(c):
        _, g, it = c
        return (it < max_iter) & (jnp.max(jnp.where(mask, g, -jnp.inf)) > (1.0 + tol) * r)

    def body(c):
        pi, g, it = c
        pi = _fw_step(pi, g, mask, r)
        return pi, _variances(X, pi, rtol), it + 1

    g0 = _variances(X, pi0, rtol)
    pi, g, it = jax.lax.while_loop(cond, body, (pi0, g0, jnp.zeros((), jnp.int32)))
    return Design(pi, jnp.max(jnp.where(mask, g, -jnp.inf)), rank, it)


# --------------------------------------------------------------------------- host (float64)
def _host_basis(X: np.ndarray) -> np.ndarray:
    """Coordinates of the rows of X in an orthonormal basis of their span (SVD, NumPy's
    matrix_rank tolerance)."""
    _, s, Vt = np.linalg.svd(X, full_matrices=False)
    r = int(np.sum(s > s.max() * max(X.shape) * np.finfo(np.float64).eps)) if s.size else 0
    return X @ Vt[:r].T


@functools.lru_cache(maxsize=64)
def isotropic_rows(feature_rows: tuple) -> np.ndarray:
    """The arms in isotropic position: the rows of U_r of the SVD A = U S V^T (rank r as
    `_host_basis`), i.e. a_i ↦ S_r^{-1} V_r^T a_i, a linear bijection of the span onto R^r that
    makes Σ_i ã_i ã_i^T the identity. Computed in float64 on the host; the device algorithms
    take these rows as their features.

    Every quantity the fixed-budget algorithms compute from features is invariant under an
    invertible linear map of the span: G-optimal design variances a^T A(π)^+ a and so the
    designs (Kiefer & Wolfowitz 1960), least-squares fitted values ⟨a_i, θ̂⟩, spans and ranks,
    the coefficients α_ij of a_i in a basis, and the order of |det| over subsets (a constant
    factor per subspace), so Max-Det collections. What changes is float32's resolution: the
    device's rank test (`rank_rtol`) cuts pivots relative to the largest, so in raw
    coordinates a real direction whose singular value is below ~√(16 max(K, d) eps) ≈ 1 % of the
    largest (K = 64) counted as outside the span — the least squares then put ≈ 0 on an arm of
    it (features [[1, 0], [0, 10^-3], [0.5, 2·10^-4]]: OD-LinBAI erred in every run). In
    isotropic position every direction of the whole set has singular value 1; only arms nearly
    parallel within an active set stay beyond float32."""
    X = np.asarray(feature_rows, np.float64)
    U, s, _ = np.linalg.svd(X, full_matrices=False)
    r = int(np.sum(s > s.max() * max(X.shape) * np.finfo(np.float64).eps)) if s.size else 0
    out = np.ascontiguousarray(U[:, :r])
    out.setflags(write=False)
    return out


def _host_variances(Y: np.ndarray, pi: np.ndarray) -> np.ndarray:
    A = (Y * pi[:, None]).T @ Y
    return np.einsum("ij,ji->i", Y, np.linalg.solve(A, Y.T))


def g_optimal_design_host(
    features: np.ndarray, *, tol: float = 1e-6, max_iter: int = 200_000
) -> tuple[np.ndarray, float, int]:
    """G-optimal design of public features in float64 (NumPy), support reduced to r(r+1)/2.

    Returns (weights (K,), max_variance, rank). Same Fedorov–Wynn iteration and stopping rule as
    `g_optimal_design` (module docstring), then a Carathéodory reduction: while the support has
    more than D = r(r+1)/2 arms, a null vector v of the D × |support| matrix of the svec(ã ã^T)
    moves π along −t v until one weight vanishes, which keeps A(π) unchanged (so every g_i too);
    at a G-optimal design Σ_i v_i g_i = tr(A^{-1} Σ v_i ã_i ã_i^T) = 0 with g_i = r on the
    support forces Σ v = 0, so Σ π stays 1 up to the design's tolerance, and π is renormalised.
    """
    X = np.asarray(features, np.float64)
    K = X.shape[0]
    Y = _host_basis(X)
    r = Y.shape[1]
    if r == 0:
        raise ConfigError("features: all zero; no design exists (need a nonzero feature)")
    pi = np.full(K, 1.0 / K)
    g = _host_variances(Y, pi)
    for _ in range(max_iter):
        if g.max() <= (1.0 + tol) * r:
            break
        pi = _fw_step(pi, g, np.ones(K, bool), float(r), np)
        pi[pi < 1e-15] = 0.0
        pi /= pi.sum()
        g = _host_variances(Y, pi)
    pi = reduce_support(Y, pi)
    return pi, float(_host_variances(Y, pi).max()), r


def reduce_support(Y: np.ndarray, pi: np.ndarray) -> np.ndarray:
    """Carathéodory reduction of a design on the rows of Y (n, r) to at most r(r+1)/2 arms.

    While the support S has more than D = r(r+1)/2 arms, a null vector v of the D × |S| matrix
    whose columns are svec(y_i y_i^T) gives Σ_S v_i y_i y_i^T = 0; moving π_S to π_S − t v with
    the largest t that keeps π >= 0 removes one arm and leaves A(π) unchanged. Σ π changes by
    −t Σ v, which vanishes at a G-optimal design (tr(A^{-1} Σ v_i y_i y_i^T) = Σ v_i g_i = 0
    with g_i = r on the support); π is renormalised after each removal.
    """
    pi = np.array(pi, np.float64)
    r = Y.shape[1]
    D = r * (r + 1) // 2
    iu = np.triu_indices(r)
    while np.count_nonzero(pi) > D:
        S = np.flatnonzero(pi)
        M = np.stack([np.outer(Y[i], Y[i])[iu] for i in S], axis=1)  # D x |S|
        v = np.linalg.svd(M)[2][-1]  # a null vector: |S| > D
        if v.max() <= 0:
            v = -v
        pos = v > 1e-14 * np.abs(v).max()
        ratio = np.where(pos, pi[S] / np.where(pos, v, 1.0), np.inf)
        out = int(np.argmin(ratio))
        pi[S] = np.maximum(pi[S] - ratio[out] * v, 0.0)
        pi[S[out]] = 0.0  # exactly: the arm leaves the support
        pi /= pi.sum()
    return pi


# --------------------------------------------------------------------------- budget split
class Budget(NamedTuple):
    """OD-LinBAI's schedule (Algorithm 1, line 2, and the halving of line 11)."""

    phases: int  # M = ⌈log2 d⌉ (at least 1)
    per_phase: float  # m (real-valued)
    reserve: int  # min(K, d(d+1)/2) + Σ_{r=1}^{M−1} ⌈d/2^r⌉
    keep: tuple[int, ...]  # arms kept after phase r = 1..M: ⌈d/2^r⌉


def od_linbai_budget(T: int, K: int, d: int) -> Budget:
    """The exact budget split of OD-LinBAI (Yang & Tan 2022, Algorithm 1, line 2).

    d is the dimension of the span of all arms. ⌈log2 d⌉ phases (one phase when d = 1, which
    Algorithm 1 leaves undefined: our choice); the reserve pays for rounding ⌈π_i m⌉ up: at most
    min(K, d(d+1)/2) support arms in phase 1 (Carathéodory) and |A_{r−1}| = ⌈d/2^{r−1}⌉ arms in
    phase r >= 2. ConfigError when m < 1 (the budget cannot pay for the first phase).
    """
    M, keep, reserve = budget_shape(K, d)
    m = (T - reserve) / M
    if m < 1:
        raise ConfigError(
            f"horizon T = {T} is smaller than the {reserve + M} rounds OD-LinBAI needs"
            f" (rounding reserve {reserve} + {M} phase(s) of m >= 1; K = {K}, d = {d})"
        )
    return Budget(M, m, reserve, keep)


def budget_shape(K: int, d: int) -> tuple[int, tuple[int, ...], int]:
    """The parts of `od_linbai_budget` that do not depend on T: (phases M, keep, reserve)."""
    M = max(1, math.ceil(math.log2(d))) if d >= 1 else 1
    keep = tuple(-(-d // 2**r) for r in range(1, M + 1))
    return M, keep, min(K, d * (d + 1) // 2) + sum(keep[:-1])


def allocation(weights, m):
    """Pull counts ⌈π_i m⌉ on the support of π (0 off it); JAX or NumPy arrays."""
    xp = jnp if isinstance(weights, jax.Array) else np
    return xp.where(weights > 0, xp.ceil(weights * m), 0.0)


# --------------------------------------------------------------------------- the agents
def ordinary_least_squares(
    features: jax.Array, active: jax.Array, counts: jax.Array, means: jax.Array
) -> jax.Array:
    """Estimated means ⟨θ̂, a_i⟩ of all arms from per-arm means over `counts` pulls.

    θ̂ = V^{-1} Σ_i n_i ã_i μ_i with V = Σ_i n_i ã_i ã_i^T, in the coordinates of the span of
    the `active` arms (`psd_solve`); the least-squares estimator of Yang & Tan 2022,
    Algorithm 1, line 9, written with per-arm means (n_i μ_i is arm i's reward sum), so that
    DP-OD-LinBAI feeds it released noisy means instead.

    When the pulled arms are linearly independent (the rank of V is their number: every later
    phase of a generic instance, whose ⌈d/2^r⌉ active arms get the uniform design), least
    squares interpolates: a pulled arm's fitted value is its own mean, and it is returned as
    exactly that, not as the rounded ⟨a_i, θ̂⟩, so that arms with equal means tie exactly and
    the tie rule of `privacy.fixed_budget.top_mask` decides between them, not rounding.
    """
    X = jnp.where(active[:, None], features, 0.0)
    K, d = X.shape
    n = counts.astype(X.dtype)
    V = (X * n[:, None]).T @ X
    theta, rank = psd_solve(V, (X.T @ (n * means))[:, None], rank_rtol(K, d, X.dtype))
    pulled = active & (counts > 0)
    interpolates = rank == jnp.sum(pulled)
    return jnp.where(pulled & interpolates, means, features @ theta[:, 0])


class ODState(NamedTuple):
    """OD-LinBAI's state (built by keyword). The public schedule (features, T, m, the numbers
    of arms kept) rides along as arrays, so `act` and `update` need nothing else."""

    key: jax.Array  # the agent's key: noise of phase r from step_key(key, r), ties tie_key(key, r)
    features: jax.Array  # (K, r) the public features in isotropic position (`isotropic_rows`)
    horizon: jax.Array  # T
    per_phase: jax.Array  # m (real-valued)
    keep: jax.Array  # (M,) int: arms kept after phase r = 1..M
    phase: jax.Array  # int32, 0-based current phase
    active: jax.Array  # (K,) bool, the active set of the current phase
    alloc: jax.Array  # (K,) int, pulls of each arm in the current phase (0 off the support)
    stats: PhaseStats  # counts and clipped sums of the current phase
    finished: jax.Array  # bool: all phases done
    recommendation: jax.Array  # int32, the remaining arm once finished
    releases: jax.Array  # (M, K) the transcript: row r = phase r's released means (0: none)
    slots: PullSlots  # static: the most arms one phase pulls (`ODLinBAI.pull_slots`)


@jax.tree_util.register_static
@dataclass(frozen=True)
class PullSlots:
    """A static int riding in the state (a leafless pytree): `PullAll.slots` of the agent."""

    n: int


class Plan(NamedTuple):
    """The public, static part of OD-LinBAI's schedule (from the features and T only)."""

    budget: Budget
    first_alloc: tuple[int, ...]  # phase-1 pull counts ⌈π_i m⌉ (host design)
    first_max_variance: float  # the phase-1 design's max_i g_i (Kiefer–Wolfowitz: r)


@functools.lru_cache(maxsize=64)
def plan(feature_rows: tuple, horizon: int) -> Plan:
    """OD-LinBAI's budget split and first-phase allocation for these features and T."""
    X = np.asarray(feature_rows, np.float64)
    K = X.shape[0]
    d, w, mv = _first_design(feature_rows)
    budget = od_linbai_budget(horizon, K, d)
    alloc = allocation(w, budget.per_phase).astype(np.int64)
    return Plan(budget, tuple(int(x) for x in alloc), mv)


@functools.lru_cache(maxsize=64)
def _first_design(feature_rows: tuple) -> tuple[int, np.ndarray, float]:
    """(d, the phase-1 design's weights, its max variance): public, the same for every T."""
    X = np.asarray(feature_rows, np.float64)
    w, mv, _ = g_optimal_design_host(X)
    w.setflags(write=False)
    return _host_basis(X).shape[1], w, mv


@dataclass(frozen=True)
class ODLinBAI(PrivateReleases, AgentBase):
    """OD-LinBAI (Yang & Tan, NeurIPS 2022, Algorithm 1), and DP-OD-LinBAI for finite ε.

    ⌈log2 d⌉ phases (`od_linbai_budget`). Phase r: project the active arms A_{r−1} onto their
    span (line 4), a G-optimal design π_r on them (line 5; `g_optimal_design_host` for r = 1,
    whose arms are all K arms and public, `g_optimal_design` in JAX for r >= 2), pull each arm
    ⌈π_r(a) m⌉ times (lines 6–7; one `PullAll` step per phase, `privacy.fixed_budget.next_phase`),
    least squares (line 9; `ordinary_least_squares`), keep the ⌈d/2^r⌉ arms with the largest
    estimates (line 11; ties broken uniformly at random, `privacy.fixed_budget.top_mask`).
    Returns the remaining arm. The budget left
    over by the rounding reserve is spent on arm 0 and discarded (`spend_rest`).

    DP-OD-LinBAI (``epsilon`` < inf): the same schedule, with each design arm's phase mean
    released as mean + Laplace(1/(ε n_i)) (`privacy.fixed_budget.noisy_means`) before the least
    squares: the DP extension of OD-LinBAI that Chen, Karthik, Chee & Tan (ICLR 2024, §5)
    compare DP-BAI with, as their reviewers describe it; the paper's exact baseline is not
    available to us, so this is a reconstruction. Privacy: every reward enters one released
    mean (`privacy.fixed_budget`); designs and eliminations use only the public features and
    released means, so the policy is ε-DP for the entry relation.

    Precision: rounds are integers; without x64 the designs of phases r >= 2 are float32, and
    the rounding reserve absorbs their error while about T K 2^-23 < 1 (T up to ~10^5 for
    K = 64); beyond that a phase may be cut at the budget (`update` ends it there): use x64.
    """

    epsilon: float = math.inf
    design_tol: float = DESIGN_TOL

    def __post_init__(self):
        super().__post_init__()
        check_float("design_tol", self.design_tol, 0.0, 1.0, low_open=True)

    def horizon_inputs(self, spec) -> dict[str, np.ndarray]:
        """The schedule's numbers that depend on T, computed on the host in float64 as
        Algorithm 1 states them (checks T there: one ConfigError line): m and phase 1's
        ⌈π_i m⌉, in the dtypes of the state. The engine passes them (and T) as inputs of its
        programs (`experiments.simulate`, "Horizon as an input"), so runs at every T share them;
        the float64 ⌈π_i m⌉ is not reproducible on a device without x64."""
        if not hasattr(spec, "feature_rows"):
            raise ConfigError("needs env=linear_bai (an env with public arm features)")
        self.check_reward_grid(spec)
        p = plan(spec.feature_rows, int(spec.horizon))
        it, ft = jnp.result_type(int), jnp.result_type(float)
        return {
            "per_phase": np.asarray(p.budget.per_phase, np.float64).astype(ft),
            "first_alloc": np.asarray(p.first_alloc, it),
        }

    def init(self, key: jax.Array, spec, inputs: dict | None = None) -> ODState:
        """The state before phase 1; `spec.horizon` may be traced when `inputs` (the result of
        `horizon_inputs`, for the same spec) is given."""
        if inputs is None:
            inputs = self.horizon_inputs(spec)
        K = spec.num_arms
        d, w, _ = _first_design(spec.feature_rows)
        M, keep, _ = budget_shape(K, d)  # free of T, unlike m
        it, ft = jnp.result_type(int), jnp.result_type(float)
        return ODState(
            key=key,
            features=jnp.asarray(isotropic_rows(spec.feature_rows), ft),
            horizon=jnp.asarray(spec.horizon, it),
            per_phase=jnp.asarray(inputs["per_phase"], ft),
            keep=jnp.asarray(keep, it),
            phase=jnp.zeros((), jnp.int32),
            active=jnp.ones((K,), bool),
            alloc=jnp.asarray(inputs["first_alloc"], it),
            stats=phase_zeros(K),
            finished=jnp.zeros((), bool),
            recommendation=jnp.zeros((), jnp.int32),
            releases=jnp.zeros((M, K), ft),
            # `plan_slots`: ⌈π_i m⌉ > 0 exactly on the design's support, whatever T
            slots=PullSlots(min(K, max(int(np.count_nonzero(w > 0)), *keep, 1))),
        )

    def max_steps(self, spec) -> int:
        """One step per phase (⌈log2 d⌉ of them, `od_linbai_budget`), one for the unused
        budget: the engine's chunk size."""
        _, d = np.shape(spec.features)
        return max(1, math.ceil(math.log2(max(d, 2)))) + 2

    def act(self, rng, state: ODState, t: jax.Array) -> PullAll:
        """The phase's pulls in one step, cut at the budget arm after arm (index order)."""
        left = jnp.maximum(state.horizon - t.astype(state.horizon.dtype), 1)
        slots = self.pull_slots(state)
        return next_phase(state.alloc, state.stats, t, state.horizon, state.finished, left, slots)

    def pull_slots(self, state: ODState) -> int:
        return state.slots.n

    @staticmethod
    def plan_slots(p: Plan, num_arms: int) -> int:
        """The most arms a phase pulls: phase 1's design support (at most min(K, d(d+1)/2),
        `reduce_support`), or |A_r| <= max(keep) of a later phase (the design's support lies
        in the active set); at least 1 (the unused budget's pull of arm 0)."""
        first = sum(1 for c in p.first_alloc if c > 0)
        return min(num_arms, max(first, *p.budget.keep, 1))

    def update(self, state: ODState, t, action: PullAll, reward) -> ODState:
        stats = record(state.stats, action, reward)
        n = jnp.sum(action.counts).astype(state.horizon.dtype)
        at_end = jnp.asarray(t).astype(state.horizon.dtype) + n >= state.horizon
        done = ~state.finished & (phase_complete(state.alloc, stats) | at_end)
        # the phase end (design, least squares) runs only in steps where some lane ends a phase
        new = where_some(self, "_end_phase", done, state._replace(stats=stats), done)
        return jax.tree.map(lambda a, b: jnp.where(state.finished, a, b), state, new)

    def _end_phase(self, state: ODState, done: jax.Array) -> ODState:
        """Release the phase's means, least squares, elimination, the next phase's design.

        Run by `update` only in steps where some lane of the vmapped batch ends a phase
        (`privacy.fixed_budget.where_some`) and kept only where `done`; for the lanes of that
        batch not at a phase end the design is asked for arm 0 alone (optimal at once), so the
        Frank–Wolfe loop costs nothing there.
        """
        r = state.phase
        K = state.active.shape[0]
        released = noisy_means(
            state.stats.sums,
            state.stats.counts,
            self.epsilon,
            step_key(state.key, r),
            self.noise,
            source=self.source,
        )
        est = ordinary_least_squares(state.features, state.active, state.stats.counts, released)
        M = state.keep.shape[0]
        last = r >= M - 1
        k_max = -(-state.features.shape[1] // 2)  # ⌈d/2⌉ >= every entry of keep
        ties = tie_key(state.key, r)  # the same order for the elimination and the recommendation
        active = top_mask(est, state.active, state.keep[jnp.minimum(r, M - 1)], ties, k_max)
        only_first = jnp.arange(K) == 0
        design = g_optimal_design(
            state.features, jnp.where(done & ~last, active, only_first), tol=self.design_tol
        )
        alloc = allocation(design.weights, state.per_phase).astype(state.alloc.dtype)
        return state._replace(
            phase=r + 1,
            active=active,
            alloc=jnp.where(last, 0, alloc),
            stats=phase_zeros(K),
            finished=last,
            recommendation=best_arm(est, state.active, ties),
            releases=state.releases.at[jnp.minimum(r, M - 1)].set(released),
        )

    def output(self, state: ODState) -> jax.Array:
        return state.recommendation
