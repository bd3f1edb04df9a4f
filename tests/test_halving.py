"""Sequential Halving and DP-SH (privacy/halving.py): the exact schedule (the odd-|S_r| trap),
the exact error probability against the engine's Monte Carlo, and DP-SH against a plain NumPy
implementation on the same reward table and noise."""

import dataclasses
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
from privacy import fixed_budget as fb
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
    """P(error) of SH on two arms: one round, t = ⌊T/2⌋ each; a tie is a fair coin (the error
    is against the first maximiser, arm 0 when the means are equal)."""
    t = horizon // 2
    p0 = stats.binom.pmf(np.arange(t + 1), t, mu0)
    p1 = stats.binom.pmf(np.arange(t + 1), t, mu1)
    s0, s1 = np.meshgrid(np.arange(t + 1), np.arange(t + 1), indexing="ij")
    joint = np.outer(p0, p1)
    picks_one = np.sum(joint[s1 > s0]) + 0.5 * np.sum(joint[s1 == s0])
    return float(picks_one if mu0 >= mu1 else 1 - picks_one)


@pytest.mark.parametrize("means", [(0.5, 0.6), (0.6, 0.5), (0.5, 0.5)])
def test_exact_reference_agrees_with_the_two_arm_formula(means):
    assert halving.sh_error_probability(means, 31) == pytest.approx(
        sh_error_two_arms(*means, 31), rel=1e-12
    )


def test_exact_reference_is_neutral_between_equal_arms():
    """With random tie breaking, arms with equal means are exchangeable: m equal arms are each
    recommended with probability 1/m (error 1 - 1/m against the first), whatever the budget;
    and `kept_sets` splits a tie at the cut uniformly (by hand)."""
    assert halving.sh_error_probability([0.5, 0.5], 31) == pytest.approx(0.5, abs=1e-12)
    assert halving.sh_error_probability([0.3, 0.3, 0.3], 24) == pytest.approx(2 / 3, abs=1e-12)
    # [0.6, 0.6, 0.2]: P(arm 0) = P(arm 1) exactly, so the error is (1 + P(arm 2)) / 2 > 1/2
    assert halving.sh_error_probability([0.6, 0.6, 0.2], 24) > 0.5
    assert halving.kept_sets([3, 5, 5, 1], 2) == [((1, 2), 1.0)]
    assert halving.kept_sets([3, 5, 5, 1], 1) == [((1,), 0.5), ((2,), 0.5)]
    assert halving.kept_sets([2, 2, 7, 2], 2) == [((0, 2), 1 / 3), ((1, 2), 1 / 3), ((2, 3), 1 / 3)]


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


@pytest.mark.parametrize("means", [(0.5, 0.6, 0.55), (0.55, 0.55, 0.5)])
def test_sh_on_a_k_armed_bandit_pulls_one_arm_per_step_with_the_same_law(means):
    """On `bandits.envs.BernoulliBandit` (no `PullAll`) SH takes one `Pull` per arm and round
    (`privacy.fixed_budget.whole_phases`): K = 3, T = 40, sizes 3, 2 with t = 6, 10, so 5 arm
    steps and one for the 2 unused rounds; the error rate of the recommendation over 20000
    runs is the exact probability (`_check_binomial`). With two equal best means (this env
    allows them; `LinearBAI` refuses a tied best arm) each is recommended with the same exact
    probability, 1 - P(error against arm 0): the neutrality of the tie rule on real draws
    (the old rule, ties to the lower index, favoured arm 0)."""
    from bandits.envs import BernoulliBandit, Pull

    horizon, seeds = 40, 20000
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
    choice = np.asarray(choice)
    exact = halving.sh_error_probability(means, horizon)
    best = int(np.argmax(means))
    _check_binomial(float(np.mean(choice != best)), exact, seeds)
    if means[0] == means[1]:
        _check_binomial(float(np.mean(choice == 1)), 1 - exact, seeds)


@pytest.mark.slow
@pytest.mark.parametrize(
    "means, horizon", [((0.5, 0.6), 30), ((0.4, 0.6, 0.55, 0.5), 40), ((0.3, 0.5, 0.7), 25)]
)
def test_sh_error_probability_exact_vs_engine_more(means, horizon):
    _check_binomial(
        _engine_error(means, horizon, 50000), halving.sh_error_probability(means, horizon), 50000
    )


# --------------------------------------------------------------------------- DP-SH on a table
def reference_dp_sh(table, epsilon, unit_noise, place):
    """Plain NumPy DP-SH: (pulls [(arm, n)], releases {(r, arm): value}, recommendation).
    `place(r)` (K,): each arm's place in round r's tie-breaking order (ties: earlier place)."""
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
        pl = place(r)
        active = sorted(sorted(active, key=lambda i: (-score[i], pl[i]))[:keep])
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


def _places(agent_key, k):
    """place(r): each arm's place in round r's tie order (`fb.tie_order` of `fb.tie_key`)."""

    def place(r):
        return np.argsort(np.asarray(fb.tie_order(fb.tie_key(agent_key, r), k)))

    return place


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

        r_pulls, r_rel, r_rec = reference_dp_sh(table, epsilon, unit, _places(agent_key, k))
        assert pulls == r_pulls and int(r.illegal) == 0
        assert [n for _, n in r_pulls] == [4] * 5 + [6] * 3 + [10] * 2 + [4]
        assert int(r.agent_state.choice) == r_rec
        for (rr, i), v in r_rel.items():
            assert float(r.agent_state.releases[rr, i]) == pytest.approx(v, abs=1e-5)
        assert np.asarray(r.env_state.reads).max() == 1  # each table entry read at most once


def test_dp_sh_breaks_a_constructed_tie_at_random_and_reproducibly():
    """A constructed tie through the whole agent (ε = inf, the table decides every sum): arms 0
    and 1 always reward 1, arms 2-4 never. Round 0 keeps 3 of 5: arms 0, 1 and one of the three
    tied at 0; round 1 keeps 0 and 1; round 2 is a tie of equal sums. Over 600 seeds the final
    winner is arm 1 about half the time and each of arms 2-4 is the one kept in round 0 about a
    third of the time (each share within 4.5 binomial sd, `_check_binomial`: a correct rule
    fails one of the 4 checks w.p. < 4e-5; ties to the lower index gave arm 0 and arm 2 every
    time). The env's means are distinct (`validate` wants a unique best arm): the tie is in
    the table. Rerunning the same seeds gives the same pulls and recommendations."""
    k, horizon, seeds = 5, 62, 600
    env = TableLinearBAI(tuple(map(tuple, np.eye(k))), (0.3, 0.5, 0.45, 0.6, 0.2), "custom", True)
    table = np.zeros((k, horizon))
    table[:2] = 1.0
    params = env.table_params(table)
    prog = _program(env, horizon)
    eps = (jnp.asarray(math.inf),)

    def run(seed):
        r = prog(params, eps, jax.random.key(seed))
        pulls = per_arm_pulls(r.emitted, horizon)
        third = [a for a, n in pulls[5:8] if a >= 2]  # round 1: 3 arms, 6 pulls each
        return int(r.agent_state.choice), third[0], pulls

    runs = [run(seed) for seed in range(seeds)]
    choice = np.array([c for c, _, _ in runs])
    third = np.array([t for _, t, _ in runs])
    assert set(choice) == {0, 1} and set(third) == {2, 3, 4}
    _check_binomial(float(np.mean(choice == 1)), 0.5, seeds)
    for arm in (2, 3, 4):
        _check_binomial(float(np.mean(third == arm)), 1 / 3, seeds)
    assert [run(seed) for seed in range(20)] == runs[:20]  # fixed seeds: the same results


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


# Broken controls: the real DP-SH code with one bug patched in, audited on the pairs and sample
# sizes of the test above (n_select = 2000, n_test = 10 000, seed 1: correct DP-SH's ε_lb there
# is 0.93 < 1; 0.82-0.93 over seeds 1-10). A correct ε-DP mechanism is flagged with probability
# <= α = 0.05 whatever the seed (`privacy.audit.audit`), so the seed is fixed only for
# determinism; a flag of a broken one is a 1 - α confidence proof of the bug. Each broken
# agent is a subclass of its own (no new code in it but the bug), so the phase-end branch cached
# per agent class (`experiments.batched_cond.cond_any`, via `fb.where_some`) is traced afresh
# under the patch and never shared with the correct agent's; the program is compiled anew
# (`broken_sh_mechanism`), so the patch is in force when it is traced.
def audit_pairs():
    x0 = np.zeros((3, AUDIT_T))
    entry, column = x0.copy(), x0.copy()
    entry[0, 0] = 1.0
    column[:, 0] = 1.0
    return [(x0, entry), (x0, column)]


def broken_sh_mechanism(agent):
    """As `dpsh_mechanism` (round 0's releases and the recommendation) for a fixed, unlifted
    agent, in a newly jitted program."""
    env = TableLinearBAI(((1.0, 0.0), (0.0, 1.0), (0.5, 0.5)), (0.5, 0.4))
    steps = agent.max_steps(env.spec(None, AUDIT_T))

    @jax.jit
    def runs(params, keys):
        def one(k):
            st = rollout(env, params, agent, k, steps, horizon=AUDIT_T).agent_state
            return jnp.concatenate([st.releases[0], st.choice[None]])

        return jax.vmap(one)(keys)

    return table_mechanism(env, runs, AUDIT_BATCH)


@dataclasses.dataclass(frozen=True)
class _HalfNoiseSH(halving.DPSequentialHalving):
    """DP-SH whose releases get half the noise (`fb.noisy_means` patched in the test)."""


@dataclasses.dataclass(frozen=True)
class _ReuseSH(halving.DPSequentialHalving):
    """BROKEN: round r's reward sums are carried into round r + 1 (the real `end_phase`, then its
    reset of the phase sums undone), so a reward enters two releases (up to 2ε; claimed ε)."""

    def end_phase(self, state):
        new = super().end_phase(state)
        return new._replace(stats=new.stats._replace(sums=new.stats.sums + state.stats.sums))


def test_audit_dp_sh_noise_halved_caught(monkeypatch):
    """`fb.noisy_means` patched to draw Laplace(1/(2 ε t_r)) (half the scale) while DP-SH still
    claims ε = 1 (really 2-DP): flagged. Measured (seed 1): ε_lb 1.87 against the claim 1
    (correct DP-SH: 0.93); seeds 1-10 all flagged, ε_lb 1.77-1.91."""
    from privacy.audit import audit

    real = fb.noisy_means

    def half_noise(sums, counts, epsilon, key, noise="research", **kw):
        return real(sums, counts, 2 * epsilon, key, noise, **kw)

    monkeypatch.setattr(fb, "noisy_means", half_noise)
    mechanism = broken_sh_mechanism(_HalfNoiseSH(epsilon=1.0))
    bad = audit(mechanism, audit_pairs(), 1.0, 2000, 10_000, seed=1)
    assert bad.flagged, bad


def test_audit_dp_sh_reward_reuse_caught():
    """Round 0's sums carried into round 1 (each reward in two releases) under the claim ε = 1:
    flagged, through the recommendation (round 1's releases decide it) jointly with round 0's
    release. Measured (seed 1): ε_lb 1.30 against the claim 1 (correct DP-SH: 0.93); seeds
    1-10 all flagged, ε_lb 1.17-1.30 (correct DP-SH over the same seeds: 0.82-0.93, none
    flagged)."""
    from privacy.audit import audit

    mechanism = broken_sh_mechanism(_ReuseSH(epsilon=1.0))
    bad = audit(mechanism, audit_pairs(), 1.0, 2000, 10_000, seed=1)
    assert bad.flagged, bad
