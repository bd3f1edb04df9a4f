"""The classic bandit agents against independent NumPy implementations and hyper-parameter
validation (the Gamma/Beta sampler of Thompson sampling is tested in tests/test_gamma.py).

Deterministic agents (UCB1, KL-UCB, MOSS, ETC) are driven by one reward table r[t, a] (the reward
of arm a if pulled in round t+1) in JAX and in a plain NumPy loop, and must pick identical arms in
every round. Both run in float64 (JAX under `jax.enable_x64`), and the NumPy reference checks that
the instance is well posed: in every round the best index beats every arm with different
statistics by more than 1e-9, far above both implementations' rounding (~1e-15) and KL-UCB's
Newton error at iters=10 (< 1e-14), so an arm choice can only differ through a real bug. Arms with
identical (count, sum) get identical indices in both implementations, and both break exact ties
towards the lowest index.

Randomised agents (Thompson sampling, epsilon-greedy, Gaussian TS) run through the engine
(`experiments.simulate.simulate`) and through a NumPy simulation with its own random numbers;
their mean final pseudo-regrets over N = 200 seeds each must agree within 3 standard errors of the
difference (a two-sided z-test at level 0.27% per comparison; the seeds are fixed, so the test is
deterministic).
"""

from __future__ import annotations

import logging

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import optimize

from bandits.agents import (
    KLUCB,
    MOSS,
    UCB1,
    DecayingEpsilonGreedy,
    EpsilonGreedy,
    ExploreThenCommit,
    GaussianThompsonSampling,
    ThompsonSampling,
)
from bandits.agents.stats import write_arm
from bandits.agents.thompson import bernoulli_trials
from bandits.envs import BanditSpec, Pull, bernoulli_bandit, gaussian_bandit
from experiments.config import ConfigError
from experiments.simulate import simulate

MEANS = np.array([0.45, 0.5, 0.6, 0.3, 0.55])
MARGIN = 1e-9


# --------------------------------------------------------------------------- drivers
def reward_table(means: np.ndarray, horizon: int, seed: int) -> np.ndarray:
    """Bernoulli rewards r[t, a] = 1[u_{t,a} < mu_a], float64."""
    rng = np.random.default_rng(seed)
    return (rng.random((horizon, means.size)) < means).astype(np.float64)


def run_jax(agent, table: np.ndarray) -> np.ndarray:
    """Arms the agent picks against `table` (float64 under x64), one round per step."""
    horizon, k = table.shape
    spec = BanditSpec(k, horizon)

    @jax.jit
    def run(table):
        def step(state, xs):
            t, rewards = xs
            arm = agent.act({}, state, t)
            return agent.update(state, t, arm, rewards[arm]), arm

        state = agent.init(jax.random.key(0), spec)
        return jax.lax.scan(step, state, (jnp.arange(horizon), table))[1]

    with jax.enable_x64(True):
        return np.asarray(run(jnp.asarray(table)))


def run_numpy(index_fn, table: np.ndarray, first: str = "unpulled") -> np.ndarray:
    """A plain loop: play unpulled arms first (lowest first), then argmax index_fn(...)."""
    horizon, k = table.shape
    counts, sums = np.zeros(k, np.int64), np.zeros(k)
    arms = np.empty(horizon, np.int64)
    for t in range(horizon):
        if first == "unpulled" and (counts == 0).any():
            arm = int(np.argmax(counts == 0))
        else:
            arm = pick(index_fn(t, counts, sums), counts, sums)
        arms[t] = arm
        counts[arm] += 1
        sums[arm] += table[t, arm]
    return arms


def pick(index: np.ndarray, counts: np.ndarray, sums: np.ndarray) -> int:
    """Argmax (lowest index on exact ties), checking that no other arm is within MARGIN.

    Exempt are arms with the same statistics, and KL-UCB indices equal to exactly 1 (arms with
    mean 1, whose index is 1 by definition in both implementations).
    """
    arm = int(np.argmax(index))
    other = ((counts != counts[arm]) | (sums != sums[arm])) & (index != 1.0)
    if other.any():
        gap = index[arm] - index[other].max()
        assert gap > MARGIN, f"ill-posed instance: near tie {gap:.2e}"
    return arm


# --------------------------------------------------------------------------- NumPy references
def ucb1_ref(c: float):
    """Auer et al. (2002), Fig. 1: xbar + sqrt(c ln t / n), t = rounds played."""
    return lambda t, n, s: s / n + np.sqrt(c * np.log(t) / n)


def moss_ref(horizon: int):
    """Audibert & Bubeck (2009): xbar + sqrt(max(ln(T/(K n)), 0) / n)."""
    return lambda t, n, s: s / n + np.sqrt(np.maximum(np.log(horizon / (n.size * n)), 0) / n)


def kl_ucb_ref(c: float):
    """Garivier & Cappé (2011): max{q : n kl(xbar, q) <= ln t + c ln ln t}, by scipy's brentq."""

    def kl(p, q):
        with np.errstate(divide="ignore", invalid="ignore"):
            a = p * np.log(p / q) if p > 0 else 0.0
            b = (1 - p) * np.log((1 - p) / (1 - q)) if p < 1 else 0.0
        return a + b

    def one(p, n, thr):
        g = lambda q: n * kl(p, q) - thr
        top = np.nextafter(1.0, 0.0)
        if p >= 1 or g(top) <= 0:
            return 1.0
        return optimize.brentq(g, p, top, xtol=1e-15, rtol=1e-15)

    def index(t, n, s):
        thr = np.log(t) + c * np.log(max(np.log(t), 1.0))
        return np.array([one(si / ni, ni, thr) for ni, si in zip(n, s, strict=True)])

    return index


def etc_ref(table: np.ndarray, m: int, priority: np.ndarray) -> np.ndarray:
    """Lattimore & Szepesvári (2020), Alg. 1 of ch. 6: arm t mod K for t < mK, then argmax
    (ties to the highest `priority`)."""
    horizon, k = table.shape
    arms = np.empty(horizon, np.int64)
    sums = np.zeros(k)
    committed = -1
    for t in range(horizon):
        arm = t % k if t < m * k else committed
        arms[t] = arm
        sums[arm] += table[t, arm]
        if t == m * k - 1:
            means = sums / m
            committed = int(np.argmax(np.where(means == means.max(), priority, -1.0)))
    return arms


# --------------------------------------------------------------------------- deterministic
@pytest.mark.parametrize("seed", [0, 1])
def test_ucb1_matches_numpy(seed):
    table = reward_table(MEANS, 3000, seed)
    np.testing.assert_array_equal(run_jax(UCB1(), table), run_numpy(ucb1_ref(2.0), table))


def test_ucb1_other_c_matches_numpy():
    table = reward_table(MEANS, 2000, 5)
    np.testing.assert_array_equal(run_jax(UCB1(c=0.5), table), run_numpy(ucb1_ref(0.5), table))


@pytest.mark.parametrize(("c", "seed"), [(0.0, 0), (3.0, 1)])
def test_kl_ucb_matches_numpy(c, seed):
    table = reward_table(MEANS, 1500, seed)
    np.testing.assert_array_equal(
        run_jax(KLUCB(c=c, iters=10), table), run_numpy(kl_ucb_ref(c), table)
    )


@pytest.mark.parametrize("seed", [0, 1])
def test_moss_matches_numpy(seed):
    table = reward_table(MEANS, 3000, seed)
    np.testing.assert_array_equal(run_jax(MOSS(), table), run_numpy(moss_ref(3000), table))


@pytest.mark.parametrize(("m", "seed"), [(1, 0), (7, 1), (40, 2), (700, 3)])
def test_etc_matches_numpy(m, seed):
    table = reward_table(MEANS, 3000, seed)  # m = 700: exploration outlasts the horizon
    agent = ExploreThenCommit(m=m)
    with jax.enable_x64(True):  # run_jax's precision: the same priorities
        priority = np.asarray(agent.init(jax.random.key(0), BanditSpec(len(MEANS), 3000)).priority)
    np.testing.assert_array_equal(run_jax(agent, table), etc_ref(table, m, priority))


def test_etc_breaks_ties_at_random():
    """Exploration ending in an exact tie (two arms, identical rewards) commits to each arm
    about half the time over 400 run keys: 400 Bernoulli(1/2) have sd 10, so [160, 240] is a
    4-sd band (a lowest-index rule would give 400 to arm 0)."""
    agent = ExploreThenCommit(m=3)
    spec = BanditSpec(2, 10)

    @jax.jit
    @jax.vmap
    def committed(key):
        s = agent.init(key, spec)
        for t in range(6):
            arm = agent.act({}, s, jnp.int32(t))  # round robin: 0, 1, 0, 1, ...
            s = agent.update(s, jnp.int32(t), arm, jnp.float32((t // 2) % 2))  # 0, 1, 0 each
        return s.committed

    arms = np.asarray(committed(jax.random.split(jax.random.key(1), 400)))
    assert set(arms.tolist()) <= {0, 1}
    assert 160 <= int((arms == 1).sum()) <= 240


def test_kl_ucb_index_accuracy_float32():
    """The float32 default (iters=6) is within 2e-7 of brentq's float64 root on a wide grid."""
    from bandits.agents.kl_ucb import kl_ucb_index

    ref = kl_ucb_ref(0.0)
    rng = np.random.default_rng(3)
    p = np.r_[0.0, 1.0, 0.5, 0.999, rng.random(40)]
    for n, t in [(1, 2), (3, 10), (50, 1e4), (1e4, 1e4), (1e6, 1e7)]:
        sums = p * n
        counts = np.full(p.size, n)
        want = ref(t, counts, sums)
        got = jax.jit(kl_ucb_index, static_argnums=3)(
            jnp.asarray(p, jnp.float32),
            jnp.asarray(counts, jnp.int32),
            jnp.float32(np.log(t)),
            6,
        )
        # float32 resolution near 1 is 6e-8; the measured worst case is 1e-7 (kl_ucb.py).
        np.testing.assert_allclose(np.asarray(got, np.float64), want, rtol=0, atol=2e-7)


def test_kl_ucb_default_iterations_follow_the_float_type():
    """iters=None: 6 Newton steps for float32 statistics, 8 under x64, where 6 leave an error of
    2.3e-9 (xbar = 0.9999, N = 1e7, t = 2, the root to 50 digits by mpmath); the default agent's
    index is within 1e-15 of that root. An explicit count is kept, and bad counts are refused."""
    import mpmath

    from bandits.agents.stats import arm_stats

    p, n, t = 0.9999, 10**7, 2
    with mpmath.workdps(50):
        mp_p = mpmath.mpf(p)  # the float64 mean, exactly

        def g(q):
            return n * (mp_p * mpmath.log(mp_p / q) + (1 - mp_p) * mpmath.log((1 - mp_p) / (1 - q)))

        root = float(mpmath.findroot(lambda q: g(q) - mpmath.log(t), (mp_p, 1 - mpmath.mpf(1e-12)),
                                     solver="bisect", tol=mpmath.mpf(10) ** -40))  # fmt: skip
    assert KLUCB().iters is None
    assert KLUCB().newton_steps(jnp.float32) == 6 and KLUCB().newton_steps(jnp.float64) == 8
    assert KLUCB(iters=3).newton_steps(jnp.float64) == 3
    with jax.enable_x64(True):
        stats = arm_stats(2)._replace(
            counts=jnp.asarray([n, n], jnp.int64), means=jnp.asarray([p, 0.5], jnp.float64)
        )
        default = float(jax.jit(KLUCB().index)(stats, jnp.int64(t))[0])
        six = float(jax.jit(KLUCB(iters=6).index)(stats, jnp.int64(t))[0])
    assert abs(default - root) < 1e-15, default - root
    assert abs(six - root) > 1e-10  # the old default, float32's count, is not enough here


def test_pull_actions_update_like_repeated_pulls():
    """A Pull(arm, n) with a reward sum updates the statistics like n single pulls."""
    spec = BanditSpec(3, 100)
    for agent in (UCB1(), KLUCB(), MOSS(), ExploreThenCommit(m=2), EpsilonGreedy()):
        s = agent.init(jax.random.key(0), spec)
        update = jax.jit(agent.update)  # one program per action type (speed only)
        pulled = update(s, jnp.int32(0), Pull(jnp.int32(1), jnp.int32(4)), jnp.float32(3.0))
        single = s
        for t, r in enumerate([1.0, 1.0, 0.0, 1.0]):
            single = update(single, jnp.int32(t), jnp.int32(1), jnp.float32(r))
        for a, b in zip(jax.tree.leaves(pulled), jax.tree.leaves(single), strict=True):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6)


def test_moss_refuses_rewards_outside_the_unit_interval():
    """MOSS's bonus is Audibert & Bubeck's for [0, 1] rewards: a Gaussian env is refused in one
    line (as KL-UCB and Beta-Bernoulli TS are); [0, 1] and an unstated range are accepted."""
    key = jax.random.key(0)
    gauss = gaussian_bandit(K=3)
    with pytest.raises(ConfigError, match=r"^needs rewards in \[0, 1\] \(MOSS") as err:
        MOSS().init(key, gauss.spec(gauss.default_params(), 100))
    assert "\n" not in str(err.value) and "[-inf, inf]" in str(err.value)
    bern = bernoulli_bandit(K=3)
    MOSS().init(key, bern.spec(bern.default_params(), 100))
    MOSS().init(key, BanditSpec(3, 100))


def test_ucb1_with_the_papers_c_on_unbounded_rewards_warns_once(caplog, monkeypatch):
    """UCB1's c = 2 is for [0, 1] rewards: on a Gaussian env it still runs (a scaled c is
    legitimate) but logs one warning pointing to c = 8 sigma^2, once per reward range; a chosen
    c, [0, 1] rewards or an unstated range log nothing; [0, 10] rewards get c = 2 (b - a)^2."""
    from bandits.agents import ucb

    monkeypatch.setattr(ucb, "_warned", set())
    key = jax.random.key(0)
    gauss, bern = gaussian_bandit(K=3), bernoulli_bandit(K=3)
    specs = [e.spec(e.default_params(), 100) for e in (gauss, bern)]
    with caplog.at_level(logging.WARNING, logger=ucb.__name__):
        for agent, spec in [
            (UCB1(), specs[0]),
            (UCB1(), specs[0]),
            (UCB1(c=8.0), specs[0]),
            (UCB1(), specs[1]),
            (UCB1(), BanditSpec(3, 100)),
            (UCB1(), BanditSpec(3, 100, (0.0, 10.0))),
        ]:
            agent.init(key, spec)
    messages = [r.getMessage() for r in caplog.records if r.name == ucb.__name__]
    assert len(messages) == 2, messages
    assert "[-inf, inf]" in messages[0] and "agents.ucb1.c = 8 sigma^2" in messages[0]
    assert "[0, 10]" in messages[1] and "= 200" in messages[1]
    assert all("\n" not in m for m in messages)


# --------------------------------------------------------------------------- randomised
N_SEEDS = 200
HORIZON = 1000


def numpy_regret(choose, means, horizon, seeds, seed, gaussian=False):
    """Final pseudo-regret per seed of a policy vectorised over seeds (rows)."""
    rng = np.random.default_rng(seed)
    k = means.size
    rows = np.arange(seeds)
    counts, sums = np.zeros((seeds, k)), np.zeros((seeds, k))
    regret = np.zeros(seeds)
    gaps = means.max() - means
    for t in range(horizon):
        arm = choose(rng, t, counts, sums)
        if gaussian:
            reward = means[arm] + rng.standard_normal(seeds)
        else:
            reward = (rng.random(seeds) < means[arm]).astype(float)
        counts[rows, arm] += 1
        sums[rows, arm] += reward
        regret += gaps[arm]
    return regret


def ts_choose(rng, t, counts, sums):
    """Agrawal & Goyal (2012), Alg. 1: {0,1} rewards, so successes S = reward sums."""
    return np.argmax(rng.beta(1 + sums, 1 + counts - sums), axis=1)


def greedy_choose(epsilon_fn):
    def choose(rng, t, counts, sums):
        k = counts.shape[1]
        with np.errstate(divide="ignore", invalid="ignore"):
            means = np.where(counts > 0, sums / counts, np.inf)
        greedy = np.argmax(means, axis=1)
        explore = rng.random(counts.shape[0]) < epsilon_fn(t + 1, k)
        return np.where(explore, rng.integers(0, k, counts.shape[0]), greedy)

    return choose


def gts_choose(rng, t, counts, sums):
    """Agrawal & Goyal (2017), Alg. 2: theta ~ N(s/(k+1), 1/(k+1))."""
    return np.argmax(
        sums / (counts + 1) + rng.standard_normal(counts.shape) / np.sqrt(counts + 1), 1
    )


def assert_same_regret(engine: np.ndarray, reference: np.ndarray) -> None:
    diff = engine.mean() - reference.mean()
    se = np.sqrt(engine.var(ddof=1) / engine.size + reference.var(ddof=1) / reference.size)
    assert abs(diff) <= 3 * se, f"engine {engine.mean():.2f} vs numpy {reference.mean():.2f}"


RANDOMISED = {
    "thompson": (ThompsonSampling(), ts_choose, False),
    "epsilon_greedy": (EpsilonGreedy(epsilon=0.1), greedy_choose(lambda n, k: 0.1), False),
    "epsilon_greedy_decaying": (
        DecayingEpsilonGreedy(c=0.5, d=0.1),
        greedy_choose(lambda n, k: min(1.0, 0.5 * k / (0.1**2 * n))),
        False,
    ),
    "gaussian_thompson": (GaussianThompsonSampling(), gts_choose, True),
}


@pytest.mark.parametrize("name", sorted(RANDOMISED))
def test_randomised_agent_matches_numpy(name):
    agent, choose, gaussian = RANDOMISED[name]
    make = gaussian_bandit if gaussian else bernoulli_bandit
    env = make(K=None, means=list(MEANS))
    sim = simulate(env, env.default_params(), agent, HORIZON, N_SEEDS, seed=11)
    ref = numpy_regret(choose, MEANS, HORIZON, N_SEEDS, seed=12, gaussian=gaussian)
    assert_same_regret(sim.final["regret"], ref)


def test_thompson_fractional_rewards_use_bernoulli_trials():
    """Alg. 2 of Agrawal & Goyal (2012): a reward r in (0,1) is a success with probability r."""
    key = jax.random.key(4)
    trials = jax.jit(jax.vmap(bernoulli_trials, in_axes=(None, 0, 0)))  # one program (speed)
    wins = trials(key, jnp.arange(20_000), jnp.full(20_000, 0.3, jnp.float32))
    # Binomial(20000, 0.3): standard error sqrt(0.21 / 20000) = 0.0032; allow 4 of them.
    assert abs(float(wins.mean()) - 0.3) < 4 * np.sqrt(0.21 / 20_000)
    binary = trials(key, jnp.arange(4), jnp.array([0.0, 1.0, 3.0, 0.0]))
    np.testing.assert_array_equal(np.asarray(binary), [0.0, 1.0, 3.0, 0.0])


# --------------------------------------------------------------------------- validation
BAD = [
    (lambda: UCB1(c=-1.0), "c"),
    (lambda: KLUCB(c=-0.5), "c"),
    (lambda: KLUCB(iters=0), "iters"),
    (lambda: KLUCB(iters=65), "iters"),
    (lambda: KLUCB(iters=2.5), "iters"),
    (lambda: ThompsonSampling(spares=-1), "spares"),
    (lambda: ThompsonSampling(spares=1.5), "spares"),
    (lambda: GaussianThompsonSampling(sigma=0.0), "sigma"),
    (lambda: EpsilonGreedy(epsilon=1.5), "epsilon"),
    (lambda: EpsilonGreedy(epsilon=float("nan")), "epsilon"),
    (lambda: DecayingEpsilonGreedy(c=0.0), "c"),
    (lambda: DecayingEpsilonGreedy(d=0.0), "d"),
    (lambda: DecayingEpsilonGreedy(d=1.5), "d"),
    (lambda: ExploreThenCommit(m=0), "m"),
    (lambda: ExploreThenCommit(m=2.5), "m"),
]


@pytest.mark.parametrize(("make", "field"), BAD)
def test_bad_hyper_parameters_raise_config_error(make, field):
    with pytest.raises(ConfigError, match=rf"^{field}: must be"):
        make()


def test_write_arm_under_vmap_is_the_one_hot_select():
    """The agents' one-entry scatter, batched over lanes as the engine runs it (jit of vmap),
    writes exactly what ``where(arange(K) == arm, value, x)`` writes, for ints and floats."""
    rng = np.random.default_rng(3)
    lanes, k = 257, 10
    arms = jnp.asarray(rng.integers(0, k, lanes), jnp.int32)
    for x, v in [
        (rng.normal(size=(lanes, k)).astype(np.float32), rng.normal(size=lanes).astype(np.float32)),
        (
            rng.integers(0, 99, (lanes, k)).astype(np.int32),
            rng.integers(0, 99, lanes).astype(np.int32),
        ),
    ]:
        got = jax.jit(jax.vmap(write_arm))(jnp.asarray(x), arms, jnp.asarray(v))
        want = np.where(np.arange(k) == np.asarray(arms)[:, None], v[:, None], x)
        np.testing.assert_array_equal(np.asarray(got), want)
