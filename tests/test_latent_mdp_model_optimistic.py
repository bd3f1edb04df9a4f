"""The model-optimistic solver for latent MDPs (`rl.model_optimistic`).

References, each independent of the code under test: `scipy.optimize.linprog` for the inner
maximisation over a confidence set; exact planning (`rl.planning.history_tree_value`, itself
checked against brute force over all history-dependent policies) in every vertex model of the
sets for the joint maximisation at H = 2 (where the history-rectangular relaxation is exact);
a per-context LP recursion over the history tree where the agent has one action; the
value-optimistic planner `rl.optimistic.plan_histories` for the provable ordering of the two
solvers; the value-optimistic agent's run for the framework the two agents share.
"""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from omegaconf import OmegaConf
from scipy.optimize import linprog
from test_latent_mdp_agents import TINY, empirical, inputs_of, random_model

from experiments.config import ConfigError
from experiments.rollout import rollout
from rl import planning as pl
from rl.latent_mdp import LatentMDP
from rl.model_optimistic import (
    LatentModelOptimistic,
    check_tiny,
    compare_solvers,
    gain_bound,
    row_max,
    set_params,
    solve_numpy,
)
from rl.optimistic import EvalInputs, LatentValueOptimistic, evaluate_policy, plan_histories

TOL = 1e-9  # float64 LP / DP round-off on values <= 1


def _linprog_max(kind, p_hat, params, v):
    """max pᵀv over the set by the simplex method (L1: split p - p̂ = d⁺ - d⁻)."""
    S = len(v)
    if kind == "hoeffding":
        # variables (p, t) with |p - p̂| <= t, Σ t <= r, Σ p = 1, p >= 0
        c = np.concatenate([-v, np.zeros(S)])
        eye = np.eye(S)
        A_ub = np.block([[eye, -eye], [-eye, -eye], [np.zeros((1, S)), np.ones((1, S))]])
        b_ub = np.concatenate([p_hat, -p_hat, [params]])
        A_eq = np.concatenate([np.ones(S), np.zeros(S)])[None]
        res = linprog(c, A_ub, b_ub, A_eq, [1.0], bounds=[(0, None)] * (2 * S), method="highs")
    else:
        lo, hi = params
        bounds = list(zip(lo, hi, strict=True))
        res = linprog(-v, A_eq=np.ones((1, S)), b_eq=[1.0], bounds=bounds, method="highs")
    assert res.status == 0
    return -res.fun


@pytest.mark.parametrize("kind", ["bernstein", "hoeffding", "none"])
def test_row_max_is_the_linear_programme(kind):
    """The sort-based inner maximisation equals linprog on 200 random rows (S = 2..5, counts
    0..50 so that some sets are the whole simplex, ties in v included)."""
    rng = np.random.default_rng(0)
    for _ in range(200):
        S = int(rng.integers(2, 6))
        p_hat = rng.dirichlet(np.ones(S) * 0.5)
        n = float(rng.integers(0, 51))
        v = rng.integers(0, 4, S) / 3 if rng.random() < 0.3 else rng.random(S)
        params = set_params(kind, p_hat, np.asarray(n), 2.0, float(rng.choice([0.01, 0.1, 1.0])))
        got = float(row_max(kind, p_hat, params, v))
        assert got == pytest.approx(_linprog_max(kind, p_hat, params, v), abs=1e-8)
        assert got >= p_hat @ v - TOL  # p̂ is in the set


def test_gain_is_below_the_value_optimistic_bonus():
    """The lemma linking the solvers: the inner gain max_p pᵀv − p̂ᵀv is at most (r/2)·span(v)
    for the L1 ball and scale (c₁ √(Γ̂ 𝕍 ι/n) + c₃ S ι/n) for the Bernstein box (random rows)."""
    rng = np.random.default_rng(1)
    for _ in range(300):
        S = int(rng.integers(2, 6))
        p_hat = rng.dirichlet(np.ones(S) * 0.3)
        p_hat[rng.random(S) < 0.3] = 0.0
        if p_hat.sum() == 0:
            p_hat[0] = 1.0
        p_hat /= p_hat.sum()
        n, scale, v = (
            float(rng.integers(1, 200)),
            float(rng.choice([0.01, 0.1, 1.0])),
            rng.random(S),
        )
        for kind in ("hoeffding", "bernstein"):
            gain = float(
                row_max(kind, p_hat, set_params(kind, p_hat, np.asarray(n), 2.0, scale), v)
            )
            assert gain - p_hat @ v <= gain_bound(kind, p_hat, n, 2.0, scale, v) + TOL


def test_none_is_exact_planning_in_the_empirical_model():
    """With the point set the solver is V*(P̂): equal to the NumPy history-tree DP."""
    for i, sizes in enumerate([(2, 2, 2, 3), (2, 3, 2, 2), (1, 2, 3, 3), (3, 2, 2, 2)]):
        model = random_model(*sizes, 40 + i, context_rewards=i % 2 == 0)
        M, S, A, H = model.sizes
        _, v = solve_numpy(*model[:4], np.ones((M, S, A)), 2.0, 1.0, H, "none")
        assert v == pytest.approx(pl.history_tree_value(model), abs=TOL)


def _vertex_models(model, kind, n, io, scale):
    """Every model whose rows are vertices of their sets (S = 2: a segment per row)."""
    M, S, A, _ = model.sizes
    assert S == 2
    P = model.transitions
    params = set_params(kind, P, n, io, scale)
    if kind == "hoeffding":
        lo0 = np.clip(P[..., 0] - params / 2, 0, 1)
        hi0 = np.clip(P[..., 0] + params / 2, 0, 1)
    else:
        lo, hi = params
        lo0, hi0 = np.maximum(lo[..., 0], 1 - hi[..., 1]), np.minimum(hi[..., 0], 1 - lo[..., 1])
    for ends in itertools.product((0, 1), repeat=M * S * A):
        p0 = np.where(np.reshape(ends, (M, S, A)) == 1, hi0, lo0)
        yield model._replace(transitions=np.stack([p0, 1 - p0], -1))


@pytest.mark.parametrize("kind,scale", [("hoeffding", 0.2), ("bernstein", 0.01)])
def test_joint_maximum_equals_the_best_vertex_model_at_h2(kind, scale):
    """At H = 2 no row recurs along a history, so the value is the single-model maximum
    max_{P̃} V*(P̃); V* is convex in P̃ (a max of linear functions), so the maximum is at a vertex
    model: brute force over all 2^8 vertex models (exact planning in each) equals the solver, and
    its policy attains the value in the best of them (the plan's policy read back)."""
    M, S, A, H = 2, 2, 2, 2
    f = jnp.float64
    with jax.enable_x64(True):
        value = jax.jit(evaluate_policy, static_argnums=1)
        for seed, cr in [(3, True), (4, False)]:
            model = random_model(M, S, A, H, seed, cr)
            n = np.random.default_rng(seed).integers(0, 30, (M, S, A)).astype(float)
            pol, v = solve_numpy(*model[:4], n, 2.0, scale, H, kind)
            best_v, best_pol = -1.0, -1.0
            for vm in _vertex_models(model, kind, n, 2.0, scale):
                best_v = max(best_v, pl.history_tree_value(vm))
                x = EvalInputs(
                    jnp.asarray(pol),
                    jnp.asarray(model.rewards, f),
                    *(jnp.asarray(a, f) for a in vm[:4]),
                )
                best_pol = max(best_pol, float(value(x, H)))
            assert v == pytest.approx(best_v, abs=TOL)
            assert v == pytest.approx(best_pol, abs=TOL)
            assert v >= pl.history_tree_value(model) - TOL


def _lp_recursion(model, kind, n, io, scale):
    """One action: Σ_m w_m Σ_s ν_m(s) ᾱ_m(s, h=1) with ᾱ = min(1, R + max_p pᵀ ᾱ(next)) by
    linprog, recursing over the history tree (rows may differ per node: the relaxation)."""
    M, S, _, H = model.sizes
    params = set_params(kind, model.transitions, n, io, scale)

    def alpha(m, s, h):
        r = model.rewards[m, s, 0]
        if h == H - 1:
            return min(1.0, r)
        v = np.array([alpha(m, s2, h + 1) for s2 in range(S)])
        pr = params[m, s, 0] if kind == "hoeffding" else (params[0][m, s, 0], params[1][m, s, 0])
        return min(1.0, r + _linprog_max(kind, model.transitions[m, s, 0], pr, v))

    return sum(
        model.weights[m] * model.init[m, s] * alpha(m, s, 0) for m in range(M) for s in range(S)
    )


@pytest.mark.parametrize("kind", ["hoeffding", "bernstein"])
def test_one_action_equals_the_lp_recursion(kind):
    """With one action there is no policy to choose: the solver is the per-context optimistic
    recursion, recomputed with linprog (H = 3, S = 3: rows recur along histories)."""
    model = random_model(2, 3, 1, 3, 8)
    n = np.array([[[3.0], [10.0], [0.0]], [[25.0], [1.0], [7.0]]])
    scale = 0.01 if kind == "bernstein" else 0.3
    _, v = solve_numpy(*model[:4], n, 2.0, scale, 3, kind)
    assert v == pytest.approx(_lp_recursion(model, kind, n, 2.0, scale), abs=1e-8)


def test_h3_between_the_vertex_models_and_above_the_empirical_value():
    """H = 3 (rows recur): the relaxation is >= every vertex model's V* (feasible single
    models) and >= V*(P̂)."""
    model = random_model(2, 2, 2, 3, 6)
    M, S, A, H = model.sizes
    n = np.full((M, S, A), 12.0)
    _, v = solve_numpy(*model[:4], n, 2.0, 0.2, H, "hoeffding")
    best = max(pl.history_tree_value(vm) for vm in _vertex_models(model, "hoeffding", n, 2.0, 0.2))
    assert v >= best - TOL and v >= pl.history_tree_value(model) - TOL


def test_value_optimistic_above_model_optimistic_where_the_clip_cannot_bind():
    """The provable order (module docstring): with the Hoeffding bonus r and the L1 ball of the
    same radius, V*(P̂) <= model-optimistic <= value-optimistic, when no α̃ can reach the clip at
    1: per-step rewards <= 1/(2H) and r = 1/(4H) give α̃ <= 1/2 + 1/4. Empirical models of random
    LMDPs (visits 3..40); float32 value-optimistic planner, so 1e-5."""
    rng = np.random.default_rng(5)
    H = 3
    plan = jax.jit(plan_histories, static_argnums=(1, 2))
    for seed in range(5):
        model = random_model(2, 2, 2, H, 60 + seed)
        model = model._replace(rewards=model.rewards / 2)  # <= 1/(2H) per step
        hat, n = empirical(model, int(rng.integers(3, 41)), rng)
        io = 2.0
        scale = (1 / (4 * H)) / (np.sqrt(2) * np.sqrt(2 * io / n.min()))
        _, mo = solve_numpy(*hat[:4], n, io, scale, H, "hoeffding")
        vo = float(plan(inputs_of(hat, n, scale, io), H, "hoeffding").value)
        assert pl.history_tree_value(hat) - TOL <= mo <= vo + 1e-5
        assert vo < 0.9  # the clip did not bind


def test_compare_solvers_reports_the_documented_facts():
    """`compare_solvers` (the E6 entry point): model-optimistic >= V*(P̂) in every draw and >=
    V* in every draw whose sets cover the true rows (theory constants: all do here)."""
    model = random_model(2, 2, 2, 2, 9)
    out = compare_solvers(model, 200, bonus="hoeffding", bonus_scale=1.0, draws=4, seed=1)
    assert set(out) >= {"value_optimistic", "model_optimistic", "v_hat", "covered", "v_star"}
    assert np.all(out["model_optimistic"] >= out["v_hat"] - TOL)
    assert out["covered"].all()
    assert np.all(out["model_optimistic"] >= float(out["v_star"]) - TOL)
    assert np.all(out["value_optimistic"] <= 1.0 + 1e-6)


# --------------------------------------------------------------------------- the agent
@pytest.mark.slow  # three engine programs, ~20 s (more on a busy machine)
def test_agent_shares_the_framework_and_plans_exactly_in_the_empirical_model():
    """The framework is shared: the value-optimistic agent's states after an engine run (3 seeds
    vmapped, 100 episodes, bonus="none"), read by the shared `plan_inputs` and planned by both
    solve steps with no optimism (the model-optimistic one through the vmapped host callback),
    give the same values
    (both exact planning in P̂; float32, so 1e-5). The model-optimistic agent's own run with sets
    re-plans at refreshes and is reproducible."""
    env = LatentMDP(**TINY)
    params = env.default_params()
    H, K = env.episode_length, 100
    keys = jax.random.split(jax.random.key(4), 3)

    def run(agent):
        return jax.jit(jax.vmap(lambda k: rollout(env, params, agent, k, H * K, horizon=K)))(keys)

    vo_agent = LatentValueOptimistic(bonus="none")
    st = run(vo_agent).agent_state
    inputs = jax.vmap(lambda x: vo_agent.plan_inputs(x, H))(st)
    plans = jax.jit(jax.vmap(lambda i: LatentModelOptimistic.solve(i, H, "none")))(inputs)
    ref = jax.jit(jax.vmap(lambda i: LatentValueOptimistic.solve(i, H, "none")))(inputs)
    np.testing.assert_allclose(np.asarray(plans.value), np.asarray(ref.value), atol=1e-5)
    agent = LatentModelOptimistic(bonus_scale=0.02)
    a, b = run(agent), run(agent)
    np.testing.assert_array_equal(np.asarray(a.totals["regret"]), np.asarray(b.totals["regret"]))
    assert int(a.agent_state.refreshes.min()) > 0


def test_large_instances_are_refused_in_one_line():
    env = LatentMDP(num_states=4, episode_length=5)
    spec = env.spec(env.default_params(), 10)
    with pytest.raises(ConfigError) as e:
        LatentModelOptimistic().init(jax.random.key(0), spec)
    msg = str(e.value)
    assert msg.startswith("the model-optimistic solver plans only on tiny") and "\n" not in msg
    assert "M=2, S=4, A=2, H=5" in msg and "env.episode_length" in msg
    assert "agents=[latent_value_optimistic]" in msg
    check_tiny(2, 2, 2, 4)  # 1170 nodes: served
    with pytest.raises(ConfigError, match=r"^bonus:"):
        LatentModelOptimistic(bonus="kl")


def test_config_names_the_class():
    from pathlib import Path

    from hydra.utils import instantiate

    path = Path(__file__).resolve().parents[1] / "conf" / "agents" / "latent_model_optimistic.yaml"
    text = path.read_text()
    assert text.startswith("# @package agents.latent_model_optimistic\n")
    agent = instantiate(OmegaConf.create(text))
    assert type(agent) is LatentModelOptimistic
    assert (agent.bonus, agent.bonus_scale) == ("bernstein", 1.0)
