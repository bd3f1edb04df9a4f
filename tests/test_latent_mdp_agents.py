"""Learning agents for latent MDPs with context in hindsight (`rl.optimistic`, `rl.posterior`).

References, each independent of the code under test: the NumPy exact planners of `rl.planning`
(themselves checked against brute force over all history-dependent policies) for the JAX history
planner; counts and the doubling-refresh schedule recomputed in NumPy from the emitted
trajectories; the hand-computed 𝕍(p, v), bonuses and ι; the true V* of the model for the
coverage of the optimistic bound; the theoretical regret shapes (a log-log slope near 1 for the
context-agnostic learner where the optimal policy depends on the history, well below 1 for the
learners that plan over histories) with exact pseudo-regret (`PseudoRegret`).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from omegaconf import OmegaConf

from experiments.batched_cond import cond_lanes
from experiments.config import ConfigError
from experiments.episodic import EpisodeFeedback, EpisodeObs
from experiments.rollout import rollout
from rl import instances
from rl import planning as pl
from rl.backup import C1, C3, bonus, variance
from rl.latent_mdp import LatentFeedback, LatentMDP, LatentObs
from rl.optimistic import (
    LatentValueOptimistic,
    PseudoRegret,
    UCBVIAgnostic,
    iota,
    model_inputs,
    plan_histories,
)
from rl.posterior import LatentPSRL, sample_model

TOL = 1e-12  # float64 round-off on values <= 1 from a few thousand operations


def random_model(M, S, A, H, seed, context_rewards=True):
    """A random LMDP; with `context_rewards` three reward levels so that rewards branch partly."""
    rng = np.random.default_rng(seed)
    w = rng.dirichlet(np.ones(M))
    nu = rng.dirichlet(np.ones(S), M)
    P = rng.dirichlet(np.ones(S) * 0.5, (M, S, A))
    if context_rewards:
        R = rng.integers(0, 3, (M, S, A)) / (2 * H)
    else:
        R = np.broadcast_to(rng.uniform(0, 1, (S, A)) / H, (M, S, A))
    return pl.check_model(w, nu, P, R, H)


def guess_model(w0=0.5, H=2):
    """One state, two actions; context m pays 1/H for action m: the first reward reveals m, so
    V* = w_max/H + (H-1)/H while every Markov policy earns 1/2 (w0 = 1/2)."""
    R = np.zeros((2, 1, 2))
    R[0, 0, 0] = R[1, 0, 1] = 1.0 / H
    return pl.check_model([w0, 1 - w0], np.ones((2, 1)), np.ones((2, 1, 2, 1)), R, H)


def inputs_of(model, counts=None, scale=1.0, iota_=1.0):
    M, S, A, _ = model.sizes
    n = np.ones((M, S, A)) if counts is None else counts
    return model_inputs(
        model.weights, model.init, model.transitions, model.rewards, n, iota_, scale
    )


def empirical(model, n, rng):
    """The empirical LMDP of n samples of every (m, s, a), n episodes' contexts and first
    states (multinomial draws from the true model), and its counts."""
    M, S, A, H = model.sizes
    counts = np.stack([rng.multinomial(n, p) for p in model.transitions.reshape(-1, S)]).reshape(
        M, S, A, S
    )
    ctx = rng.multinomial(n, model.weights)
    init = np.stack([rng.multinomial(max(c, 1), model.init[m]) for m, c in enumerate(ctx)])
    hat = pl.LatentModel(
        np.maximum(ctx, 1) / np.maximum(ctx, 1).sum(),
        init / init.sum(1, keepdims=True),
        counts / n,
        model.rewards,
        H,
    )
    return hat, np.full((M, S, A), float(n))


# --------------------------------------------------------------------------- the planner
@pytest.mark.parametrize(
    "sizes,context_rewards,seed",
    [
        ((2, 2, 2, 3), True, 0),
        ((2, 3, 2, 3), False, 1),
        ((3, 2, 2, 2), True, 2),
        ((1, 3, 2, 4), True, 3),
    ],
)
def test_planner_true_model_zero_bonus_is_v_star(sizes, context_rewards, seed):
    """With the true model and no bonus the JAX planner is the exact V* (float64)."""
    model = random_model(*sizes, seed, context_rewards)
    with jax.enable_x64(True):
        plan = jax.jit(plan_histories, static_argnums=(1, 2))(
            inputs_of(model), model.horizon, "none"
        )
        assert float(plan.value) == pytest.approx(pl.history_tree_value(model), abs=TOL)


def test_planner_history_matters_and_policy_follows_the_reward():
    """The guess instance: V* = 0.7/2 + 1/2 (closed form); the plan guesses the likelier context
    first, then plays the action the first reward revealed."""
    model = guess_model(0.3, H=2)
    plan = jax.jit(plan_histories, static_argnums=(1, 2))(inputs_of(model), 2, "none")
    assert float(plan.value) == pytest.approx(0.7 / 2 + 1 / 2, abs=1e-6)  # float32
    pol = np.asarray(plan.policy)
    # level 1: the single state; level 2: children (a, reward class j, s'), index (a M + j) S + s'
    assert pol[0] == 1
    # after action 1: reward 1/2 is context 1's (class 1) -> play 1; reward 0 (class 0) -> play 0
    assert pol[1 + (1 * 2 + 1)] == 1 and pol[1 + (1 * 2 + 0)] == 0


@pytest.mark.parametrize(
    "kind,scale", [("bernstein", 1.0), ("bernstein", 0.01), ("hoeffding", 0.1)]
)
def test_bonus_plan_is_optimistic_for_the_empirical_model(kind, scale):
    """Optimism: the bonus-augmented value >= V* of the empirical model it plans in (NumPy
    exact planner), on empirical models from a few samples (visits 3..40) of random LMDPs."""
    rng = np.random.default_rng(7)
    with jax.enable_x64(True):
        plan = jax.jit(plan_histories, static_argnums=(1, 2))
        for seed in range(6):
            model = random_model(2, 2, 2, 3, 10 + seed)
            hat, n = empirical(model, int(rng.integers(3, 41)), rng)
            v_hat = pl.history_tree_value(hat)
            value = float(plan(inputs_of(hat, n, scale, 2.0), 3, kind).value)
            assert value >= v_hat - TOL
            assert value <= 1.0 + TOL  # the clip at 1


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_variance_of_a_one_hot_row_is_exactly_zero_compiled(dtype):
    """A deterministic transition (one-hot P̂ row) has 𝕍 = 0 exactly in the compiled planner's
    arithmetic, and a general row matches the float64 definition: the one-pass form
    pᵀ(v²) − (pᵀv)² left a fused-multiply-add residue there (≈ 10⁻⁸ v² in float32), which the
    bonus's √ made ≈ 10⁻⁴ — 0.02 of value at the theory constants and n = 1."""
    rng = np.random.default_rng(3)
    with jax.enable_x64(dtype == "float64"):
        v = jnp.asarray(rng.uniform(0.1, 1.0, (64, 5)), dtype)
        onehot = jnp.asarray(np.eye(5)[rng.integers(0, 5, 64)], dtype)
        assert np.all(np.asarray(jax.jit(variance)(onehot, v)) == 0.0)
        p = rng.dirichlet(np.ones(5), 64)
        want = (
            p * (np.asarray(v, np.float64) - (p * np.asarray(v, np.float64)).sum(1)[:, None]) ** 2
        ).sum(1)
        got = np.asarray(jax.jit(variance)(jnp.asarray(p, dtype), v), np.float64)
        # float32: a few ulps of values <= 1 in the squares and sums (5 terms)
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-6 if dtype == "float32" else 1e-15)


def test_variance_bonus_and_iota_by_hand():
    # each function compiled as one program (speed only); the kind and S static as in the planner
    bonus_ = jax.jit(bonus, static_argnums=(0, 5))
    p, v = jnp.asarray([0.25, 0.75]), jnp.asarray([0.0, 1.0])
    assert float(jax.jit(variance)(p, v)) == pytest.approx(0.75 - 0.75**2, abs=1e-7)  # 0.1875
    b = bonus_("bernstein", jnp.asarray(4.0), jnp.asarray(0.1875), 2.0, 1.0, 3)
    assert float(b) == pytest.approx(C1 * math.sqrt(0.1875 * 2 / 4) + C3 * 2 / 4, rel=1e-6)
    assert (C1, C3) == (460 / 9, 544 / 9)
    h = bonus_("hoeffding", jnp.asarray(0.0), jnp.asarray(0.3), 2.0, 0.5, 3)  # n = 0 -> 1
    assert float(h) == pytest.approx(0.5 * math.sqrt(2 * 3 * 2 / 1), rel=1e-6)
    assert float(bonus("none", 4.0, jnp.asarray(0.3), 2.0, 1.0, 3)) == 0.0
    # ι = 2 ln(2 M S A H K / δ) with the run's K and H (not the step count)
    iota_ = jax.jit(iota, static_argnums=(0, 1, 2, 3))
    assert float(iota_(2, 3, 2, 4, 100, 0.1)) == pytest.approx(
        2 * math.log(2 * 48 * 100 / 0.1), rel=1e-6
    )
    assert float(iota_(2, 3, 2, 4, 0, 0.1)) == pytest.approx(2 * math.log(2 * 48 / 0.1), rel=1e-6)


def test_bad_agent_input_is_one_line():
    for kwargs, field in [
        (dict(bonus="ucb"), "bonus"),
        (dict(bonus_scale=-1.0), "bonus_scale"),
        (dict(delta=0.0), "delta"),
        (dict(max_nodes=0), "max_nodes"),
        (dict(replan="any"), "replan"),
    ]:
        with pytest.raises(ConfigError, match=rf"^{field}:"):
            LatentValueOptimistic(**kwargs)
    with pytest.raises(ConfigError, match=r"^prior:"):
        LatentPSRL(prior=0.0)
    with pytest.raises(ConfigError, match=r"^replan: must be one of lanes, batch \(got 'any'\)$"):
        LatentPSRL(replan="any")
    env = LatentMDP(num_states=4, episode_length=6)  # Σ_h 4 (2 2 4)^h = 4.47e6 dense nodes
    spec = env.spec(env.default_params(), 10)
    with pytest.raises(ConfigError) as e:
        LatentValueOptimistic().init(jax.random.key(0), spec)
    msg = str(e.value)
    assert msg.startswith("max_nodes:") and "\n" not in msg
    assert "H=6" in msg and f"{4 * sum(16**h for h in range(6)):.3g}" in msg and "lower H" in msg


def test_psrl_refuses_bad_and_unused_fields_in_one_line():
    """Every field of `LatentPSRL` checked at construction (the review's
    ``LatentPSRL(planner="bogus", points=-3, delta=7.0)`` was accepted), naming the field and
    the allowed values; the fields it inherits but does not use are refused off their defaults."""
    for kwargs, field, allowed in [
        (dict(planner="bogus"), "planner", "must be histories"),
        (dict(planner="points"), "planner", "must be histories"),
        (dict(points=-3), "points", ">= 1"),
        (dict(delta=7.0), "delta", "in (0, 1)"),
        (dict(bonus="bernstein"), "bonus", "must be one of none"),
        (dict(bonus_scale=0.5), "bonus_scale", "must be 0"),
    ]:
        with pytest.raises(ConfigError) as e:
            LatentPSRL(**kwargs)
        msg = str(e.value)
        assert msg.startswith(f"{field}:") and allowed in msg and "\n" not in msg
    with pytest.raises(ConfigError, match=r"^(planner|points|delta): "):  # the review's case
        LatentPSRL(planner="bogus", points=-3, delta=7.0)
    from rl.model_optimistic import LatentModelOptimistic

    with pytest.raises(ConfigError, match=r"^planner: must be histories"):
        LatentModelOptimistic(planner="points")
    assert LatentPSRL().bonus == "none"


# --------------------------------------------------------------------------- UCBVI's Markov policy
def test_ucbvi_markov_value_equals_the_dense_history_value_and_numpy():
    """`evaluate_markov` (per-context recursion, O(H M S²)) against the same Markov policy
    spread over the dense history nodes and valued by the forward pass over histories (the
    old form), and against `rl.planning.markov_value` in float64. Random policies on a random
    tiny LMDP with context-dependent rewards (so rewards branch the dense tree). float32 JAX
    against float64 NumPy: values <= 1 summed over <= 3·(2·2·2)² nodes, agreement to ~1e-7;
    2e-6 leaves room."""
    from rl.backup import EvalInputs, MarkovPolicy
    from rl.optimistic import evaluate_markov, evaluate_policy, markov_dense

    M, S, A, H = 2, 2, 2, 3
    model = random_model(M, S, A, H, seed=7)
    f = jnp.float32
    base = EvalInputs(
        policy=None,
        plan_rewards=jnp.asarray(model.rewards, f),
        weights=jnp.asarray(model.weights, f),
        init=jnp.asarray(model.init, f),
        transitions=jnp.asarray(model.transitions, f),
        rewards=jnp.asarray(model.rewards, f),
    )

    @jax.jit  # one program for the three evaluations of every policy (speed only)
    def values(base, pol):
        return (
            evaluate_policy(base._replace(policy=MarkovPolicy(pol)), H),
            evaluate_policy(base._replace(policy=markov_dense(pol, M, S, A)), H),
            evaluate_markov(base._replace(policy=MarkovPolicy(pol)), H),
        )

    rng = np.random.default_rng(0)
    for _ in range(5):
        pol = rng.integers(0, A, (H, S))
        markov, dense, direct = (float(v) for v in values(base, jnp.asarray(pol)))
        assert markov == pytest.approx(dense, abs=2e-6)
        assert markov == pytest.approx(pl.markov_value(model, pol), abs=2e-6)
        assert direct == pytest.approx(markov, abs=0)


def test_ucbvi_pseudo_regret_at_h10_on_the_lattice_without_history_nodes():
    """The env's ``pseudo_regret`` metric for UCBVI at lattice S = 3, H = 10: its policy used to
    be spread over Σ_h S (A M S)^(h-1) = 1.7·10¹⁰ dense history nodes (out of memory instead of
    an error); now a Markov policy of H·S entries (checked without allocating, by eval_shape)
    valued per context. Through the engine's rollout: every episode's pseudo-regret >= 0 (V* is
    the best value; 1e-6 for float32 round-off), the total equals `PseudoRegret`'s per-episode
    curve (same draws, same evaluation: 1e-5 relative for float32 summation order), and the
    final policy's value equals `rl.planning.markov_value` (float64) to 2e-6."""
    env = LatentMDP(instance="lattice", num_states=3, episode_length=10, instance_seed=2)
    params, H, K = env.default_params(), 10, 20
    agent = UCBVIAgnostic()
    spec = env.spec(params, K)
    state = jax.jit(lambda k: agent.init(k, spec))(jax.random.key(0))  # compiled: speed only
    form = jax.eval_shape(lambda st: agent.history_policy(st, params.rewards), state)
    assert sum(math.prod(x.shape) for x in jax.tree.leaves(form[0])) == H * 3
    out = jax.jit(lambda k: rollout(env, params, agent, k, H * K, horizon=K))(jax.random.key(1))
    wrapped = PseudoRegret(agent, K)
    ref = jax.jit(lambda k: rollout(env, params, wrapped, k, H * K, horizon=K))(jax.random.key(1))
    curve = np.asarray(ref.agent_state.curve, np.float64)
    assert np.all(curve >= -1e-6) and curve.sum() > 0
    assert float(out.totals["pseudo_regret"]) == pytest.approx(curve.sum(), rel=1e-5)
    pol = np.asarray(ref.agent_state.inner.policy)
    value = float(ref.agent_state.value)
    assert value == pytest.approx(pl.markov_value(env.model, pol), abs=2e-6)


def test_ucbvi_reward_sums_stay_exact_at_1e7_visits():
    """UCBVI's per-pair reward sum over 10⁷ visits of one pair (a scan of its ``update``, never
    at an episode's end, so no re-plan): r̂ = sum / n against the float64 reference n·r of the
    same float32 reward. A plain float32 running sum is 8.5% low here (each add rounds to the
    sum's ulp); the compensated sum's relative error is O(float32 ε) = 6e-8 whatever the
    count; 1e-6 leaves 16x room."""
    from jax import lax

    from experiments.accumulate import kahan_value

    env = LatentMDP(num_states=2, num_actions=2, episode_length=2, instance_seed=0)
    agent = UCBVIAgnostic()
    spec = env.spec(env.default_params(), 10)
    state = jax.jit(lambda k: agent.init(k, spec))(jax.random.key(0))  # compiled: speed only
    r = np.float32(0.0731)  # a garnet reward U[0, 1]/H with H = 5
    i = jnp.result_type(int)
    obs = EpisodeObs(LatentObs(jnp.asarray(0, i), jnp.asarray(-1, i)), jnp.asarray(0, i))
    fb = EpisodeFeedback(
        LatentFeedback(jnp.asarray(r), jnp.asarray(1, i)), jnp.asarray(False), jnp.asarray(-1, i)
    )
    n = 10**7

    @jax.jit
    def run(st):
        def body(c, _):
            return agent.update(c, obs, jnp.asarray(1, i), fb), None

        return lax.scan(body, st, None, length=n)[0]

    out = run(state)
    assert int(out.counts[0, 1].sum()) == n
    total = float(kahan_value(out.reward_sum)[0, 1])
    assert total / (n * float(r)) - 1 == pytest.approx(0, abs=1e-6)


# --------------------------------------------------------------------------- through the engine
TINY = dict(num_contexts=2, num_states=2, num_actions=2, episode_length=3, instance_seed=2)


def _bitlen(n):
    return int(n).bit_length()


def test_counts_refreshes_and_reproducibility():
    """One compiled program (the engine's rollout vmapped over seeds):

    * the agent's counts equal a NumPy recount of the emitted trajectories labelled with the
      context revealed at each episode's end; rewards are learned exactly where visited;
    * its refreshes equal a NumPy replay of the doubling trigger, and are <= Σ_pairs
      (⌊log₂ N⌋ + 1) <= M S A (log₂ K + 1) (H = 3 <= M S A = 8);
    * the same keys give bit-identical runs."""
    env = LatentMDP(**TINY)
    params = env.default_params()
    M, S, A, H = env.model.sizes
    K, N = 300, 3
    agent = LatentValueOptimistic(bonus_scale=0.05)

    def emit(tr):
        return (
            tr.obs.obs.state,
            tr.action,
            tr.feedback.feedback.next_state,
            tr.feedback.revealed,
            tr.feedback.done,
        )

    def one(key):
        return rollout(env, params, agent, key, H * K, emit=emit, horizon=K)

    keys = jax.random.split(jax.random.key(3), N)
    run = jax.jit(jax.vmap(one))
    out = run(keys)
    st = out.agent_state
    s, a, s2, rev, done = (np.asarray(x) for x in out.emitted)
    R = env.model.rewards
    for i in range(N):
        ctx = rev[i].reshape(K, H)[:, -1]
        assert np.all(rev[i][~done[i]] == -1)
        counts = np.zeros((M, S, A, S), int)
        snap = np.zeros((M, S, A), int)
        refreshes = 0
        for k in range(K):
            sl = slice(k * H, (k + 1) * H)
            np.add.at(counts, (ctx[k], s[i, sl], a[i, sl], s2[i, sl]), 1)
            n = counts.sum(-1)
            cross = np.vectorize(_bitlen)(n) > np.vectorize(_bitlen)(snap)
            snap = np.where(cross, n, snap)
            refreshes += bool(cross.any())
        np.testing.assert_array_equal(np.asarray(st.counts[i]), counts)
        np.testing.assert_array_equal(
            np.asarray(st.context_counts[i]), np.bincount(ctx, minlength=M)
        )
        known = np.asarray(st.known[i])
        np.testing.assert_array_equal(known, counts.sum(-1) > 0)
        np.testing.assert_allclose(np.asarray(st.rewards[i])[known], R[known].astype(np.float32))
        assert int(st.refreshes[i]) == refreshes
        n = counts.sum(-1)
        per_pair = sum(_bitlen(x) for x in n.ravel())  # ⌊log₂ N⌋ + 1 per visited pair
        assert refreshes <= per_pair <= M * S * A * (math.log2(K) + 1)
    again = run(keys)
    for x, y in zip(jax.tree.leaves(again.totals), jax.tree.leaves(out.totals), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    np.testing.assert_array_equal(
        np.asarray(again.agent_state.plan.policy), np.asarray(st.plan.policy)
    )


def test_hindsight_protocol_agent_never_reads_the_context_early():
    """Feeding the agent the same episodes twice, once with the context hidden (-1) on every
    step but the last and once with garbage in the observation's context channel and in
    ``revealed`` before the last step, gives identical actions and states; counts change only at
    an episode's last step, with the context revealed there."""
    env = LatentMDP(**TINY)
    spec = env.spec(env.default_params(), 10)
    H = spec.episode_length
    rng = np.random.default_rng(0)
    for agent in (LatentValueOptimistic(bonus_scale=0.1),):  # PSRL shares its update
        act, update = jax.jit(agent.act), jax.jit(agent.update)
        init = jax.jit(lambda k, agent=agent: agent.init(k, spec))  # compiled: speed only
        states = [init(jax.random.key(1)) for _ in range(2)]
        for _ in range(4):
            m = int(rng.integers(2))
            s = int(rng.integers(2))
            for h in range(H):
                done = h == H - 1
                obs = [
                    EpisodeObs(LatentObs(jnp.asarray(s), jnp.asarray(c)), jnp.asarray(h))
                    for c in (-1, m)  # the second copy sees the context in its observation
                ]
                acts = [int(act({}, st, o)) for st, o in zip(states, obs, strict=True)]
                assert acts[0] == acts[1]
                a, s2 = acts[0], int(rng.integers(2))
                r = jnp.asarray(float(env.model.rewards[m, s, a]), jnp.float32)
                for v in range(2):
                    leak = -1 if v == 0 else 1 - m  # garbage before the reveal
                    fb = EpisodeFeedback(
                        LatentFeedback(r, jnp.asarray(s2)),
                        jnp.asarray(done),
                        jnp.asarray(m if done else leak),
                    )
                    new = update(states[v], obs[v], jnp.asarray(a), fb)
                    if not done and hasattr(new, "context_counts"):
                        np.testing.assert_array_equal(
                            np.asarray(new.counts), np.asarray(states[v].counts)
                        )
                    states[v] = new
                s = s2
        for x, y in zip(jax.tree.leaves(states[0]), jax.tree.leaves(states[1]), strict=True):
            if jnp.issubdtype(x.dtype, jax.dtypes.prng_key):
                x, y = jax.random.key_data(x), jax.random.key_data(y)
            np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_coverage_of_the_true_value():
    """Confidence: the optimistic value at the theory constants (bonus_scale = 1, δ = 0.1)
    planned in empirical models of n = 10⁶ samples per (m, s, a) is >= the true V* in >= 1 - δ
    of 60 independent draws; not vacuous: the bound is < 1 (unclipped) in most draws."""
    model = random_model(2, 2, 2, 3, 21)
    M, S, A, H = model.sizes
    v_star = pl.history_tree_value(model)
    rng = np.random.default_rng(11)
    delta, n = 0.1, 10**6
    io = 2 * math.log(2 * M * S * A * H * n / delta)  # K = n episodes behind the counts
    plan = jax.jit(plan_histories, static_argnums=(1, 2))
    with jax.enable_x64(True):
        values = [
            float(plan(inputs_of(*empirical(model, n, rng), 1.0, io), H, "bernstein").value)
            for _ in range(60)
        ]
    values = np.asarray(values)
    assert np.mean(values >= v_star) >= 1 - delta
    assert np.mean(values < 1.0) > 0.5


@pytest.mark.slow  # three gamma-sampler compiles, ~10 s
def test_posterior_sample_has_the_dirichlet_mean():
    """The posterior draw of P_m(·|s, a) averages (prior + N)/(S prior + n): 400 draws, sd of a
    Dirichlet coordinate <= 0.5/sqrt(n + S prior + 1) ~ 0.1, so the mean's sd <= 0.005; 5 sd."""
    M, S, A = 1, 3, 1
    counts = jnp.asarray([[[[2.0, 0.0, 5.0]]]])
    B = 400  # independent draws: the Dirichlet parameters batched along a leading axis
    base = inputs_of(guess_model())._replace(
        snapshot=jnp.broadcast_to(counts, (B, M, S, A, S)),
        init_counts=jnp.zeros((B, M, S)),
        context_counts=jnp.zeros((B, M)),
        transitions=jnp.full((B, M, S, A, S), 1 / S),
    )
    draws = sample_model(base, 1.0).transitions
    np.testing.assert_allclose(
        np.asarray(draws.mean(0))[0, 0, 0], np.array([3, 1, 6]) / 10, atol=0.025
    )


def _expensive(x, k):
    return {"y": x["a"] * k + x["b"][..., 0], "z": x["b"] * 2}  # exact: no rounding-order choice


def test_cond_lanes_is_the_select_and_computes_only_the_lanes_that_need_it():
    """`cond_lanes` equals ``where(pred, fn(inputs), old)`` leaf by leaf (jit, vmap, nested vmap
    over (configs, seeds)), and `fn` runs once per lane with `pred` (counted by a host callback;
    none where no lane has it)."""
    calls = []

    def fn(x, k):
        jax.debug.callback(lambda: calls.append(1))
        return _expensive(x, k)

    rng = np.random.default_rng(0)
    x = {"a": jnp.asarray(rng.random((2, 3))), "b": jnp.asarray(rng.random((2, 3, 4)))}
    old = {"y": jnp.zeros((2, 3)), "z": -jnp.ones((2, 3, 4))}
    # one program for both predicates, and the reference computed once (speed only)
    apply = jax.jit(jax.vmap(jax.vmap(cond_lanes(fn, 3.0))))
    want = jax.jit(jax.vmap(jax.vmap(lambda x, k=3.0: _expensive(x, k))))(x)
    for pred in (np.array([[True, False, True], [False, False, True]]), np.zeros((2, 3), bool)):
        calls.clear()
        got = apply(jnp.asarray(pred), x, old)
        jax.effects_barrier()
        for key in got:
            p = pred.reshape(pred.shape + (1,) * (want[key].ndim - 2))
            np.testing.assert_array_equal(np.asarray(got[key]), np.where(p, want[key], old[key]))
        assert len(calls) == pred.sum()
    first = jax.tree.map(lambda v: v[0, 0], (x, old))
    one = cond_lanes(_expensive, 3.0)(jnp.asarray(True), *first)  # unbatched: a plain call
    np.testing.assert_array_equal(np.asarray(one["z"]), np.asarray(x["b"][0, 0] * 2))


@pytest.mark.slow  # two engine programs with the gamma sampler, ~20 s (minutes on a busy machine)
def test_psrl_plans_only_the_refreshing_seeds_with_the_same_results():
    """Posterior sampling through `cond_lanes` (the seeds that refresh) and through `cond_any`
    (the whole batch when one seed refreshes) give bit-identical runs (3 seeds vmapped, 150
    episodes of the tiny garnet): each seed's plan is the same function of its own inputs."""
    env = LatentMDP(**TINY)
    params = env.default_params()
    H, K = env.episode_length, 150

    keys = jax.random.split(jax.random.key(5), 3)
    outs = [
        jax.jit(jax.vmap(lambda k, a=a: rollout(env, params, a, k, H * K, horizon=K)))(keys)
        for a in (LatentPSRL(), LatentPSRL(replan="batch"))
    ]
    for x, y in zip(jax.tree.leaves(outs[0].totals), jax.tree.leaves(outs[1].totals), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    np.testing.assert_array_equal(
        np.asarray(outs[0].agent_state.plan.policy), np.asarray(outs[1].agent_state.plan.policy)
    )
    assert int(outs[0].agent_state.refreshes.min()) > 0


@pytest.mark.parametrize("kind,scale", [("bernstein", 0.02), ("hoeffding", 0.1)])
def test_replan_lanes_and_batch_give_bit_identical_runs(monkeypatch, kind, scale):
    """The optimistic learners re-planning only the refreshing seeds (``replan="lanes"``) and
    every seed when one refreshes (``"batch"``) give bit-identical runs: 4 seeds vmapped, 80
    episodes of the tiny garnet, through `PseudoRegret` (whose evaluations follow ``replan``):
    the per-episode pseudo-regret, the realised totals, the final plans and the refresh counts.
    Each seed's plan is the same function of its own inputs; exact equality, no tolerance.
    With the Hoeffding bonus ``lanes`` plans in blocks of 3 vmapped lanes (an accelerator's
    `cond_lanes`, forced on this CPU), with Bernstein's one lane at a time (the CPU's)."""
    monkeypatch.setenv("REGRETLAB_LANE_BLOCK", "3" if kind == "hoeffding" else "1")
    env = LatentMDP(**TINY)
    params = env.default_params()
    H, K = env.episode_length, 80
    keys = jax.random.split(jax.random.key(3), 4)
    outs = []
    for replan in ("lanes", "batch"):
        agent = PseudoRegret(LatentValueOptimistic(bonus=kind, bonus_scale=scale, replan=replan), K)
        run = jax.jit(jax.vmap(lambda k, a=agent: rollout(env, params, a, k, H * K, horizon=K)))
        outs.append(run(keys))
    lanes, batch = outs
    np.testing.assert_array_equal(
        np.asarray(lanes.agent_state.curve), np.asarray(batch.agent_state.curve)
    )
    for x, y in zip(jax.tree.leaves(lanes.totals), jax.tree.leaves(batch.totals), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    li, bi = lanes.agent_state.inner, batch.agent_state.inner
    np.testing.assert_array_equal(np.asarray(li.plan.policy), np.asarray(bi.plan.policy))
    np.testing.assert_array_equal(np.asarray(li.plan.value), np.asarray(bi.plan.value))
    np.testing.assert_array_equal(np.asarray(li.refreshes), np.asarray(bi.refreshes))
    # the seeds are not in lockstep (else the two rules would run the same plans anyway)
    curve = np.asarray(lanes.agent_state.curve)
    assert np.any(curve != curve[:1]) and int(np.asarray(li.refreshes).min()) > 3


def test_agent_configs_name_their_classes():
    from pathlib import Path

    conf = Path(__file__).resolve().parents[1] / "conf" / "agents"
    want = {
        "latent_value_optimistic": (LatentValueOptimistic, "bernstein"),
        "latent_lucrl": (LatentValueOptimistic, "hoeffding"),
        "ucbvi_agnostic": (UCBVIAgnostic, None),
        "latent_psrl": (LatentPSRL, "none"),
    }
    from hydra.utils import instantiate

    for name, (cls, kind) in want.items():
        text = (conf / f"{name}.yaml").read_text()
        assert text.startswith(f"# @package agents.{name}\n")
        agent = instantiate(OmegaConf.create(text))
        assert type(agent) is cls
        if kind is not None:
            assert agent.bonus == kind
        if hasattr(agent, "bonus_scale") and cls is not LatentPSRL:
            assert agent.bonus_scale == 1.0  # theory constants by default
        if hasattr(agent, "replan"):
            assert agent.replan == "lanes"  # the measured cheaper rule (docs/latent_mdp.md)
        if cls is LatentValueOptimistic:  # the exact planner by default; points' resolution 64
            assert (agent.planner, agent.points) == ("histories", 64)


# --------------------------------------------------------------------------- slow tier
def _slope(curve: np.ndarray, K: int) -> float:
    """Log-log slope of the mean cumulative pseudo-regret over 12 log-spaced K in [K/10, K]."""
    mean = np.cumsum(curve, 1).mean(0)
    pts = np.unique(np.geomspace(K // 10, K, 12).astype(int))
    return float(np.polyfit(np.log(pts), np.log(mean[pts - 1]), 1)[0])


@pytest.mark.slow
def test_regret_sublinear_where_the_context_agnostic_learner_is_linear():
    """The guess instance (H = 2, w = 1/2): V* = 3/4, every Markov policy earns 1/2. Exact
    pseudo-regret over K = 2000 episodes, 4 seeds: context-agnostic UCBVI converges to a Markov
    policy, so its per-episode regret tends to 1/4 and its log-log slope is ~1 (> 0.9); the
    learners that plan over histories stop paying once the rewards are known (slope < 0.6, and
    their regret at K is below a fifth of UCBVI's). Bonus scales are tuned (theory constants
    explore for ~10³ visits per pair, longer than K here)."""
    env = LatentMDP.from_model(guess_model(0.5, H=2))
    params = env.default_params()
    K, H = 2000, 2
    keys = jax.random.split(jax.random.key(0), 4)
    slopes, final = {}, {}
    for name, agent in {
        "ucbvi": UCBVIAgnostic(bonus_scale=0.05),
        "bernstein": LatentValueOptimistic(bonus_scale=0.05),
        "hoeffding": LatentValueOptimistic(bonus="hoeffding", bonus_scale=0.1),
        "psrl": LatentPSRL(),
    }.items():
        w = PseudoRegret(agent, K)
        out = jax.jit(jax.vmap(lambda k, w=w: rollout(env, params, w, k, H * K, horizon=K)))(keys)
        curve = np.asarray(out.agent_state.curve, np.float64)
        slopes[name], final[name] = _slope(curve, K), np.cumsum(curve, 1)[:, -1].mean()
    assert slopes["ucbvi"] > 0.9 and final["ucbvi"] / K == pytest.approx(0.25, abs=0.02)
    for name in ("bernstein", "hoeffding", "psrl"):
        assert slopes[name] < 0.6, (name, slopes)
        assert final[name] < final["ucbvi"] / 5, (name, final)


@pytest.mark.slow
def test_pseudo_regret_matches_the_realised_regret():
    """The exact pseudo-regret recorded by `PseudoRegret` and the env's realised regret agree in
    mean over seeds (their difference is a martingale): 16 seeds x 400 episodes of the tiny
    garnet; the per-episode return sd is <= 1/2, so the mean difference's sd <= 0.5·√400/4 = 2.5;
    4 sd."""
    env = LatentMDP(**TINY)
    params = env.default_params()
    K, H = 400, env.episode_length
    w = PseudoRegret(LatentValueOptimistic(bonus_scale=0.05), K)
    out = jax.jit(jax.vmap(lambda k: rollout(env, params, w, k, H * K, horizon=K)))(
        jax.random.split(jax.random.key(9), 16)
    )
    pseudo = np.asarray(out.agent_state.curve, np.float64).sum(1)
    realised = np.asarray(out.totals["regret"], np.float64)
    assert abs((realised - pseudo).mean()) < 10.0
    assert instances.transition_degree(env.model) <= env.num_states


@pytest.mark.slow
def test_single_seed_run_equals_its_entry_of_the_vmapped_batch():
    """The `custom_vmap` rule (one ``any`` over the batch, re-plan kept only where needed) gives
    the same run as a seed alone (a plain `lax.cond`)."""
    env = LatentMDP(**TINY)
    params = env.default_params()
    H, K = env.episode_length, 200
    agent = LatentValueOptimistic(bonus_scale=0.05)

    def one(key):
        return rollout(env, params, agent, key, H * K, horizon=K)

    keys = jax.random.split(jax.random.key(3), 3)
    out = jax.jit(jax.vmap(one))(keys)
    st = out.agent_state
    alone = jax.jit(one)(keys[1])
    np.testing.assert_array_equal(np.asarray(alone.agent_state.counts), np.asarray(st.counts[1]))
    np.testing.assert_array_equal(
        np.asarray(alone.agent_state.plan.policy), np.asarray(st.plan.policy[1])
    )
    assert float(alone.totals["regret"]) == float(out.totals["regret"][1])
