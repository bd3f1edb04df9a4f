"""The latent-MDP environment (`rl.latent_mdp`), its reference agents (`rl.baselines`) and its
gymnasium wrapper (`rl.gym`).

References: the exact planners' values and return variances (`rl.planning`, checked against
brute force in tests/test_latent_mdp_planning.py) for Monte-Carlo means of the engine's runs,
with tolerances from the exact standard error; the protocol's definition (context hidden until
the last step); gymnasium's own checker.
"""

from __future__ import annotations

import warnings

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from experiments.config import ConfigError
from experiments.rollout import rollout
from experiments.simulate import simulate
from rl import instances
from rl import planning as pl
from rl.baselines import BayesOptimal, ContextOracle, LatentRandom
from rl.gym import LATENT_MDP_ID, LatentMDPEnv, register_envs
from rl.latent_mdp import LatentMDP, cdf, sample

SMALL = dict(num_states=3, num_actions=2, episode_length=4, instance_seed=1)


def test_engine_rollout_hindsight_value_and_reproducibility():
    """One compiled program (the engine's rollout, vmapped over seeds) with the Bayes-optimal
    agent (the exact history-dependent policy), checked three ways:

    * hindsight: ``revealed`` is -1 on every step but the last of each episode, where it is the
      episode's context (the one the oracle channel showed from its first step);
    * value: the mean episode return equals V* from the planners. Episodes are independent
      (nothing learns), so the mean regret over K N episodes has standard error
      sqrt(Var^{π*}(G) / (K N)) with the exact total variance of the return
      (`var_star(..., "total")`); 4 se bounds a false failure by 6e-5. Float32 sums of 200
      terms <= 1 add < 1e-4 (far below 4 se ~ 5e-3);
    * reproducibility: the same keys give bit-identical results.
    """
    env = LatentMDP(**SMALL, oracle_view=True)  # the channel shows the context to compare with
    params = env.default_params()
    H, K, N = env.episode_length, 200, 8

    def emit(tr):
        return tr.feedback.revealed, tr.feedback.done, tr.obs.obs.context, tr.obs.h

    run = jax.jit(
        jax.vmap(lambda k: rollout(env, params, BayesOptimal(), k, H * K, emit=emit, horizon=K))
    )
    keys = jax.random.split(jax.random.key(5), N)
    out = run(keys)
    revealed, done, ctx, h = (np.asarray(x) for x in out.emitted)
    np.testing.assert_array_equal(done, h == H - 1)
    assert np.all(revealed[~done] == -1)
    by_episode = ctx.reshape(N, K, H)
    assert np.all(by_episode == by_episode[:, :, :1])  # one context per episode
    np.testing.assert_array_equal(by_episode[:, :, 0], revealed[done].reshape(N, K))
    assert set(np.unique(revealed[done])) == {0, 1}
    regret = np.asarray(out.totals["regret"], np.float64)
    se = np.sqrt(instances.var_star(env.model, "total") / (K * N))
    assert se > 1e-4
    assert abs(regret.mean() / K) < 4 * se
    again = run(keys)
    np.testing.assert_array_equal(
        np.asarray(again.totals["regret"]), np.asarray(out.totals["regret"])
    )
    assert env.oracle(params, BayesOptimal(), 3)["regret"] == pytest.approx(0, abs=1e-12)


def test_by_default_the_observation_hides_the_context():
    """The privileged context channel is off unless asked for (``oracle_view=True``, which only
    the context oracle's config does): the default env shows -1 from the first step."""
    env = LatentMDP(**SMALL)
    assert env.oracle_view is False and env.spec(env.default_params(), 1).oracle_view is False
    params = env.default_params()
    state = env.init(jax.random.key(0), params)
    assert int(env.observe(state, params).obs.context) == -1
    shown = LatentMDP(**SMALL, oracle_view=True)
    assert int(shown.observe(state, params).obs.context) == int(state.inner.context)


def test_only_the_context_oracle_config_turns_the_channel_on():
    """conf/env/latent_mdp.yaml reads ``agents.context_oracle.oracle_view``: off for every run
    without the oracle, on with it; the oracle on an env without it is one ConfigError line."""
    from pathlib import Path

    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from experiments.run import prepare

    conf = Path(__file__).resolve().parents[1] / "conf"
    GlobalHydra.instance().clear()
    x64 = jax.config.jax_enable_x64
    try:
        initialize_config_dir(config_dir=str(conf), version_base="1.3")
        small = ["env=latent_mdp", "env.num_states=2", "env.episode_length=2", "horizon=2"]

        def build(agents, *more):
            over = [*small, f"agents=[{agents}]", *more]
            return prepare(compose(config_name="config", overrides=over), over)

        assert build("latent_random").env.oracle_view is False
        assert build("latent_random,latent_psrl").env.oracle_view is False
        assert build("context_oracle,latent_random").env.oracle_view is True
        with pytest.raises(ConfigError) as e:
            build("context_oracle", "env.oracle_view=false")
        msg = str(e.value)
        assert msg.startswith("agents.context_oracle") and "oracle_view" in msg
        assert "\n" not in msg
    finally:
        GlobalHydra.instance().clear()
        jax.config.update("jax_enable_x64", x64)
    with pytest.raises(ConfigError, match=r"^oracle_view: must be true"):
        ContextOracle(oracle_view=False)


def test_sampler_never_picks_zero_probability_entries():
    p = np.array([[0.0, 0.3, 0.0, 0.7, 0.0], [0.5, 0.0, 0.0, 0.0, 0.5]])
    c = jnp.asarray(cdf(p), jnp.float32)
    u = jax.random.uniform(jax.random.key(0), (20_000,))
    for row in range(2):
        idx = np.asarray(jax.vmap(lambda x, r=row: sample(c[r], x))(u))
        counts = np.bincount(idx, minlength=5)
        assert np.all(counts[p[row] == 0] == 0)
        # binomial sd of a frequency with n = 20000: <= 0.0036; 5 sd
        np.testing.assert_allclose(counts / 20_000, p[row], atol=0.018)
    assert int(sample(c[0], jnp.float32(0.99999994))) == 3  # the largest uniform below 1


# --------------------------------------------------------------------------- construction
def test_env_instances_and_v_star():
    env = LatentMDP(**SMALL)
    assert env.v_star == pytest.approx(pl.alpha_vectors(env.model)[0], abs=1e-12)
    lat = LatentMDP(instance="lattice", episode_length=24)
    assert lat.v_star == pytest.approx(pl.belief_value(lat.model), abs=1e-12)
    model = env.model._replace(weights=np.array([0.25, 0.75]))
    given = LatentMDP.from_model(model)
    assert given.model.weights.tolist() == [0.25, 0.75] and given != env
    assert LatentMDP(**SMALL) == env and hash(LatentMDP(**SMALL)) == hash(env)


def test_env_file_instance(tmp_path):
    m = instances.garnet(horizon=3, seed=4)
    path = tmp_path / "latent_mdp.npz"
    np.savez(path, weights=m.weights, init=m.init, transitions=m.transitions, rewards=m.rewards)
    env = LatentMDP(instance="file", path=str(path), episode_length=3)
    assert env.v_star == pytest.approx(pl.optimal_value(*m), abs=1e-12)
    with pytest.raises(ConfigError, match=r"^env\.path:"):
        LatentMDP(instance="file", path=str(tmp_path / "missing.npz"))


@pytest.mark.parametrize(
    "kwargs,field",
    [
        (dict(instance="nope"), "env.instance"),
        (dict(instance="lattice", num_contexts=3), "env.num_contexts"),
        (dict(weights=(0.5, 0.6)), "env.weights"),
        (dict(weights=(0.0, 1.0)), "env.weights"),
        (dict(weights=(1.0,)), "env.weights"),
        (dict(episode_length=0), "env.episode_length"),
        (dict(episode_length=30), "env.episode_length"),  # too large for exact planning
        (dict(degree=9), "env.degree"),
        (dict(instance="interpolation", epsilon=1.5), "env.epsilon"),
        (dict(instance="lattice", rho=1.0), "env.rho"),
        (dict(planner="exact"), "env.planner"),
        # fields the instance kind does not read: refused unless at their defaults
        (dict(instance="lattice", degree=99), "env.degree"),
        (dict(instance="lattice", epsilon=-4.0), "env.epsilon"),
        (dict(instance="garnet", rho=2.0), "env.rho"),
        (dict(instance="interpolation", informative=0.5), "env.informative"),
        (dict(instance="file", path="x.npz", num_states=3), "env.num_states"),
        (dict(instance="file", path="x.npz", instance_seed=5), "env.instance_seed"),
        (dict(instance="file", path="x.npz", weights=(0.5, 0.5)), "env.weights"),
    ],
)
def test_bad_env_input_is_one_line_naming_the_field(kwargs, field):
    with pytest.raises(ConfigError) as e:
        LatentMDP(**kwargs)
    msg = str(e.value)
    assert msg.startswith(f"{field}:") and "\n" not in msg


def test_from_model_refuses_instance_fields():
    """`from_model` takes the instance from its arrays: a size, seed or family field set in its
    keywords would be overwritten or ignored, so it is refused in one line; the other fields
    (planner, max_nodes, oracle_view) are taken."""
    model = instances.garnet(num_states=3, horizon=3, seed=1)
    for kwargs, field in [
        (dict(num_states=3), "env.num_states"),
        (dict(episode_length=3), "env.episode_length"),
        (dict(degree=3), "env.degree"),
        (dict(instance_seed=1), "env.instance_seed"),
    ]:
        with pytest.raises(ConfigError) as e:
            LatentMDP.from_model(model, **kwargs)
        msg = str(e.value)
        assert msg.startswith(f"{field}:") and "from_model" in msg and "\n" not in msg
    env = LatentMDP.from_model(model, planner="belief", oracle_view=True)
    assert env.num_states == 3 and env.episode_length == 3 and env.oracle_view is True


def test_too_large_message_says_size_and_planner():
    with pytest.raises(ConfigError) as e:
        LatentMDP(episode_length=30)
    msg = str(e.value)
    assert "H = 30" in msg and "nodes" in msg and "instance=lattice" in msg


def test_reference_agents_values_and_oracle_needs_the_view():
    env = LatentMDP(**SMALL)
    spec = env.spec(env.default_params(), 10)
    ctx_values, _ = pl.context_values(env.model)
    assert ContextOracle().policy_value(spec) == pytest.approx(env.model.weights @ ctx_values)
    assert ContextOracle().policy_value(spec) >= env.v_star - 1e-12
    assert LatentRandom().policy_value(spec) <= env.v_star + 1e-12
    with pytest.raises(ConfigError, match="oracle_view"):  # the default env hides the context
        ContextOracle().init(jax.random.key(0), spec)


# --------------------------------------------------------------------------- gymnasium
def test_gym_check_env_and_hindsight_info():
    register_envs()
    env = gymnasium.make(LATENT_MDP_ID, **SMALL)
    assert isinstance(env.unwrapped, LatentMDPEnv)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env.unwrapped)
    assert not caught, [str(w.message) for w in caught]
    raw = env.unwrapped
    _, info = raw.reset(seed=7)
    assert info["v_star"] == pytest.approx(raw.v_star) and "context" not in info
    contexts = []
    for _ in range(6):
        raw.reset()
        for h in range(1, 5):
            _, _, term, trunc, info = raw.step(h % 2)
            assert term == (h == 4) and not trunc and info["h"] == h
            assert ("context" in info) == term
        contexts.append(info["context"])
        with pytest.raises(RuntimeError):
            raw.step(0)
    assert set(contexts) <= {0, 1}


def test_gym_seeding_and_model_argument():
    a = gymnasium.make(LATENT_MDP_ID, **SMALL).unwrapped
    b = gymnasium.make(LATENT_MDP_ID, model=a.model).unwrapped
    assert b.v_star == pytest.approx(a.v_star, abs=1e-15)
    assert b.observation_space == a.observation_space and b.action_space == a.action_space

    def play(env, seed):
        env.reset(seed=seed)
        return [env.step(i % 2)[:2] for i in range(4)]

    first = play(a, 11)
    assert play(a, 11) == first  # reset(seed) restarts the stream


# --------------------------------------------------------------------------- slow tier
@pytest.mark.slow
def test_random_agent_monte_carlo_equals_exact_value():
    """The uniform policy's exact value (per-context Markov evaluation) against the engine's
    mean; se from the exact total variance of its return, 4 se."""
    env = LatentMDP(**SMALL)
    K, N = 1000, 16
    res = simulate(env, env.default_params(), LatentRandom(), K, N, seed=2, grid=[K])
    spec = env.spec(env.default_params(), K)
    want = env.v_star - LatentRandom().policy_value(spec)
    _, S, A, H = env.model.sizes
    e1, e2 = pl.markov_moments(env.model, np.full((H, S, A), 1.0 / A))
    w = env.model.weights
    se = np.sqrt((w @ e2 - (w @ e1) ** 2) / (K * N))
    assert abs(res.final["regret"].mean() / K - want) < 4 * se


@pytest.mark.slow
def test_learners_ignore_the_oracle_channel():
    """The random and Bayes-optimal agents give bit-identical runs with and without the
    privileged context channel (the env's draws do not depend on it; it is off by default)."""
    envs = [LatentMDP(**SMALL, oracle_view=v) for v in (True, False)]
    for agent in (LatentRandom(), BayesOptimal()):
        runs = [simulate(e, e.default_params(), agent, 200, 4, seed=1, grid=[200]) for e in envs]
        np.testing.assert_array_equal(runs[0].final["regret"], runs[1].final["regret"])


@pytest.mark.slow
def test_history_dependent_policy_values_match_monte_carlo():
    """A random history-dependent policy (a hash of the whole history picks the action): its
    exact value (depth-first evaluator) against a NumPy Monte Carlo of 40 000 episodes,
    4 se with the exact variance."""
    model = instances.garnet(num_states=3, horizon=4, seed=6)
    table: dict = {}
    rng = np.random.default_rng(0)

    def policy(hist):
        if hist not in table:
            table[hist] = int(rng.integers(0, 2))
        return table[hist]

    e1, e2 = pl.history_policy_moments(model, policy)
    w = model.weights
    value, var = w @ e1, w @ e2 - (w @ e1) ** 2
    gen = np.random.default_rng(1)
    n, total = 40_000, 0.0
    for _ in range(n):
        m = gen.choice(2, p=w)
        s = gen.choice(3, p=model.init[m])
        hist, g = (int(s),), 0.0
        for _ in range(4):
            a = policy(hist)
            r = float(model.rewards[m, s, a])
            g += r
            s = gen.choice(3, p=model.transitions[m, s, a])
            hist = (*hist, a, r, int(s))
        total += g
    assert abs(total / n - value) < 4 * np.sqrt(var / n)


@pytest.mark.slow
def test_vmap_over_instances_equals_separate_runs():
    """The env's step reads the instance only from its params (a pytree), so one program runs
    several instances of the same shapes side by side: each equals its own run (to float32
    rounding of the Kahan-summed regret: 1e-5 relative)."""
    envs = [LatentMDP(instance="lattice", episode_length=6, instance_seed=i) for i in (0, 1)]
    params = [e.default_params() for e in envs]
    stacked = jax.tree.map(lambda *x: jnp.stack(x), *params)
    H, K = 6, 100

    def total(env, p, k):
        return rollout(env, p, LatentRandom(), k, H * K, horizon=K).totals["regret"]

    key = jax.random.key(2)
    both = jax.jit(jax.vmap(lambda p: total(envs[0], p, key)))(stacked)
    for i in (0, 1):
        alone = jax.jit(lambda p, e=envs[i]: total(e, p, key))(params[i])
        np.testing.assert_allclose(float(both[i]), float(alone), rtol=1e-5)


@pytest.mark.slow
def test_the_documented_command_runs(tmp_path):
    from test_cli import cli, ok, summary

    d = tmp_path / "run"
    proc = ok(
        cli(
            "run",
            "env=latent_mdp",
            "agents=[context_oracle,latent_random]",
            "horizon=300",
            "seeds=4",
            "progress=false",
            f"hydra.run.dir={d}",
        )
    )
    s = summary(d)
    assert list(s["agents"]) == ["context_oracle", "latent_random"]
    assert s["agents"]["context_oracle"]["final"]["regret"]["mean"] < 0  # the reference beats V*
    assert "context_oracle: a reference, not a competitor" in proc.stdout
    assert "self-check against the exact oracle" in proc.stdout


def test_engine_pseudo_regret_is_the_exact_per_episode_value_gap():
    """`pseudo_regret` through the engine (`LatentMDP.agent_metrics`): for a learner, the sum
    over episodes of V* − V^{π_k}, π_k valued exactly at each episode's end, equals what the
    measurement wrapper `PseudoRegret` records episode by episode (the same float32 evaluation
    of the same policies; 1e-5 relative covers the two float32 summation orders over 60
    episodes); for a fixed-policy reference, K (V* − its exact value) (float32 sums of K equal
    terms: 1e-5 relative)."""
    from rl.optimistic import LatentValueOptimistic, PseudoRegret

    env = LatentMDP(num_states=3, episode_length=3, instance_seed=1)
    params, K, H = env.default_params(), 60, env.episode_length
    learner = LatentValueOptimistic(bonus_scale=0.05)
    out = jax.jit(lambda k: rollout(env, params, learner, k, H * K, horizon=K))(jax.random.key(3))
    wrapped = PseudoRegret(learner, K)
    ref = jax.jit(lambda k: rollout(env, params, wrapped, k, H * K, horizon=K))(jax.random.key(3))
    want = np.asarray(ref.agent_state.curve, np.float64).sum()
    assert float(out.totals["pseudo_regret"]) == pytest.approx(want, rel=1e-5)
    assert float(out.totals["regret"]) != pytest.approx(want, rel=1e-3)  # realised differs
    shown = LatentMDP(num_states=3, episode_length=3, instance_seed=1, oracle_view=True)
    for agent, e in ((LatentRandom(), env), (ContextOracle(), shown)):
        r = rollout(e, params, agent, jax.random.key(0), H * K, horizon=K)
        gap = env.v_star - agent.policy_value(env.spec(params, K))
        assert float(r.totals["pseudo_regret"]) == pytest.approx(K * gap, rel=1e-5)
