"""Sequential Halving and DP-SH (privacy/halving.py): the exact schedule (the odd-|S_r| trap),
the exact error probability against the engine's Monte Carlo, and DP-SH against a plain NumPy
implementation on the same reward table and noise."""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats
from test_dpbai import per_arm_pulls, table_mechanism

from bandits.linear_bai import TableLinearBAI, linear_bai
from experiments.config import ConfigError
from experiments.lift import lift
from experiments.protocol import step_key
from experiments.rollout import rollout
from experiments.simulate import simulate
from privacy import halving


def test_schedule_ceil_halving_with_odd_sizes():
    # Karnin et al. Alg. 1: ⌈log2 K⌉ rounds, keep ⌈|S_r|/2⌉, t_r = ⌊T/(|S_r| ⌈log2 K⌉)⌋
    assert halving.schedule(5, 60) == ((5, 3, 2), (4, 6, 10))
    assert halving.schedule(7, 100) == ((7, 4, 2), (4, 8, 16))
    assert halving.schedule(8, 100) == ((8, 4, 2), (4, 8, 16))
    assert halving.schedule(2, 9) == ((2,), (4,))
    # the trap: flooring the halving (never below 2) keeps 3 of 7, then 2 of 3
    floor_sizes = [7]
    while floor_sizes[-1] > 2:
        floor_sizes.append(max(2, floor_sizes[-1] // 2))
    assert tuple(floor_sizes) != halving.schedule(7, 100)[0]


def sh_error_two_arms(mu0, mu1, horizon):
    """P(error) of SH on two arms: one round, t = ⌊T/2⌋ each; ties go to arm 0."""
    t = horizon // 2
    p0 = stats.binom.pmf(np.arange(t + 1), t, mu0)
    p1 = stats.binom.pmf(np.arange(t + 1), t, mu1)
    s0, s1 = np.meshgrid(np.arange(t + 1), np.arange(t + 1), indexing="ij")
    picks_one = s1 > s0
    wrong = ~picks_one if mu1 > mu0 else picks_one
    return float(np.sum(np.outer(p0, p1)[wrong]))


def test_exact_reference_agrees_with_the_two_arm_formula():
    assert halving.sh_error_probability([0.5, 0.6], 31) == pytest.approx(
        sh_error_two_arms(0.5, 0.6, 31), rel=1e-12
    )


def _engine_error(means, horizon, seeds):
    k = len(means)
    env = linear_bai("custom", features=np.eye(k).tolist(), theta=list(means))
    r = simulate(env, env.default_params(), halving.SequentialHalving(), horizon, seeds)
    return float(r.final["error"].mean())


def _check_binomial(p_hat, p, n):
    """|p̂ - p| <= 4.5 sd of a Binomial(n, p)/n: fails a correct sampler w.p. < 1e-5."""
    assert abs(p_hat - p) <= 4.5 * math.sqrt(p * (1 - p) / n), (p_hat, p)


def test_sh_error_probability_exact_vs_engine_three_arms():
    """K = 3 (odd: 3 -> 2 -> 1), T = 40: t = (6, 10); exact sum over the binomial laws vs the
    engine's Monte Carlo over 20000 seeds (Bernoulli rewards, exact Binomial(n, μ) pulls)."""
    means, horizon = (0.5, 0.6, 0.55), 40
    _check_binomial(
        _engine_error(means, horizon, 20000), halving.sh_error_probability(means, horizon), 20000
    )


def test_sh_on_a_k_armed_bandit_pulls_one_arm_per_step_with_the_same_law():
    """On `bandits.envs.BernoulliBandit` (no `PullAll`) SH takes one `Pull` per arm and round
    (`privacy.fixed_budget.whole_phases`): K = 3, T = 40, sizes 3, 2 with t = 6, 10, so 5 arm
    steps and one for the 2 unused rounds; the error rate of the recommendation over 20000
    runs is the exact probability (`_check_binomial`)."""
    from bandits.envs import BernoulliBandit, Pull

    means, horizon, seeds = (0.5, 0.6, 0.55), 40, 20000
    env, agent = BernoulliBandit(means), halving.SequentialHalving()
    params = env.default_params()
    spec = env.spec(params, horizon)
    assert agent.init(jax.random.key(0), spec).plan.per_arm and agent.max_steps(spec) == 7

    def one(key):
        r = rollout(env, params, agent, key, 7, emit=lambda tr: tr.action, horizon=horizon)
        return r.agent_state.choice, r.emitted, r.illegal

    keys = jax.random.split(jax.random.key(9), seeds)
    choice, emitted, illegal = jax.jit(jax.vmap(one))(keys)
    assert isinstance(emitted, Pull) and not np.any(np.asarray(illegal))
    np.testing.assert_array_equal(np.asarray(emitted.n)[0, :6], [6, 6, 6, 10, 10, 2])
    err = float(np.mean(np.asarray(choice) != 1))
    _check_binomial(err, halving.sh_error_probability(means, horizon), seeds)


@pytest.mark.slow
@pytest.mark.parametrize(
    "means, horizon", [((0.5, 0.6), 30), ((0.4, 0.6, 0.55, 0.5), 40), ((0.3, 0.5, 0.7), 25)]
)
def test_sh_error_probability_exact_vs_engine_more(means, horizon):
    _check_binomial(
        _engine_error(means, horizon, 50000), halving.sh_error_probability(means, horizon), 50000
    )


# --------------------------------------------------------------------------- DP-SH on a table
def reference_dp_sh(table, epsilon, unit_noise):
    """Plain NumPy DP-SH: (pulls [(arm, n)], releases {(r, arm): value}, recommendation)."""
    k, horizon = table.shape
    rounds = max(1, math.ceil(math.log2(k)))
    active, t, pulls, releases = list(range(k)), 0, [], {}
    for r in range(rounds):
        n = horizon // (len(active) * rounds)
        z = unit_noise(r)
        score = {}
        for i in active:
            score[i] = table[i, t : t + n].sum() / n + z[i] / (epsilon * n)
            releases[(r, i)] = score[i]
            pulls.append((i, n))
            t += n
        keep = math.ceil(len(active) / 2)
        active = sorted(sorted(active, key=lambda i: (-score[i], i))[:keep])
    if t < horizon:
        pulls.append((0, horizon - t))
    return pulls, releases, active[0]


@functools.cache
def _program(env, horizon, steps=40):
    lifted = lift(halving.DPSequentialHalving(epsilon=1.0))

    def run(params, numbers, key):
        agent = lifted.rebuild(numbers)
        return rollout(env, params, agent, key, steps, emit=lambda tr: tr.action, horizon=horizon)

    return jax.jit(run)


@pytest.mark.parametrize("epsilon", [0.5, math.inf])
def test_dp_sh_matches_numpy_reference_on_the_same_table_and_noise(epsilon):
    k, horizon = 5, 62  # sizes 5, 3, 2; t = 4, 6, 10: 58 rounds; 4 spent at the end
    env = TableLinearBAI(tuple(map(tuple, np.eye(k))), (0.3, 0.5, 0.45, 0.6, 0.2), "custom", True)
    prog = _program(env, horizon)
    for seed in range(4):
        rng = np.random.default_rng(seed)
        table = (rng.random((k, horizon)) < np.array([0.3, 0.5, 0.45, 0.6, 0.2])[:, None]) * 1.0
        run_key = jax.random.key(seed)
        r = prog(env.table_params(table), (jnp.asarray(epsilon),), run_key)
        pulls = per_arm_pulls(r.emitted, horizon)
        agent_key = jax.random.split(jax.random.split(run_key)[0])[1]  # experiments.rollout

        def unit(rr, ak=agent_key):
            return np.asarray(jax.random.laplace(step_key(ak, rr), (k,), jnp.float32), float)

        r_pulls, r_rel, r_rec = reference_dp_sh(table, epsilon, unit)
        assert pulls == r_pulls and int(r.illegal) == 0
        assert [n for _, n in r_pulls] == [4] * 5 + [6] * 3 + [10] * 2 + [4]
        assert int(r.agent_state.choice) == r_rec
        for (rr, i), v in r_rel.items():
            assert float(r.agent_state.releases[rr, i]) == pytest.approx(v, abs=1e-5)
        assert np.asarray(r.env_state.reads).max() == 1  # each table entry read at most once


def test_bad_input_one_line():
    env = linear_bai("custom", features=np.eye(5).tolist(), theta=[0.1, 0.2, 0.3, 0.4, 0.5])
    spec = env.spec(env.default_params(), 14)  # K ⌈log2 K⌉ = 15 rounds needed
    with pytest.raises(ConfigError, match=r"^horizon T = 14 is smaller than the 15 rounds"):
        halving.SequentialHalving().init(jax.random.key(0), spec)
    with pytest.raises(ConfigError, match=r"^epsilon:"):
        halving.DPSequentialHalving(epsilon=-0.5)


# --------------------------------------------------------------------------- privacy audit
# K = 3, T = 12: rounds of sizes 3 and 2, t_0 = ⌊12/6⌋ = 2 and t_1 = ⌊12/4⌋ = 3 pulls per arm
# (all 12 rounds used); arm 0 is pulled first (rounds 0-1), so one entry of its window moves
# round 0's release of arm 0 by 1/2 against Laplace(1/(2ε)) noise: tight at ε.
AUDIT_T = 12
AUDIT_BATCH = 2000  # runs per call of the compiled program (one shape: one compilation)


@functools.cache
def _audit_program():
    env = TableLinearBAI(((1.0, 0.0), (0.0, 1.0), (0.5, 0.5)), (0.5, 0.4))
    lifted = lift(halving.DPSequentialHalving(epsilon=1.0))
    steps = halving.DPSequentialHalving().max_steps(env.spec(None, AUDIT_T))

    @jax.jit
    def runs(params, numbers, keys):
        agent = lifted.rebuild(numbers)

        def one(k):
            st = rollout(env, params, agent, k, steps, horizon=AUDIT_T).agent_state
            return jnp.concatenate([st.releases[0], st.choice[None]])

        return jax.vmap(one)(keys)

    return env, lifted, runs


def dpsh_mechanism(epsilon):
    """The auditor's M(table, n, rng): n independent runs of DP-SH on the table; the output is
    the transcript (round 0's released noisy means) and the recommendation; ε is an argument of
    one compiled program (lifted), so ε = inf is the same program without noise."""
    env, lifted, prog = _audit_program()
    numbers = (jnp.asarray(epsilon),)
    assert lifted.numbers == (1.0,)

    return table_mechanism(env, lambda params, keys: prog(params, numbers, keys), AUDIT_BATCH)


def test_audit_dp_sh_no_violation_and_noise_removed_caught():
    """Claimed ε = 1, neighbours differing in one entry of arm 0's round-0 window (and, as a
    stress test, in one whole round). Correct DP-SH: not flagged (a correct mechanism is
    flagged with probability <= α = 0.05; fixed seed). Noise removed (ε = inf): flagged."""
    from privacy.audit import audit

    assert halving.schedule(3, AUDIT_T) == ((3, 2), (2, 3))
    x0 = np.zeros((3, AUDIT_T))
    entry, column = x0.copy(), x0.copy()
    entry[0, 0] = 1.0
    column[:, 0] = 1.0
    pairs = [(x0, entry), (x0, column)]
    ok = audit(dpsh_mechanism(1.0), pairs, 1.0, 2000, 10_000, seed=1)
    assert not ok.flagged, ok
    none = audit(dpsh_mechanism(math.inf), pairs, 1.0, 500, 2000, seed=2)
    assert none.flagged and none.epsilon_lb > 5, none
