"""Latent-MDP instances: random Garnet-style, the M = 2 likelihood-ratio lattice, deterministic-to-
stochastic interpolations; their transition degree Γ and variance Var* computed exactly.

All generators return a validated `rl.planning.LatentModel` (float64 arrays (M,), (M, S),
(M, S, A, S), (M, S, A) and H) from a NumPy seed, with rewards <= 1/H per step so that every
episode's total is <= 1 (the reward scale of Zhou, Wang & Du, ICML 2023, §3.1: the total reward
of an episode is bounded by 1).

* `garnet`: each (m, s, a) moves to Γ = `degree` distinct next states drawn uniformly, with
  Dirichlet(1) probabilities (the Garnet family of Archibald, McKinnon & Thomas, J. Oper. Res.
  Soc. 46(3), 1995, with its branching factor as Γ); ν_m ~ Dirichlet(1) over S; rewards
  R_m(s, a) ~ U[0, 1]/H. Γ = max_{m,s,a} |supp P_m(·|s,a)| is the paper's maximum transition
  degree (Zhou, Wang & Du, §3.1).
* `lattice`: M = 2 with every likelihood ratio P_1(s'|s,a)/P_2(s'|s,a) in {ρ, 1, 1/ρ}
  (reconstructed: our own construction, proposed so that exact planning stays polynomial for
  large H). Each (s, a) has two successors x, y; an informative pair has P_1 = (p, 1-p),
  P_2 = (1-p, p) with p = ρ/(1+ρ), a neutral one the same probabilities in both contexts. ν and
  R do not depend on the context, so the posterior odds are (w_1/w_2) (p/(1-p))^k with k an
  integer in [-(h-1), h-1]: at most 2h - 1 beliefs per (h, s), exactly (the planner's merging
  keys are exact rationals). ρ = 3 gives p = 3/4, exact in binary.
* `interpolation`: P = (1-ε) P_det + ε P_garnet, ν = (1-ε) ν_det + ε ν_garnet, with P_det, ν_det
  deterministic (one successor, one initial state per context): ε = 0 is a deterministic LMDP
  (Var* = 0) and Var* grows from 0 with ε (reconstructed: proposed to probe the variance
  dependence of the regret bound Õ(√(Var* M Γ S A K)) of Zhou, Wang & Du, abstract).

The Γ = 2 hard family of Zhou, Wang & Du's lower bound Ω(√(Var* M S A K)) is **not
implemented**: its construction (in the paper's appendix) was not available to us.

Var* (reconstructed). The abstract calls Var* "a variance quantity describing the determinism of
the LMDP"; its exact definition was not checked (it may be a maximum over policies, something
like max_π Σ_m w_m Var^π_m(Σ_h r_h), or a variance at the optimal policy). `var_star` computes
both kinds of candidate exactly:

* at the optimal history-dependent policy π* (``over="optimal"``, ties broken towards the lowest
  action) by the alpha-vector moment recursion on the belief graph
  (`rl.planning.graph_moments`): ``conditional`` Σ_m w_m Var^{π*}_m(Σ_h r_h) (0 for every
  deterministic LMDP) and ``total`` Var^{π*}(Σ_h r_h) (which also counts the spread of the
  return across contexts);
* maximised over the deterministic context-blind Markov policies (``over="markov"``, by
  enumeration of the A^(H S) of them, each valued by the per-context moment recursion of
  `rl.planning.markov_moments`): a **lower bound** on the maximum over all policies (history-
  dependent or randomised ones can spread the return more; the variance is not linear in the
  policy, so no backward induction gives the maximum). Tiny instances only.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from experiments.config import ConfigError, check_choice, check_float, check_int
from rl.planning import (
    MAX_NODES,
    LatentModel,
    belief_graph,
    check_model,
    graph_moments,
    graph_policy,
)

INSTANCES = ("garnet", "lattice", "interpolation")


def _weights(weights: Any, M: int, where: str) -> np.ndarray:
    if weights is None:
        return np.full(M, 1.0 / M)
    w = np.asarray(weights, np.float64)
    if w.shape != (M,):
        raise ConfigError(f"{where}weights: must have {M} entries, one per context (got {w.shape})")
    return w


def _garnet_rows(
    rng: np.random.Generator, shape: tuple[int, ...], S: int, degree: int
) -> np.ndarray:
    """Probability rows over S with exactly `degree` positive entries at uniform positions."""
    n = int(np.prod(shape))
    out = np.zeros((n, S))
    for i in range(n):
        support = rng.choice(S, degree, replace=False)
        out[i, support] = rng.dirichlet(np.ones(degree))
    return out.reshape(*shape, S)


def _sizes(where: str, num_contexts, num_states, num_actions, horizon, degree, seed):
    """(M, S, A, H, Γ, rng) of a random instance, each checked (one line naming the field)."""
    M = check_int(f"{where}num_contexts", num_contexts, 1)
    S = check_int(f"{where}num_states", num_states, 1)
    A = check_int(f"{where}num_actions", num_actions, 1)
    H = check_int(f"{where}episode_length" if where else "horizon", horizon, 1)
    G = check_int(f"{where}degree", degree, 1, S)
    rng = np.random.default_rng(check_int(f"{where}instance_seed" if where else "seed", seed, 0))
    return M, S, A, H, G, rng


def garnet(
    num_contexts: int = 2,
    num_states: int = 4,
    num_actions: int = 2,
    horizon: int = 5,
    degree: int = 2,
    seed: int = 0,
    weights: Any = None,
    where: str = "",
) -> LatentModel:
    """A random Garnet-style LMDP with maximum transition degree Γ = `degree` (see module doc)."""
    M, S, A, H, G, rng = _sizes(where, num_contexts, num_states, num_actions, horizon, degree, seed)
    P = _garnet_rows(rng, (M, S, A), S, G)
    nu = rng.dirichlet(np.ones(S), M)
    R = rng.uniform(0, 1, (M, S, A)) / H
    return _model(_weights(weights, M, where), nu, P, R, H, where)


def lattice(
    num_states: int = 4,
    num_actions: int = 2,
    horizon: int = 16,
    rho: float = 3.0,
    informative: float = 1.0,
    seed: int = 0,
    weights: Any = None,
    where: str = "",
) -> LatentModel:
    """The M = 2 likelihood-ratio lattice family (see module doc); needs S >= 2."""
    S = check_int(f"{where}num_states", num_states, 2)
    A = check_int(f"{where}num_actions", num_actions, 1)
    H = check_int(f"{where}episode_length" if where else "horizon", horizon, 1)
    rho = check_float(f"{where}rho", rho, 1.0, low_open=True)
    informative = check_float(f"{where}informative", informative, 0.0, 1.0)
    rng = np.random.default_rng(check_int(f"{where}instance_seed" if where else "seed", seed, 0))
    p = rho / (1.0 + rho)
    P = np.zeros((2, S, A, S))
    for s in range(S):
        for a in range(A):
            x, y = rng.choice(S, 2, replace=False)
            if rng.uniform() < informative:
                P[0, s, a, x], P[0, s, a, y] = p, 1.0 - p
                P[1, s, a, x], P[1, s, a, y] = 1.0 - p, p
            else:
                q = rng.uniform(0.1, 0.9)
                P[:, s, a, x], P[:, s, a, y] = q, 1.0 - q
    nu = np.full((2, S), 1.0 / S)
    R = np.broadcast_to(rng.uniform(0, 1, (S, A)) / H, (2, S, A)).copy()
    return _model(_weights(weights, 2, where), nu, P, R, H, where)


def interpolation(
    num_contexts: int = 2,
    num_states: int = 4,
    num_actions: int = 2,
    horizon: int = 5,
    epsilon: float = 0.0,
    degree: int = 2,
    seed: int = 0,
    weights: Any = None,
    where: str = "",
) -> LatentModel:
    """(1-ε) deterministic + ε Garnet (see module doc); ε = 0 is deterministic (Var* = 0)."""
    M, S, A, H, G, rng = _sizes(where, num_contexts, num_states, num_actions, horizon, degree, seed)
    eps = check_float(f"{where}epsilon", epsilon, 0.0, 1.0)
    P_det = np.eye(S)[rng.integers(0, S, (M, S, A))]
    nu_det = np.eye(S)[rng.integers(0, S, M)]
    P_rand = _garnet_rows(rng, (M, S, A), S, G)
    nu_rand = rng.dirichlet(np.ones(S), M)
    R = rng.uniform(0, 1, (M, S, A)) / H
    P = (1 - eps) * P_det + eps * P_rand
    nu = (1 - eps) * nu_det + eps * nu_rand
    return _model(_weights(weights, M, where), nu, P, R, H, where)


def _model(w, nu, P, R, H, where: str) -> LatentModel:
    names = {k: where + k for k in ("weights", "init", "transitions", "rewards")}
    names["horizon"] = f"{where}episode_length" if where else "horizon"
    return check_model(w, nu, P, R, H, names)


def load(path: str, horizon: int, where: str = "") -> LatentModel:
    """A model from an .npz file with arrays `weights`, `init`, `transitions`, `rewards`."""
    try:
        with np.load(path) as f:
            arrays = [f[k] for k in ("weights", "init", "transitions", "rewards")]
    except (OSError, KeyError, ValueError) as e:
        raise ConfigError(
            f"{where}path: cannot read an .npz with weights, init, transitions, rewards from"
            f" {path!r} ({type(e).__name__})"
        ) from None
    return _model(*arrays, horizon, where)


def make(instance: str, where: str = "", **kwargs: Any) -> LatentModel:
    """The instance named (garnet | lattice | interpolation) with the keyword arguments given."""
    check_choice(f"{where}instance", instance, INSTANCES)
    return {"garnet": garnet, "lattice": lattice, "interpolation": interpolation}[instance](
        where=where, **kwargs
    )


# --------------------------------------------------------------------------- diagnostics
def transition_degree(model: LatentModel) -> int:
    """Γ = max_{m, s, a} |supp P_m(·|s, a)| (exact count of positive entries)."""
    return int((model.transitions > 0).sum(-1).max())


def markov_moments_batch(model: LatentModel, policies: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`rl.planning.markov_moments` of N deterministic Markov policies (N, H, S) at once:
    per-context (E_m[G], E_m[G²]), each (N, M)."""
    M, S, _A, H = model.sizes
    R, P = model.rewards, model.transitions
    N = policies.shape[0]
    states = np.arange(S)[None, :]
    V1, V2 = np.zeros((N, M, S)), np.zeros((N, M, S))
    for h in reversed(range(H)):
        a = policies[:, h]  # (N, S)
        r = R[:, states, a].transpose(1, 0, 2)  # (N, M, S)
        p = P[:, states, a].transpose(1, 0, 2, 3)  # (N, M, S, S')
        n1 = np.einsum("nmst,nmt->nms", p, V1)
        n2 = np.einsum("nmst,nmt->nms", p, V2)
        V1, V2 = r + n1, r**2 + 2 * r * n1 + n2
    nu = model.init[None]
    return (nu * V1).sum(-1), (nu * V2).sum(-1)


MAX_MARKOV_POLICIES = 1 << 16  # `var_star(over="markov")` enumerates at most this many


def _variance(w: np.ndarray, e1: np.ndarray, e2: np.ndarray, kind: str) -> float:
    if kind == "conditional":
        return float(max(0.0, w @ (e2 - e1**2)))
    return float(max(0.0, w @ e2 - (w @ e1) ** 2))


def var_star(
    model: LatentModel,
    kind: str = "conditional",
    max_nodes: int = MAX_NODES,
    over: str = "optimal",
    max_policies: int = MAX_MARKOV_POLICIES,
) -> float:
    """Var* candidates (reconstructed; see module doc), G the episode's return: ``conditional``
    Σ_m w_m Var^π_m(G) or ``total`` Var^π(G), either at the optimal history-dependent policy π*
    (``over="optimal"``) or maximised over the deterministic context-blind Markov policies
    (``over="markov"``: a lower bound on the maximum over all policies; A^(H S) <=
    `max_policies`, else one ConfigError line)."""
    check_choice("kind", kind, ("conditional", "total"))
    check_choice("over", over, ("optimal", "markov"))
    w = model.weights
    if over == "markov":
        _M, S, A, H = model.sizes
        count = A ** (H * S)
        if count > max_policies:
            raise ConfigError(
                f"over: markov enumerates A^(H S) = {A}^{H * S} = {count:.3g} policies >"
                f" max_policies = {max_policies} (tiny instances only; use over=optimal)"
            )
        pols = np.asarray(list(itertools.product(range(A), repeat=H * S))).reshape(-1, H, S)
        e1, e2 = markov_moments_batch(model, pols)  # (N, M) each
        v = (e2 - e1**2) @ w if kind == "conditional" else e2 @ w - (e1 @ w) ** 2
        return float(max(0.0, v.max()))
    graph = belief_graph(model, max_nodes)
    actions, _, _ = graph_policy(model, graph)
    e1, e2 = graph_moments(model, graph, actions)
    return _variance(w, e1, e2, kind)
