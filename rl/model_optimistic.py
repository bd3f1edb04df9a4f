"""The model-optimistic solver for latent MDPs with context in hindsight, on tiny instances.

Paper: Zhou, Wang & Du, "Horizon-Free and Variance-Dependent Reinforcement Learning for Latent
Markov Decision Processes", ICML 2023 (arXiv:2210.11604). Their abstract states one model-based
framework instantiated with two solvers for the optimistic planning step: a value-optimistic one
(`rl.optimistic`) and a **model-optimistic** one, which maximises the value jointly over the
models of a confidence set and the history-dependent policies,

    (π^k, P̃^k) = argmax_{π, P̃ ∈ 𝒫^k} V^π(P̃).

Only the abstract was checked; the set 𝒫^k, its constants and the exact form below are
**reconstructed** (after MVP, Zhang, Ji & Du, COLT 2021, Algorithm 1, and UCRL2's extended value
iteration, Jaksch, Ortner & Auer, JMLR 2010, §3.1). The framework around the solver — counts
per context from the hindsight reveal, doubling-triggered refreshes, ŵ, ν̂ and the rewards as
learned — is `rl.optimistic.LatentValueOptimistic`'s, reused unchanged: only the solve step
differs.

**Confidence sets (reconstructed), one per (m, s, a)** around the snapshot P̂ = P̂_m(·|s, a) with
n = N_m(s, a), ι as in `rl.optimistic.iota` and ``bonus`` naming the set matching the
value-optimistic bonus of the same name:

* ``bernstein``: the per-coordinate Bernstein box intersected with the simplex,
  |p(s') − P̂(s')| ≤ ε(s') = scale (c₁ √(P̂(s')(1 − P̂(s')) ι / n) + c₃ ι / n), MVP's constants
  c₁ = 460/9, c₃ = 544/9 (`rl.optimistic.C1`, `C3`);
* ``hoeffding``: the L1 ball ‖p − P̂‖₁ ≤ r = scale √(2 S ι / n) (Weissman et al.; the L-UCRL-style
  radius, `rl.optimistic.C_L1`) intersected with the simplex;
* ``none``: the point {P̂} (certainty equivalence: the solver is then exact planning in P̂).

An unvisited (m, s, a) (n = 0) has the whole simplex. ŵ and ν̂ are the empirical ones, as in the
value-optimistic solver.

**Inner maximisation: exact.** For a vector v, max_{p ∈ C} pᵀv is a linear programme solved
exactly by sorting v (`row_max`): over the box, start every coordinate at its lower bound and
fill the remaining mass into coordinates in decreasing v up to their upper bounds (a fractional
knapsack); over the L1 ball, move min(r/2, 1 − P̂(s⁺)) of mass onto the best coordinate s⁺,
taken from the worst coordinates in increasing v (Jaksch et al., Figure 2). The tests check both
against `scipy.optimize.linprog`.

**Joint maximisation over models and policies: exact for the history-rectangular relaxation.**
We let the transition row of each context be chosen anew at every history node (an (s, a)-row
that recurs along a history may take different values at its visits). Over this rectangular set
the problem is a cooperative game in which "nature" knows m and the agent does not, and it is
solved exactly by backward induction over **sets of alpha vectors**: at a node, every
deterministic sub-policy gives a vector α ∈ ℝ^M with

    α_m(τ, a) = min{1, R̂_m(s, a) + max_{p ∈ C_m(s, a)} pᵀ α_m(τ a r_m ·)},

and the root value is max Σ_{s₁} Σ_m ŵ_m ν̂_m(s₁) α_m(s₁). Each α_m is non-decreasing in every
child's α_m, so a sub-policy whose vector is componentwise dominated by another's can be dropped
(Pareto pruning: exact; the convex-hull pruning of POMDP value iteration would *not* be, since
the maps are convex, not linear). Children are combined per reward class (the contexts a reward
class keeps only look at that class's children). The relaxation is an upper bound of the
single-model maximum max_{P̃ ∈ 𝒫} V*(P̃), and equals it when no (s, a)-row can recur along a
history — always at H ≤ 2 (the tests check this equality against exact planning in every vertex
model of the sets). Optimism: if the true P lies in the sets, the value is ≥ V*; it is ≥ V*(P̂)
always (P̂ lies in the sets).

**Relation to the value-optimistic solver (a provable inequality, reconstructed).** Since
Σ_s' (p − P̂)(s') = 0, the per-step gain of the inner maximisation is at most
Σ_s' |p − P̂|(s') |v(s') − P̂ᵀv|, so (`gain_bound`):

* L1 ball of radius r: gain ≤ (r / 2) (max v − min v) ≤ r / 2, half the Hoeffding bonus r;
* Bernstein box: gain ≤ scale (c₁ √(Γ̂ 𝕍(P̂, v) ι / n) + c₃ S ι / n) (Cauchy–Schwarz over the
  support of P̂, of size Γ̂), i.e. the Bernstein bonus with c₁ inflated by √Γ̂ and c₃ by S.

Hence for every fixed policy the model-optimistic alpha vectors are below the value-optimistic
ones whose bonus dominates the gain. The Hoeffding bonus does not depend on the children, so
where the clip at 1 does not bind the value-optimistic recursion is linear and its greedy
belief-weighted planner is exact over policies; then value-optimistic (Hoeffding, radius r) ≥
model-optimistic (L1 ball, radius r) ≥ V*(P̂) (tested). With the clip binding, or between the
Bernstein variants at equal constants, no order is implied; the abstract states none
(`compare_solvers` reports both).

**Cost and sizes.** The solver runs in NumPy on the host (`jax.pure_callback`), at the refreshes
only (at most M S A (log₂ K + 1) of them per seed) and only for the seeds that refresh
(`experiments.batched_cond.cond_lanes`), with a Python loop over the dense history nodes (0.02–0.3
s per plan on this project's 2-core machine for M = S = A = 2, H = 3..4). Alpha-vector sets grow
combinatorially with H, so the agent serves instances with at most `MAX_NODES` = 1200 dense nodes
(M = S = A = 2 with H ≤ 4; S = 4 at H = 3; `check_tiny`) and refuses larger ones in one line,
pointing to ``latent_value_optimistic``. At the theory constants (``bonus_scale`` = 1) the sets are
the whole simplex for thousands of visits and every value is clipped at 1, so all actions tie.

**Ties** (as `rl.optimistic`'s "Ties": uniform among the maximisers, never "action 0"). Each node
gets a uniformly random priority order of the actions (`action_orders`: `jax.random.permutation`
of each row, from the agent's key folded with `rl.optimistic.TIE_TAG`); the solver enumerates a
node's actions in that order, the Pareto pruning keeps the first of exactly equal vectors and the
root keeps the first maximiser, so among actions with equal vectors (and at the root, among
actions reaching the maximal value) the choice is uniform. Between equal vectors of one action
(different continuations) the children's own orders decide. Without ties the plan is unchanged
(``order=None`` enumerates 0..A−1). Before this rule `_pareto` kept the *last* of equal vectors
(contrary to its docstring; fixed), so ties went to the last action enumerated."""

from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from experiments.config import ConfigError
from rl.backup import C1, C3, C_L1, TIE_TAG, Plan, PlanInputs
from rl.optimistic import (
    LatentValueOptimistic,
    check_histories_only,
    level_sizes,
    plan_histories,
    plan_nodes,
)

MAX_NODES = 1200  # dense history nodes the alpha-vector-set solver serves (e.g. M=S=A=2, H=4)


def check_tiny(M: int, S: int, A: int, H: int) -> None:
    """One ConfigError line unless the instance has at most `MAX_NODES` dense history nodes."""
    n = plan_nodes(M, S, A, H)
    if n > MAX_NODES:
        raise ConfigError(
            "the model-optimistic solver plans only on tiny instances (at most"
            f" {MAX_NODES} history nodes S (A M S)^(h-1) summed over h, e.g. M = S = A = 2 with"
            f" H <= 4); this one (M={M}, S={S}, A={A}, H={H}) has {n:.3g}; lower env.num_states,"
            " env.num_actions, env.num_contexts or env.episode_length, or use"
            " agents=[latent_value_optimistic] (the value-optimistic solver)"
        )


# --------------------------------------------------------------------------- confidence sets
def set_params(kind: str, p_hat: np.ndarray, n: np.ndarray, iota: float, scale: float):
    """Per-row parameters of the confidence sets (module docstring), float64.

    Returns ``(lo, hi)`` box bounds (``bernstein``, ``none``) or the L1 radius (``hoeffding``);
    rows with n = 0 get the whole simplex."""
    S = p_hat.shape[-1]
    nn = np.maximum(n, 1.0)[..., None]
    unseen = (n == 0)[..., None]
    if kind == "hoeffding":
        r = scale * C_L1 * np.sqrt(S * iota / nn[..., 0])
        return np.where(n == 0, 2.0, r)
    if kind == "bernstein":
        eps = scale * (C1 * np.sqrt(p_hat * (1 - p_hat) * iota / nn) + C3 * iota / nn)
    elif kind == "none":
        return np.clip(p_hat, 0.0, 1.0), np.clip(p_hat, 0.0, 1.0)  # certainty equivalence
    else:
        raise ConfigError(f"bonus: must be one of bernstein, hoeffding, none (got {kind!r})")
    eps = np.where(unseen, 1.0, eps)
    return np.clip(p_hat - eps, 0.0, 1.0), np.clip(p_hat + eps, 0.0, 1.0)


def row_max(kind: str, p_hat: np.ndarray, params, v: np.ndarray) -> np.ndarray:
    """Exact max_{p ∈ C} pᵀv (module docstring: sort-based LP solutions), broadcast over the
    leading axes of `v` (shape (..., S)) against `p_hat` and `params`."""
    p_hat = np.broadcast_to(p_hat, v.shape)
    if kind == "hoeffding":
        r = np.broadcast_to(params, v.shape[:-1])
        order = np.argsort(-v, axis=-1, kind="stable")
        vs = np.take_along_axis(v, order, -1)
        ps = np.take_along_axis(p_hat, order, -1)
        move = np.minimum(r / 2, 1.0 - ps[..., 0])  # onto the best coordinate
        # take `move` from the worst coordinates upward (never from the best one)
        rest = ps[..., :0:-1]  # increasing v, best excluded
        before = np.cumsum(rest, -1) - rest
        take = np.clip(move[..., None] - before, 0.0, rest)
        return np.sum(ps * vs, -1) + move * vs[..., 0] - np.sum(take * vs[..., :0:-1], -1)
    lo, hi = (np.broadcast_to(x, v.shape) for x in params)
    order = np.argsort(-v, axis=-1, kind="stable")
    vs = np.take_along_axis(v, order, -1)
    cap = np.take_along_axis(hi - lo, order, -1)
    free = 1.0 - lo.sum(-1, keepdims=True)
    add = np.clip(free - (np.cumsum(cap, -1) - cap), 0.0, cap)
    return np.sum(lo * v, -1) + np.sum(add * vs, -1)


def gain_bound(kind: str, p_hat: np.ndarray, n, iota: float, scale: float, v: np.ndarray):
    """The bound on max_{p ∈ C} pᵀv − P̂ᵀv of the module docstring (rows with n >= 1)."""
    S = p_hat.shape[-1]
    n = np.maximum(n, 1.0)
    if kind == "hoeffding":
        return scale * C_L1 * np.sqrt(S * iota / n) / 2 * (v.max(-1) - v.min(-1))
    mean = np.sum(p_hat * v, -1)
    var = np.maximum(np.sum(p_hat * v * v, -1) - mean**2, 0.0)
    gamma = np.sum(p_hat > 0, -1)
    return scale * (C1 * np.sqrt(gamma * var * iota / n) + C3 * S * iota / n)


# --------------------------------------------------------------------------- the solver
def _pareto(x: np.ndarray) -> np.ndarray:
    """Indices of the rows of `x` (k, d) not weakly dominated by an earlier row or strictly by
    any row (duplicates keep their first copy)."""
    if len(x) <= 1:
        return np.arange(len(x))
    ge = np.all(x[:, None, :] >= x[None, :, :], -1)  # ge[i, j]: row i >= row j everywhere
    gt = ge & np.any(x[:, None, :] > x[None, :, :], -1)
    earlier = np.triu(np.ones((len(x), len(x)), bool), 1)  # earlier[i, j]: i < j
    dominated = gt.any(0) | (ge & ge.T & earlier).any(0)
    return np.flatnonzero(~dominated)


def _classes(R: np.ndarray) -> np.ndarray:
    """(M, S, A): the smallest context paying the same reward (as `rl.optimistic`)."""
    return np.argmax(R[:, None] == R[None, :], axis=1)


def solve_numpy(
    weights: np.ndarray,
    init: np.ndarray,
    transitions: np.ndarray,
    rewards: np.ndarray,
    counts: np.ndarray,
    iota: float,
    scale: float,
    H: int,
    kind: str,
    order: np.ndarray | None = None,
) -> tuple[np.ndarray, float]:
    """The model-optimistic plan over the dense history nodes of `rl.optimistic` (node n of
    level h has state n % S; its child after (a, reward class j, s') is
    n (A M S) + (a M + j) S + s') and its value (module docstring). Float64 NumPy.
    ``order`` (nodes, A): each node's action priority (module docstring, "Ties"); None: 0..A−1."""
    w, nu, P, R = (np.asarray(x, np.float64) for x in (weights, init, transitions, rewards))
    n = np.asarray(counts, np.float64)
    M, S, A, _ = P.shape
    cls = _classes(R)
    params = set_params(kind, P, n, float(iota), float(scale))
    B = A * M * S
    sizes = level_sizes(M, S, A, H)
    offsets = np.cumsum([0, *sizes])
    if order is None:
        order = np.broadcast_to(np.arange(A), (offsets[-1], A))
    order = np.asarray(order, np.int64)
    # per level: for each node, (vectors (k, M), actions (k,), picks (k, M*S) child candidate
    # per (j, s'), -1 where that child is not consulted)
    below: list[Any] = []
    levels: list[list[Any]] = [None] * H
    for h in reversed(range(H)):
        cur = []
        for node in range(sizes[h]):
            s = node % S
            vecs, acts, picks = [], [], []
            for a in (int(x) for x in order[offsets[h] + node]):
                if h == H - 1:
                    vecs.append(np.minimum(1.0, R[:, s, a])[None])
                    acts.append(np.array([a]))
                    picks.append(-np.ones((1, M * S), int))
                    continue
                parts = []  # per reward class: (vectors on its contexts, picks)
                for j in np.unique(cls[:, s, a]):
                    G = np.flatnonzero(cls[:, s, a] == j)
                    opts = []
                    for s2 in range(S):
                        cv = below[node * B + (a * M + j) * S + s2][0][:, G]
                        keep = _pareto(cv)
                        opts.append((keep, cv[keep]))
                    combos = np.array(list(itertools.product(*[range(len(o[0])) for o in opts])))
                    v = np.stack([opts[s2][1][combos[:, s2]] for s2 in range(S)], -1)  # (c, G, S')
                    if kind == "hoeffding":
                        pr = params[G, s, a][None]
                    else:
                        pr = (params[0][G, s, a][None], params[1][G, s, a][None])
                    alpha = np.minimum(1.0, R[G, s, a] + row_max(kind, P[G, s, a][None], pr, v))
                    keep = _pareto(alpha)
                    chosen = np.stack([opts[s2][0][combos[keep, s2]] for s2 in range(S)], -1)
                    parts.append((G, j, alpha[keep], chosen))
                # the product over reward classes (disjoint contexts: no pruning needed)
                for choice in itertools.product(*[range(len(p[2])) for p in parts]):
                    vec = np.zeros(M)
                    pick = -np.ones(M * S, int)
                    for (G, j, alpha, chosen), c in zip(parts, choice, strict=True):
                        vec[G] = alpha[c]
                        pick[j * S : (j + 1) * S] = chosen[c]
                    vecs.append(vec[None])
                    acts.append(np.array([a]))
                    picks.append(pick[None])
            vecs, acts, picks = np.concatenate(vecs), np.concatenate(acts), np.concatenate(picks)
            keep = _pareto(vecs)
            cur.append((vecs[keep], acts[keep], picks[keep]))
        levels[h] = cur
        below = cur
    # the root: the best vector per first state, then the policy down the backpointers
    policy = np.zeros(offsets[-1], np.int64)
    value = 0.0
    stack = []
    for s in range(S):
        vecs = levels[0][s][0]
        best = int(np.argmax(vecs @ (w * nu[:, s])))
        value += float(vecs[best] @ (w * nu[:, s]))
        stack.append((0, s, best))
    while stack:
        h, node, c = stack.pop()
        _, acts, picks = levels[h][node]
        a = int(acts[c])
        policy[offsets[h] + node] = a
        for k in np.flatnonzero(picks[c] >= 0):
            j, s2 = divmod(int(k), S)
            stack.append((h + 1, node * B + (a * M + j) * S + s2, int(picks[c][k])))
    return policy, value


def _host(w, nu, P, R, n, iota, scale, order, *, H: int, kind: str, adt, fdt):
    """`solve_numpy` on a batch of lanes (leading axis, ``vmap_method="expand_dims"``)."""
    lead = np.asarray(P).shape[:-4]
    args = [np.asarray(x) for x in (w, nu, P, R, n, iota, scale, order)]
    args = [
        np.broadcast_to(x, lead + x.shape[x.ndim - nd :])
        for x, nd in zip(args, _NDIMS, strict=True)
    ]
    flat = [x.reshape((-1, *x.shape[len(lead) :])) for x in args]
    pols, vals = [], []
    for i in range(flat[0].shape[0]):
        pol, val = solve_numpy(
            *(x[i] for x in flat[:5]), float(flat[5][i]), float(flat[6][i]), H, kind, flat[7][i]
        )
        pols.append(pol)
        vals.append(val)
    pol = np.stack(pols).reshape(lead + pols[0].shape).astype(adt)
    return pol, np.asarray(vals).reshape(lead).astype(fdt)


_NDIMS = (1, 2, 4, 3, 3, 0, 0, 2)  # core ranks of (w, nu, P, R, n, iota, scale, order)


def action_orders(key, total: int, A: int) -> jax.Array:
    """(total, A): a uniformly random permutation of the actions per node (module docstring,
    "Ties"), from `key` folded with `rl.optimistic.TIE_TAG`."""
    rows = jnp.broadcast_to(jnp.arange(A, dtype=jnp.int32), (total, A))
    return jax.random.permutation(jax.random.fold_in(key, TIE_TAG), rows, axis=1, independent=True)


def first_policy_ordered(key, M: int, S: int, A: int, H: int) -> jax.Array:
    """The first plan (all unknown: every vector is all ones, every action ties): each node's
    first action in `action_orders(key)`, i.e. `solve_numpy`'s policy on that model."""
    adt = jnp.int8 if A <= 127 else jnp.result_type(int)
    return action_orders(key, plan_nodes(M, S, A, H), A)[:, 0].astype(adt)


def plan_model_optimistic(inputs: PlanInputs, H: int, kind: str) -> Plan:
    """The model-optimistic plan of one seed's inputs (module docstring), jit/vmap-able: the
    NumPy solver through `jax.pure_callback`. Same `Plan` layout as `rl.optimistic`."""
    M, S, A, _ = inputs.transitions.shape
    adt = jnp.int8 if A <= 127 else jnp.result_type(int)
    fdt = inputs.transitions.dtype
    total = sum(level_sizes(M, S, A, H))
    out = (
        jax.ShapeDtypeStruct((total,), adt),
        jax.ShapeDtypeStruct((), fdt),
    )
    fn = functools.partial(_host, H=H, kind=kind, adt=adt, fdt=fdt)
    policy, value = jax.pure_callback(
        fn,
        out,
        inputs.weights,
        inputs.init,
        inputs.transitions,
        inputs.rewards,
        inputs.counts,
        inputs.iota,
        inputs.scale,
        action_orders(inputs.key, total, A),
        vmap_method="expand_dims",
    )
    return Plan(policy=policy, value=value, rewards=inputs.rewards)


# --------------------------------------------------------------------------- the agent
@dataclass(frozen=True)
class LatentModelOptimistic(LatentValueOptimistic):
    """The model-optimistic learner (module docstring): `LatentValueOptimistic`'s framework
    (counts from the hindsight reveal, doubling-triggered refreshes) with the solve step
    replaced by the exact maximisation over the confidence set. ``bonus`` names the set
    (bernstein box | hoeffding L1 ball | none), ``bonus_scale`` its width (1 = the theory
    constants). Tiny instances only (`check_tiny`)."""

    bonus: str = "bernstein"
    bonus_scale: float = 1.0
    delta: float = 0.1

    def __post_init__(self):
        super().__post_init__()
        if self.replan != "lanes":  # the host solver runs only for the seeds that refresh
            raise ConfigError(f"replan: must be lanes for this learner (got {self.replan!r})")
        check_histories_only(self)

    @staticmethod
    def solve(inputs: PlanInputs, H: int, kind: str) -> Plan:
        return plan_model_optimistic(inputs, H, kind)

    first_policy = staticmethod(first_policy_ordered)

    def init(self, key, spec):
        check_tiny(spec.num_contexts, spec.num_states, spec.num_actions, spec.episode_length)
        return super().init(key, spec)

    def info(self, spec) -> dict:
        scale = float(self.bonus_scale)
        sets = {"bernstein": "Bernstein box", "hoeffding": "L1 ball", "none": "point {P_hat}"}
        return {
            "confidence_set": {
                "message": f"model-optimistic over the {sets[self.bonus]} per (m, s, a),"
                f" bonus_scale = {scale:g} (1 = the theory constants), history-rectangular",
                "bonus_scale": scale,
            }
        }


# --------------------------------------------------------------------------- E6: both solvers
def compare_solvers(
    model: Any,
    n: int,
    *,
    bonus: str = "hoeffding",
    bonus_scale: float = 1.0,
    delta: float = 0.1,
    draws: int = 10,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Both solvers' optimistic values on `draws` empirical models of `model` (an
    `rl.planning.LatentModel`, tiny), each from n multinomial samples of every (m, s, a), n
    episodes' contexts and first states, with ι = 2 ln(2 M S A H n / δ).

    Returns float64 arrays over draws: ``value_optimistic`` (`rl.optimistic.plan_histories`
    with `bonus`), ``model_optimistic`` (this module, the set of the same name), ``v_hat``
    (V* of the empirical model), ``covered`` (every true row in its set), and the scalar
    ``v_star`` (V* of `model`). Expected (module docstring): model_optimistic >= v_hat always,
    >= v_star where covered; value_optimistic >= model_optimistic for ``hoeffding`` where the
    clip at 1 does not bind."""
    from rl import planning as pl

    M, S, A, H = model.sizes
    check_tiny(M, S, A, H)
    rng = np.random.default_rng(seed)
    io = 2 * np.log(2 * M * S * A * H * n / delta)
    out: dict[str, list] = {
        k: [] for k in ("value_optimistic", "model_optimistic", "v_hat", "covered")
    }
    plan = jax.jit(plan_histories, static_argnums=(1, 2))
    for _ in range(draws):
        counts = np.stack([rng.multinomial(n, p) for p in model.transitions.reshape(-1, S)])
        counts = counts.reshape(M, S, A, S)
        ctx = np.maximum(rng.multinomial(n, model.weights), 1)
        init = np.stack([rng.multinomial(c, model.init[m]) for m, c in enumerate(ctx)])
        hat = pl.LatentModel(
            ctx / ctx.sum(), init / init.sum(1, keepdims=True), counts / n, model.rewards, H
        )
        nn = np.full((M, S, A), float(n))
        f = jnp.float32
        inputs = PlanInputs(
            weights=jnp.asarray(hat.weights, f),
            init=jnp.asarray(hat.init, f),
            transitions=jnp.asarray(hat.transitions, f),
            rewards=jnp.asarray(hat.rewards, f),
            counts=jnp.asarray(nn, f),
            iota=jnp.asarray(io, f),
            scale=jnp.asarray(bonus_scale, f),
            key=jax.random.key(0),
            snapshot=jnp.asarray(counts, f),
            init_counts=jnp.asarray(init, f),
            context_counts=jnp.asarray(ctx, f),
        )
        out["value_optimistic"].append(float(plan(inputs, H, bonus).value))
        _, mo = solve_numpy(*hat[:4], nn, io, bonus_scale, H, bonus)
        out["model_optimistic"].append(mo)
        out["v_hat"].append(pl.history_tree_value(hat))
        out["covered"].append(
            bool(np.all(in_set(bonus, hat.transitions, nn, io, bonus_scale, model.transitions)))
        )
    res = {k: np.asarray(v) for k, v in out.items()}
    res["v_star"] = np.asarray(pl.history_tree_value(model))
    return res


def in_set(kind: str, p_hat, n, iota: float, scale: float, p, tol: float = 1e-12) -> np.ndarray:
    """Whether each row p lies in the confidence set around p_hat (per row, bool)."""
    params = set_params(kind, np.asarray(p_hat, np.float64), np.asarray(n, np.float64), iota, scale)
    if kind == "hoeffding":
        return np.abs(p - p_hat).sum(-1) <= params + tol
    lo, hi = params
    return np.all((p >= lo - tol) & (p <= hi + tol), -1)
