"""The value-optimistic solver's bonus, audited term by term against an independent reference.

`rl.optimistic.plan_histories` plans over dense history tensors. The reference here is a plain
depth-first recursion over the histories τ_h = (s_1, a_1, r_1, …, s_h), written from the
formulas alone (the reconstruction after Zhou, Wang & Du, ICML 2023, arXiv:2210.11604, §3, with
MVP's bonus, Zhang, Ji & Du, COLT 2021, Algorithm 1):

    α̃_m(τ_h, a) = min{1, R̂_m(s_h, a) + P̂_m(·|s_h, a)ᵀ α̃_m(τ_h a r_m ·) + β_m(s_h, a)},
    β = scale · (c₁ √(𝕍(P̂_m(·|s_h, a), α̃_m(τ_h a r_m ·)) ι / n) + c₃ ι / n),  n = max(N, 1),

a* the maximiser of Σ_m u_m(τ_h) α̃_m(τ_h, a) (u the unnormalised empirical belief), and
V̄ = Σ_s Σ_m ŵ_m ν̂_m(s) α̃_m(s). Each check states what it pins down:

* the bonus uses the variance of the *next-step* alpha vector of the *same* context, under that
  context's empirical row P̂_m(·|s, a), at the action actually chosen at the child (not a per-step
  bound times H, not the current node's value, not another context's vector);
* n is the count of (m, s, a) — per context, per pair — and ι enters once per step;
* horizon-free scaling: the bonus is charged per step at the count of the pair visited, so a
  pair repeated H times per episode has a Bernstein total c₃ ι / k after k episodes whatever H
  (the Hoeffding total grows like √H), and ι grows only by 2 ln 2 per doubling of H;
* variance dependence: with deterministic empirical rows the c₁ term is exactly 0 and the bonus
  is the c₃ ι / n term alone.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rl.backup import C1, C3, C_L1
from rl.optimistic import iota, model_inputs, plan_histories

TOL = 1e-12  # float64 round-off on values <= 1 from a few hundred operations
# the planner compiled, as the agents run it (a compiler may fuse multiply-adds that op-by-op
# execution rounds twice: the values must hold for the compiled form; and it is 8x faster)
planned = jax.jit(plan_histories, static_argnums=(1, 2))


# --------------------------------------------------------------------------- the reference
def ref_bonus(kind: str, n: float, p: np.ndarray, v: np.ndarray, io: float, scale: float):
    """(c₁ part, c₃ part) of β for one (m, s, a): `p` the row P̂_m(·|s, a), `v` the next alpha."""
    n = max(n, 1.0)
    if kind == "bernstein":
        var = float(p @ (v - p @ v) ** 2)  # two passes: exactly 0 for a one-hot row
        return scale * C1 * math.sqrt(var * io / n), scale * C3 * io / n
    if kind == "hoeffding":
        return scale * C_L1 * math.sqrt(len(p) * io / n), 0.0
    return 0.0, 0.0


def ref_plan(w, nu, P, R, N, io, scale, kind, H):
    """Depth-first optimistic planning (module docstring). Returns (V̄, policy, parts): policy
    and parts keyed by the history (s_1, (a, r, s'), …); parts[hist] = (β₁ (M,), β₃ (M,)) of the
    chosen action."""
    M, S, A, _ = P.shape
    policy, parts = {}, {}

    def node(hist, s, u, h):
        vecs, b1s, b3s = np.zeros((A, M)), np.zeros((A, M)), np.zeros((A, M))
        for a in range(A):
            nxt = np.zeros((M, S))  # nxt[m]: the next alpha of context m (its reward's child)
            if h < H - 1:
                for r in np.unique(R[:, s, a]):
                    grp = R[:, s, a] == r
                    for s2 in range(S):
                        cu = u * grp * P[:, s, a, s2]
                        child = node((*hist, (a, float(r), s2)), s2, cu, h + 1)
                        nxt[grp, s2] = child[grp]
            for m in range(M):
                v = nxt[m]
                b1, b3 = ref_bonus(kind, N[m, s, a], P[m, s, a], v, io, scale)
                vecs[a, m] = min(1.0, R[m, s, a] + P[m, s, a] @ v + b1 + b3)
                b1s[a, m], b3s[a, m] = b1, b3
        q = vecs @ u
        best = int(np.argmax(q))
        policy[hist] = best
        parts[hist] = (b1s[best], b3s[best])
        return vecs[best]

    value = 0.0
    for s in range(S):
        u = w * nu[:, s]
        value += float(u @ node((s,), s, u, 0))
    return value, policy, parts


def plan_inputs(w, nu, P, R, N, io, scale):
    return model_inputs(w, nu, P, R, N, io, scale, dtype=jnp.float64)


def random_empirical(M, S, A, H, seed, deterministic=False):
    """A random empirical LMDP with continuous probabilities (no exact ties), rewards that branch
    partly (two levels), counts that differ per (m, s, a) (1..400)."""
    rng = np.random.default_rng(seed)
    w = rng.dirichlet(np.ones(M))
    nu = rng.dirichlet(np.ones(S), M)
    if deterministic:
        P = np.eye(S)[rng.integers(0, S, (M, S, A))]
    else:
        P = rng.dirichlet(np.ones(S), (M, S, A))
    R = rng.integers(0, 2, (M, S, A)) * rng.uniform(0.2, 1.0, (M, S, A)) / H
    N = rng.integers(1, 401, (M, S, A)).astype(float)
    return w, nu, P, R, N


# --------------------------------------------------------------------------- checks
@pytest.mark.parametrize("kind", ["bernstein", "hoeffding"])
@pytest.mark.parametrize("seed,sizes", [(0, (2, 2, 2, 3)), (1, (2, 3, 2, 2)), (2, (3, 2, 2, 2))])
def test_planner_equals_the_reference_recursion(kind, seed, sizes):
    """V̄ and the greedy action at every history of positive empirical probability equal the
    depth-first reference, at a scale where the bonus is active but mostly below the clip (so the
    variance term decides values): a misplaced variance (current node, another context, the
    unchosen child action) or a count of the wrong (m, s, a) changes V̄ by far more than TOL."""
    M, S, A, H = sizes
    w, nu, P, R, N = random_empirical(M, S, A, H, seed)
    io, scale = 20.0, 0.002 if kind == "bernstein" else 0.02
    v_ref, pol_ref, parts = ref_plan(w, nu, P, R, N, io, scale, kind, H)
    clipped = sum(float(np.sum(b1 + b3)) > 1 for b1, b3 in parts.values())
    assert clipped < len(parts) / 4  # the bonus mostly below the clip: not vacuous
    assert max(float(np.max(b1)) for b1, _ in parts.values()) > 1e-3  # the variance term acts
    with jax.enable_x64(True):
        plan = planned(plan_inputs(w, nu, P, R, N, io, scale), H, kind)
        assert float(plan.value) == pytest.approx(v_ref, abs=TOL)
        # the dense policy: node index at step h+1 = node * (A M S) + (a M + j) S + s', j the
        # class (smallest context with the same reward) of the observed reward
        pol = np.asarray(plan.policy)
        offsets = np.cumsum([0] + [S * (A * M * S) ** h for h in range(H)])
        cls = np.argmax(R[:, None] == R[None, :], axis=1)  # (M, S, A)

        def walk(hist, s, idx, h, u):
            if u.sum() > 0:
                assert pol[offsets[h] + idx] == pol_ref[hist], hist
            if h == H - 1:
                return
            for a in range(A):
                for m in range(M):
                    j = int(cls[m, s, a])
                    if m != j:
                        continue  # one child per reward class
                    grp = R[:, s, a] == R[m, s, a]
                    for s2 in range(S):
                        child = idx * (A * M * S) + (a * M + j) * S + s2
                        cu = u * grp * P[:, s, a, s2]
                        walk((*hist, (a, float(R[m, s, a]), s2)), s2, child, h + 1, cu)

        for s in range(S):
            walk((s,), s, s, 0, w * nu[:, s])


def test_bonus_reads_the_next_alpha_of_the_same_context():
    """By hand: M = 2, S = 3, A = 1, H = 2, w = (1/2, 1/2), both contexts start in state 0 (reward
    0). From state 0 both move to state 1 w.p. 3/4, else to state 2; context 0 pays 1/2 in
    state 2, context 1 pays 1/4 in state 1. At the last step α̃_m(s') = R_m(s') + β₃ with
    β₃ = scale c₃ ι / n₂ (no variance at the last step), so at step 1 context m's variance is
    𝕍((3/4, 1/4), R_m) — (3/16)(1/2)² for context 0, (3/16)(1/4)² for context 1 — with its own
    count n₁ of (m, 0, 0). Reading the current node, the other context's vector, or the
    count of another pair gives another value."""
    io, scale, n1, n2 = 10.0, 0.001, 50.0, 200.0
    P = np.zeros((2, 3, 1, 3))
    P[:, :, 0] = [0.0, 0.75, 0.25]
    R = np.zeros((2, 3, 1))
    R[0, 2, 0], R[1, 1, 0] = 0.5, 0.25
    N = np.full((2, 3, 1), n2)
    N[:, 0, 0] = n1
    w, nu = np.array([0.5, 0.5]), np.array([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    b3_last = scale * C3 * io / n2
    means = [0.25 * 0.5, 0.75 * 0.25]
    variances = [0.1875 * 0.5**2, 0.1875 * 0.25**2]
    beta = [scale * C1 * math.sqrt(v * io / n1) + scale * C3 * io / n1 for v in variances]
    expect = sum(0.5 * (e + b3_last + b) for e, b in zip(means, beta, strict=True))
    v_ref, _, parts = ref_plan(w, nu, P, R, N, io, scale, "bernstein", 2)
    assert v_ref == pytest.approx(expect, abs=TOL)
    np.testing.assert_allclose(
        parts[(0,)][0], [scale * C1 * math.sqrt(v * io / n1) for v in variances], rtol=1e-12
    )
    with jax.enable_x64(True):
        plan = planned(plan_inputs(w, nu, P, R, N, io, scale), 2, "bernstein")
        assert float(plan.value) == pytest.approx(expect, abs=TOL)


def test_bonus_is_horizon_free_on_a_repeated_pair():
    """Horizon-free scaling of the bonus (what E2 relies on): the bonus is charged once per step
    *at the count of the pair visited*, and counts grow with the visits, so H visits per episode
    make n = H k after k episodes. One deterministic state-action pair repeated for H steps,
    rewards 1/(2H) (return 1/2, no clip): the Bernstein total is H · c₃ ι / (H k) = c₃ ι / k,
    the same for H = 1..4 (no variance: deterministic), while the Hoeffding (L-UCRL-style) total
    H √(2 S ι / (H k)) grows like √H. ι itself gains only 2 ln 2 per doubling of H."""
    io, scale, k = 12.0, 0.01, 500
    for H in range(1, 5):
        w, nu = np.array([1.0]), np.array([[1.0]])
        P = np.ones((1, 1, 1, 1))
        R = np.full((1, 1, 1), 0.5 / H)
        N = np.full((1, 1, 1), float(H * k))
        v_ref, _, _ = ref_plan(w, nu, P, R, N, io, scale, "bernstein", H)
        assert v_ref - 0.5 == pytest.approx(scale * C3 * io / k, abs=TOL)
        v_h, _, _ = ref_plan(w, nu, P, R, N, io, scale, "hoeffding", H)
        assert v_h - 0.5 == pytest.approx(scale * C_L1 * math.sqrt(H * io / k), abs=TOL)
        with jax.enable_x64(True):
            for kind, v in (("bernstein", v_ref), ("hoeffding", v_h)):
                x = planned(plan_inputs(w, nu, P, R, N, io, scale), H, kind).value
                assert float(x) == pytest.approx(v, abs=TOL)
    with jax.enable_x64(True):
        gain = float(iota(2, 3, 2, 8, 10**4, 0.1) - iota(2, 3, 2, 4, 10**4, 0.1))
    assert gain == pytest.approx(2 * math.log(2), abs=TOL)


@pytest.mark.parametrize("seed", [3, 4])
def test_deterministic_rows_have_no_variance_term(seed):
    """Variance dependence (what E3's Var* = 0 case relies on): with one-hot empirical rows every
    𝕍(P̂, α̃) is exactly 0, so the planner's V̄ equals the reference with the c₁ term removed
    (the reference computes it and finds 0 at every node)."""
    M, S, A, H = 2, 3, 2, 3
    w, nu, P, R, N = random_empirical(M, S, A, H, seed, deterministic=True)
    io, scale = 20.0, 0.002
    v_ref, _, parts = ref_plan(w, nu, P, R, N, io, scale, "bernstein", H)
    assert all(float(np.max(b1)) == 0.0 for b1, _ in parts.values())
    with jax.enable_x64(True):
        v = float(planned(plan_inputs(w, nu, P, R, N, io, scale), H, "bernstein").value)
    assert v == pytest.approx(v_ref, abs=TOL)
