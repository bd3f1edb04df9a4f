"""Exact planning in latent MDPs with context in hindsight: V*, optimal policies, policy values.

The model (Kwon, Efroni, Caramanis & Mannor, "RL for Latent MDPs: Regret Guarantees and a Lower
Bound", NeurIPS 2021, §2; the setting of Zhou, Wang & Du, "Horizon-Free and Variance-Dependent
Reinforcement Learning for Latent Markov Decision Processes", ICML 2023, §3.1): M MDPs share the
states S, the actions A and the horizon H; MDP m has weight w_m > 0 (Σ w_m = 1), initial
distribution ν_m, transitions P_m(s'|s, a) and a deterministic reward R_m(s, a) in [0, 1], with
every episode's total reward at most 1. Nature draws m ~ w once per episode and hides it; the
learner sees s_h and the reward r_h = R_m(s_h, a_h). Arrays: weights (M,), init (M, S),
transitions (M, S, A, S), rewards (M, S, A) (the same reward table at every step).

The benchmark is the best *history-dependent* policy, V* = max_π Σ_m w_m E^π_m[Σ_h r_h]: an
LMDP is a finite-horizon POMDP with hidden state (m, s), so the optimal action depends on the
history τ_h = (s_1, a_1, r_1, ..., s_h) through the posterior over contexts

    b_m(τ_h) ∝ w_m ν_m(s_1) Π_{t<h} P_m(s_{t+1}|s_t, a_t) [r_t = R_m(s_t, a_t)],

exact because rewards are deterministic (an observed reward eliminates the contexts that would
have paid another). Rewards branch the history: after (s, a) the learner observes the *reward
class* of the true context, ``reward_classes(R)[m, s, a]`` = the smallest m' with
R_{m'}(s, a) == R_m(s, a) (exact float equality).

Three exact planners, each an independent implementation (the tests check them against each other
and against brute force over all deterministic history-dependent policies):

* ``history``: the history-tree DP, level by level in NumPy over *unnormalised* beliefs
  u_m(τ) = w_m ν_m(s_1) Π P_m [r = R_m] (so a zero-probability history has u = 0, value 0: no
  division, no NaN); Q(τ, a) = Σ_m u_m R_m(s, a) + Σ_{children} V(child), V = max_a Q, and
  V* = Σ_{s_1} V(s_1). Cost: the tree has up to Σ_h S (A M Γ)^(h-1) nodes.
* ``belief``: the belief-merged DP. V(τ_h) depends on τ_h only through (h, s_h, b(τ_h)), so
  histories with equal beliefs are merged. The merging key is the belief as exact rationals
  (`fractions.Fraction` of the float inputs: every float is a dyadic rational), so histories merge
  only when their beliefs are equal, never by float accident. Generic instances produce up to
  (S A)^H distinct beliefs; on the M = 2 likelihood-ratio lattice (`rl.instances.lattice`) the
  beliefs per (h, s) are at most 2h - 1 and the DP is polynomial in H.
* ``alpha``: the alpha-vector DP, a depth-first recursion over histories computing the vector
  α_m(τ_h) = R_m(s_h, a*) + Σ_{s'} P_m(s'|s_h, a*) α_m(τ_h a* r_m s') (r_m the reward class of
  context m; the child is indexed by the *next* state s'), with
  a* = argmax_a Σ_m u_m(τ_h) [R_m(s_h, a) + Σ_{s'} P_m(s'|s_h, a) α_m(τ_h a r_m s')], and
  V* = Σ_m w_m Σ_s ν_m(s) α_m(s). α_m(τ) is the value of the optimal continuation in context m;
  it is meaningful where u_m(τ) > 0 (elsewhere it is a finite placeholder, weighted by zero).

Reconstructed: the alpha-vector form and the belief-merged DP are our own derivations from the
model above (Zhou, Wang & Du call alpha vectors "a generalization of value functions" in their
abstract; their §4 recursions were not checked); standard POMDP facts (Smallwood & Sondik,
Operations Research 21(5), 1973) justify them.

Planning is exponential in H in general (finite-horizon POMDP planning is PSPACE-complete:
Papadimitriou & Tsitsiklis, Math. Oper. Res. 12(3), 1987). Every planner counts its nodes and
stops with a `ConfigError` above ``max_nodes``, naming the field, the size and which planner
would serve.
"""

from __future__ import annotations

import itertools
import math
from fractions import Fraction
from typing import Any, NamedTuple

import numpy as np

from experiments.config import ConfigError, check_choice, check_int

MAX_NODES = 1_000_000  # default node budget of the exact planners
PLANNERS = ("auto", "history", "belief", "alpha")
TOL = 1e-9  # slack of the stochasticity / weight / episode-total checks (float64 inputs)


class LatentModel(NamedTuple):
    """A latent MDP as float64 arrays (validated by `check_model`)."""

    weights: np.ndarray  # (M,) w_m > 0, Σ = 1
    init: np.ndarray  # (M, S) ν_m
    transitions: np.ndarray  # (M, S, A, S) P_m(s'|s, a)
    rewards: np.ndarray  # (M, S, A) R_m(s, a), the same at every step
    horizon: int  # H

    @property
    def sizes(self) -> tuple[int, int, int, int]:
        """(M, S, A, H)."""
        M, S, A, _ = self.transitions.shape
        return M, S, A, self.horizon


# --------------------------------------------------------------------------- validation
def _stochastic(name: str, x: np.ndarray) -> None:
    if np.any(x < 0) or np.any(np.abs(x.sum(-1) - 1) > TOL):
        bad = np.unravel_index(np.argmax(np.abs(x.sum(-1) - 1) + (x < 0).any(-1)), x.shape[:-1])
        row = x[bad]
        raise ConfigError(
            f"{name}: rows must be probability vectors (row {tuple(int(i) for i in bad)} has"
            f" sum {row.sum():.6g}, min {row.min():.3g})"
        )


def max_episode_total(model: LatentModel) -> float:
    """The largest total reward of any trajectory of positive probability, over all contexts
    and action sequences (max-plus backward induction over the supports)."""
    M, S, _A, H = model.sizes
    support = model.transitions > 0
    W = np.zeros((M, S))
    for _ in range(H):
        nxt = np.where(support, W[:, None, None, :], -np.inf).max(-1)  # (M, S, A)
        W = (model.rewards + nxt).max(-1)
    return float(np.where(model.init > 0, W, -np.inf).max())


def check_model(
    weights: Any,
    init: Any,
    transitions: Any,
    rewards: Any,
    horizon: Any,
    names: dict[str, str] | None = None,
) -> LatentModel:
    """The arrays as a `LatentModel`, or one `ConfigError` line naming the bad field.

    Checks: shapes (M,), (M, S), (M, S, A, S), (M, S, A) with M, S, A >= 1; H >= 1; weights
    positive and summing to 1; every initial and transition row a probability vector; rewards
    in [0, 1]; every episode total <= 1 (all within `TOL`). `names` renames the fields in the
    messages (e.g. ``{"horizon": "env.episode_length"}``).
    """
    n = {k: k for k in ("weights", "init", "transitions", "rewards", "horizon")}
    n.update(names or {})
    H = check_int(n["horizon"], horizon if not isinstance(horizon, np.integer) else int(horizon), 1)
    arrays = {}
    for key, value, ndim in (
        ("weights", weights, 1),
        ("init", init, 2),
        ("transitions", transitions, 4),
        ("rewards", rewards, 3),
    ):
        try:
            x = np.asarray(value, np.float64)
        except (TypeError, ValueError):
            raise ConfigError(f"{n[key]}: must be an array of numbers (got {value!r})") from None
        if x.ndim != ndim or 0 in x.shape:
            raise ConfigError(f"{n[key]}: must be a non-empty {ndim}-d array (got shape {x.shape})")
        if not np.all(np.isfinite(x)):
            raise ConfigError(f"{n[key]}: must be finite numbers")
        arrays[key] = x
    w, nu, P, R = arrays["weights"], arrays["init"], arrays["transitions"], arrays["rewards"]
    M, S, A = P.shape[0], P.shape[1], P.shape[2]
    for key, x, want in (
        ("weights", w, (M,)),
        ("init", nu, (M, S)),
        ("transitions", P, (M, S, A, S)),
        ("rewards", R, (M, S, A)),
    ):
        if x.shape != want:
            raise ConfigError(
                f"{n[key]}: must have shape {want} (M={M}, S={S}, A={A}; got {x.shape})"
            )
    if np.any(w <= 0) or abs(w.sum() - 1) > TOL:
        raise ConfigError(
            f"{n['weights']}: must be positive and sum to 1 (got min {w.min():.6g},"
            f" sum {w.sum():.10g})"
        )
    _stochastic(n["init"], nu)
    _stochastic(n["transitions"], P)
    if np.any(R < 0) or np.any(R > 1):
        raise ConfigError(
            f"{n['rewards']}: must lie in [0, 1] (got min {R.min():.6g}, max {R.max():.6g})"
        )
    model = LatentModel(w, nu, P, R, H)
    total = max_episode_total(model)
    if total > 1 + TOL:
        raise ConfigError(
            f"{n['rewards']}: every episode's total reward must be <= 1 (a trajectory of"
            f" H = {H} steps can earn {total:.6g}; scale the rewards to <= 1/H per step)"
        )
    return model


def reward_classes(rewards: np.ndarray) -> np.ndarray:
    """(M, S, A) ints: the smallest context paying the same reward as context m at (s, a)."""
    eq = rewards[:, None] == rewards[None, :]  # (M, M', S, A)
    return np.argmax(eq, axis=1)


# --------------------------------------------------------------------------- sizes
def _tree_levels(model: LatentModel) -> list[float]:
    """Upper bounds on the history tree's nodes at each step h = 1..H, by the linear recursion
    n_{h+1}(s') = Σ_{s, a} n_h(s) · (reward classes at (s, a)) · [s' reachable from (s, a)]."""
    _, S, A, H = model.sizes
    cls = reward_classes(model.rewards)
    classes = np.array([[len(set(cls[:, s, a])) for a in range(A)] for s in range(S)])
    reach = (model.transitions > 0).any(0)  # (S, A, S')
    K = np.einsum("sa,sat->st", classes.astype(float), reach.astype(float))
    n = (model.init > 0).any(0).astype(float)
    out = [float(n.sum())]
    for _ in range(H - 1):
        n = np.minimum(n @ K, 1e300)
        out.append(float(min(n.sum(), 1e300)))
    return out


def tree_size_bound(model: LatentModel) -> float:
    """An upper bound on the nodes of the history tree, all steps together."""
    return float(min(sum(_tree_levels(model)), 1e300))


def _ratio_key(v: np.ndarray) -> tuple:
    """A likelihood vector over contexts up to scale, exactly: v / v[first positive] as
    Fractions, zero entries (context eliminated: the alive mask's part) replaced by 1."""
    pos = np.flatnonzero(v > 0)
    first = Fraction(float(v[pos[0]]))
    return tuple(Fraction(float(x)) / first if x > 0 else Fraction(1) for x in v)


def belief_size_bound(model: LatentModel) -> int:
    """An upper bound on the nodes of the belief-merged graph. A belief is fixed by the state,
    the initial likelihood vector (up to scale), the set of contexts still alive and the number
    of times each informative transition likelihood vector (up to scale, exact) was met, which
    sum to at most h - 1: at most S · I · masks · C(h - 1 + T, T) beliefs at step h (T the
    number of informative vectors), capped by the history tree's count."""
    M, S, _A, H = model.sizes
    P = model.transitions
    vecs = P.transpose(1, 2, 3, 0).reshape(-1, M)
    vecs = vecs[(vecs > 0).any(1)]
    types = {_ratio_key(v) for v in vecs} - {tuple([Fraction(1)] * M)}
    T = len(types)
    inits = model.init.T[(model.init > 0).any(0)]
    n_init = len({_ratio_key(v) for v in inits})
    partial = (
        ((vecs > 0).any(1) & ~(vecs > 0).all(1)).any()
        or ((inits > 0).any(1) & ~(inits > 0).all(1)).any()
        or (reward_classes(model.rewards) != 0).any()
    )
    masks = 2**M - 1 if partial else 1
    tree = _tree_levels(model)
    total = 0
    for h in range(1, H + 1):
        total += min(tree[h - 1], S * n_init * masks * math.comb(h - 1 + T, T))
    return int(total)


def _too_large(model: LatentModel, max_nodes: int, field: str) -> str:
    M, S, A, H = model.sizes
    tree, merged = tree_size_bound(model), belief_size_bound(model)
    return (
        f"{field}: H = {H} is too large for exact planning of this instance (M={M}, S={S},"
        f" A={A}): up to {tree:.3g} history-tree nodes and up to {merged:.3g} belief-merged"
        f" nodes > max_nodes = {max_nodes:.3g}; the belief-merged planner serves instances whose"
        " beliefs collide (instance=lattice: S (2h - 1) beliefs at step h), or lower H, S, A"
    )


# --------------------------------------------------------------------------- history tree
class _Level(NamedTuple):
    u: np.ndarray  # (N, M) unnormalised beliefs
    s: np.ndarray  # (N,) states
    parent: np.ndarray  # (N,) index into the previous level (-1 at level 1)
    action: np.ndarray  # (N,) action that led here (-1 at level 1)


def history_tree_value(
    model: LatentModel, max_nodes: int = MAX_NODES, field: str = "horizon"
) -> float:
    """V* by the history-tree DP (no merging), level by level in NumPy."""
    M, _S, _A, H = model.sizes
    if tree_size_bound(model) > max_nodes:
        raise ConfigError(_too_large(model, max_nodes, field))
    cls = reward_classes(model.rewards)
    P, R = model.transitions, model.rewards
    u0 = model.weights[None, :] * model.init.T  # (S, M)
    keep = u0.sum(1) > 0
    levels = [
        _Level(u0[keep], np.flatnonzero(keep), -np.ones(keep.sum(), int), -np.ones(keep.sum(), int))
    ]
    for _ in range(H - 1):
        lv = levels[-1]
        # children (n, a, j, s', m): u_m [cls_m(s, a) == j] P_m(s'|s, a)
        mask = (
            cls[:, lv.s, :].transpose(1, 2, 0)[:, :, None, :] == np.arange(M)[None, None, :, None]
        )
        trans = P[:, lv.s].transpose(1, 2, 3, 0)  # (N, A, S', M)
        u = lv.u[:, None, None, None, :] * mask[:, :, :, None, :] * trans[:, :, None, :, :]
        alive = u.sum(-1) > 0  # (N, A, j, S')
        n, a, _, s2 = np.nonzero(alive)
        levels.append(_Level(u[alive], s2, n, a))
    # backward: Q(τ, a) = Σ_m u_m R_m(s, a) + Σ_{children of (τ, a)} V(child)
    V_next, below = None, None
    for lv in reversed(levels):
        Q = np.einsum("nm,nma->na", lv.u, R[:, lv.s].transpose(1, 0, 2))
        if below is not None:
            np.add.at(Q, (below.parent, below.action), V_next)
        V_next, below = Q.max(1), lv
    return float(V_next.sum())


# --------------------------------------------------------------------------- belief graph
class BeliefLevel(NamedTuple):
    """One step h of the belief-merged graph (nodes are distinct (s, belief) pairs)."""

    states: np.ndarray  # (N,) s_h
    beliefs: np.ndarray  # (N, M) b(τ_h) as floats (exact rationals rounded)
    child: np.ndarray  # (N, A, M, S) node of step h+1 after (a, reward class j, s'); -1: none
    prob: np.ndarray  # (N, A, M, S) Pr(reward class j, s' | node, a)


class BeliefGraph(NamedTuple):
    levels: list[BeliefLevel]
    first: np.ndarray  # (S,) node of step 1 for each s_1 (-1: probability 0)
    first_prob: np.ndarray  # (S,) Pr(s_1)
    nodes: int


def belief_graph(
    model: LatentModel, max_nodes: int = MAX_NODES, field: str = "horizon"
) -> BeliefGraph:
    """The belief-merged graph, keys exact (`fractions.Fraction`); ConfigError above budget."""
    M, S, A, H = model.sizes
    if belief_size_bound(model) > max_nodes:
        raise ConfigError(_too_large(model, max_nodes, field))
    cls = reward_classes(model.rewards)
    P = model.transitions
    PF = [
        [[[Fraction(float(P[m, s, a, t])) for t in range(S)] for a in range(A)] for s in range(S)]
        for m in range(M)
    ]
    supp = [[np.flatnonzero((P[:, s, a] > 0).any(0)) for a in range(A)] for s in range(S)]
    groups = [[sorted(set(cls[:, s, a].tolist())) for a in range(A)] for s in range(S)]
    first = -np.ones(S, int)
    first_prob = np.zeros(S)
    keys: list[tuple] = []
    for s in range(S):
        u = [
            Fraction(float(model.weights[m])) * Fraction(float(model.init[m, s])) for m in range(M)
        ]
        tot = sum(u)
        if tot > 0:
            first[s] = len(keys)
            first_prob[s] = float(tot)
            keys.append((s, tuple(x / tot for x in u)))
    levels: list[BeliefLevel] = []
    nodes = len(keys)
    for h in range(H):
        N = len(keys)
        states = np.array([k[0] for k in keys], int)
        beliefs = np.array([[float(x) for x in k[1]] for k in keys]).reshape(N, M)
        child = -np.ones((N, A, M, S), int)
        prob = np.zeros((N, A, M, S))
        nxt: dict[tuple, int] = {}
        if h < H - 1:
            for i, (s, b) in enumerate(keys):
                for a in range(A):
                    for j in groups[s][a]:
                        for t in supp[s][a]:
                            u = [
                                b[m] * PF[m][s][a][t] if cls[m, s, a] == j else 0 for m in range(M)
                            ]
                            tot = sum(u)
                            if tot == 0:
                                continue
                            key = (int(t), tuple(x / tot for x in u))
                            c = nxt.get(key)
                            if c is None:
                                c = nxt[key] = len(nxt)
                                nodes += 1
                                if nodes > max_nodes:  # (the bound below prevents this)
                                    raise ConfigError(_too_large(model, max_nodes, field))
                            child[i, a, j, t] = c
                            prob[i, a, j, t] = float(tot)
        levels.append(BeliefLevel(states, beliefs, child, prob))
        keys = list(nxt)
    return BeliefGraph(levels, first, first_prob, nodes)


def graph_policy(
    model: LatentModel, graph: BeliefGraph
) -> tuple[list[np.ndarray], list[np.ndarray], float]:
    """Backward induction on the belief graph: (actions per level (N,), values per level (N,)
    as E[future reward | node], V*)."""
    R = model.rewards
    actions, values = [], []
    v_next = None
    for lv in reversed(graph.levels):
        Q = np.einsum("nm,nma->na", lv.beliefs, R[:, lv.states].transpose(1, 0, 2))
        if v_next is not None:
            cont = np.where(lv.child >= 0, v_next[np.maximum(lv.child, 0)], 0.0)
            Q = Q + (lv.prob * cont).sum((2, 3))
        v_next = Q.max(1)
        actions.append(Q.argmax(1))
        values.append(v_next)
    actions.reverse()
    values.reverse()
    ok = graph.first >= 0
    v = float((graph.first_prob[ok] * values[0][graph.first[ok]]).sum())
    return actions, values, v


def graph_moments(
    model: LatentModel, graph: BeliefGraph, actions: list[np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """Per-context first and second moments of the return of the node policy `actions`:
    (E_m[G], E_m[G²]), each (M,), by the alpha-vector recursion on the graph (α: first moment,
    β: second, β = R² + 2 R Σ P α' + Σ P β')."""
    M, _S, _A, _H = model.sizes
    cls = reward_classes(model.rewards)
    P, R = model.transitions, model.rewards
    alpha = beta = None
    for lv, act in zip(reversed(graph.levels), reversed(actions), strict=True):
        s = lv.states
        r = R[:, s, act].T  # (N, M)
        a_new, b_new = r.copy(), r**2
        if alpha is not None:
            for m in range(M):
                j = cls[m, s, act]  # (N,)
                ch = lv.child[np.arange(len(s)), act, j]  # (N, S') child for context m's class
                pm = P[m, s, act]  # (N, S')
                am = np.where(ch >= 0, alpha[np.maximum(ch, 0), m], 0.0)
                bm = np.where(ch >= 0, beta[np.maximum(ch, 0), m], 0.0)
                ea = (pm * am).sum(1)
                a_new[:, m] += ea
                b_new[:, m] += 2 * r[:, m] * ea + (pm * bm).sum(1)
        alpha, beta = a_new, b_new
    ok = graph.first >= 0
    first = graph.first[ok]
    nu = model.init[:, ok]  # (M, S_ok)
    return (nu * alpha[first].T).sum(1), (nu * beta[first].T).sum(1)


def belief_value(model: LatentModel, max_nodes: int = MAX_NODES, field: str = "horizon") -> float:
    """V* by the belief-merged DP."""
    return graph_policy(model, belief_graph(model, max_nodes, field))[2]


# --------------------------------------------------------------------------- alpha vectors
def alpha_vectors(
    model: LatentModel, max_nodes: int = MAX_NODES, field: str = "horizon"
) -> tuple[float, np.ndarray]:
    """V* and the per-context values V^{π*}_m (M,) by the alpha-vector DP (depth-first)."""
    M, S, A, H = model.sizes
    if tree_size_bound(model) > max_nodes:
        raise ConfigError(_too_large(model, max_nodes, field))
    cls = reward_classes(model.rewards)
    P, R = model.transitions, model.rewards
    groups = [[sorted(set(cls[:, s, a].tolist())) for a in range(A)] for s in range(S)]

    def alpha(s: int, u: np.ndarray, h: int) -> np.ndarray:
        best_q, best = -np.inf, None
        for a in range(A):
            vec = R[:, s, a].copy()
            if h < H:
                for j in groups[s][a]:
                    mask = cls[:, s, a] == j
                    for t in range(S):
                        p = np.where(mask, P[:, s, a, t], 0.0)  # P_m(t|s,a) for class-j contexts
                        if not p.any():
                            continue
                        u2 = u * p
                        # the child's alpha at the NEXT state t (never at s)
                        nxt = alpha(t, u2, h + 1) if u2.any() else np.zeros(M)
                        vec += p * nxt
            q = float(u @ vec)
            if q > best_q:
                best_q, best = q, vec
        return best

    per_context = np.zeros(M)
    for s in range(S):
        u = model.weights * model.init[:, s]
        if u.any():
            per_context += model.init[:, s] * alpha(s, u, 1)
    return float(model.weights @ per_context), per_context


# --------------------------------------------------------------------------- public API
def optimal_value(
    weights: Any,
    init: Any,
    transitions: Any,
    rewards: Any,
    horizon: int,
    planner: str = "auto",
    max_nodes: int = MAX_NODES,
) -> float:
    """V* = max over history-dependent policies of Σ_m w_m E^π_m[Σ_{h=1}^H R_m(s_h, a_h)].

    Arrays shaped (M,), (M, S), (M, S, A, S), (M, S, A), rewards per step as given (the same
    table at every step). ``planner``: auto (the history tree when it fits in `max_nodes`,
    else the belief-merged DP), history, belief or alpha. Bad input or an instance too large
    for exact planning raises one `ConfigError` line naming the field.
    """
    model = check_model(weights, init, transitions, rewards, horizon)
    return solve(model, planner, max_nodes)


def solve(
    model: LatentModel, planner: str = "auto", max_nodes: int = MAX_NODES, field: str = "horizon"
) -> float:
    """V* of a validated model by the planner named (see `optimal_value`)."""
    check_choice("planner", planner, PLANNERS)
    max_nodes = check_int("max_nodes", max_nodes, 1)
    if planner == "auto":  # the tree when it fits (vectorised), else the merged graph
        planner = "history" if tree_size_bound(model) <= max_nodes else "belief"
    if planner == "history":
        return history_tree_value(model, max_nodes, field)
    if planner == "belief":
        return belief_value(model, max_nodes, field)
    return alpha_vectors(model, max_nodes, field)[0]


def context_values(model: LatentModel) -> tuple[np.ndarray, np.ndarray]:
    """(V*_m (M,), the optimal Markov policy of each context (M, H, S)): finite-horizon value
    iteration in each MDP alone (the context known from the start)."""
    M, S, _A, H = model.sizes
    V = np.zeros((M, S))
    pol = np.zeros((M, H, S), int)
    for h in reversed(range(H)):
        Q = model.rewards + np.einsum("msat,mt->msa", model.transitions, V)
        pol[:, h] = Q.argmax(-1)
        V = Q.max(-1)
    return (model.init * V).sum(1), pol


def markov_moments(model: LatentModel, policy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-context (E_m[G], E_m[G²]) of a Markov policy (H, S, A) of action probabilities (or
    (H, S) actions), the same in every context (a context-blind policy)."""
    M, S, A, H = model.sizes
    policy = np.asarray(policy)
    if policy.ndim == 2:
        policy = np.eye(A)[policy]
    V1, V2 = np.zeros((M, S)), np.zeros((M, S))
    R, P = model.rewards, model.transitions
    for h in reversed(range(H)):
        n1 = np.einsum("msat,mt->msa", P, V1)
        n2 = np.einsum("msat,mt->msa", P, V2)
        V1, V2 = (
            np.einsum("sa,msa->ms", policy[h], R + n1),
            np.einsum("sa,msa->ms", policy[h], R**2 + 2 * R * n1 + n2),
        )
    return (model.init * V1).sum(1), (model.init * V2).sum(1)


def markov_value(model: LatentModel, policy: np.ndarray) -> float:
    """Exact value Σ_m w_m V^π_m of a context-blind Markov policy (H, S, A) or (H, S)."""
    return float(model.weights @ markov_moments(model, policy)[0])


def best_markov_value(model: LatentModel, max_policies: int = 1 << 16) -> float:
    """The best context-blind deterministic Markov policy's value, by enumeration (A^(H S)
    policies; tiny instances only): a lower bound on V*."""
    _M, S, A, H = model.sizes
    count = A ** (H * S)
    if count > max_policies:
        raise ConfigError(f"horizon: {count} Markov policies > max_policies = {max_policies}")
    best = -np.inf
    for acts in itertools.product(range(A), repeat=H * S):
        best = max(best, markov_value(model, np.asarray(acts).reshape(H, S)))
    return float(best)


def history_policy_moments(model: LatentModel, policy) -> tuple[np.ndarray, np.ndarray]:
    """Per-context (E_m[G], E_m[G²]) of a history-dependent policy: ``policy(history)`` returns
    an action or a vector of A action probabilities, where history = (s_1, a_1, r_1, ..., s_h)
    with the observed rewards. Depth-first over the histories the policy reaches."""
    M, _S, A, H = model.sizes
    P, R = model.transitions, model.rewards

    def go(hist: tuple, s: int, m: int, h: int) -> tuple[float, float]:
        # (E_m[G_{>=h}], E_m[G_{>=h}^2]) from history `hist` (ending in state s) in context m
        out = policy(hist)
        probs = np.eye(A)[int(out)] if np.ndim(out) == 0 else np.asarray(out, float)
        e1 = e2 = 0.0
        for a in np.flatnonzero(probs):
            r = float(R[m, s, a])
            c1 = c2 = 0.0
            if h < H:
                for t in np.flatnonzero(P[m, s, a]):
                    d1, d2 = go((*hist, int(a), r, int(t)), int(t), m, h + 1)
                    c1 += P[m, s, a, t] * d1
                    c2 += P[m, s, a, t] * d2
            e1 += probs[a] * (r + c1)
            e2 += probs[a] * (r * r + 2 * r * c1 + c2)
        return e1, e2

    E1, E2 = np.zeros(M), np.zeros(M)
    for m in range(M):
        for s in np.flatnonzero(model.init[m]):
            c1, c2 = go((int(s),), int(s), m, 1)
            E1[m] += model.init[m, s] * c1
            E2[m] += model.init[m, s] * c2
    return E1, E2


def history_policy_value(model: LatentModel, policy) -> float:
    """Exact value Σ_m w_m E^π_m[G] of a history-dependent policy (see `history_policy_moments`)."""
    return float(model.weights @ history_policy_moments(model, policy)[0])


def belief(model: LatentModel, history: tuple) -> np.ndarray:
    """The posterior over contexts after history (s_1, a_1, r_1, ..., s_h); zeros for a history
    of probability zero in every context (never NaN)."""
    u = model.weights * model.init[:, history[0]]
    s = history[0]
    for i in range(1, len(history), 3):
        a, r, t = history[i], history[i + 1], history[i + 2]
        u = u * (model.rewards[:, s, a] == r) * model.transitions[:, s, a, t]
        s = t
    tot = u.sum()
    return u / tot if tot > 0 else np.zeros_like(u)


# --------------------------------------------------------------------------- brute force
def brute_force_value(model: LatentModel, max_policies: int = 1 << 22) -> float:
    """V* by enumerating every deterministic history-dependent policy (tiny instances only).

    The trajectories (m, s_1, a_1, ..., s_H, a_H) of positive probability are listed with their
    decision histories (s_1, a_1, r_1, ..., s_h); a policy assigns an action to each decision
    history, and its value is Σ over the trajectories consistent with it of probability × return.
    """
    M, _S, A, H = model.sizes
    P, R = model.transitions, model.rewards
    ids: dict[tuple, int] = {}
    trajs = []  # (decision ids, actions, probability, return)

    def walk(m, hist, s, h, p, g, dec, acts):
        d = ids.setdefault(hist, len(ids))
        for a in range(A):
            r = float(R[m, s, a])
            if h == H:
                trajs.append(((*dec, d), (*acts, a), p, g + r))
                continue
            for t in np.flatnonzero(P[m, s, a]):
                walk(
                    m,
                    (*hist, a, r, int(t)),
                    int(t),
                    h + 1,
                    p * P[m, s, a, t],
                    g + r,
                    (*dec, d),
                    (*acts, a),
                )

    for m in range(M):
        for s in np.flatnonzero(model.init[m]):
            walk(m, (int(s),), int(s), 1, model.weights[m] * model.init[m, s], 0.0, (), ())
    D = len(ids)
    if max_policies < A**D:
        raise ConfigError(
            f"horizon: {A}^{D} history-dependent policies > max_policies = {max_policies}"
        )
    dec = np.array([t[0] for t in trajs])  # (T, H)
    act = np.array([t[1] for t in trajs])
    weight = np.array([t[2] * t[3] for t in trajs])
    best = -np.inf
    total = A**D
    batch = 1 << 15
    for start in range(0, total, batch):
        idx = np.arange(start, min(total, start + batch))
        pol = (idx[:, None] // (A ** np.arange(D))[None, :]) % A  # (B, D)
        consistent = np.all(pol[:, dec] == act[None], axis=2)  # (B, T)
        best = max(best, float((consistent @ weight).max()))
    return best
