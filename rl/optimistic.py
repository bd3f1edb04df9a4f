"""Model-based learners for latent MDPs with context in hindsight: the value-optimistic solver with
Bernstein (MVP-type) bonuses, an L-UCRL-style Hoeffding variant, and context-agnostic UCBVI.

Paper: Zhou, Wang & Du, "Horizon-Free and Variance-Dependent Reinforcement Learning for Latent
Markov Decision Processes", ICML 2023 (arXiv:2210.11604): the model-based framework (their
Algorithm 1, as recalled) and its value-optimistic solver; section and line numbers of the paper
were not checked. **Reconstructed**: only the paper's abstract and the opening of its §3 were
checked. The abstract states a model-based framework with a value-optimistic solver, alpha
vectors, regret Õ(√(Var* M Γ S A K)) and ι = 2 ln(2 M S A H K / δ) (with 𝕍(x, y) = xᵀ(y²) − (xᵀy)²
in §3.1); everything else below — the bonus form and its constants, the doubling trigger, the clip,
how rewards are learned, the anytime ι — is our reconstruction after MVP (Zhang, Ji & Du, "Is
Reinforcement Learning More Difficult Than Bandits? A Near-optimal Algorithm Escaping the Curse
of Horizon", COLT 2021, Algorithm 1: the doubling trigger and the Bernstein bonus). Unverified
parts are marked [R] below.

**Framework (Zhou, Wang & Du, Algorithm 1, [R] details).** Per context m the agent keeps counts
N_m(s, a, s') and N_m(s, a), the initial-state counts and the context counts, all updated **only
at an episode's end** from the revealed context (`EpisodeFeedback.revealed`, -1 before; the agent
stores the episode's (s_h, a_h, r_h, s_{h+1}) and never reads the observation's context channel).
Rewards are deterministic: R_m(s, a) is learned exactly at the first revealed visit; an unseen
(m, s, a) is planned with reward 1 (optimistic; the clip at 1 bounds it) [R].

**Doubling-triggered refresh (after MVP, Algorithm 1's trigger set) [R].** The empirical
P̂_m(·|s, a) and the count used by its bonus are a *snapshot* taken when N_m(s, a) last crossed a
power of two (its bit length grew); ŵ, ν̂ and the learned rewards are re-read at every refresh.
An episode that crosses at least one such threshold is a refresh: the policy is re-planned
then, and only then (`lax.cond`). Each (m, s, a) refreshes at most ⌊log₂ N_m(s, a)⌋ + 1 times, so
the refreshes are at most M S A (log₂(H K / (M S A)) + 1) ≤ M S A (log₂ K + 1) when H ≤ M S A.

**Value-optimistic solver (Zhou, Wang & Du, [R] form and constants).** Backward induction on
alpha vectors over the histories τ_h = (s_1, a_1, r_1, ..., s_h) of the empirical LMDP:

    α̃_m(τ_h, a) = min{1, R̂_m(s_h, a) + P̂_m(·|s_h, a)ᵀ α̃_m(τ_h a r_m ·) + β_m(s_h, a)}
    a*(τ_h) = argmax_a Σ_m û_m(τ_h) α̃_m(τ_h, a),   α̃_m(τ_h) = α̃_m(τ_h, a*)

with û the unnormalised belief under (ŵ, ν̂, P̂, R̂) and r_m the reward class of context m (the
rewards observed branch the history, as in `rl.planning`). The optimistic value is
V̄ = Σ_s Σ_m û_m(s) α̃_m(s). Bonus (``bonus="bernstein"``, MVP's form without its reward-variance
term, rewards being deterministic):

    β = bonus_scale · (c₁ √(𝕍(P̂_m(·|s,a), α̃_m(next)) ι / n) + c₃ ι / n),   n = max(N_m(s,a), 1),

with MVP's constants c₁ = 460/9 and c₃ = 544/9 (Zhang, Ji & Du, Algorithm 1) at
``bonus_scale = 1`` (the default: "theory constants"; whether Zhou, Wang & Du reuse them is
unverified). At these constants β ≥ 1 until n ≳ c₃ ι ≈ 2·10³ visits, so the agent explores
uniformly for long; a tuned ``bonus_scale`` (e.g. 0.02) is reported beside it. At 0.02 the
constants are 1.02 and 1.21, within 4% of the empirical Bernstein bound's 1 and 7/6 on this ι
(Maurer & Pontil, COLT 2009, Thm 4, with ln(2/δ) = ι/2): the width of a confidence interval,
where c₁ = 460/9, c₃ = 544/9 are constants of MVP's regret analysis (docs/latent_mdp.md, "Audit").

ι = 2 ln(2 M S A H k / δ) with k the episodes completed at the refresh ([R] anytime: the paper's
ι uses the total K, which the agent does not know; ι_k ≤ ι_K).

``bonus="hoeffding"`` (the L-UCRL-style baseline after Kwon, Efroni, Caramanis & Mannor, "RL for
Latent MDPs: Regret Guarantees and a Lower Bound", NeurIPS 2021, L-UCRL, [R]): an L1 confidence set
‖P̂ − P‖₁ ≤ √(2 S ι / n) (Weissman et al.'s inequality), i.e. β = bonus_scale · √(2 S ι / n) on
values in [0, 1]: no variance, so its bonus summed over H steps grows like √H. Same planner.
``bonus="none"``: plain certainty equivalence (for tests and PSRL).

**Planner.** Exact over histories, level-synchronous in JAX on dense tensors: step h has
S (A M S)^(h-1) nodes (every (action, reward class, next state) branch, including those of
probability 0 under the model). Feasible for tiny S, A, M, H only (`max_nodes`); larger
instances are refused at ``init`` with one ConfigError line. Under ``vmap`` over seeds a re-plan
runs only in steps where some seed refreshes (a ``custom_vmap`` rule keeps the condition
unbatched), so the cost is set by the refreshes, not by the steps; ``replan`` chooses how
(`experiments.batched_cond`): ``lanes`` (default) plans only the seeds that refresh, one after
another (`cond_lanes`); ``batch`` plans every seed, vmapped, whenever one refreshes (`cond_any`).
Each seed refreshes up to M S A (log₂ K + 1) times, at its own steps, so ``batch`` plans
nearly a whole batch per seed-refresh (docs/latent_mdp.md, "Re-plan batching": lanes measured
cheaper at every H of E2). `PseudoRegret` evaluates the changed policies the same way.

**Point-based planner** (``planner: points``, `rl.points`; the default stays ``histories``).
Point-based value iteration (Pineau, Gordon & Thrun, IJCAI 2003) over a fixed simplex lattice of
resolution ``points`` at every (h, s), with the same reward-class branching, per-context clip and
bonus as the history planner; the agent executes the plan's policy graph (a finite-state
controller: one lattice point per (h, s), pointers on the observed (reward class, next state)).
An **approximation** of the exact history solver — a lower bound on the empirical optimistic
plan's value, tending to it as ``points`` grows — used because the dense history planner stops
at H = 6; it is polynomial in H (H S G A M S G per plan, G the points per (h, s)). `PseudoRegret`
(and the env's ``pseudo_regret`` metric, through `evaluate_policy`) value its controller exactly
in the true model (`rl.points.evaluate_controller`), so pseudo-regret stays exact. Only
`LatentValueOptimistic` itself plans with points (its subclasses replace the solve step).

**Ties (our implementation choice; the paper's a* = argmax leaves them open).** At the theory
constants every optimistic value is clipped at 1 for thousands of visits, so all actions tie at
most nodes, and "the first maximiser" (``argmax``) would always play action 0: a bias of the
implementation, not of the algorithm. Every greedy step here (`plan_histories`, the first plan,
UCBVI's value iteration) therefore picks **uniformly at random among the exact maximisers**
(float equality of the planned values; no tolerance, so without a tie the action is the
``argmax`` as before): the k-th maximiser with k = b mod c, c the number of maximisers and b a
uniform 32-bit word (`argmax_random_ties`; exact when c is a power of two, else a modulo bias
below c / 2³²). The words come from the agent's own key, folded with the episodes completed at the
refresh, the step h and `TIE_TAG` (independent of the posterior sample's draws), so a run stays
reproducible from its seed. Uniform is the choice that prefers no action; the regret analysis
holds for any maximiser. A plan is a deterministic policy until the next refresh (the draw is made
once per refresh and node, not per visit), so `evaluate_policy` measures it exactly.

**Optimism.** With bonuses and the clip at 1 the planned value is optimistic for the *fixed*
policy evaluated per context; the greedy history DP with per-context clipping is the
reconstruction (the tests check V̄ ≥ V*(empirical model) and coverage of the true V* on random
draws; with zero bonus the planner equals `rl.planning`'s V* exactly).

**Context-agnostic UCBVI** (`UCBVIAgnostic`; Azar, Osband & Munos, "Minimax Regret Bounds for
Reinforcement Learning", ICML 2017, Algorithm 1 with UCBVI-CH's bonus, Algorithm 3): one MDP
model pooling all contexts (the revealed context is ignored), Markov policies (h, s), re-planned
after every episode by finite-horizon value iteration (ties: "Ties" above; the per-pair reward
sums compensated, `add_reward`, so r̂ stays exact at any count; its policy valued for
pseudo-regret by a per-context recursion in O(H M S²), `evaluate_markov`: any H) with
b = bonus_scale · 7 L / √n,
L = ln(5 S A T / δ), T = k H (anytime), Q clipped at 1 (Azar et al.'s 7 H L √(1/n) and clip at
H, rescaled to episode totals ≤ 1). Where the optimal policy depends on the history it converges
to a Markov policy and its regret grows linearly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from experiments.accumulate import KahanSum, kahan_add, kahan_value, kahan_zeros
from experiments.batched_cond import cond_any, cond_lanes
from experiments.config import ConfigError, check_choice, check_float, check_int
from experiments.episodic import EpisodeFeedback, EpisodeObs
from experiments.protocol import AgentBase
from rl.backup import (
    EvalInputs,
    MarkovPolicy,
    Plan,
    PlanInputs,
    agent_classes,
    argmax_random_ties,
    bonus,
    float_dtype,
    int_dtype,
    reward_classes,
    tie_key,
    variance,
)
from rl.points import POINTS, PointPolicy, check_points_size, evaluate_controller, plan_points

C_UCBVI = 7.0  # UCBVI-CH: 7 H L √(1/n), H -> 1 for episode totals <= 1 (Azar et al., Alg. 3)
MAX_PLAN_NODES = 1 << 19  # default node budget of the JAX history planner
BONUSES = ("bernstein", "hoeffding", "none")
PLANNERS = ("histories", "points")  # exact over dense histories | point-based (`rl.points`)
# how a batch of seeds re-plans at refreshes (module docstring, "Planner"): only the seeds that
# refresh, one after another, or the whole batch whenever one seed does
REPLANS = {"lanes": cond_lanes, "batch": cond_any}


# --------------------------------------------------------------------------- sizes and terms
def level_sizes(M: int, S: int, A: int, H: int) -> list[int]:
    """Nodes of the dense history tensor at steps h = 1..H: S (A M S)^(h-1)."""
    B = A * M * S
    return [S * B**h for h in range(H)]


def plan_nodes(M: int, S: int, A: int, H: int) -> int:
    return sum(level_sizes(M, S, A, H))


def check_plan_size(M: int, S: int, A: int, H: int, max_nodes: int) -> int:
    """The planner's node count, or one ConfigError line with the size and what would serve."""
    n = plan_nodes(M, S, A, H)
    if n > max_nodes:
        raise ConfigError(
            f"max_nodes: exact history planning of this instance (M={M}, S={S}, A={A}, H={H})"
            f" needs {n:.3g} dense history nodes (S (A M S)^(h-1) at step h) > max_nodes ="
            f" {max_nodes:.3g}; lower H, S, A or M (the JAX planner serves only tiny instances;"
            " rl.planning's belief-merged DP computes V* of larger structured ones, e.g."
            " instance=lattice, but no learner here plans with it)"
        )
    return n


def iota(M, S, A, H, episodes, delta):
    """ι = 2 ln(2 M S A H K / δ) (Zhou, Wang & Du, §3.1), K = `episodes` (anytime: k so far)."""
    k = jnp.maximum(jnp.asarray(episodes, float_dtype()), 1.0)
    return 2.0 * jnp.log(2.0 * M * S * A * H * k / delta)


def first_policy(key, M: int, S: int, A: int, H: int) -> jax.Array:
    """The plan before any data (every reward unknown, so every value is clipped at 1 and every
    action ties): `argmax_random_ties` of all-equal values with the words `plan_histories` draws
    from `key`, i.e. its policy on the all-unknown model (tested)."""
    adt = jnp.int8 if A <= 127 else int_dtype()
    levels = []
    for h, N in enumerate(level_sizes(M, S, A, H)):
        bits = jax.random.bits(tie_key(key, h), (N,), jnp.uint32)
        levels.append(argmax_random_ties(jnp.zeros((N, A)), bits).astype(adt))
    return jnp.concatenate(levels)


# --------------------------------------------------------------------------- the planner


def model_inputs(
    weights, init, transitions, rewards, counts, iota_, scale, key=None, dtype=None
) -> PlanInputs:
    """`PlanInputs` of a given LMDP for the optimistic planners: the model's arrays, the bonus
    counts, ι and bonus_scale in `dtype` (default: JAX's default float); the posterior-sampling
    fields zero and `key` (default ``jax.random.key(0)``: only ties read it)."""
    f = jnp.result_type(float) if dtype is None else dtype
    M, S, A, _ = jnp.shape(transitions)
    return PlanInputs(
        weights=jnp.asarray(weights, f),
        init=jnp.asarray(init, f),
        transitions=jnp.asarray(transitions, f),
        rewards=jnp.asarray(rewards, f),
        counts=jnp.asarray(counts, f),
        iota=jnp.asarray(iota_, f),
        scale=jnp.asarray(scale, f),
        key=jax.random.key(0) if key is None else key,
        snapshot=jnp.zeros((M, S, A, S), f),
        init_counts=jnp.zeros((M, S), f),
        context_counts=jnp.zeros((M,), f),
    )


def plan_histories(inputs: PlanInputs, H: int, kind: str) -> Plan:
    """Exact (optimistic) planning over all histories of the empirical LMDP, level-synchronous on
    dense tensors (module docstring). With ``kind="none"`` and the true model it returns V*.
    Ties: uniformly random among the maximisers, words from ``inputs.key`` (module docstring)."""
    w, nu, P, R, n = inputs.weights, inputs.init, inputs.transitions, inputs.rewards, inputs.counts
    M, S, A, _ = P.shape
    cls = reward_classes(R)  # (M, S, A)
    onehot = (cls[..., None] == jnp.arange(M)).astype(P.dtype)  # (M ctx, S, A, J)
    # forward: unnormalised beliefs of every node, level by level; node n has state n % S
    us = [(w[:, None] * nu).T]  # (S, M)
    for _ in range(H - 1):
        u = us[-1]
        N = u.shape[0]
        s = jnp.arange(N) % S
        child = (
            u.T[:, :, None, None, None]
            * onehot[:, s][..., None]  # (M, N, A, J, 1)
            * P[:, s][:, :, :, None, :]  # (M, N, A, 1, S')
        )  # (M, N, A, J, S'): child (a, j, s') index = ((a M) + j) S + s'
        us.append(child.reshape(M, -1).T)
    # backward: alpha vectors
    policies = []
    alpha = None
    for h in reversed(range(H)):
        u = us[h]
        N = u.shape[0]
        s = jnp.arange(N) % S
        Rs = R[:, s]  # (M, N, A)
        ns = n[:, s]  # (M, N, A)
        if alpha is None:
            E = jnp.zeros_like(Rs)
            var = jnp.zeros_like(Rs)
        else:
            nxt = alpha.reshape(N, A, M, S, M).transpose(4, 0, 1, 2, 3)  # (M ctx, N, A, J, S')
            c = cls[:, s]  # (M, N, A): context m's class -> its child block (next state s')
            v = jnp.take_along_axis(nxt, c[..., None, None], axis=3)[..., 0, :]  # (M, N, A, S')
            Ps = P[:, s]
            E = jnp.sum(Ps * v, -1)
            var = variance(Ps, v)
        vec = jnp.minimum(1.0, Rs + E + bonus(kind, ns, var, inputs.iota, inputs.scale, S))
        q = jnp.einsum("nm,mna->na", u, vec)
        best = argmax_random_ties(q, jax.random.bits(tie_key(inputs.key, h), (N,), jnp.uint32))
        alpha = jnp.take_along_axis(vec, best[None, :, None], axis=2)[..., 0].T  # (N, M)
        policies.append(best)
    policies.reverse()
    value = jnp.sum(us[0] * alpha)
    adt = jnp.int8 if A <= 127 else int_dtype()
    policy = jnp.concatenate([p.astype(adt) for p in policies])
    return Plan(policy=policy, value=value, rewards=R)


def evaluate_markov(x: EvalInputs, H: int) -> jax.Array:
    """The exact value Σ_m w_m Σ_s ν_m(s) V_{m,1}(s) of a context-blind Markov policy
    (``x.policy`` a `MarkovPolicy`, actions (H, S)) by the per-context recursion
    V_{m,h}(s) = R_m(s, π_h(s)) + Σ_{s'} P_m(s'|s, π_h(s)) V_{m,h+1}(s') (as
    `rl.planning.markov_moments`): O(H M S²), at any H. The same value as the policy spread over
    the dense history nodes and valued there (tested), without their S (A M S)^(h-1) nodes."""
    w, nu, P, R = x.weights, x.init, x.transitions, x.rewards
    M, S, _, _ = P.shape
    pol = x.policy.action.astype(int_dtype())  # (H, S)
    states = jnp.arange(S)

    def back(V, h):  # V (M, S): the value from step h + 1 on
        a = pol[h]
        return R[:, states, a] + jnp.einsum("mst,mt->ms", P[:, states, a], V), None

    V, _ = lax.scan(back, jnp.zeros((M, S), P.dtype), jnp.arange(H - 1, -1, -1))
    return jnp.sum(w * jnp.sum(nu * V, -1))


def markov_dense(policy: jax.Array, M: int, S: int, A: int) -> jax.Array:
    """A Markov policy (H, S) spread over the dense history nodes (node n of step h: state
    n % S): the form `evaluate_policy` reads for history policies. Tiny instances only (the
    tests compare `evaluate_markov` with it)."""
    H = policy.shape[0]
    levels = [policy[h, jnp.arange(n) % S] for h, n in enumerate(level_sizes(M, S, A, H))]
    return jnp.concatenate(levels)


def evaluate_policy(x: EvalInputs, H: int) -> jax.Array:
    """The exact value Σ_m w_m E^π_m[Σ_h r_h] of a deterministic policy over the dense history
    nodes (forward pass of the reaching probabilities along the policy's actions, the observed
    rewards classified as the agent does). Used to measure pseudo-regret; tiny instances only.
    A point-based plan's policy graph (``x.policy`` a `rl.points.PointPolicy`) is valued by
    `rl.points.evaluate_controller` instead (exact, polynomial in H), a Markov policy
    (`MarkovPolicy`) by `evaluate_markov` (exact, O(H M S²))."""

    if isinstance(x.policy, PointPolicy):
        return evaluate_controller(x, H)
    if isinstance(x.policy, MarkovPolicy):
        return evaluate_markov(x, H)
    w, nu, P, R = x.weights, x.init, x.transitions, x.rewards
    M, S, A, _ = P.shape
    cls = agent_classes(x.plan_rewards, R)
    u = (w[:, None] * nu).T  # (S, M)
    total = jnp.zeros((), P.dtype)
    start = 0
    for h in range(H):
        N = u.shape[0]
        s = jnp.arange(N) % S
        a = x.policy[start : start + N].astype(int_dtype())
        start += N
        total = total + jnp.sum(u * R[:, s, a].T)
        if h < H - 1:
            j = cls[:, s, a]  # (M, N)
            onehot_a = (jnp.arange(A)[None, :] == a[:, None]).astype(P.dtype)  # (N, A)
            onehot_j = (jnp.arange(M)[None, None, :] == j.T[:, :, None]).astype(
                P.dtype
            )  # (N, M ctx, J)
            Ps = P[:, s, a].transpose(1, 0, 2)  # (N, M ctx, S')
            child = (
                u[:, None, None, None, :]  # (N, 1, 1, 1, M)
                * onehot_a[:, :, None, None, None]
                * onehot_j.transpose(0, 2, 1)[:, None, :, None, :]  # (N, 1, J, 1, M)
                * Ps.transpose(0, 2, 1)[:, None, None, :, :]  # (N, 1, 1, S', M)
            )  # (N, A, J, S', M)
            u = child.reshape(-1, M)
    return total


# --------------------------------------------------------------------------- the agent
class LatentLearnerState(NamedTuple):
    counts: jax.Array  # (M, S, A, S) N_m(s, a, s') (all revealed episodes)
    snapshot: jax.Array  # (M, S, A, S) counts at each (m, s, a)'s last refresh
    init_counts: jax.Array  # (M, S)
    context_counts: jax.Array  # (M,)
    rewards: jax.Array  # (M, S, A) R_m(s, a) where known
    known: jax.Array  # (M, S, A) bool
    traj: jax.Array  # (H, 3) the episode's (s_h, a_h, s_{h+1}), kept until the reveal
    treward: jax.Array  # (H,) the episode's rewards
    plan: Plan  # the current policy over histories (planner=points: its policy graph)
    node: jax.Array  # the current history node (planner=points: lattice point; valid for h >= 1)
    episodes: jax.Array  # episodes completed
    refreshes: jax.Array  # episodes that triggered a re-plan
    key: jax.Array  # a typed PRNG key (posterior sampling)


def _bit_length(n):
    return jnp.iinfo(n.dtype).bits - lax.clz(n)


def check_histories_only(agent) -> None:
    """For a subclass of `LatentValueOptimistic` with its own solve step (posterior sampling, the
    model-optimistic solver): ``planner`` must be histories (points serves
    `LatentValueOptimistic` only) and ``points`` still a valid resolution; one line naming the
    field and the allowed values."""
    name = type(agent).__name__
    if agent.planner != "histories":
        raise ConfigError(
            f"planner: must be histories for {name} (points serves LatentValueOptimistic only:"
            f" {name} has its own solve step; got {agent.planner!r})"
        )
    check_int("points", agent.points, 1)


@dataclass(frozen=True)
class LatentValueOptimistic(AgentBase):
    """The value-optimistic learner (module docstring): counts per context from the hindsight
    reveal, doubling-triggered refreshes, exact optimistic planning over histories.

    ``bonus``: bernstein (Zhou, Wang & Du's value-optimistic solver, MVP-type; default),
    hoeffding (L-UCRL-style) or none. ``bonus_scale``: 1 = the theory constants. ``replan``:
    under vmap over seeds, re-plan only the seeds that refresh (``lanes``,
    `experiments.batched_cond.cond_lanes`; default) or every seed whenever one refreshes
    (``batch``, `cond_any`): the same plans (tested bit for bit), a different cost.
    ``planner``: ``histories`` (exact, dense; default) or ``points`` (point-based value
    iteration on the simplex lattice of resolution ``points``, `rl.points`: an approximation,
    polynomial in H; module docstring, "Point-based planner"). ``max_nodes`` bounds the dense
    history nodes, or with ``points`` the pointer scores of one step (S G A M S G)."""

    bonus: str = "bernstein"
    bonus_scale: float = 1.0
    delta: float = 0.1
    max_nodes: int = MAX_PLAN_NODES
    replan: str = "lanes"
    planner: str = "histories"
    points: int = POINTS  # `rl.points.POINTS`, the lattice resolution E2 reports

    def __post_init__(self):
        check_choice("bonus", self.bonus, BONUSES)
        check_float("bonus_scale", self.bonus_scale, 0.0)
        check_float("delta", self.delta, 0.0, 1.0, low_open=True, high_open=True)
        check_int("max_nodes", self.max_nodes, 1)
        check_choice("replan", self.replan, tuple(REPLANS))
        check_choice("planner", self.planner, PLANNERS)
        check_int("points", self.points, 1)

    def _points(self) -> bool:
        """Whether this agent plans with points (``planner``; subclasses keep their own solve)."""
        return getattr(self, "planner", "histories") == "points"

    def solver(self, H: int) -> tuple:
        """(fn, *static) of the refresh's plan: ``fn(inputs, *static)`` (`cond_any` caches on
        them)."""
        if self._points():
            return (plan_points, H, self.bonus, self.points)
        return (type(self).solve, H, self.bonus)

    # ------------------------------------------------------------- hooks (posterior sampling)
    def refresher(self):
        """The batched conditional that re-plans at refreshes (``replan``)."""
        return REPLANS[self.replan]

    @staticmethod
    def solve(inputs: PlanInputs, H: int, kind: str) -> Plan:
        """The plan of one seed's inputs (posterior sampling overrides it)."""
        return plan_histories(inputs, H, kind)

    # the policy before any data, from the key that `plan_inputs` gives the first plan
    first_policy = staticmethod(first_policy)

    def plan_inputs(self, state: LatentLearnerState, H: int) -> PlanInputs:
        """The empirical LMDP of the snapshot counts (uniform where a row has no count)."""
        M, S, A, _ = state.counts.shape
        f = float_dtype()
        snap = state.snapshot.astype(f)
        n = snap.sum(-1)
        P = jnp.where(n[..., None] > 0, snap / jnp.maximum(n, 1.0)[..., None], 1.0 / S)
        ic = state.init_counts.astype(f)
        ni = ic.sum(-1, keepdims=True)
        nu = jnp.where(ni > 0, ic / jnp.maximum(ni, 1.0), 1.0 / S)
        cc = state.context_counts.astype(f)
        w = jnp.where(cc.sum() > 0, cc / jnp.maximum(cc.sum(), 1.0), 1.0 / M)
        return PlanInputs(
            weights=w,
            init=nu,
            transitions=P,
            rewards=jnp.where(state.known, state.rewards, 1.0).astype(f),
            counts=n,
            iota=iota(M, S, A, H, state.episodes, self.delta),
            scale=jnp.asarray(self.bonus_scale, f),
            key=jax.random.fold_in(state.key, state.episodes),
            snapshot=snap,
            init_counts=ic,
            context_counts=cc,
        )

    # ------------------------------------------------------------- protocol
    def init(self, key, spec) -> LatentLearnerState:
        M, S, A, H = spec.num_contexts, spec.num_states, spec.num_actions, spec.episode_length
        if self._points():
            if type(self).solve is not LatentValueOptimistic.solve:
                raise ConfigError(
                    f"planner: points serves LatentValueOptimistic only ({type(self).__name__}"
                    " has its own solve step); use planner=histories"
                )
            check_points_size(M, S, A, H, self.points, self.max_nodes)
        else:
            check_plan_size(M, S, A, H, self.max_nodes)
        i, f = int_dtype(), float_dtype()
        zero = jnp.zeros((), i)
        state = LatentLearnerState(
            counts=jnp.zeros((M, S, A, S), i),
            snapshot=jnp.zeros((M, S, A, S), i),
            init_counts=jnp.zeros((M, S), i),
            context_counts=jnp.zeros((M,), i),
            rewards=jnp.zeros((M, S, A), f),
            known=jnp.zeros((M, S, A), bool),
            traj=jnp.zeros((H, 3), i),
            treward=jnp.zeros((H,), f),
            plan=Plan(
                self.first_policy(jax.random.fold_in(key, 0), M, S, A, H),
                jnp.ones((), f),
                jnp.ones((M, S, A), f),
            ),
            node=zero,
            episodes=zero,
            refreshes=zero,
            key=key,
        )
        if self._points():  # the first plan: the point planner on the all-unknown model
            fn, *static = self.solver(H)
            state = state._replace(plan=fn(self.plan_inputs(state, H), *static))
        return state  # the first plan: every action ties (all unknown), uniform (`first_policy`)

    def _offsets(self, state: LatentLearnerState):
        M, S, A, _ = state.counts.shape
        H = state.traj.shape[0]
        return jnp.asarray(np.cumsum([0, *level_sizes(M, S, A, H)])[:-1], int_dtype())

    def act(self, rng, state: LatentLearnerState, obs: EpisodeObs):
        if self._points():
            pol, s = state.plan.policy, obs.obs.state
            g = jnp.where(obs.h == 0, pol.start[s].astype(int_dtype()), state.node)
            return pol.action[obs.h, s, g].astype(int_dtype())
        node = jnp.where(obs.h == 0, obs.obs.state, state.node)
        return state.plan.policy[self._offsets(state)[obs.h] + node].astype(int_dtype())

    def update(
        self, state: LatentLearnerState, obs: EpisodeObs, action, feedback: EpisodeFeedback
    ) -> LatentLearnerState:
        M, S, A, _ = state.counts.shape
        H = state.traj.shape[0]
        i = int_dtype()
        h, s, a = obs.h, obs.obs.state, jnp.asarray(action, i)
        r, s2, done = feedback.feedback.reward, feedback.feedback.next_state, feedback.done
        traj = state.traj.at[h].set(jnp.stack([s, a, s2]).astype(i))
        treward = state.treward.at[h].set(r)
        # the history node after (a, reward class, s'), under the current plan's rewards
        node = jnp.where(h == 0, s, state.node)
        match = state.plan.rewards[:, s, a] == r
        j = jnp.where(jnp.any(match), jnp.argmax(match), 0)
        if self._points():  # the policy graph's pointer (the last step's is never used)
            pol = state.plan.policy
            g = jnp.where(h == 0, pol.start[s].astype(i), state.node)
            nxt = pol.ptr[h, s, g, j, s2].astype(i)
        else:
            nxt = node * (A * M * S) + (a * M + j) * S + s2
        # the reveal: counts of the revealed context only, and only at the episode's end
        m = jnp.maximum(jnp.asarray(feedback.revealed, i), 0)
        add = done.astype(i)
        S0, A0, S1 = traj[:, 0], traj[:, 1], traj[:, 2]
        counts = state.counts.at[m, S0, A0, S1].add(add)
        init_counts = state.init_counts.at[m, S0[0]].add(add)
        context_counts = state.context_counts.at[m].add(add)
        rewards = jnp.where(done, state.rewards.at[m, S0, A0].set(treward), state.rewards)
        known = state.known | (jnp.zeros_like(state.known).at[m, S0, A0].set(True) & done)
        # doubling trigger: a pair's count crossed a power of two since its last snapshot
        cross = _bit_length(counts.sum(-1)) > _bit_length(state.snapshot.sum(-1))
        cross = cross & done
        snapshot = jnp.where(cross[..., None], counts, state.snapshot)
        episodes = state.episodes + add
        new = state._replace(
            counts=counts,
            snapshot=snapshot,
            init_counts=init_counts,
            context_counts=context_counts,
            rewards=rewards,
            known=known,
            traj=traj,
            treward=treward,
            node=jnp.where(done, 0, nxt).astype(i),
            episodes=episodes,
        )
        pred = jnp.any(cross)
        refresh = self.refresher()(*self.solver(H))
        plan = refresh(pred, self.plan_inputs(new, H), state.plan)
        return new._replace(plan=plan, refreshes=state.refreshes + pred.astype(i))

    def history_policy(self, state: LatentLearnerState, R) -> tuple[jax.Array, jax.Array]:
        """The current policy over the dense history nodes (planner=points: its policy graph,
        a `rl.points.PointPolicy`, which `evaluate_policy` values exactly) and its reward table."""
        return state.plan.policy, state.plan.rewards

    def policy_changed(self, old: LatentLearnerState, new: LatentLearnerState) -> jax.Array:
        return new.refreshes != old.refreshes

    def info(self, spec) -> dict:
        scale = float(self.bonus_scale)
        what = {"bernstein": "c1 = 460/9, c3 = 544/9 (MVP)", "hoeffding": "sqrt(2 S iota / n)"}
        return {
            "bonus": {
                "message": (
                    f"{self.bonus} bonus, bonus_scale = {scale:g}"
                    + (" (the theory constants" if scale == 1.0 else " (1 = the theory constants")
                    + (f", {what[self.bonus]})" if self.bonus in what else ")")
                ),
                "bonus_scale": scale,
            }
        }


# --------------------------------------------------------------------------- UCBVI, context-blind
class UCBVIState(NamedTuple):
    counts: jax.Array  # (S, A, S) pooled over contexts
    reward_sum: KahanSum  # (S, A) compensated sums of the observed rewards (`kahan_value`)
    policy: jax.Array  # (H, S)
    episodes: jax.Array
    key: jax.Array  # a typed PRNG key: the tie-breaking words (module docstring, "Ties")


def ucbvi_policy(counts, reward_sum, H: int, episodes, delta, scale, key):
    """UCBVI-CH's optimistic value iteration (Azar, Osband & Munos, ICML 2017, Algorithms 1 and
    3), rescaled to episode totals <= 1: Q_h = min(1, r̂ + P̂ V_{h+1} + 7 L scale / √n); the
    greedy action uniformly random among the maximisers (`argmax_random_ties`, words from `key`)."""
    S, A, _ = counts.shape
    f = float_dtype()
    c = counts.astype(f)
    n = c.sum(-1)
    P = jnp.where(n[..., None] > 0, c / jnp.maximum(n, 1.0)[..., None], 1.0 / S)
    r = jnp.where(n > 0, reward_sum / jnp.maximum(n, 1.0), 0.0)
    T = jnp.maximum(jnp.asarray(episodes, f), 1.0) * H
    L = jnp.log(5.0 * S * A * T / delta)
    b = scale * C_UCBVI * L / jnp.sqrt(jnp.maximum(n, 1.0))

    def back(V, h):
        Q = jnp.minimum(1.0, r + P @ V + b)
        bits = jax.random.bits(tie_key(key, h), (S,), jnp.uint32)
        return Q.max(-1), argmax_random_ties(Q, bits)

    _, pol = lax.scan(back, jnp.zeros((S,), f), jnp.arange(H - 1, -1, -1))
    return pol[::-1]


def add_reward(acc: KahanSum, s, a, r) -> KahanSum:
    """``acc[s, a] += r``, compensated (Kahan; `experiments.accumulate`): a plain float32 running
    sum of a pair's rewards loses ~9% of r̂ = sum / n by 10⁷ visits (each add rounds to the
    sum's ulp); compensated, the error stays O(ε) relative at any count (tested at 10⁷ against
    float64)."""
    new = kahan_add(KahanSum(acc.total[s, a], acc.comp[s, a]), jnp.asarray(r, acc.total.dtype))
    return KahanSum(acc.total.at[s, a].set(new.total), acc.comp.at[s, a].set(new.comp))


@dataclass(frozen=True)
class UCBVIAgnostic(AgentBase):
    """Context-agnostic UCBVI (module docstring): one pooled MDP, Markov policies."""

    bonus_scale: float = 1.0
    delta: float = 0.1

    def __post_init__(self):
        check_float("bonus_scale", self.bonus_scale, 0.0)
        check_float("delta", self.delta, 0.0, 1.0, low_open=True, high_open=True)

    def init(self, key, spec) -> UCBVIState:
        S, A, H = spec.num_states, spec.num_actions, spec.episode_length
        i, f = int_dtype(), float_dtype()
        counts, reward_sum = jnp.zeros((S, A, S), i), kahan_zeros((S, A), f)
        zero = jnp.zeros((), i)
        first = ucbvi_policy(
            counts,
            kahan_value(reward_sum),
            H,
            zero,
            self.delta,
            self.bonus_scale,
            jax.random.fold_in(key, 0),
        )  # no data: every Q is min(1, 0 + b) or 0, ties broken as always
        return UCBVIState(counts, reward_sum, first, zero, key)

    def act(self, rng, state: UCBVIState, obs: EpisodeObs):
        return state.policy[obs.h, obs.obs.state]

    def update(self, state: UCBVIState, obs: EpisodeObs, action, feedback: EpisodeFeedback):
        s, s2 = obs.obs.state, feedback.feedback.next_state
        counts = state.counts.at[s, action, s2].add(1)
        reward_sum = add_reward(state.reward_sum, s, action, feedback.feedback.reward)
        episodes = state.episodes + feedback.done.astype(state.episodes.dtype)
        H = state.policy.shape[0]
        tie = jax.random.fold_in(state.key, episodes)
        d, c = self.delta, self.bonus_scale
        policy = lax.cond(
            feedback.done,
            lambda: ucbvi_policy(counts, kahan_value(reward_sum), H, episodes, d, c, tie),
            lambda: state.policy,
        )
        return UCBVIState(counts, reward_sum, policy, episodes, state.key)

    def history_policy(self, state: UCBVIState, R) -> tuple[MarkovPolicy, jax.Array]:
        """The Markov policy as it is (H, S), valued by `evaluate_markov` (O(H M S²), any H);
        rewards do not enter a Markov policy's choices, so the reward table is R itself."""
        return MarkovPolicy(state.policy), R

    def policy_changed(self, old: UCBVIState, new: UCBVIState) -> jax.Array:
        return new.episodes != old.episodes


# --------------------------------------------------------------------------- measurement
class PseudoRegretState(NamedTuple):
    inner: Any  # the wrapped agent's state
    value: jax.Array  # exact value of its current policy in the true LMDP
    curve: jax.Array  # (K,) V* - V^{π_k} of each episode k
    episodes: jax.Array
    model: EvalInputs  # the true LMDP (policy field unused)
    v_star: jax.Array


@dataclass(frozen=True)
class PseudoRegret(AgentBase):
    """A measurement wrapper, not a learner: runs `agent` unchanged and records the exact
    pseudo-regret V* − V^{π_k} of each of the first `episodes` episodes, evaluating the agent's
    policy (`history_policy`) in the true model of ``spec`` (`evaluate_policy`) whenever it
    changes (`policy_changed`). The engine records the same values as the env's
    ``pseudo_regret`` metric (`rl.latent_mdp.LatentMDP.agent_metrics`), summed on its recording
    grid; this wrapper keeps every episode's value (the curve the reproduction's slopes and tail
    windows need; equal to the engine's metric, tested). Dense history policies: tiny instances
    only (`check_plan_size`); point-based policy graphs (``planner: points``) and UCBVI's Markov
    policies: any H."""

    agent: Any
    episodes: int = 1000

    def randomness(self, spec):
        return self.agent.randomness(spec)

    def init(self, key, spec) -> PseudoRegretState:
        m = spec.model
        M, S, A, H = m.sizes
        f = float_dtype()
        R = jnp.asarray(m.rewards, f)
        # the policy's form, traced without allocating: only dense history policies have
        # S (A M S)^(h-1) nodes (a Markov policy or a policy graph is polynomial in H)
        form = jax.eval_shape(lambda k: self.agent.history_policy(self.agent.init(k, spec), R), key)
        if not isinstance(form[0], (MarkovPolicy, PointPolicy)):
            check_plan_size(M, S, A, H, getattr(self.agent, "max_nodes", MAX_PLAN_NODES))
        inner = self.agent.init(key, spec)
        policy, rewards = self.agent.history_policy(inner, R)
        model = EvalInputs(
            policy=policy,
            plan_rewards=rewards,
            weights=jnp.asarray(m.weights, f),
            init=jnp.asarray(m.init, f),
            transitions=jnp.asarray(m.transitions, f),
            rewards=R,
        )
        return PseudoRegretState(
            inner=inner,
            value=evaluate_policy(model, H),
            curve=jnp.zeros((self.episodes,), f),
            episodes=jnp.zeros((), int_dtype()),
            model=model,
            v_star=jnp.asarray(spec.v_star, f),
        )

    def act(self, rng, state: PseudoRegretState, obs):
        return self.agent.act(rng, state.inner, obs)

    def update(self, state: PseudoRegretState, obs, action, feedback) -> PseudoRegretState:
        inner = self.agent.update(state.inner, obs, action, feedback)
        done = feedback.done
        k = jnp.minimum(state.episodes, self.episodes - 1)
        gap = jnp.where(done, state.v_star - state.value, state.curve[k])
        policy, rewards = self.agent.history_policy(inner, state.model.rewards)
        model = state.model._replace(policy=policy, plan_rewards=rewards)
        H = _horizon_of(state)
        pred = self.agent.policy_changed(state.inner, inner)
        # evaluated as the agent re-plans: only the changed seeds (``replan="lanes"``), else all
        cond = REPLANS[getattr(self.agent, "replan", "batch")]
        value = cond(evaluate_policy, H)(pred, model, state.value)
        return state._replace(
            inner=inner,
            value=value,
            curve=state.curve.at[k].set(gap),
            episodes=state.episodes + done.astype(state.episodes.dtype),
        )


def _horizon_of(state: PseudoRegretState) -> int:
    """H, from the sizes of the dense policy or of the policy graph (static)."""

    if isinstance(state.model.policy, (PointPolicy, MarkovPolicy)):
        return state.model.policy.action.shape[0]
    M, S, A, _ = state.model.transitions.shape
    n, H = state.model.policy.shape[0], 0
    while sum(level_sizes(M, S, A, H)) < n:
        H += 1
    return H
