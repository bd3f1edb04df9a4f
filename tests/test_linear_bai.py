"""The fixed-budget linear BAI env and the shared release machinery (privacy.fixed_budget)."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from bandits.envs import Pull
from bandits.linear_bai import (
    CANDIDATES,
    INVERSION_TERMS,
    PullAll,
    TableLinearBAI,
    binomial,
    instance_arrays,
    linear_bai,
)
from experiments.config import ConfigError
from privacy import fixed_budget as fb


# --------------------------------------------------------------------------- instances
def test_soare_instance_means():
    a, _, mu = instance_arrays(linear_bai("soare", omega=0.5))
    assert a.shape == (5, 4)
    np.testing.assert_allclose(mu, [0.9, 0, 0, 0, 0.9 * math.cos(0.5)], atol=1e-15)


def test_od_linbai_instance_is_lifted_section_5_1():
    a, _, mu = instance_arrays(linear_bai("od_linbai", K=6, phi_sd=0.0))
    # lifted: features (cos, sin, 1), θ' = (1/2, 0, 1/2): μ = (1 + cos angle)/2
    angles = np.array([0, *[np.pi / 4] * 4, 3 * np.pi / 4])
    np.testing.assert_allclose(mu, (1 + np.cos(angles)) / 2, atol=1e-12)
    np.testing.assert_allclose(a[:, 2], 1.0)


def test_sphere_instance_best_is_closest_pair_member():
    a, _, mu = instance_arrays(linear_bai("sphere", K=12, d=5, alpha=0.2, instance_seed=3))
    x = a[:, :5]
    cos = x @ x.T - 2 * np.eye(12)
    i, j = np.unravel_index(np.argmax(cos), cos.shape)
    assert np.argmax(mu) == i and np.sort(mu)[-2] == pytest.approx(mu[j])
    assert mu.min() >= 0 and mu.max() <= 1


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"features": [[1.0, 0.0]], "theta": [0.5, 0.0]}, "env.K"),
        ({"features": [[1.0, 0.0], [2.0, 0.0]], "theta": [0.4, 0.0]}, "env.features"),  # rank 1
        ({"features": [[1.0, 0.0], [0.0, float("nan")]], "theta": [0.5, 0.2]}, "env.features"),
        ({"features": [[1.0, 0.0], [0.0, 1.0]], "theta": [1.5, 0.2]}, "env.theta"),
        ({"features": [[1.0, 0.0], [0.0, 1.0]], "theta": [0.5]}, "env.theta"),
        ({"features": [[1.0, 0.0], [0.0, 1.0]], "theta": [0.5, 0.5]}, "env.theta"),  # tie
    ],
)
def test_bad_input_is_one_line_naming_the_field(kwargs, field):
    with pytest.raises(ConfigError) as e:
        linear_bai("custom", **kwargs)
    assert str(e.value).startswith(field + ":") and "\n" not in str(e.value)


def test_bad_instance_fields():
    with pytest.raises(ConfigError, match=r"^env.instance:"):
        linear_bai("nope")
    with pytest.raises(ConfigError, match=r"^env.K:"):
        linear_bai("sphere", K=1)


# --------------------------------------------------------------------------- the env
def test_spec_is_static_and_hashable():
    env = linear_bai("soare")
    spec = env.spec(env.default_params(), 100)
    assert spec.horizon == 100 and spec.num_arms == 5 and hash(spec) == hash(env.spec(None, 100))
    assert not spec.features.flags.writeable
    np.testing.assert_array_equal(spec.features, instance_arrays(env)[0])


def test_pull_reward_is_binomial():
    """n pulls in one step: Binomial(n, μ). 4000 draws; the chi-square goodness of fit at the
    0.1% level fails a correct sampler with probability 0.001 (fixed key: deterministic)."""
    env = linear_bai("soare", omega=1.2)
    params = env.default_params()
    mu = float(params.means[4])
    n = 12
    keys = jax.random.split(jax.random.key(1), 4000)
    u = jax.random.uniform(jax.random.key(2), (4000, CANDIDATES, 2))

    def one(k, u):
        _, r, m = env.step(
            {"key": k, "u": u}, env.init(k, params), Pull(jnp.int32(4), jnp.int32(n)), params
        )
        return r, m["rounds"]

    r, rounds = jax.jit(jax.vmap(one))(keys, u)
    assert np.all(np.asarray(rounds) == n)
    counts = np.bincount(np.asarray(r).astype(int), minlength=n + 1)
    expected = 4000 * stats.binom.pmf(np.arange(n + 1), n, mu)
    keep = expected >= 5
    obs = np.append(counts[keep], counts[~keep].sum())
    exp = np.append(expected[keep], expected[~keep].sum())
    assert stats.chisquare(obs, exp * obs.sum() / exp.sum()).pvalue > 1e-3


# --------------------------------------------------------------------------- Binomial sums
# (n, p): Bernoulli (n = 1); inversion (n q < 10) at small n, near the switch and at n = 1e5
# with p near 0 and near 1; BTRS (n q >= 10) at the switch, at small n, flipped (p > 1/2), at
# the benchmark's n and at n = 1e5 with p = 1/2 and p near 0 and 1.
BINOMIAL_CASES = [
    (1, 0.3),
    (1, 0.9),
    (5, 0.02),
    (30, 0.1),
    (1000, 0.009),
    (100_000, 2e-5),
    (100_000, 1 - 3e-5),
    (20, 0.5),
    (40, 0.3),
    (200, 0.9),
    (2272, 0.55),
    (100_000, 0.5),
    (100_000, 3e-4),
    (100_000, 0.9995),
]
BINOMIAL_REPS = 20_000


def _binomial_chi2(x: np.ndarray, n: int, p: float, bins: int = 30) -> float:
    """Chi-square p-value of samples against Binomial(n, p), bins at the exact CDF's quantiles
    (scipy's incomplete beta, no approximation), pooled to expected counts >= 5."""
    dist = stats.binom(n, p)
    edges = np.unique(dist.ppf(np.linspace(0, 1, bins + 1)[1:-1]))  # integer upper edges
    F = np.concatenate([[0.0], dist.cdf(edges), [1.0]])
    expected = np.diff(F) * x.size
    observed = np.bincount(np.searchsorted(edges, x, side="left"), minlength=edges.size + 1)
    obs, exp = [], []
    o_acc = e_acc = 0.0
    for o, e in zip(observed, expected, strict=True):
        o_acc, e_acc = o_acc + o, e_acc + e
        if e_acc >= 5:
            obs.append(o_acc)
            exp.append(e_acc)
            o_acc = e_acc = 0.0
    obs[-1] += o_acc
    exp[-1] += e_acc
    if len(obs) < 2:  # all mass in one bin (n = 1 with p far from 1/2 is still two bins)
        return 1.0
    return float(stats.chisquare(obs, np.asarray(exp) * sum(obs) / sum(exp)).pvalue)


def _check_binomial(x: np.ndarray, n: int, p: float) -> None:
    assert np.all(x == np.round(x)) and x.min() >= 0 and x.max() <= n, (n, p)
    sd = math.sqrt(n * p * (1 - p) / x.size)
    assert abs(x.mean() - n * p) < 4.5 * sd, (n, p, x.mean())
    assert _binomial_chi2(x, n, p) > 1e-3, (n, p)


def test_binomial_sampler_matches_scipy_binom_in_one_mixed_batch():
    """The env's Binomial(n, p) sampler in float32 (the engine's default), all cases in one
    vmapped batch (lanes of every branch side by side, as the engine's seeds are), 20000 draws
    per case against scipy.stats.binom: mean within 4.5 standard errors and a chi-square over
    <= 30 bins at the exact CDF's quantiles with p-value > 1e-3 (a correct sampler fails one
    case with probability 1e-3, the 14 cases together with ~1.4%; fixed keys, so a pass is
    deterministic). Exactness "up to floating point": inversion rounds F in float32 (relative
    error ~1e-6 per term, far below what 20000 draws resolve, ~1e-2), BTRS's acceptance test
    rounds log f (absolute error ~1e-4 at n = 1e5)."""
    ns = np.repeat([c[0] for c in BINOMIAL_CASES], BINOMIAL_REPS)
    ps = np.repeat([c[1] for c in BINOMIAL_CASES], BINOMIAL_REPS)
    ku, kk = jax.random.split(jax.random.key(12))
    u = jax.random.uniform(ku, (ns.size, CANDIDATES, 2))
    keys = jax.random.split(kk, ns.size)
    x = jax.jit(jax.vmap(binomial))(
        u, keys, jnp.asarray(ns, jnp.int32), jnp.asarray(ps, jnp.float32)
    )
    assert x.dtype == jnp.float32
    x = np.asarray(x, np.float64).reshape(len(BINOMIAL_CASES), BINOMIAL_REPS)
    for (n, p), xs in zip(BINOMIAL_CASES, x, strict=True):
        _check_binomial(xs, n, float(np.float32(p)))


@pytest.mark.parametrize("n, p", [(40, 0.3), (100_000, 0.82)])
def test_binomial_btrs_fallback_alone_is_exact(n, p):
    """Every pre-drawn candidate rejected (u = 1e-7: the candidate lies far outside [0, n] and
    fails the squeeze): each sample comes from the key-driven fallback, which must be exact
    on its own (same checks as above)."""
    u = jnp.full((BINOMIAL_REPS, CANDIDATES, 2), 1e-7, jnp.float32)
    keys = jax.random.split(jax.random.key(n), BINOMIAL_REPS)
    f = jax.jit(jax.vmap(binomial, in_axes=(0, 0, None, None)))
    x = np.asarray(f(u, keys, jnp.int32(n), jnp.float32(p)), np.float64)
    _check_binomial(x, n, float(np.float32(p)))


def test_binomial_btrs_fallback_in_blocks_of_lanes_is_bit_identical(monkeypatch):
    """The BTRS fallback one lane after another (the CPU's `cond_lanes` block) and in blocks of
    lanes vmapped (an accelerator's, forced by ``REGRETLAB_LANE_BLOCK``): the same samples bit
    for bit. 300 lanes, every candidate rejected (as above), blocks of 64 (the last shifted)."""
    u = jnp.full((300, CANDIDATES, 2), 1e-7, jnp.float32)
    keys = jax.random.split(jax.random.key(7), 300)
    samples = []
    for block in ("1", "64"):
        monkeypatch.setenv("REGRETLAB_LANE_BLOCK", block)
        f = jax.jit(jax.vmap(binomial, in_axes=(0, 0, None, None)))
        samples.append(np.asarray(f(u, keys, jnp.int32(1000), jnp.float32(0.3))))
    np.testing.assert_array_equal(samples[0], samples[1])
    assert np.unique(samples[0]).size > 10  # real draws, not a constant


def test_binomial_inversion_table_covers_all_but_a_negligible_tail():
    """The inversion table of J terms (n q < 10): the Binomial mass beyond it is below the
    uniforms' spacing (2^-23 float32, 2^-52 float64) by a wide margin, at the largest n q
    (10) and several n; edge cases n = 0, p = 0, p = 1 are exact."""
    for itemsize, spacing in ((4, 2.0**-23), (8, 2.0**-52)):
        J = INVERSION_TERMS[itemsize]
        for n in (20, 25, 100, 10**5, 10**9):
            assert stats.binom(n, 10 / n).sf(J - 1) < spacing / 100
    u = jax.random.uniform(jax.random.key(0), (CANDIDATES, 2))
    k = jax.random.key(1)
    sample = jax.jit(binomial)  # one program for the three edge cases
    assert float(sample(u, k, jnp.int32(0), jnp.float32(0.4))) == 0
    assert float(sample(u, k, jnp.int32(50), jnp.float32(0.0))) == 0
    assert float(sample(u, k, jnp.int32(50), jnp.float32(1.0))) == 50


def test_final_metrics_error_and_simple_regret():
    env = linear_bai("soare", omega=0.5)
    p = env.default_params()
    f = env.final_metrics(None, jnp.int32(4), p)
    assert float(f["error"]) == 1 and float(f["simple_regret"]) == pytest.approx(
        0.9 - 0.9 * math.cos(0.5), abs=1e-6
    )
    assert float(env.final_metrics(None, jnp.int32(0), p)["error"]) == 0


def test_table_env_sums_window_and_counts_reads():
    env = TableLinearBAI(
        features=((1.0, 0.0), (0.0, 1.0)), theta=(0.6, 0.3), instance="custom", track_reads=True
    )
    table = np.array([[1, 0, 1, 1, 0, 1], [0, 1, 1, 0, 0, 1]], float)
    p = env.table_params(table)
    s = env.init(jax.random.key(0), p)
    s, r, m = env.step({}, s, Pull(jnp.int32(0), jnp.int32(3)), p)
    assert float(r) == 2 and int(m["rounds"]) == 3
    s, r, _ = env.step({}, s, Pull(jnp.int32(1), jnp.int32(3)), p)
    assert float(r) == 1  # X[1, 3:6] = 0 + 0 + 1
    np.testing.assert_array_equal(s.reads, [[1, 1, 1, 0, 0, 0], [0, 0, 0, 1, 1, 1]])


def test_table_phase_pull_reads_the_entries_of_the_sequential_schedule():
    """`PullAll(counts)` on a table returns, for each arm, exactly the sum of the entries the
    sequential schedule Pull(0, c_0), Pull(1, c_1), ... reads (arms in index order, each arm's
    rounds back to back), reveals the same entries, and uses Σ c rounds; zero counts are
    skipped. Exact: integer tables, sums in floating point of small integers."""
    rng = np.random.default_rng(3)
    k, horizon = 4, 23
    env = TableLinearBAI(tuple(map(tuple, np.eye(k))), (0.2, 0.4, 0.6, 0.8), track_reads=True)
    step = jax.jit(env.step)  # one program per action type for every case (speed only)
    for counts, start in [((3, 0, 5, 2), 0), ((1, 4, 0, 0), 6), ((0, 0, 0, 7), 16), ((2,) * 4, 9)]:
        table = rng.integers(0, 2, (k, horizon)).astype(float)
        p = env.table_params(table)
        s0 = env.init(jax.random.key(0), p)._replace(t=jnp.asarray(start))
        s, sums, m = step({}, s0, PullAll(jnp.asarray(counts, jnp.int32)), p)
        seq, want = s0, []
        for arm, n in enumerate(counts):
            if n:
                seq, r, _ = step({}, seq, Pull(jnp.int32(arm), jnp.int32(n)), p)
            want.append(float(r) if n else 0.0)
        t, by_hand = start, []
        for arm, n in enumerate(counts):  # the window of the sequential schedule
            by_hand.append(table[arm, t : t + n].sum())
            t += n
        np.testing.assert_array_equal(np.asarray(sums), want)
        np.testing.assert_array_equal(np.asarray(sums), by_hand)
        np.testing.assert_array_equal(s.reads, seq.reads)
        assert int(s.t) == int(seq.t) == start + sum(counts) and int(m["rounds"]) == sum(counts)
        assert not bool(m["illegal"])


def test_phase_pull_illegal_counts():
    """A negative count, Σ counts < 1 or more nonzero counts than `slots` is illegal (both
    envs); a wrong shape is refused at trace time. The steps run jitted (one compile per `slots`,
    as under the engine; op by op, the sampler's loops cost ~15 s)."""
    table_env = TableLinearBAI(((1.0, 0.0), (0.0, 1.0), (0.5, 0.5)), (0.5, 0.4))
    p = table_env.table_params(np.ones((3, 10)))
    env = linear_bai("soare")
    q = env.default_params()
    k5 = jnp.zeros((5,), jnp.int32)
    for e, params, good in ((table_env, p, jnp.asarray([1, 0, 2])), (env, q, k5.at[1:3].set(3))):
        s = e.init(jax.random.key(0), params)
        rng = {"key": jax.random.key(1)}
        step = jax.jit(e.step)
        assert not bool(step(rng, s, PullAll(good), params)[2]["illegal"])
        assert not bool(step(rng, s, PullAll(good, 2), params)[2]["illegal"])
        for bad in (PullAll(good.at[0].set(-1)), PullAll(jnp.zeros_like(good)), PullAll(good, 1)):
            assert bool(step(rng, s, bad, params)[2]["illegal"])
        with pytest.raises(ValueError, match="PullAll: counts must have shape"):
            step(rng, s, PullAll(jnp.ones((7,), jnp.int32)), params)


@pytest.mark.parametrize("slots", [None, 2])
def test_phase_pull_sums_are_independent_binomials(slots):
    """Bernoulli env, `PullAll` with counts (0, 12, 0, 30, 200) (means 0.3, 0.5, 0.2, 0.7,
    0.45): each arm's sum is Binomial(c_i, μ_i) (chi-square goodness of fit per arm, 4000
    draws, p > 1e-3: a correct sampler fails one of the three with probability < 0.003; the
    three branches of `binomial`: inversion, n q < 10, and BTRS), unpulled arms give 0, and
    the sums of arms 1 and 3 are uncorrelated (|r| <= 4.5/sqrt(4000)). slots = 3 (the three
    pulled arms compacted into one block) or K = 5 (no compaction: arms 0-3 in the first block,
    arm 4 in the second, `LinearBAI._sums`): the same law."""
    env = linear_bai("custom", features=np.eye(5).tolist(), theta=[0.3, 0.5, 0.2, 0.7, 0.45])
    params = env.default_params()
    mu = np.asarray(params.means, float)
    counts = jnp.asarray([0, 12, 0, 30, 200], jnp.int32)
    slots = 3 if slots else None
    keys = jax.random.split(jax.random.key(4), 4000)

    def one(k):
        _, r, m = env.step({"key": k}, env.init(k, params), PullAll(counts, slots), params)
        return r, m["rounds"], m["illegal"]

    r, rounds, bad = jax.jit(jax.vmap(one))(keys)
    r = np.asarray(r).astype(int)
    assert np.all(np.asarray(rounds) == 242) and not np.any(np.asarray(bad))
    assert np.all(r[:, [0, 2]] == 0)
    for arm in (1, 3, 4):
        n = int(counts[arm])
        got = np.bincount(r[:, arm], minlength=n + 1)
        expected = 4000 * stats.binom.pmf(np.arange(n + 1), n, mu[arm])
        keep = expected >= 5
        obs = np.append(got[keep], got[~keep].sum())
        exp = np.append(expected[keep], expected[~keep].sum())
        assert stats.chisquare(obs, exp * obs.sum() / exp.sum()).pvalue > 1e-3, arm
    assert abs(np.corrcoef(r[:, 1], r[:, 3])[0, 1]) <= 4.5 / math.sqrt(4000)


def test_record_and_next_phase():
    """`record` of a `PullAll` adds each arm's clipped sum; `next_phase` pulls every arm's
    remaining allocation, cut at `left` arm after arm, and after the last phase the rest of
    the budget on arm 0."""
    stats0 = fb.phase_zeros(4)
    act = PullAll(jnp.asarray([2, 0, 3, 1]))
    st = fb.record(stats0, act, jnp.asarray([1.0, 0.0, 5.0, -1.0]))  # clipped to [0, c_i]
    np.testing.assert_array_equal(st.counts, [2, 0, 3, 1])
    np.testing.assert_allclose(st.sums, [1.0, 0.0, 3.0, 0.0])
    alloc = jnp.asarray([4, 0, 3, 5])
    t, no = jnp.asarray(10), jnp.asarray(False)
    np.testing.assert_array_equal(fb.next_phase(alloc, st, t, 40, no).counts, [2, 0, 0, 4])
    np.testing.assert_array_equal(fb.next_phase(alloc, stats0, t, 40, no, 6).counts, [4, 0, 2, 0])
    done = fb.next_phase(alloc, stats0, t, 40, jnp.asarray(True), None, 2)
    np.testing.assert_array_equal(done.counts, [30, 0, 0, 0])
    assert done.slots == 2


# --------------------------------------------------------------------------- releases
def test_noisy_means_research_is_laplace_of_scale_one_over_eps_n():
    """mean + Laplace(1/(ε n)): the standardised noise of 20000 releases against Laplace(1) by
    Kolmogorov-Smirnov (p > 1e-3 fails a correct sampler with probability 1e-3)."""
    eps, n = 0.7, 8
    keys = jax.random.split(jax.random.key(2), 20000)
    f = jax.vmap(lambda k: fb.noisy_means(jnp.array([3.0, 9.0]), jnp.array([n, 0]), eps, k))
    out = np.asarray(f(keys))
    assert np.all(out[:, 1] == 0)  # unpulled arm: nothing released
    z = (out[:, 0] - 3.0 / n) * eps * n
    assert stats.kstest(z, stats.laplace.cdf).pvalue > 1e-3


def test_noisy_means_clips_and_no_noise_at_infinite_epsilon():
    out = fb.noisy_means(jnp.array([12.0, -1.0]), jnp.array([10, 4]), math.inf, jax.random.key(0))
    np.testing.assert_allclose(out, [1.0, 0.0])


def test_noisy_means_secure_is_exact_grid_and_reproducible():
    k = jax.random.key(5)
    a = fb.noisy_means(jnp.array([3.0, 5.0]), jnp.array([10, 10]), 1.0, k, "secure")
    b = fb.noisy_means(jnp.array([3.0, 5.0]), jnp.array([10, 10]), 1.0, k, "secure")
    np.testing.assert_array_equal(a, b)
    # noisy sums are multiples of 2^-40 (exact discrete Laplace on the grid)
    sums = np.asarray(a, np.float64) * 10
    assert not np.allclose(sums, [3.0, 5.0])
    with pytest.raises(ConfigError, match=r"^epsilon:"):
        fb.noisy_means(jnp.ones(2), jnp.ones(2, int), 0.0, k, "secure")


def test_check_epsilon_and_guarantee():
    assert fb.check_epsilon("agents.x.epsilon", math.inf) == math.inf
    for bad in (0, -1.0, float("nan"), "1"):
        with pytest.raises(ConfigError, match=r"^agents.x.epsilon:"):
            fb.check_epsilon("agents.x.epsilon", bad)
    assert fb.guarantee(0.5).epsilon == 0.5 and fb.guarantee(math.inf) is None


def _within(count: int, n: int, p: float) -> bool:
    """|count/n - p| <= 4.5 sd of a Binomial(n, p)/n: a correct rule fails w.p. < 1e-5."""
    return abs(count / n - p) <= 4.5 * math.sqrt(p * (1 - p) / n)


def test_top_mask_and_best_arm_break_ties_uniformly_and_reproducibly():
    """Ties are broken by a uniform permutation from the key (`fb.tie_order`), not toward the
    lower index. 4000 keys: a two-way tie for one place is won by each arm about half the time
    and a three-way tie by each about a third (each share within 4.5 binomial sd: a correct
    rule fails one of these 5 checks w.p. < 5e-5; the old rule gave arm 1 every time);
    `best_arm` picks the arm `top_mask(m=1)` keeps with the same key; a strictly larger score
    always wins and an inactive arm is never kept; one key gives the same mask every time,
    jitted or not."""
    n = 4000
    keys = jax.random.split(jax.random.key(0), n)
    s = jnp.array([0.3, 0.5, 0.5, 0.9])
    act = jnp.array([True, True, True, False])
    top = jax.jit(jax.vmap(fb.top_mask, in_axes=(None, None, None, 0)))
    best = jax.jit(jax.vmap(fb.best_arm, in_axes=(None, None, 0)))
    two = np.asarray(top(s, act, 2, keys))
    assert (two == [False, True, True, False]).all()  # no tie at the cut: always {1, 2}
    one = np.asarray(top(s, act, 1, keys))
    assert (one.sum(1) == 1).all() and not one[:, [0, 3]].any()
    assert _within(int(one[:, 1].sum()), n, 0.5)
    np.testing.assert_array_equal(np.asarray(best(s, act, keys)), one.argmax(1))
    three = jnp.array([0.7, 0.7, 0.7, 0.1])
    won = np.asarray(top(three, jnp.ones(4, bool), 1, keys)).sum(0)
    out = 1 - np.asarray(top(three, jnp.ones(4, bool), 3, keys))[:, :3]  # 3 of 4: all the tied
    assert not out.any() and won[3] == 0
    assert all(_within(int(c), n, 1 / 3) for c in won[:3])
    k = jax.random.key(42)
    first = np.asarray(fb.top_mask(three, jnp.ones(4, bool), 2, k))
    np.testing.assert_array_equal(np.asarray(fb.top_mask(three, jnp.ones(4, bool), 2, k)), first)
    np.testing.assert_array_equal(np.asarray(top(three, jnp.ones(4, bool), 2, k[None]))[0], first)


def test_top_mask_equals_ranking_definition():
    """The partial sort keeps the same set as ranking every active arm by (score descending,
    place in `fb.tie_order(key, K)`), on random scores with many ties (K = 10; k_max = K and
    6: two compilations)."""
    rng = np.random.default_rng(0)
    k = 10
    f = jax.jit(fb.top_mask, static_argnums=4)
    for trial in range(60):
        s = rng.integers(0, 4, k).astype(float)
        act = rng.random(k) < 0.7
        k_max = (None, 6)[trial % 2]
        m = int(rng.integers(1, (k_max or k) + 1))
        key = jax.random.key(trial)
        place = np.argsort(np.asarray(fb.tie_order(key, k)))  # place[i]: arm i's rank in order
        order = sorted(np.flatnonzero(act), key=lambda i: (-s[i], place[i]))[:m]
        expect = np.zeros(k, bool)
        expect[order] = True
        np.testing.assert_array_equal(f(jnp.asarray(s), jnp.asarray(act), m, key, k_max), expect)


def test_kth_largest_and_batched_top_mask_match_the_sort():
    """`fb.kth_largest` is ``sort(x)[::-1][m - 1]`` (m clipped to [1, rounds]) on small
    integer scores with many ties and -inf entries; a vmapped `top_mask` over lanes of which
    some tie at the cut (the tie rule runs) and some do not equals the lane-by-lane calls."""
    rng = np.random.default_rng(1)
    k, n = 10, 300
    kth = jax.jit(jax.vmap(fb.kth_largest, in_axes=(0, 0, None)), static_argnums=2)
    for rounds in (1, 4, 10):
        m = rng.integers(-1, rounds + 2, n)
        x = np.where(rng.random((n, k)) < 0.8, rng.integers(0, 4, (n, k)), -np.inf)
        x = x.astype(np.float32)
        expect = np.sort(x, axis=1)[:, ::-1][np.arange(n), np.clip(m, 1, rounds) - 1]
        np.testing.assert_array_equal(
            np.asarray(kth(jnp.asarray(x), jnp.asarray(m), rounds)), expect
        )
    lanes = 64
    s = jnp.asarray(rng.integers(0, 3, (lanes, 8)).astype(np.float32))
    s = s.at[::2].add(jnp.arange(8, dtype=jnp.float32) / 16)  # even lanes: no ties
    act = jnp.asarray(rng.random((lanes, 8)) < 0.9)
    keys = jax.random.split(jax.random.key(3), lanes)
    batched = jax.jit(jax.vmap(fb.top_mask, in_axes=(0, 0, None, 0, None)), static_argnums=4)
    got = np.asarray(batched(s, act, 3, keys, 4))
    one = jax.jit(fb.top_mask, static_argnums=4)
    for i in range(lanes):
        np.testing.assert_array_equal(got[i], np.asarray(one(s[i], act[i], 3, keys[i], 4)))


# --------------------------------------------------------------------------- reward grid
def test_reward_grid_in_the_spec_and_checked_on_tables():
    """The spec's reward_grid is what the secure noise may rely on: Bernoulli rewards are
    integers (0); a table env reports the grid it declares (None: undeclared) and refuses a
    table off it in one line naming reward_grid and the grid that holds every entry
    (0.375 = 3/2^3; 0.3 as a double is 5404319552844595/2^54)."""
    feats, theta = ((1.0, 0.0), (0.0, 1.0)), (0.6, 0.3)
    assert linear_bai("soare").spec(None, 10).reward_grid == 0
    assert TableLinearBAI(feats, theta).spec(None, 10).reward_grid is None
    assert TableLinearBAI(feats, theta, reward_grid=0).spec(None, 10).reward_grid == 0
    assert TableLinearBAI(feats, theta, reward_grid=3).spec(None, 10).reward_grid == 3
    assert TableLinearBAI(feats, theta, reward_grid=None).spec(None, 10).reward_grid is None
    eighths = np.array([[0.375, 1.0], [0.0, 0.5]])
    TableLinearBAI(feats, theta, reward_grid=3).table_params(eighths)  # on the grid: accepted
    with pytest.raises(ConfigError) as e:
        TableLinearBAI(feats, theta, reward_grid=0).table_params(eighths)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith("reward_grid: table entry 0.375 (arm 0, round 0)")
    assert "2 of 4 entries" in msg and "reward_grid=3 holds every entry" in msg
    with pytest.raises(ConfigError, match=r"reward_grid=54 holds every entry"):
        TableLinearBAI(feats, theta, reward_grid=3).table_params(np.array([[0.3, 1], [0, 0]]))
    TableLinearBAI(feats, theta, reward_grid=None).table_params(np.array([[0.3, 1], [0, 0]]))
    for bad in (-1, 61, 1.5):
        with pytest.raises(ConfigError, match=r"^reward_grid: "):
            TableLinearBAI(feats, theta, reward_grid=bad)


def test_horizon_beyond_float32_integers_needs_x64():
    """Past T = 2^24 float32 phase sums and BTRS counts are not exact (n q > 2^24: only even
    counts come out): refused in one line naming horizon and x64 unless x64 is on."""
    env = linear_bai("soare")
    env.spec(None, 2**24)  # the last exact T
    with pytest.raises(ConfigError) as e:
        env.spec(None, 2**24 + 1)
    assert str(e.value).startswith("horizon: ") and "x64=true" in str(e.value)
    jax.config.update("jax_enable_x64", True)  # restored after the test (conftest)
    env.spec(None, 2**24 + 1)
