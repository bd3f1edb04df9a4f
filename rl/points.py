"""Point-based planning for the latent-MDP learners: point-based value iteration (PBVI) over a
fixed lattice of beliefs, its policy graph (a finite-state controller) and the controller's exact
value in any LMDP.

Paper: Pineau, Gordon & Thrun, "Point-based value iteration: An anytime algorithm for POMDPs",
IJCAI 2003: the point-based backup over a fixed belief set and its error bound (Theorem 1);
section numbers were not checked (recalled, not re-read).

**An approximation of the paper's solver.** Zhou, Wang & Du (ICML 2023, arXiv:2210.11604; the
value-optimistic solver as reconstructed in `rl.optimistic`) plan exactly over histories, which
`rl.optimistic.plan_histories` does on dense tensors with S (A M S)^(h-1) nodes at step h: H = 6
is its limit here (H = 7 needs 7.7 GB for a 10-seed plan; docs/latent_mdp.md, "What H = 6 and 7
cost"). This planner is polynomial in H and serves the learners up to H = 64 (``planner:
points``); its plan's value is a *lower bound* on the exact optimistic plan's value that tends
to it as the resolution n grows — exactly so without bonus (it is then the value of one
history-dependent policy, see below) or with a bonus that does not read α (``hoeffding``) while
the clip does not bind; with the clip binding or the Bernstein bonus's variance term (which reads
the chosen next vectors) only approximately.

**Belief points.** At every (h, s) the same G = C(n + M − 1, M − 1) beliefs: the simplex lattice
of resolution n (`simplex_lattice`; M = 2: b = (i/n, 1 − i/n), i = 0..n). Point g at (h, s)
stores one alpha vector α_m(h, s, g) (one entry per context), an action a_g and, for each
(reward class j, next state s'), a pointer ptr_g(j, s') to a level-(h+1) point at s'.

**Backup** (Pineau et al.'s Γ^{a,o} step with "o" = (reward class j, s'), in the
optimistic per-context form of `rl.optimistic.plan_histories`). For every action a and branch
(j, s') the pointer is the level-(h+1) point whose vector is best at the unnormalised next belief

    b'_m = b_m P̂_m(s'|s, a) [r̂_m(s, a) = j],  ptr(a, j, s') = argmax_{g'} Σ_m b'_m α_m(h+1, s', g'),

then per context m (r_m its reward class at (s, a), v_m(s') = α_m(h+1, s', ptr(a, r_m, s')))

    α_m(h, s, g; a) = min{1, R̂_m(s, a) + Σ_{s'} P̂_m(s'|s, a) v_m(s') + β_m(s, a)},

β the learners' `rl.optimistic.bonus` with 𝕍(P̂_m(·|s, a), v_m) for the Bernstein bonus, and
a_g = argmax_a Σ_m b_m α_m(h, s, g; a). At the last step there is no continuation (v = 0, 𝕍 = 0),
as in `plan_histories`.

**Ties.** The actions a_g and the start points g_1(s_1) below are drawn uniformly at random among
the exact maximisers (`rl.optimistic.argmax_random_ties`, words from the plan's key: the rule of
`rl.optimistic`, "Ties", so no action label is preferred). The pointers take the *first*
maximising point (``argmax``): tied next vectors give the same planned value, the actions at the
points they lead to are already drawn at random, and the random rule on the G-long pointer rows
cost 2/3 of a plan's time (measured: 0.11 against 0.04 CPU-s at H = 64, n = 64, S = 3, A = 2).

**The policy executed** is the policy graph (each α vector of PBVI keeps the action
and the successor vectors that built it): at s_1 the level-1 point g_1(s_1) maximising
û(s_1)·α(1, s_1, ·) (û_m(s_1) = ŵ_m ν̂_m(s_1) the empirical unnormalised belief), then on observing
(r, s') the agent moves from (h, s, g) to (h + 1, s', ptr_g(j(r), s')), j(r) the class of the
observed reward under the plan's reward table — a finite-state controller with H S G nodes. The
planned value V̄ = Σ_{s_1} max_g û(s_1)·α(1, s_1, g). Without the clip binding, α_m(h, s, g) is
exactly the controller's (bonus-augmented) value in context m from node (h, s, g), so V̄ is the
controller's value in the empirical (bonus-augmented) model (tested); the controller is a
history-dependent policy, so with zero bonus V̄ ≤ V̂* of the empirical model (tested).

**Error.** Pineau et al.'s Theorem 1 rewritten for a finite horizon and values in [0, 1]: a
belief b′ off the lattice is backed up with the vector of a point b″, losing at most
(α*(b′) − α(b″))·(b′ − b″) ≤ ½ ‖b′ − b″‖₁ per step, so V* − V̄ ≤ (H − 1) δ / 2 with δ the largest
L1 distance from a reachable belief to the lattice (< M/n; M = 2: ≤ 1/n). This bound is loose
(H = 64, n = 64: 0.5); on the lattice family of `rl.instances` the measured gap is far smaller
(tests/test_latent_mdp_points.py, docs/latent_mdp.md, "Point-based planner").

**Exact evaluation.** The controller's value in any LMDP (the true one, for pseudo-regret) is a
linear recursion over its nodes, per context (`evaluate_controller`):

    V_m(h, s, g) = R_m(s, a_g) + Σ_{s'} P_m(s'|s, a_g) V_m(h+1, s', ptr_g(j_m, s')),
    V = Σ_m w_m Σ_s ν_m(s) V_m(1, s, g_1(s)),

j_m the class the agent assigns to context m's reward (`rl.optimistic.agent_classes`): H S G M S
operations, so pseudo-regret stays exact at every H.

Cost of a plan: H levels of S G A M S G products of M-vectors (the pointer scores), in one
``lax.scan`` over h (compile time independent of H); `check_points_size` bounds the per-level
score tensor S G A M S G by the learner's ``max_nodes``. The policy graph is stored small (int8
actions; int8 pointers while G ≤ 127, else int16): the engine carries it through every step.
"""

from __future__ import annotations

import itertools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from experiments.config import ConfigError
from rl.backup import (
    EvalInputs,
    Plan,
    PlanInputs,
    agent_classes,
    argmax_random_ties,
    bonus,
    reward_classes,
    tie_key,
    variance,
)

POINTS = 64  # default lattice resolution n
START_TAG = 0x57A  # folded into step 0's tie key for the start points' tie-breaking words


def num_points(n: int, M: int) -> int:
    """G = C(n + M − 1, M − 1): the points of the simplex lattice of resolution n in M dims."""
    return math.comb(n + M - 1, M - 1)


def simplex_lattice(n: int, M: int) -> np.ndarray:
    """(G, M) float64: every b with n·b a vector of non-negative integers summing to n (M = 2:
    rows (i/n, 1 − i/n), i = 0..n), in lexicographic order of n·b."""
    rows = [c for c in itertools.product(range(n + 1), repeat=M - 1) if sum(c) <= n]
    out = np.array([[*c, n - sum(c)] for c in rows], np.float64) / n
    return out.reshape(-1, M)


def score_entries(M: int, S: int, A: int, n: int) -> int:
    """Entries of one level's pointer-score tensor: S G A M S G (G = `num_points`)."""
    G = num_points(n, M)
    return S * G * A * M * S * G


def check_points_size(M: int, S: int, A: int, H: int, n: int, max_nodes: int) -> int:
    """The per-level score entries, or one ConfigError line naming ``points``."""
    size = score_entries(M, S, A, n)
    if size > max_nodes:
        raise ConfigError(
            f"points: point-based planning with n = {n} (G = {num_points(n, M)} belief points"
            f" per (h, s) for M = {M}) needs {size:.3g} pointer scores per step (S G A M S G,"
            f" S={S}, A={A}) > max_nodes = {max_nodes:.3g}; lower points (or raise max_nodes)"
        )
    return size


class PointPolicy(NamedTuple):
    """The policy graph of a point-based plan (module docstring)."""

    start: jax.Array  # (S,) the level-1 point g_1(s_1)
    action: jax.Array  # (H, S, G) a_g
    ptr: jax.Array  # (H, S, G, J, S') next point after (reward class j, s'); last level unused


def int_dtype():
    return jnp.result_type(int)


def plan_points(inputs: PlanInputs, H: int, kind: str, n: int) -> Plan:
    """PBVI over the resolution-`n` simplex lattice of the empirical (optimistic) LMDP of
    `inputs` (module docstring): the policy graph, V̄ = Σ_s max_g û(s)·α(1, s, g), the reward
    table. With ``kind="none"`` and the true model V̄ is a lower bound on V*."""
    w, nu, P, R = inputs.weights, inputs.init, inputs.transitions, inputs.rewards
    cnt = inputs.counts
    M, S, A, _ = P.shape
    f = P.dtype
    B = jnp.asarray(simplex_lattice(n, M), f)  # (G, M)
    G = B.shape[0]
    cls = reward_classes(R)  # (M, S, A)
    onehot = (cls[..., None] == jnp.arange(M)).astype(f)  # (M, S, A, J)
    # unnormalised next beliefs b'_m of every (s, g, a, j, s'): (S, G, A, J, S', M)
    nb = (
        B[None, :, None, None, None, :]
        * P.transpose(1, 2, 3, 0)[:, None, :, None, :, :]
        * onehot.transpose(1, 2, 3, 0)[:, None, :, :, None, :]
    )
    m_, s_, g_, a_, t_ = jnp.ix_(*(jnp.arange(k) for k in (M, S, G, A, S)))
    j_m = cls[m_, s_, a_]  # (M, S, 1, A, 1): context m's reward class
    Ps = P[:, :, None, :, :]  # (M, S, 1, A, S')
    Rs = R[:, :, None, :]  # (M, S, 1, A)
    ns = cnt[:, :, None, :]
    pdt = jnp.int8 if G < 2**7 else jnp.int16 if G < 2**15 else int_dtype()

    def back(alpha_next, h):  # alpha_next (S', G', M): level h + 1 (zeros after the last step)
        score = jnp.einsum("sgajtm,tkm->sgajtk", nb, alpha_next)
        ptr = jnp.argmax(score, -1)  # (S, G, A, J, S'): the first maximiser (docstring, "Ties")
        v = alpha_next[t_, ptr[s_, g_, a_, j_m, t_], m_]  # (M, S, G, A, S')
        E = jnp.sum(Ps * v, -1)
        var = variance(Ps, v)
        vec = jnp.minimum(1.0, Rs + E + bonus(kind, ns, var, inputs.iota, inputs.scale, S))
        q = jnp.einsum("gm,msga->sga", B, vec)
        bits = jax.random.bits(tie_key(inputs.key, h), (S, G), jnp.uint32)
        best = argmax_random_ties(q, bits)  # (S, G)
        alpha = jnp.take_along_axis(vec, best[None, :, :, None], axis=3)[..., 0]  # (M, S, G)
        chosen = jnp.take_along_axis(ptr, best[:, :, None, None, None], axis=2)[:, :, 0]
        return alpha.transpose(1, 2, 0), (best.astype(jnp.int8), chosen.astype(pdt))

    alpha, (action, ptr) = lax.scan(back, jnp.zeros((S, G, M), f), jnp.arange(H - 1, -1, -1))
    u0 = (w[:, None] * nu).T  # (S, M) û(s_1)
    start_q = jnp.einsum("sm,sgm->sg", u0, alpha)
    sbits = jax.random.bits(jax.random.fold_in(tie_key(inputs.key, 0), START_TAG), (S,), jnp.uint32)
    start = argmax_random_ties(start_q, sbits)
    value = jnp.sum(jnp.max(start_q, -1))
    policy = PointPolicy(start=start.astype(pdt), action=action[::-1], ptr=ptr[::-1])
    return Plan(policy=policy, value=value, rewards=R)


def evaluate_controller(x: EvalInputs, H: int) -> jax.Array:
    """The exact value Σ_m w_m Σ_s ν_m(s) V_m(1, s, g_1(s)) of the policy graph ``x.policy``
    (a `PointPolicy`) in the LMDP of `x`, the observed rewards classified by ``x.plan_rewards``
    as the agent does (module docstring, "Exact evaluation")."""
    pol = x.policy
    w, nu, P, R = (jnp.asarray(v) for v in (x.weights, x.init, x.transitions, x.rewards))
    M, S, _, _ = P.shape
    G = pol.action.shape[-1]
    cls = agent_classes(jnp.asarray(x.plan_rewards), R)  # (M, S, A)
    m_, s_, g_, t_ = jnp.ix_(*(jnp.arange(k) for k in (M, S, G, S)))

    def back(V, h):  # V (M, S', G): level h + 1
        a = pol.action[h].astype(int_dtype())[None, :, :, None]  # (1, S, G, 1)
        nxt = pol.ptr[h].astype(int_dtype())[s_, g_, cls[m_, s_, a], t_]  # (M, S, G, S')
        cont = jnp.sum(P[m_, s_, a, t_] * V[m_, t_, nxt], -1)
        return R[m_, s_, a][..., 0] + cont, None

    V, _ = lax.scan(back, jnp.zeros((M, S, G), P.dtype), jnp.arange(H - 1, -1, -1))
    first = V[:, jnp.arange(S), pol.start.astype(int_dtype())]  # (M, S)
    return jnp.sum(w[:, None] * nu * first)
