"""DP-BAI: fixed-budget ε-differentially private best-arm identification in linear bandits.

Chen, Karthik, Chee & Tan, "Fixed-Budget Differentially Private Best Arm Identification",
ICLR 2024 (arXiv:2401.09073). **Reconstruction**: only the paper's abstract and reviewers'
descriptions of its Algorithm 1 were available; the parts marked [R] below are reconstructed
and may differ from the paper in constants and details. What is taken from the paper: pure
ε-DP with respect to the K x T reward table (entry-level neighbours), Laplace noise on per-arm
empirical means, phases that estimate the arms' means from a *Max-Det collection* of arms
(Algorithm 1, line 8) with each reward used once, and the linear combination of the noisy means
of the Max-Det arms (Algorithm 1, line 14).

Algorithm (d = the rank of the features, M = max(1, ⌈log2 d⌉) phases [R: the phase count of
OD-LinBAI, Yang & Tan, NeurIPS 2022, Algorithm 1], A_1 = [K]; phase p = 1..M):

1. B_p = a Max-Det collection of A_p (line 8): r_p = dim span{a_i : i ∈ A_p} arms of A_p
   maximising |det[ã_j]_{j ∈ B_p}|, ã = U_p^T a with U_p an orthonormal basis of that span
   (the projection handles rank-deficient active sets; |det[ã_B]| = sqrt(det(Gram(a_B))), so
   no basis is formed). If |A_p| = r_p, B_p = A_p.
2. Pull each j ∈ B_p n_p = ⌊T / (M r_p)⌋ times on fresh rounds [R: equal split of the budget
   over phases]; μ̃_j = mean + Laplace(1/(ε n_p)) (`privacy.fixed_budget.noisy_means`).
3. μ̂_i = Σ_j α_ij μ̃_j for i ∈ A_p, with a_i = Σ_j α_ij a_j (ã_i = [ã_B] α_i) (line 14).
4. A_{p+1} = the ⌈d / 2^p⌉ arms of A_p with the largest μ̂ [R: the halving schedule of
   OD-LinBAI], ties broken uniformly at random (`privacy.fixed_budget.top_mask`); after phase
   M one arm is left and is recommended.

Unused budget (T - Σ_p r_p n_p < M d rounds) is spent after the last phase on rounds whose
rewards are discarded. ε = inf gives the non-private algorithm (no noise).

The device computes with the arms in isotropic position (`privacy.od_linbai.isotropic_rows`:
Max-Det collections, coefficients and estimates are invariant under that linear map of the span,
and float32's rank test resolves every direction of the whole set there).

Max-Det collections (`max_det_subset`): exact by enumeration of the C(K, r) subsets when there
are at most `MAX_ENUMERATION`; beyond, a C-approximate barycentric spanner by local swaps
(Awerbuch & Kleinberg, "Online linear optimization and adaptive routing", JCSS 2008,
Proposition 2.4): from a greedy basis, swap an arm in while that multiplies |det| by more than
C = `SPANNER_C` = 2, which ends with every |α_ij| <= C (exact: <= 1 by Cramer's rule). Inside
the agent the first phase's collection is computed at trace time on the public features (this
function); later phases (at most ⌈d/2⌉ active arms, data-dependent) enumerate all subsets of the
active arms on the device (`masked_max_det`, exact while ⌈d/2⌉ <= `MAX_DEVICE_ARMS`, i.e.
d <= 24; beyond, the same C-approximate local swaps on the device, `masked_local_swap`).

`phase_rollout`: the same agent run phase by phase without the engine's scan (M phases per
repetition instead of a chunk of at least 100 steps, of which the engine uses M + 1: one
`PullAll` per phase and one for the unused budget), for large Monte Carlo sweeps.

Privacy: `privacy.fixed_budget` (each table entry enters at most one release; every release is
a Laplace(1/(ε n)) mean of n clipped rewards; schedules depend only on public features and
released values): pure ε-DP for entry-level neighbours, and for the one-column relation.
"""

from __future__ import annotations

import functools
import itertools
import math
from dataclasses import dataclass
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from bandits.linear_bai import CANDIDATES, binomial
from experiments.batched_cond import cond_any
from experiments.config import ConfigError
from experiments.protocol import step_key
from privacy import fixed_budget as fb
from privacy.od_linbai import isotropic_rows, psd_solve, rank_rtol

SPANNER_C = 2.0  # local swaps stop when no swap grows |det| by more than this factor
MAX_ENUMERATION = 20_000  # exact Max-Det when C(K, r) is at most this
MAX_DEVICE_ARMS = 12  # later phases enumerate the 2^s subsets of s <= 12 active arms, else swap
RANK_TOL = 1e-9  # relative singular-value threshold (float64, host), times max(K, d)
# (the device's rank test: `device_rank_rtol`)


# --------------------------------------------------------------------------- Max-Det (host)
def _projected(features: np.ndarray) -> tuple[np.ndarray, int]:
    """ã = U^T a for an orthonormal basis U of the span of the rows, and the rank r."""
    a = np.asarray(features, np.float64)
    _, s, vt = np.linalg.svd(a, full_matrices=False)
    r = int(np.sum(s > RANK_TOL * max(a.shape) * max(s[0] if s.size else 0.0, 1e-300)))
    return a @ vt[:r].T, r


def max_det_subset(
    features, *, exact: bool | None = None, c: float = SPANNER_C
) -> tuple[np.ndarray, float]:
    """A Max-Det collection of the rows of `features` (K, d): (indices sorted ascending, |det|).

    r = rank of the rows; the r rows B maximising |det[ã_j]_{j ∈ B}| in an orthonormal basis
    of their span. ``exact=None``: exact enumeration when C(K, r) <= `MAX_ENUMERATION` (ties to
    the lexicographically first subset), otherwise the C-approximate local-swap spanner (every
    row is a combination of B with coefficients |α_ij| <= c). Chen et al. 2024, Algorithm 1,
    line 8; Awerbuch & Kleinberg 2008, Proposition 2.4.
    """
    a = np.asarray(features, np.float64)
    if a.ndim != 2 or a.shape[0] < 1 or not np.all(np.isfinite(a)):
        raise ConfigError("features: must be a finite (K, d) array with K >= 1")
    at, r = _projected(a)
    if r == 0:
        return np.zeros(0, np.int64), 1.0
    if exact is None:
        exact = math.comb(a.shape[0], r) <= MAX_ENUMERATION
    if exact:
        best, best_det = None, -1.0
        for comb in itertools.combinations(range(a.shape[0]), r):
            det = abs(np.linalg.det(at[list(comb)]))
            if det > best_det * (1 + 1e-12):
                best, best_det = comb, det
        return np.asarray(best, np.int64), float(best_det)
    return _local_swap(at, r, c)


def _local_swap(at: np.ndarray, r: int, c: float) -> tuple[np.ndarray, float]:
    """Greedy basis (largest residual first), then swaps while some |α_ij| > c."""
    chosen: list[int] = []
    resid = at.copy()
    for _ in range(r):
        i = int(np.argmax(np.einsum("ij,ij->i", resid, resid)))
        chosen.append(i)
        v = resid[i] / np.linalg.norm(resid[i])
        resid = resid - np.outer(resid @ v, v)
    basis = np.asarray(chosen)
    for _ in range(10_000):  # each swap multiplies |det| by > c: finitely many
        alpha = coefficients(at, basis)  # (K, r)
        i, j = np.unravel_index(int(np.argmax(np.abs(alpha))), alpha.shape)
        if abs(alpha[i, j]) <= c:
            break
        basis[j] = i
    order = np.argsort(basis)
    return basis[order], float(abs(np.linalg.det(at[basis[order]])))


def coefficients(features, subset) -> np.ndarray:
    """α (K, |B|): each row a_i = Σ_j α_ij a_{B_j} (least squares; exact for rows in the span
    of B). For a Max-Det collection |α_ij| <= 1; for a C-approximate spanner <= C."""
    a = np.asarray(features, np.float64)
    b = a[np.asarray(subset, np.int64)]
    sol, *_ = np.linalg.lstsq(b.T, a.T, rcond=None)
    return sol.T


# --------------------------------------------------------------------------- Max-Det (device)
def device_rank_rtol(dtype, slots: int, d: int) -> float:
    """The device rank test: a direction counts when its pivot in the pivoted elimination of
    the active arms' Gram matrix (`privacy.od_linbai.psd_solve`: the squared residual of
    pivoted Gram–Schmidt, the rank-revealing stand-in for a squared singular value) exceeds
    this times the largest diagonal entry.

    The host's test (`_projected`) counts the singular values above RANK_TOL · max(K, d) of
    the largest: in Gram terms pivots above (1e-9 max(K, d))², at most 4e-15 for K <= 64,
    finer than a Gram matrix computed in floating point resolves (its entries carry rounding
    of about max(s, d) eps of the largest, s the active slots). So the device counts every
    direction the Gram resolves: pivots above 16 max(s, d) eps (`privacy.od_linbai.rank_rtol`,
    the rule of OD-LinBAI's projection) — float32, d = 11: a residual ratio √(16 · 11 · eps) =
    4.6e-3 (two unit arms count as two directions from 4.6e-3 rad apart); float64: 2e-7.
    """
    return rank_rtol(slots, d, dtype)


def active_rank(g: jax.Array, valid: jax.Array, rtol: float) -> jax.Array:
    """The rank of the valid slots' Gram matrix `g` (s, s) by `psd_solve`'s pivots above
    `rtol` times its largest diagonal entry (`device_rank_rtol`); elementwise under vmap."""
    vf = valid.astype(g.dtype)
    _, rank = psd_solve(g * vf[:, None] * vf[None, :], jnp.zeros((g.shape[0], 1), g.dtype), rtol)
    return rank


def masked_max_det(features: jax.Array, active: jax.Array, slots: int) -> jax.Array:
    """A Max-Det collection of the active rows (at most `slots` of them), as a (K,) mask.

    ``slots <= MAX_DEVICE_ARMS``: exact, enumerating the 2^slots subsets of the active arms:
    the rank r of the active rows is `active_rank` at `device_rank_rtol` (the host's
    singular-value test as far as a Gram matrix resolves it), and among the subsets of size r
    the one with the largest det(G_S) = |det[ã_S]|^2 wins (ties to the first in bitmask order).
    Beyond: the `SPANNER_C`-approximate local-swap spanner (`masked_local_swap`).
    jit/vmap-able.

    Linearly independent active arms (rank = their number) are their own collection: the only
    subset of that size. So the enumeration runs only in calls where some lane of the vmapped
    batch has dependent active arms (`experiments.batched_cond.cond_any`), with the same result
    (both compute the rank by `active_rank` on the same Gram matrix).
    """
    if slots > MAX_DEVICE_ARMS:
        return masked_local_swap(features, active, slots)
    k = features.shape[0]
    idx = jnp.nonzero(active, size=slots, fill_value=0)[0]
    valid = jnp.arange(slots) < jnp.sum(active)
    x = features[idx]
    g = x @ x.T
    d = x.shape[1]
    whole = active_rank(g, valid, device_rank_rtol(g.dtype, slots, d)) == jnp.sum(valid)
    own = jnp.zeros((k,), bool).at[idx].max(valid)
    return cond_any(_enumerated_max_det, slots, d)(~whole, (g, idx, valid, own), own)


def _enumerated_max_det(inputs, slots: int, dim: int = 0) -> jax.Array:
    """`masked_max_det`'s enumeration of the 2^slots subsets (Gram matrix `g` of the slots of
    `dim` coordinates): among the subsets of the valid slots of size r = `active_rank`, the
    largest det(G_S)."""
    g, idx, valid, own = inputs
    rank = active_rank(g, valid, device_rank_rtol(g.dtype, slots, dim))
    bits = (np.arange(2**slots)[:, None] >> np.arange(slots)[None, :]) & 1
    s = jnp.asarray(bits, bool)  # (2^slots, slots)
    ok = ~jnp.any(s & ~valid[None, :], axis=1) & (jnp.sum(s, axis=1) == rank)
    sf = s.astype(g.dtype)
    m = g[None] * sf[:, :, None] * sf[:, None, :] + jax.vmap(jnp.diag)(1 - sf)
    pick = jnp.argmax(jnp.where(ok, jnp.linalg.det(m), -jnp.inf))
    return jnp.zeros_like(own).at[idx].max(s[pick] & valid)


def masked_local_swap(
    features: jax.Array, active: jax.Array, slots: int, c: float = SPANNER_C
) -> jax.Array:
    """A C-approximate barycentric spanner of the active rows (Awerbuch & Kleinberg 2008,
    Prop. 2.4), as a (K,) mask: a greedy basis (pivoted Gram-Schmidt; a squared residual below
    `device_rank_rtol` times the largest squared norm ends it, which sets the rank), then swaps
    while some |α_ij| > c, at most 8 d swaps (each multiplies |det| by more than c)."""
    k, d = features.shape
    idx = jnp.nonzero(active, size=slots, fill_value=0)[0]
    valid = jnp.arange(slots) < jnp.sum(active)
    x = features[idx] * valid[:, None].astype(features.dtype)
    floor = device_rank_rtol(x.dtype, slots, d) * jnp.max(jnp.sum(x * x, axis=1))

    def greedy(i, carry):
        resid, chosen = carry
        norms = jnp.where(valid & ~chosen, jnp.sum(resid * resid, axis=1), -1.0)
        j = jnp.argmax(norms)
        take = norms[j] > floor
        v = resid[j] / jnp.sqrt(jnp.maximum(norms[j], 1e-30))
        resid = jnp.where(take, resid - jnp.outer(resid @ v, v), resid)
        return resid, chosen.at[j].set(chosen[j] | take)

    _, chosen = jax.lax.fori_loop(0, d, greedy, (x, jnp.zeros((slots,), bool)))

    def coefficients_of(chosen):
        b = chosen.astype(x.dtype)
        xb = x * b[:, None]
        g = xb @ xb.T + jnp.diag(1 - b)
        return jnp.linalg.solve(g, xb @ x.T)  # (slots, slots): row j = basis slot, column i

    def cond(carry):
        chosen, n = carry
        a = jnp.abs(coefficients_of(chosen)) * (chosen[:, None] & valid[None, :])
        return (n < 8 * d) & (jnp.max(a) > c)

    def swap(carry):
        chosen, n = carry
        a = jnp.abs(coefficients_of(chosen)) * (chosen[:, None] & valid[None, :])
        j, i = jnp.unravel_index(jnp.argmax(a), a.shape)
        return chosen.at[j].set(False).at[i].set(True), n + 1

    chosen, _ = jax.lax.while_loop(cond, swap, (chosen, jnp.zeros((), jnp.int32)))
    return jnp.zeros((k,), bool).at[idx].max(chosen & valid)


def spanned_estimates(
    features: jax.Array, basis: jax.Array, values: jax.Array, slots: int | None = None
) -> jax.Array:
    """μ̂_i = Σ_j α_ij values_j over the basis arms (mask `basis`, at most `slots` of them,
    default d), with a_i = Σ_j α_ij a_j.

    α_i solves Gram(a_B) α_i = A_B a_i (the coordinates of a_i's projection on span B; exact
    for a_i in the span), so μ̂ = A A_B^T w with one solve Gram(a_B) w = values_B: O(s^3 + dK)
    per call on the s slots of B (padding rows: the identity), by an unrolled Cholesky
    factorisation (`_spd_solve`: elementwise over a vmapped batch, no per-lane LAPACK call).
    """
    d = features.shape[1]
    s = d if slots is None else int(slots)
    idx = jnp.nonzero(basis, size=s, fill_value=0)[0]
    valid = (jnp.arange(s) < jnp.sum(basis)).astype(features.dtype)
    x = features[idx] * valid[:, None]  # (s, d): padding rows zero
    g = x @ x.T + jnp.diag(1 - valid)
    w = _spd_solve(g, values[idx] * valid)
    return features @ (x.T @ w)


def _cholesky(g: jax.Array) -> tuple[list[list[jax.Array]], jax.Array]:
    """The lower Cholesky factor of a small SPD matrix as a static list of rows of scalars, and
    det(g) = Π of the pivots (<= 0 entries: a non-positive-definite g; the pivot is then
    floored at `tiny` so nothing divides by zero). Unrolled: under vmap every operation is one
    elementwise operation over the batch (a LAPACK call per lane costs ~µs for 6 x 6)."""
    s = g.shape[0]
    tiny = jnp.finfo(g.dtype).tiny
    low: list[list[jax.Array]] = [[] for _ in range(s)]
    det = jnp.ones((), g.dtype)
    for j in range(s):
        piv = g[j, j] - sum((low[j][k] ** 2 for k in range(j)), jnp.zeros((), g.dtype))
        det = det * piv
        ljj = jnp.sqrt(jnp.maximum(piv, tiny))
        low[j].append(ljj)
        for i in range(j + 1, s):
            dot = sum((low[i][k] * low[j][k] for k in range(j)), jnp.zeros((), g.dtype))
            low[i].append((g[i, j] - dot) / ljj)
    return low, det


def _spd_solve(g: jax.Array, b: jax.Array) -> jax.Array:
    """g^-1 b for a small SPD g (`_cholesky`, then forward and back substitution)."""
    low, _ = _cholesky(g)
    s = g.shape[0]
    y: list[jax.Array] = []
    for i in range(s):
        y.append(
            (b[i] - sum((low[i][k] * y[k] for k in range(i)), jnp.zeros((), b.dtype))) / low[i][i]
        )
    x: list[jax.Array] = [jnp.zeros((), b.dtype)] * s
    for i in reversed(range(s)):
        acc = sum((low[k][i] * x[k] for k in range(i + 1, s)), jnp.zeros((), b.dtype))
        x[i] = (y[i] - acc) / low[i][i]
    return jnp.stack(x)


# --------------------------------------------------------------------------- the agent
@jax.tree_util.register_static
@dataclass(frozen=True)
class DPBAIPlan:
    """The static schedule (public data only): features, M, the kept-set sizes s_2..s_{M+1}
    and phase 1's Max-Det collection. A pytree without leaves. T is not in it (the state's
    ``horizon``: an input of the engine's programs, so runs at every T share them)."""

    feature_rows: tuple[tuple[float, ...], ...]
    phases: int  # M
    keep: tuple[int, ...]  # keep[p] = |A_{p+2}| = ⌈d / 2^(p+1)⌉ (0-based phase p)
    first_basis: tuple[int, ...]  # B_1, sorted
    rank: int  # d
    slots: int  # most active arms after phase 1 (= keep[0])


def make_plan(features) -> DPBAIPlan:
    """M = max(1, ⌈log2 d⌉), s_{p+1} = ⌈d/2^p⌉, B_1 = `max_det_subset(features)` (none of them
    depends on T: the phase budgets are computed in the agent's state, from T)."""
    a = np.asarray(features, np.float64)
    return _plan(tuple(tuple(float(x) for x in r) for r in a))


@functools.lru_cache(maxsize=64)
def _plan(rows: tuple[tuple[float, ...], ...]) -> DPBAIPlan:
    """`make_plan` of the feature rows (cached: every T of a sweep has the same plan)."""
    a = np.asarray(rows, np.float64)
    _, d = _projected(a)
    m = max(1, math.ceil(math.log2(d))) if d > 1 else 1
    keep = tuple(max(1, math.ceil(d / 2**p)) for p in range(1, m + 1))
    first, _ = max_det_subset(a)
    return DPBAIPlan(rows, m, keep, tuple(int(i) for i in first), d, keep[0])


class DPBAIState(NamedTuple):
    key: jax.Array  # the agent's key; phase p's release key is step_key(key, p), ties fb.tie_key
    plan: DPBAIPlan  # static
    horizon: jax.Array  # () int: T (traced in the engine's programs)
    phase: jax.Array  # 0-based phase index
    active: jax.Array  # (K,) bool: A_p
    alloc: jax.Array  # (K,) int: n_p on B_p, 0 elsewhere
    stats: fb.PhaseStats  # counts and sums of this phase
    finished: jax.Array  # () bool: the last phase has ended
    choice: jax.Array  # () int32: the recommendation (once finished)
    releases: jax.Array  # (M, K) the transcript: row p = phase p's released noisy means (0: none)


@dataclass(frozen=True)
class DPBAI(fb.PrivateReleases, fb.PhasedAgent):
    """DP-BAI (Chen et al., ICLR 2024, Algorithm 1; reconstruction: module docstring).

    `epsilon`: pure ε-DP per table entry (``inf``: no noise, the non-private algorithm);
    `noise`: research | secure (`privacy.fixed_budget.noisy_means`). Acts with
    ``bandits.linear_bai.PullAll(counts)``: one step per phase (n_p pulls of each arm of B_p,
    in index order), then one step for the unused budget.
    """

    def horizon_inputs(self, spec: Any) -> tuple:
        """Checks T on the host (one ConfigError line) before the engine traces `init` with T
        as an input (`experiments.simulate`, "Horizon as an input"); the plan needs nothing
        else from T (n_p = ⌊T / (M |B_p|)⌋ is integer arithmetic on the device)."""
        self.check_reward_grid(spec)
        pl = make_plan(spec.features)
        need = pl.phases * pl.rank
        if spec.horizon < need:
            raise ConfigError(
                f"horizon T = {spec.horizon} is smaller than the {need} rounds DP-BAI needs"
                f" (M d = {pl.phases} x {pl.rank}: one pull per Max-Det arm and phase)"
            )
        return ()

    def init(self, key: jax.Array, spec: Any, inputs: tuple | None = None) -> DPBAIState:
        """The state before phase 1; `spec.horizon` may be traced when `inputs` (the result of
        `horizon_inputs`, checked by the engine) is given."""
        horizon = fb.checked_horizon(self, spec, inputs)
        pl = make_plan(spec.features)
        k = len(pl.feature_rows)
        it = jnp.result_type(int)
        n1 = horizon // (pl.phases * len(pl.first_basis))
        basis = np.zeros(k, bool)
        basis[list(pl.first_basis)] = True
        return DPBAIState(
            key=key,
            plan=pl,
            horizon=horizon,
            phase=jnp.zeros((), it),
            active=jnp.ones((k,), bool),
            alloc=jnp.where(basis, n1, 0).astype(it),
            stats=fb.phase_zeros(k),
            finished=jnp.zeros((), bool),
            choice=jnp.zeros((), jnp.int32),
            releases=jnp.zeros((pl.phases, k), jnp.result_type(float)),
        )

    def max_steps(self, spec: Any) -> int:
        """One step per phase (M <= max(1, ⌈log2 d⌉)), one for the unused budget: the
        engine's chunk size."""
        _, d = np.shape(spec.features)
        return max(1, math.ceil(math.log2(max(d, 1)))) + 2

    def pull_slots(self, state: DPBAIState) -> int:
        """|B_1| = d: every later B_p spans the smaller span of A_p, so |B_p| <= |B_1|."""
        return len(state.plan.first_basis)

    def end_phase(self, state: DPBAIState) -> DPBAIState:
        """Release B_p's noisy means, estimate μ̂ on A_p, keep the top s_{p+1}, plan p + 1."""
        pl = state.plan
        feats = jnp.asarray(isotropic_rows(pl.feature_rows), jnp.result_type(float))
        basis = state.alloc > 0
        key = step_key(state.key, state.phase)
        released = fb.noisy_means(
            state.stats.sums,
            state.stats.counts,
            self.epsilon,
            key,
            self.noise,
            release=basis,
            source=self.source,
        )
        estimates = _estimates(pl, feats, basis, released, state.phase)
        keep = jnp.asarray(pl.keep)[state.phase]
        ties = fb.tie_key(state.key, state.phase)
        active = fb.top_mask(estimates, state.active, keep, ties, pl.keep[0])
        last = state.phase >= pl.phases - 1
        nxt = masked_max_det(feats, active, pl.slots)
        n = state.horizon // (pl.phases * jnp.maximum(jnp.sum(nxt), 1))
        return state._replace(
            phase=state.phase + 1,
            active=active,
            alloc=jnp.where(nxt & ~last, n, 0).astype(state.alloc.dtype),
            stats=fb.phase_zeros(feats.shape[0]),
            finished=last,
            choice=jnp.argmax(active).astype(jnp.int32),
            releases=state.releases.at[state.phase].set(released),
        )

    def output(self, state: DPBAIState) -> jax.Array:
        return state.choice


def _estimates(pl: DPBAIPlan, feats: jax.Array, basis, released, phase) -> jax.Array:
    """μ̂ of line 14. Phase 1 (B_1 public and fixed): the coefficients α of B_1 computed once
    on the host in float64 (`coefficients`), μ̂ = α μ̃_{B_1}, one (K x |B_1|) product. Later
    phases: `spanned_estimates` on `pl.slots` slots (B_p is within A_p, at most s_2 arms).

    An arm j of B_p has α_j = e_j, so μ̂_j = μ̃_j: returned as exactly that (`exact_on_basis`),
    not as the rounded product, so that arms with equal released means tie exactly and the
    tie rule of `privacy.fixed_budget.top_mask` decides between them, not rounding (the last
    phase's duel, B_p = A_p, is where ties are frequent without noise)."""
    b1 = np.asarray(pl.first_basis, np.int64)
    alpha = jnp.asarray(coefficients(np.asarray(pl.feature_rows), b1), feats.dtype)
    first = alpha @ released[b1]
    if pl.phases == 1:
        return exact_on_basis(first, basis, released)
    later = spanned_estimates(feats, basis, released, pl.slots)
    return exact_on_basis(jnp.where(phase == 0, first, later), basis, released)


def exact_on_basis(estimates: jax.Array, basis: jax.Array, released: jax.Array) -> jax.Array:
    """`estimates` with each basis arm's entry replaced by its own released mean (its value in
    exact arithmetic: a_j = 1 · a_j)."""
    return jnp.where(basis, released, estimates)


# --------------------------------------------------------------------------- phase-level form
def phase_rollout(agent: DPBAI, spec: Any, params: Any, run_key: jax.Array) -> DPBAIState:
    """One repetition of DP-BAI phase by phase, without the engine's scan (a closed form beside
    the one rollout): M phases, no chunk of idle steps.

    The agent's own `init` and `end_phase` run; only the data path differs: each phase's sums
    are drawn at once. `params` of `bandits.linear_bai.LinearBAI` (means): Binomial(n_p, μ_j)
    for the basis arms (`bandits.linear_bai.binomial`), from ``fold_in(step key, p)``: the
    same law as the engine's pulls, not the same draws; of `TableLinearBAI` (cumulative
    sums): the table windows the engine reads (basis arms in ascending order, n_p consecutive
    rounds each), so with the same run key the releases and the recommendation equal the
    engine's. The agent's key is the engine's (`experiments.rollout`, "Randomness"), so the
    noise is the same. jit/vmap over run keys.
    """
    init_key, step_key_ = jax.random.split(run_key)
    state = agent.init(jax.random.split(init_key)[1], spec)
    table = getattr(params, "cumulative", None)
    t = jnp.zeros((), jnp.result_type(int))
    for p in range(state.plan.phases):
        alloc = state.alloc
        basis = alloc > 0
        if table is None:
            mu = params.means
            d = len(state.plan.feature_rows[0])  # |B_p| <= d: draw for d slots only
            idx = jnp.nonzero(basis, size=d, fill_value=0)[0]
            k_u, k_b = jax.random.split(jax.random.fold_in(step_key_, p))
            u = jax.random.uniform(k_u, (d, CANDIDATES, 2), mu.dtype)
            draws = jax.vmap(binomial)(u, jax.random.split(k_b, d), alloc[idx], mu[idx])
            ok = jnp.arange(d) < jnp.sum(basis)
            sums = jnp.zeros_like(mu).at[idx].add(jnp.where(ok, draws, 0.0).astype(mu.dtype))
        else:
            start = t + jnp.cumsum(alloc) - alloc  # arms in ascending order, back to back
            rows = jnp.arange(alloc.shape[0])
            sums = table[rows, start + alloc] - table[rows, start]
            t = t + jnp.sum(alloc)
        stats = fb.PhaseStats(alloc.astype(state.stats.counts.dtype), sums)
        state = agent.end_phase(state._replace(stats=fb.record_sums(stats)))
    return state
