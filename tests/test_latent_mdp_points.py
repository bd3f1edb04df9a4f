"""The point-based planner of the latent-MDP learners (`rl.points`, ``planner: points``).

References, each independent of the code under test: `rl.planning`'s exact planners (V* by the
history tree or the belief-merged DP, checked against brute force in test_latent_mdp_planning.py)
and its depth-first evaluation of any history-dependent policy (`history_policy_value`, float64
NumPy), to which the policy graph is handed as a plain function of the history; Monte Carlo
rollouts of the controller in NumPy; the learners' exact pseudo-regret wrapper (`PseudoRegret`).
"""

from __future__ import annotations

import jax
import numpy as np
import pytest

from experiments.config import ConfigError
from experiments.rollout import rollout
from experiments.simulate import simulate
from rl import instances
from rl import planning as pl
from rl.latent_mdp import LatentMDP
from rl.optimistic import (
    EvalInputs,
    LatentValueOptimistic,
    PseudoRegret,
    evaluate_policy,
    iota,
    model_inputs,
)
from rl.points import (
    PointPolicy,
    check_points_size,
    evaluate_controller,
    num_points,
    plan_points,
    simplex_lattice,
)
from rl.posterior import LatentPSRL


def _x64():
    """float64 for this test (tests/conftest.py restores the flag afterwards)."""
    jax.config.update("jax_enable_x64", True)


def random_model(M, S, A, H, seed):
    """A random LMDP with three reward levels, so that observed rewards branch partly."""
    rng = np.random.default_rng(seed)
    w = rng.dirichlet(np.ones(M))
    nu = rng.dirichlet(np.ones(S), M)
    P = rng.dirichlet(np.ones(S) * 0.5, (M, S, A))
    R = rng.integers(0, 3, (M, S, A)) / (2 * H)
    return pl.check_model(w, nu, P, R, H)


def _plan(model, n, kind="none", counts=None, scale=0.0, key=0):
    M, S, A, H = model.sizes
    c = np.full((M, S, A), 50.0) if counts is None else counts
    inputs = model_inputs(
        model.weights,
        model.init,
        model.transitions,
        model.rewards,
        c,
        iota(M, S, A, H, 100, 0.1),
        scale,
        key=jax.random.key(key),
    )
    return jax.jit(plan_points, static_argnums=(1, 2, 3))(inputs, H, kind, n)


def _exact(plan, model, plan_rewards=None):
    """`evaluate_controller` of the plan's policy graph in `model`."""
    f = jax.numpy.result_type(float)
    x = EvalInputs(
        plan.policy,
        plan.rewards if plan_rewards is None else plan_rewards,
        *(jax.numpy.asarray(a, f) for a in model[:4]),
    )
    return float(jax.jit(evaluate_controller, static_argnums=1)(x, model.horizon))


def _as_history_policy(plan):
    """The policy graph as a function of the history (s_1, a_1, r_1, ..., s_h), walked anew in
    NumPy: g = start[s_1], then g = ptr[h, s, g, j, s'] with j the first context whose planned
    reward equals the observed one (0 if none), action = action[h, s_h, g]."""
    pol = jax.tree.map(np.asarray, plan.policy)
    table = np.asarray(plan.rewards)

    def act(history):
        g = int(pol.start[history[0]])
        for h, i in enumerate(range(1, len(history), 3)):
            s, a, r, s2 = history[i - 1], history[i], history[i + 1], history[i + 2]
            match = np.flatnonzero(table[:, s, a] == table.dtype.type(r))
            j = int(match[0]) if match.size else 0
            g = int(pol.ptr[h, s, g, j, s2])
        h = (len(history) - 1) // 3
        return int(pol.action[h, history[-1], g])

    return act


def _rollouts(plan, model, N, seed):
    """Returns of N episodes of the controller in `model` (NumPy Monte Carlo)."""
    rng = np.random.default_rng(seed)
    pol = jax.tree.map(np.asarray, plan.policy)
    table = np.asarray(plan.rewards)
    M, S, _, H = model.sizes
    out = np.zeros(N)
    for k in range(N):
        m = rng.choice(M, p=model.weights)
        s = rng.choice(S, p=model.init[m])
        g = int(pol.start[s])
        for h in range(H):
            a = int(pol.action[h, s, g])
            r = model.rewards[m, s, a]
            out[k] += r
            s2 = rng.choice(S, p=model.transitions[m, s, a])
            match = np.flatnonzero(table[:, s, a] == table.dtype.type(r))
            g = int(pol.ptr[h, s, g, int(match[0]) if match.size else 0, s2])
            s = s2
    return out


# --------------------------------------------------------------------------- the lattice
def test_simplex_lattice_and_its_size():
    B = simplex_lattice(4, 2)
    np.testing.assert_array_equal(B[:, 0], np.arange(5) / 4)
    np.testing.assert_array_equal(B.sum(1), np.ones(5))
    for n, M in ((1, 1), (3, 3), (5, 4)):
        B = simplex_lattice(n, M)
        assert B.shape == (num_points(n, M), M) and len({tuple(b) for b in B}) == len(B)
        assert np.all(B >= 0) and np.allclose(B.sum(1), 1) and np.allclose(B * n, np.round(B * n))


# --------------------------------------------------------------------------- exact evaluation
def test_controller_value_equals_depth_first_evaluation_and_monte_carlo():
    """(1) The policy graph's exact value (`evaluate_controller`, the recursion over its nodes)
    equals (a) `rl.planning.history_policy_value` of the same controller walked as a function of
    the history (float64 on both sides: 1e-12) and (b) the mean return of 20 000 NumPy rollouts
    of the controller (returns in [0, 1]: sd ≤ 1/2; 4 standard errors of the sample sd, a
    two-sided miss probability 6e-5). The plan is made on a *perturbed* model whose reward table
    differs from the truth at some (m, s, a), so the controller is not optimal and the agent's
    reward classification (unmatched rewards -> class 0) is exercised."""
    _x64()
    true = random_model(2, 2, 2, 4, seed=5)
    other = random_model(2, 2, 2, 4, seed=6)
    hat = pl.LatentModel(
        true.weights, other.init, 0.5 * (true.transitions + other.transitions), other.rewards, 4
    )
    plan = _plan(hat, n=4, kind="hoeffding", scale=0.05)
    assert not np.array_equal(np.asarray(plan.rewards), true.rewards)
    exact = _exact(plan, true)
    depth_first = pl.history_policy_value(true, _as_history_policy(plan))
    assert exact == pytest.approx(depth_first, abs=1e-12)
    returns = _rollouts(plan, true, 20_000, seed=1)
    assert abs(returns.mean() - exact) < 4 * returns.std() / np.sqrt(returns.size)
    # evaluate_policy dispatches a policy graph to evaluate_controller (the env's metric path)
    f = jax.numpy.result_type(float)
    x = EvalInputs(plan.policy, plan.rewards, *(jax.numpy.asarray(a, f) for a in true[:4]))
    value = jax.jit(evaluate_policy, static_argnums=1)(x, 4)  # compiled: speed only
    assert float(value) == pytest.approx(exact, abs=1e-12)


# --------------------------------------------------------------------------- the plan's value
@pytest.mark.parametrize("H,seed", [(2, 0), (2, 1), (3, 2), (3, 3)])
def test_zero_bonus_value_is_a_lower_bound_on_v_star_and_close_at_large_n(H, seed):
    """(2) Zero bonus, tiny random LMDPs (M = S = A = 2, three reward levels): the point plan's
    value is the value of a history-dependent policy, so ≤ V* (rl.planning's history tree,
    independent) up to float64 round-off (1e-12), and it rises towards V* with n: at n = 64 the
    gap is ≤ 2e-3 (Pineau et al.'s bound (H − 1)/(2n) ≤ 1.6e-2 at H = 3; measured: 0 up to
    round-off on all four draws at n ≥ 4; at n = 1 (the vertices only) 0.079 on the last draw,
    which the test requires: a too coarse lattice must cost value)."""
    _x64()
    model = random_model(2, 2, 2, H, seed)
    v_star = pl.solve(model, "history")
    values = [float(_plan(model, n).value) for n in (1, 4, 64)]
    assert all(v <= v_star + 1e-12 for v in values), (values, v_star)
    assert v_star - values[-1] <= 2e-3
    assert values[-1] >= values[0] - 1e-12  # the lattice of n = 64 contains that of n = 1
    if (H, seed) == (3, 3):
        assert values[0] < v_star - 1e-2


@pytest.mark.parametrize("H", [2, 4, 6, 8])
def test_lattice_family_point_plan_is_exact_at_n_64(H):
    """(2) E2's lattice instance (M = 2, S = 3, A = 2, ρ = 3, instance_seed = 2), zero bonus:
    V* by the belief-merged DP (polynomial in H; independent). At n = 64 the point plan equals
    V* up to float64 round-off (1e-12) for H ≤ 8 — the lattice's beliefs have odds 3^k, and
    between two lattice points the optimal vector does not change there (measured: exact at
    H ≤ 8, 1.5e-5 below V* at H = 16, 3.9e-4 at H = 64) — and it is ≤ V* at every n; at n = 1
    (the vertices only) it is strictly below V* from H = 4 on (measured 0.011, 0.021, 0.028 at
    H = 4, 6, 8: a too coarse lattice costs value, so the test has teeth)."""
    _x64()
    model = instances.lattice(num_states=3, num_actions=2, horizon=H, rho=3.0, seed=2)
    v_star = pl.solve(model, "belief")
    fine, coarse = (float(_plan(model, n).value) for n in (64, 1))
    assert fine == pytest.approx(v_star, abs=1e-12)
    assert coarse <= v_star + 1e-12
    if H >= 4:
        assert coarse < v_star - 1e-3


def test_planned_value_is_the_controller_value_when_the_clip_does_not_bind():
    """(3) Without bonus the clip never binds (episode totals ≤ 1), so α is exactly the
    controller's per-context value and the planned value equals `evaluate_controller` in the
    same (empirical) model (float64: 1e-12); with a Bernstein bonus the plan is optimistic for
    its own controller (α ≥ min(1, value) = value by induction: planned ≥ exact)."""
    _x64()
    true = random_model(2, 3, 2, 4, seed=7)
    rng = np.random.default_rng(0)
    M, S, A, H = true.sizes
    P = rng.dirichlet(np.ones(S), (M, S, A))  # an 'empirical' model other than the truth
    hat = pl.LatentModel(true.weights, true.init, P, true.rewards, H)
    for key in (0, 1):
        plan = _plan(hat, n=6, key=key)
        assert float(plan.value) == pytest.approx(_exact(plan, hat), abs=1e-12)
    counts = rng.integers(1, 40, (M, S, A)).astype(float)
    plan = _plan(hat, n=6, kind="bernstein", counts=counts, scale=0.02)
    assert float(plan.value) >= _exact(plan, hat) - 1e-12


def test_first_plan_ties_are_broken_at_random():
    """All-unknown model: every value is clipped at 1 and every action ties; the module rule
    draws uniformly among the maximisers, so the level-1..H actions are not all action 0 (at
    H = 8, S = 3: 3·8·65 points, each 0 with probability 1/2)."""
    env = LatentMDP(instance="lattice", num_states=3, episode_length=8, instance_seed=2)
    agent = LatentValueOptimistic(planner="points")
    spec = env.spec(env.default_params(), 10)
    state = jax.jit(lambda k: agent.init(k, spec))(jax.random.key(0))
    action = np.asarray(state.plan.policy.action)
    assert isinstance(state.plan.policy, PointPolicy) and action.shape == (8, 3, 65)
    assert 0.4 < action.mean() < 0.6
    assert float(state.plan.value) == 1.0


# --------------------------------------------------------------------------- through the engine
def test_learner_runs_through_the_engine_with_exact_pseudo_regret():
    """(4) The learner with ``planner: points`` on E2's lattice at H = 8 (beyond the dense
    planner: 3·12^7 history nodes at step 8), through the engine (`simulate`, 3 seeds, vmapped,
    its ``pseudo_regret`` metric valued by `evaluate_policy` -> `evaluate_controller`): every
    per-episode pseudo-regret is finite and ≥ −1e-6 (V* is the best history-dependent value; a
    float32 evaluation of values ≤ 1 rounds by ~1e-7), it re-plans, and its total equals what
    `PseudoRegret` records through the rollout for seed 0 (same keys, same float32 evaluations:
    1e-5 relative for the two summation orders)."""
    env = LatentMDP(instance="lattice", num_states=3, episode_length=8, instance_seed=2)
    params, K, H = env.default_params(), 40, 8
    agent = LatentValueOptimistic(bonus_scale=0.02, planner="points", points=16)
    res = simulate(env, params, agent, K, 3, seed=0, grid=np.arange(1, K + 1))
    cum = np.asarray(res.curves["pseudo_regret"], np.float64)  # (seeds, K) cumulative
    per = np.diff(cum, axis=-1, prepend=0.0)
    assert per.shape == (3, K) and np.all(np.isfinite(per)) and per.min() >= -1e-6
    wrapped = PseudoRegret(agent, K)
    key = jax.random.split(jax.random.key(0), 3)[0]
    out = jax.jit(lambda k: rollout(env, params, wrapped, k, H * K, horizon=K))(key)
    curve = np.asarray(out.agent_state.curve, np.float64)
    assert curve.min() >= -1e-6 and int(out.agent_state.inner.refreshes) > 3
    assert curve.sum() == pytest.approx(cum[0, -1], rel=1e-5)


def test_replan_lanes_and_batch_give_bit_identical_point_plans(monkeypatch):
    """Under vmap over seeds the two refresh rules (`cond_lanes`, `cond_any`) give the same plans
    and the same exact pseudo-regret, bit for bit (tiny garnet, H = 3, 3 seeds, 60 episodes);
    `cond_lanes` here in blocks of 2 vmapped lanes (an accelerator's, forced on this CPU: the
    last block shifted back when 3 seeds refresh together)."""
    monkeypatch.setenv("REGRETLAB_LANE_BLOCK", "2")
    env = LatentMDP(num_states=2, num_actions=2, episode_length=3, instance_seed=2)
    params, K = env.default_params(), 60
    runs = {}
    for rule in ("lanes", "batch"):
        w = PseudoRegret(LatentValueOptimistic(bonus_scale=0.05, planner="points", replan=rule), K)
        runs[rule] = jax.jit(jax.vmap(lambda k, w=w: rollout(env, params, w, k, 3 * K, horizon=K)))(
            jax.random.split(jax.random.key(4), 3)
        )

    def host(x):
        keys = jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)
        return np.asarray(jax.random.key_data(x) if keys else x)

    a, b = (jax.tree.map(host, runs[r].agent_state) for r in ("lanes", "batch"))
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(x, y)
    assert np.all(a.curve >= -1e-6) and int(a.inner.refreshes.min()) > 3


# --------------------------------------------------------------------------- bad input
def test_bad_point_config_is_one_line():
    """(5) points < 1, an unknown planner, too many points for the budget, and a subclass that
    replaces the solve step: one ConfigError line naming the field."""
    for kwargs, field in [(dict(points=0), "points"), (dict(planner="pbvi"), "planner")]:
        with pytest.raises(ConfigError, match=rf"^{field}:"):
            LatentValueOptimistic(**kwargs)
    env = LatentMDP(num_contexts=3, num_states=3, episode_length=4)
    spec = env.spec(env.default_params(), 10)
    with pytest.raises(ConfigError) as e:  # M = 3, n = 64: 2145 points per (h, s)
        LatentValueOptimistic(planner="points").init(jax.random.key(0), spec)
    msg = str(e.value)
    assert msg.startswith("points:") and "\n" not in msg and "2145" in msg
    with pytest.raises(ConfigError, match=r"^planner: must be histories for LatentPSRL \(points"):
        LatentPSRL(planner="points")  # refused when built, not only at init
    assert check_points_size(2, 3, 2, 64, 64, 524_288) == 3 * 65 * 2 * 2 * 3 * 65
