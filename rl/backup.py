"""The pieces the latent-MDP learners' planners share: the history planner of `rl.optimistic` and
the point-based planner of `rl.points`.

Zhou, Wang & Du, "Horizon-Free and Variance-Dependent Reinforcement Learning for Latent Markov
Decision Processes", ICML 2023 (arXiv:2210.11604): the bonus β of the value-optimistic solver
(Bernstein form and constants after MVP, Zhang, Ji & Du, COLT 2021, Algorithm 1: **reconstructed**,
`rl.optimistic`'s module docstring says which parts), the L-UCRL-style Hoeffding width (Kwon,
Efroni, Caramanis & Mannor, NeurIPS 2021), the uniform tie rule ("Ties" in `rl.optimistic`),
reward classes, and the containers a plan is made from and evaluated with.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

C1 = 460.0 / 9.0  # MVP's variance-term constant (Zhang, Ji & Du, COLT 2021, Algorithm 1)
C3 = 544.0 / 9.0  # MVP's lower-order-term constant (ibid.)
C_L1 = math.sqrt(2.0)  # L1 radius √(2 S ι / n) of the Hoeffding (L-UCRL-style) set


def int_dtype():
    """JAX's default integer dtype (int64 under x64, else int32)."""
    return jnp.result_type(int)


def float_dtype():
    """JAX's default float dtype (float64 under x64, else float32)."""
    return jnp.result_type(float)


def variance(p, v):
    """𝕍(p, v) = pᵀ(v²) − (pᵀv)² along the last axis, computed in two passes as
    Σ_s p_s (v_s − pᵀv)² (>= 0, and exactly 0 for a one-hot p: the one-pass difference leaves
    a rounding residue, which a compiler's fused multiply-add makes nonzero even there, and
    √𝕍 in the bonus turns a residue of 10⁻²⁰ into 10⁻¹⁰)."""
    e = jnp.sum(p * v, -1, keepdims=True)
    return jnp.sum(p * jnp.square(v - e), -1)


def bonus(kind: str, n, var, iota_, scale, S: int):
    """The per-(m, s, a) bonus β (`rl.optimistic`'s module docstring); `n` the counts, `var`
    𝕍(P̂, α̃(next))."""
    n = jnp.maximum(n, 1.0)
    if kind == "bernstein":
        return scale * (C1 * jnp.sqrt(var * iota_ / n) + C3 * iota_ / n)
    if kind == "hoeffding":
        return scale * C_L1 * jnp.sqrt(S * iota_ / n) + 0.0 * var
    return jnp.zeros_like(var)


TIE_TAG = 0x7E1  # folded into a plan's key for its tie-breaking draws (`rl.optimistic`, "Ties")


def tie_key(key, h):
    """The key of the tie-breaking words of step h of a plan made with `key`."""
    return jax.random.fold_in(jax.random.fold_in(key, TIE_TAG), h)


def argmax_random_ties(q, bits):
    """Per row of `q` (..., A): an index drawn uniformly among the rows' exact maximisers (the
    k-th maximiser, k = bits mod c with c their number; `rl.optimistic`, "Ties"). `bits`:
    uint32 words of shape q.shape[:-1]. Without a tie it is ``argmax(q, -1)``."""
    top = q == jnp.max(q, -1, keepdims=True)
    c = jnp.sum(top, -1).astype(jnp.uint32)
    k = (bits % c).astype(int_dtype())
    rank = jnp.cumsum(top, -1) - 1
    return jnp.argmax(top & (rank == k[..., None]), -1).astype(int_dtype())


def reward_classes(R):
    """(M, S, A): the smallest context paying the same reward as m at (s, a) (exact equality),
    as `rl.planning.reward_classes`."""
    return jnp.argmax(R[:, None] == R[None, :], axis=1).astype(int_dtype())


class PlanInputs(NamedTuple):
    """The empirical LMDP and the bonus inputs the planner needs (one seed)."""

    weights: jax.Array  # (M,) ŵ
    init: jax.Array  # (M, S) ν̂
    transitions: jax.Array  # (M, S, A, S) P̂
    rewards: jax.Array  # (M, S, A) R̂ (unseen: 1)
    counts: jax.Array  # (M, S, A) n of the bonus (snapshot)
    iota: jax.Array  # ()
    scale: jax.Array  # () bonus_scale
    key: jax.Array  # a typed PRNG key, fresh per refresh (posterior sampling only)
    snapshot: jax.Array  # (M, S, A, S) the snapshot counts (posterior sampling only)
    init_counts: jax.Array  # (M, S) (posterior sampling only)
    context_counts: jax.Array  # (M,) (posterior sampling only)


class Plan(NamedTuple):
    policy: jax.Array  # (nodes,) action at every node of every level, levels concatenated
    value: jax.Array  # () the planned (optimistic) value V̄
    rewards: jax.Array  # (M, S, A) the reward table the plan used (to classify observed rewards)


def agent_classes(plan_rewards, R):
    """(M, S, A): the reward class the agent assigns when context m pays R_m(s, a): the
    smallest m' with plan_rewards[m', s, a] equal to it, 0 when none is (as in
    `LatentValueOptimistic.update`)."""
    match = plan_rewards[None] == R[:, None]  # (M true, M' plan, S, A)
    return jnp.where(match.any(1), jnp.argmax(match, 1), 0).astype(int_dtype())


class MarkovPolicy(NamedTuple):
    """A context-blind Markov policy: the action at each (step h, state s), whatever the history
    (`rl.optimistic.UCBVIAgnostic`); valued by a per-context recursion, O(H M S²) per policy
    (`rl.optimistic.evaluate_markov`), never spread over the dense history nodes."""

    action: jax.Array  # (H, S)


class EvalInputs(NamedTuple):
    """A policy and the LMDP to evaluate it in."""

    policy: jax.Array  # (nodes,) as `Plan.policy`; or a `MarkovPolicy`, a `rl.points.PointPolicy`
    plan_rewards: jax.Array  # (M, S, A) the table the agent classifies observed rewards by
    weights: jax.Array
    init: jax.Array
    transitions: jax.Array
    rewards: jax.Array
