"""DP-BAI (privacy/dpbai.py): Max-Det collections against brute force, the agent against a plain
NumPy implementation on the same reward table and noise, the data path, and privacy evidence
(schedule invariance, the black-box auditor, accounting parity with dp_accounting)."""

import functools
import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bandits.linear_bai import PullAll, TableLinearBAI, linear_bai
from experiments.config import ConfigError
from experiments.lift import lift
from experiments.protocol import step_key
from experiments.rollout import rollout
from privacy import dpbai
from privacy import fixed_budget as fb
from privacy.audit import audit


# --------------------------------------------------------------------------- brute force
def brute_max_det(a: np.ndarray) -> tuple[tuple[int, ...], float]:
    """max over subsets S of size rank(a) of sqrt(det(a_S a_S^T)) (Gram form: no projection)."""
    r = np.linalg.matrix_rank(a)
    best, val = (), -1.0
    for s in itertools.combinations(range(a.shape[0]), r):
        v = math.sqrt(max(np.linalg.det(a[list(s)] @ a[list(s)].T), 0.0))
        if v > val * (1 + 1e-12):
            best, val = s, v
    return best, val


def random_features(rng, k, d, rank=None):
    a = rng.normal(size=(k, d))
    if rank is not None:  # rows in a random rank-dimensional subspace
        a = rng.normal(size=(k, rank)) @ rng.normal(size=(rank, d))
    return a


@pytest.mark.parametrize("k, d, rank", [(5, 3, None), (7, 4, None), (6, 4, 2), (8, 5, 3)])
def test_max_det_subset_exact_matches_brute_force(k, d, rank):
    rng = np.random.default_rng(k * 10 + d)
    a = random_features(rng, k, d, rank)
    idx, det = dpbai.max_det_subset(a)
    b_idx, b_det = brute_max_det(a)
    assert tuple(idx) == b_idx and list(idx) == sorted(idx)
    assert det == pytest.approx(b_det, rel=1e-9)
    alpha = dpbai.coefficients(a, idx)
    np.testing.assert_allclose(alpha @ a[idx], a, atol=1e-9)  # every row in span B
    assert np.abs(alpha).max() <= 1 + 1e-9  # Cramer's rule for a Max-Det collection


@pytest.mark.parametrize("k, d, rank", [(20, 5, None), (25, 6, 4)])
def test_max_det_local_swap_is_a_c_approximate_spanner(k, d, rank):
    rng = np.random.default_rng(7)
    a = random_features(rng, k, d, rank)
    idx, det = dpbai.max_det_subset(a, exact=False)
    alpha = dpbai.coefficients(a, idx)
    np.testing.assert_allclose(alpha @ a[idx], a, atol=1e-8)
    assert np.abs(alpha).max() <= dpbai.SPANNER_C + 1e-9
    _, b_det = brute_max_det(a)
    # a C-spanner's det is within C^r of the max (each swap of the optimum's rows in costs <= C)
    r = len(idx)
    assert b_det / dpbai.SPANNER_C**r <= det <= b_det * (1 + 1e-9)


def test_masked_max_det_on_device_matches_brute_force_on_active_sets():
    """Active subsets of up to 5 arms, some rank-deficient (projection onto their span)."""
    rng = np.random.default_rng(3)
    a = random_features(rng, 9, 4)
    a[7] = 0.5 * a[1]  # parallel to arm 1
    a[8] = a[2] - a[3]  # in span(a_2, a_3)
    f = jax.jit(lambda m: dpbai.masked_max_det(jnp.asarray(a, jnp.float32), m, 5))
    for act in [(1, 7), (2, 3, 8), (1, 2, 3, 7, 8), (0, 4, 5, 6), (0, 1, 7, 2)]:
        mask = np.zeros(9, bool)
        mask[list(act)] = True
        got = np.flatnonzero(np.asarray(f(jnp.asarray(mask))))
        sub = np.array(act)
        _, b_det = brute_max_det(a[sub])
        det = math.sqrt(np.linalg.det(a[got] @ a[got].T))
        assert len(got) == np.linalg.matrix_rank(a[sub])
        assert det == pytest.approx(b_det, rel=1e-4)  # float32 Gram determinants


# Two unit directions 0.012 rad apart, lifted as the sphere instances are ((a, 1): 0.0085 rad
# apart after the lift), with three more arms so that the features span R^4 (d = 4, M = 2).
ANGLE = 0.012
NEAR_BASE = np.array([[1.0, 0.0, 0.0], [math.cos(ANGLE), math.sin(ANGLE), 0.0],
                      [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [-1.0, 0.0, 0.0]])  # fmt: skip
NEAR = tuple(tuple(float(v) for v in (*r, 1.0)) for r in NEAR_BASE)
NEAR_THETA = (0.45, 0.0, 0.0, 0.5)  # θ/2 = 0.45 x, then 1/2: means 0.95 (x), 0.94997 (y), ...


def test_device_rank_test_agrees_with_the_host_on_nearly_parallel_arms():
    """The device's rank of the active rows (`active_rank`: pivots of the Gram matrix above
    `device_rank_rtol` = 16 max(s, d) eps of the largest) is the host's (`_projected`: singular
    values above 1e-9 max(K, d) of the largest) for two arms 0.0085 rad apart, so both are a
    Max-Det collection on the device; the old test (normalised Gram determinant sin² = 7.2e-5
    <= 1e-4) counted them as one direction. Exactly parallel arms are one direction (the longer
    arm). The float32 limit: unit arms 3 √rtol rad apart are two directions, √rtol / 3 apart
    (below what a float32 Gram matrix resolves) one."""
    a = np.asarray(NEAR)
    assert dpbai._projected(a[:2])[1] == 2
    f = jax.jit(lambda x, m: dpbai.masked_max_det(x, m, 2))
    pair = jnp.asarray([True, True, False, False, False])
    np.testing.assert_array_equal(f(jnp.asarray(a, jnp.float32), pair), pair)
    par = a.copy()
    par[1] = 0.6 * par[0]  # exactly parallel: one direction, the longer arm
    assert dpbai._projected(par[:2])[1] == 1
    np.testing.assert_array_equal(f(jnp.asarray(par, jnp.float32), pair), [1, 0, 0, 0, 0])
    rtol = dpbai.device_rank_rtol(jnp.float32, 2, 4)
    assert rtol == pytest.approx(16 * 4 * np.finfo(np.float32).eps)
    for angle, both in ((3 * math.sqrt(rtol), True), (math.sqrt(rtol) / 3, False)):
        unit = a.copy()
        unit[0] = [1.0, 0.0, 0.0, 0.0]
        unit[1] = [math.cos(angle), math.sin(angle), 0.0, 0.0]
        got = np.asarray(f(jnp.asarray(unit, jnp.float32), pair))
        assert got.sum() == (2 if both else 1) and got[0], (angle, got)


def test_basis_arms_are_estimated_by_their_own_released_means_exactly():
    """μ̂_j = μ̃_j for j in B_p (α_j = e_j; Chen et al. 2024, Algorithm 1, line 14), bit for bit
    in float32 also for a non-orthogonal basis (x, y of `NEAR`, 0.0085 rad apart), so equal
    released means are an exact tie; the other arms get α μ̃ (here: the projection of u, v, w
    on span{x, y})."""
    pl = dpbai.make_plan(np.asarray(NEAR))
    feats = jnp.asarray(NEAR, jnp.float32)
    basis = jnp.asarray([True, True, False, False, False])
    released = jnp.asarray([0.7, 0.7, 0.0, 0.0, 0.0], jnp.float32)
    estimates = jax.jit(lambda *args: dpbai._estimates(pl, *args))  # jitted, as in the agent
    est = np.asarray(estimates(feats, basis, released, jnp.asarray(1)))
    assert est[0] == est[1] == np.float32(0.7)
    a = np.asarray(NEAR)
    alpha = dpbai.coefficients(a, [0, 1])
    np.testing.assert_allclose(est[2:], alpha[2:] @ [0.7, 0.7], atol=1e-3)


def test_nearly_parallel_arms_both_get_pulled_in_the_later_phase():
    """Chen et al. 2024, Algorithm 1, line 8 on the active set {x, y} (0.0085 rad apart after
    the lift, linearly independent: the host's rank 2): B_2 = {x, y}, both pulled
    n_2 = ⌊T/(M |B_2|)⌋ = ⌊403/4⌋ = 100 times, and each is estimated by its own released mean.
    The table makes x and y the top two of phase 1 (they always reward 1, the others never;
    ε = inf). Before 2026-12-04 B_2 was one arm (the device's rank test put them in one
    direction) and the other's estimate a scaled copy of it, so it could never win."""
    env = TableLinearBAI(NEAR, NEAR_THETA, track_reads=True)
    table = np.zeros((5, 403))
    table[:2] = 1.0
    pulls, state, _ = engine_run(env, table, dpbai.DPBAI(epsilon=math.inf), jax.random.key(0))
    first = dpbai.make_plan(np.asarray(NEAR)).first_basis
    assert len(first) == 4 and pulls[:4] == [(i, 403 // 8) for i in first]
    assert pulls[4:6] == [(0, 100), (1, 100)]
    np.testing.assert_allclose(np.asarray(state.releases)[1, :2], [1.0, 1.0])


def test_masked_local_swap_on_device_is_a_c_spanner_of_active_sets():
    """Active sets of 14 arms (beyond the device enumeration): the chosen arms have the rank
    of the active set and every active arm has coefficients |α| <= C on them (float32)."""
    rng = np.random.default_rng(8)
    a = random_features(rng, 20, 8)
    a[10:14] = random_features(rng, 4, 8, rank=2)  # a low-rank block
    f = jax.jit(lambda m: dpbai.masked_max_det(jnp.asarray(a, jnp.float32), m, 14))
    for act in [range(14), range(6, 20), [*range(10, 14), 0, 1, 2, 3, 4, 5, 15, 16, 17, 18]]:
        mask = np.zeros(20, bool)
        mask[list(act)] = True
        got = np.flatnonzero(np.asarray(f(jnp.asarray(mask))))
        sub = np.array(sorted(act))
        assert len(got) == np.linalg.matrix_rank(a[sub]) and set(got) <= set(sub)
        alpha = dpbai.coefficients(a[sub], np.searchsorted(sub, got))
        assert np.abs(alpha).max() <= dpbai.SPANNER_C * (1 + 1e-3)


def test_spanned_estimates_recover_linear_means():
    rng = np.random.default_rng(4)
    a = random_features(rng, 6, 3)
    theta = rng.normal(size=3)
    basis = np.zeros(6, bool)
    basis[list(dpbai.max_det_subset(a)[0])] = True
    values = np.where(basis, a @ theta, 0.0)
    est = jax.jit(dpbai.spanned_estimates)(jnp.asarray(a), jnp.asarray(basis), jnp.asarray(values))
    np.testing.assert_allclose(est, a @ theta, atol=1e-4)


# --------------------------------------------------------------------------- NumPy reference
def reference_dpbai(features, table, epsilon, unit_noise, place):
    """Plain NumPy DP-BAI on a reward table (the algorithm of the module docstring).

    `unit_noise(p)` -> (K,) the Laplace(1) draws of phase p; `place(p)` -> (K,) each arm's
    place in phase p's tie-breaking order (`tie_places`). Returns (pulls [(arm, n)], releases
    {(p, arm): value}, recommendation). Reads the table left to right, each entry once.
    """
    a = np.asarray(features, float)
    k, horizon = table.shape
    d = np.linalg.matrix_rank(a)
    m = max(1, math.ceil(math.log2(d))) if d > 1 else 1
    active, t, pulls, releases = list(range(k)), 0, [], {}
    for p in range(m):
        sub, _ = brute_max_det(a[active])
        basis = sorted(active[j] for j in sub)
        n = horizon // (m * len(basis))
        z = unit_noise(p)
        mu = {}
        for j in basis:
            s = table[j, t : t + n].sum()
            pulls.append((j, n))
            t += n
            mu[j] = s / n + z[j] / (epsilon * n)
            releases[(p, j)] = mu[j]
        coef = dpbai.coefficients(a, basis)
        # rounded to 1e-9: equal in exact arithmetic means equal here (the agent's tie rule)
        est = {i: round(coef[i] @ np.array([mu[j] for j in basis]), 9) for i in active}
        keep = max(1, math.ceil(d / 2 ** (p + 1)))
        pl = place(p)
        active = sorted(sorted(active, key=lambda i: (-est[i], pl[i]))[:keep])
    if t < horizon:
        pulls.append((0, horizon - t))
    return pulls, releases, active[0]


def agent_key(run_key):
    """The agent's init key of a run (experiments.rollout, "Randomness")."""
    init_key, _ = jax.random.split(run_key)
    return jax.random.split(init_key)[1]


def tie_places(key, k):
    """place(p) -> (K,): each arm's place in phase p's tie-breaking order (the permutation
    `fb.tie_order` of `fb.tie_key(key, p)`; among equal estimates the earlier place wins)."""

    def place(p):
        return np.argsort(np.asarray(fb.tie_order(fb.tie_key(key, p), k)))

    return place


@functools.cache
def _program(env, key, rebuild, steps, horizon):
    """One jitted rollout per (env, agent's static key): the agent's numbers (ε) are arguments,
    as in the engine (experiments.lift), so the tests compile once per shape."""

    def run(params, numbers, run_key):
        agent = rebuild(numbers)
        return rollout(
            env, params, agent, run_key, steps, emit=lambda tr: tr.action, horizon=horizon
        )

    return jax.jit(run)


def per_arm_pulls(emitted, horizon: int) -> list[tuple[int, int]]:
    """The emitted actions of a rollout as the sequential schedule [(arm, n)] up to T rounds:
    a `Pull(arm, n)` as itself, a `PullAll(counts)` as one (arm, counts[arm]) per arm with
    counts > 0 in index order (the rounds it reads, `bandits.linear_bai`, "Interface")."""
    if isinstance(emitted, PullAll):
        steps = [
            [(int(a), int(c[a])) for a in np.flatnonzero(c)] for c in np.asarray(emitted.counts)
        ]
    else:
        steps = [
            [(int(a), int(n))]
            for a, n in zip(np.asarray(emitted.arm), np.asarray(emitted.n), strict=True)
        ]
    pulls, used = [], 0
    for step in steps:
        if used >= horizon:
            break
        pulls.extend(step)
        used += sum(n for _, n in step)
    return pulls


def engine_run(env, table, agent, run_key, steps=40):
    """One rollout on the table: (pulls [(arm, n)] up to T rounds, agent state, env state)."""
    params = env.table_params(table)
    horizon = table.shape[1]
    lifted = lift(agent)
    prog = _program(env, lifted.key, _Rebuild(lifted), steps, horizon)
    r = prog(params, tuple(jnp.asarray(x) for x in lifted.numbers), run_key)
    assert int(r.illegal) == 0
    return per_arm_pulls(r.emitted, horizon), r.agent_state, r.env_state


class _Rebuild:
    """`lifted.rebuild`, hashed by the lifted object's static key (for the program cache)."""

    def __init__(self, lifted):
        self.lifted = lifted

    def __call__(self, numbers):
        return self.lifted.rebuild(numbers)

    def __hash__(self):
        return hash(self.lifted.key)

    def __eq__(self, other):
        return isinstance(other, _Rebuild) and other.lifted.key == self.lifted.key


# Soare-type instance with an arm parallel to arm 0 (a rank-deficient active set can survive);
# every test of the agent on a table uses this env, so they share one compiled rollout
FEATURES = ((1.0, 0.0, 0.0, 0.0), (0.0, 1.0, 0.0, 0.0), (0.0, 0.0, 1.0, 0.0),
            (0.0, 0.0, 0.0, 1.0), (0.6, 0.0, 0.0, 0.0), (0.3, 0.8, 0.0, 0.0))  # fmt: skip
THETA = (0.9, 0.5, 0.2, 0.1)


@pytest.mark.parametrize("epsilon", [1.0, 3.0, math.inf])
def test_dpbai_matches_numpy_reference_on_the_same_table_and_noise(epsilon):
    env = TableLinearBAI(FEATURES, THETA, track_reads=True)
    agent = dpbai.DPBAI(epsilon=epsilon)
    means = np.asarray(FEATURES) @ np.asarray(THETA)
    horizon = 203  # 4 x 25 + 2 x 50 = 200 scheduled rounds, 3 spent at the end
    for seed in range(4):
        rng = np.random.default_rng(seed)
        table = (rng.random((6, horizon)) < means[:, None]).astype(float)
        run_key = jax.random.key(seed)
        pulls, state, env_state = engine_run(env, table, agent, run_key)
        ak = agent_key(run_key)

        def unit(p, ak=ak):
            return np.asarray(jax.random.laplace(step_key(ak, p), (6,), jnp.float32), float)

        r_pulls, r_rel, r_rec = reference_dpbai(FEATURES, table, epsilon, unit, tie_places(ak, 6))
        assert pulls == r_pulls
        assert r_pulls[:4] == [(0, 25), (1, 25), (2, 25), (3, 25)]  # n_1 = 203 // (2 x 4)
        assert sum(n for _, n in pulls) == horizon
        assert int(state.choice) == r_rec
        rel = np.asarray(state.releases)
        for (p, j), v in r_rel.items():
            assert rel[p, j] == pytest.approx(v, abs=1e-5)  # float32 means and noise
        # the data path: every table entry revealed at most once, exactly on the pulled rounds
        reads = np.asarray(env_state.reads)
        assert reads.max() == 1 and reads.sum() == horizon


def test_rank_deficient_phase_two_uses_the_projection():
    """Arms 0 and 4 (= 0.6 a_0) both survive phase 1 when the table favours them: the active
    set has rank 1, B_2 = {0} (larger |det|) and arm 4's estimate is 0.6 μ̃_0."""
    env = TableLinearBAI(FEATURES, THETA, track_reads=True)
    table = np.zeros((6, 203))
    table[0] = 1.0  # μ̃_0 = 1 in phase 1, arm 4's estimate 0.6; the others 0 (ε = inf)
    pulls, state, _ = engine_run(env, table, dpbai.DPBAI(epsilon=math.inf), jax.random.key(0))
    assert pulls[4:] == [(0, 101), (0, 2)]  # phase 2: only arm 0, n = 203 // (2 x 1)
    np.testing.assert_allclose(state.releases[1], [1, 0, 0, 0, 0, 0], atol=1e-6)
    assert int(state.choice) == 0


def test_a_constructed_tie_is_broken_at_random_and_reproducibly():
    """A tie through the whole agent (ε = inf, the table decides every mean): arms 2 and 3
    always reward 1, the others never. Phase 1 (B_1 = e_1..e_4) estimates 1 for arms 2 and 3
    and 0 for the rest, so A_2 = {2, 3}; phase 2 pulls both 50 times (orthonormal: B_2 = A_2)
    and their estimates are 1 and 1, an exact tie. Over 600 seeds arm 3 wins about half the
    time: |share - 1/2| <= 4.5 sd of a Binomial(600, 1/2)/600 (0.092), which a correct rule
    fails w.p. < 1e-5 (ties to the lower index gave arm 2 every time). The env's means are
    distinct (`validate` wants a unique best arm): the tie is in the table. The same seeds
    rerun give the same pulls, releases and recommendation."""
    env = TableLinearBAI(FEATURES, THETA, track_reads=True)
    agent = dpbai.DPBAI(epsilon=math.inf)
    table = np.zeros((6, 203))
    table[2:4] = 1.0
    seeds = 600

    def run(seed):
        pulls, state, _ = engine_run(env, table, agent, jax.random.key(seed))
        return int(state.choice), pulls, np.asarray(state.releases)

    runs = [run(seed) for seed in range(seeds)]
    choice = np.array([c for c, _, _ in runs])
    assert set(choice) == {2, 3}
    assert all(p[4:6] == [(2, 50), (3, 50)] for _, p, _ in runs)
    assert abs(np.mean(choice == 3) - 0.5) <= 4.5 * math.sqrt(0.25 / seeds)
    for seed in range(10):
        c, p, rel = run(seed)
        assert c == runs[seed][0] and p == runs[seed][1]
        np.testing.assert_array_equal(rel, runs[seed][2])  # bit for bit


def test_bad_input_one_line():
    env = linear_bai("soare")
    spec = env.spec(env.default_params(), 7)  # M d = 2 x 4 = 8 rounds needed
    with pytest.raises(ConfigError, match=r"^horizon T = 7 is smaller than the 8 rounds"):
        dpbai.DPBAI().init(jax.random.key(0), spec)
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(ConfigError, match=r"^epsilon:"):
            dpbai.DPBAI(epsilon=bad)
    with pytest.raises(ConfigError, match=r"^noise:"):
        dpbai.DPBAI(noise="float")
    with pytest.raises(ConfigError, match=r"^source:"):
        dpbai.DPBAI(source="urandom")


# --------------------------------------------------------------------------- privacy
def test_schedule_depends_only_on_released_statistics():
    """Tables that agree on every scheduled window's sum (entries permuted inside windows,
    arbitrary values everywhere else) give the same releases and pulls with the noise fixed;
    a table with one window sum changed changes the release (the check has power)."""
    env = TableLinearBAI(FEATURES, THETA, track_reads=True)
    agent = dpbai.DPBAI(epsilon=2.0)
    rng = np.random.default_rng(11)
    means = np.asarray(FEATURES) @ np.asarray(THETA)
    x = (rng.random((6, 203)) < means[:, None]).astype(float)
    key = jax.random.key(5)
    pulls, state, _ = engine_run(env, x, agent, key)
    y = (rng.random(x.shape) < 0.5).astype(float)  # unread entries: anything
    t = 0
    for arm, n in pulls[:-1]:  # scheduled windows: the same sums, entries shuffled
        y[arm, t : t + n] = rng.permutation(x[arm, t : t + n])
        t += n
    pulls_y, state_y, _ = engine_run(env, y, agent, key)
    assert pulls_y == pulls and int(state_y.choice) == int(state.choice)
    np.testing.assert_array_equal(state_y.releases, state.releases)
    z = x.copy()
    z[0, 0] = 1 - z[0, 0]
    _, state_z, _ = engine_run(env, z, agent, key)
    assert not np.array_equal(state_z.releases, state.releases)


AUDIT_FEATURES = ((1.0, 0.0), (0.0, 1.0), (0.5, 0.5))  # d = 2: M = 1, B_1 = {0, 1}, n = 5
AUDIT_T = 10
BATCH = 2000  # runs per call of the compiled program (one shape: one compilation)


@functools.cache
def _audit_program(noise: str):
    env = TableLinearBAI(AUDIT_FEATURES, (0.5, 0.4))
    lifted = lift(dpbai.DPBAI(epsilon=1.0, noise=noise))

    @jax.jit
    def runs(params, numbers, keys):
        agent = lifted.rebuild(numbers)

        def one(k):
            r = rollout(env, params, agent, k, 4, horizon=AUDIT_T)
            return jnp.concatenate([r.agent_state.releases[0, :2], r.agent_state.choice[None]])

        return jax.vmap(one)(keys)

    return env, lifted, runs


def dpbai_mechanism(epsilon, noise="research"):
    """The auditor's M(table, n, rng): n independent runs of DP-BAI on the table; output the
    transcript (released noisy means) and the recommendation. ε is an argument of one
    compiled program (secure mode: a constant)."""
    if noise == "secure":
        env = TableLinearBAI(AUDIT_FEATURES, (0.5, 0.4), reward_grid=0)  # bit tables
        agent = dpbai.DPBAI(epsilon=epsilon, noise=noise)

        @jax.jit
        def runs(params, keys):
            def one(k):
                r = rollout(env, params, agent, k, 4, horizon=AUDIT_T)
                st = r.agent_state
                return jnp.concatenate([st.releases[0, :2], st.choice[None]])

            return jax.vmap(one)(keys)

        call = runs
    else:
        env, _, prog = _audit_program(noise)

        def call(params, keys):
            return prog(params, (jnp.asarray(epsilon),), keys)

    return table_mechanism(env, call)


def table_mechanism(env, call, batch: int = BATCH):
    """The auditor's M(table, n, rng) from a compiled ``call(params, keys)`` of `batch` runs:
    n independent runs on the reward table (keys from `rng`), outputs stacked as float64."""

    def m(table, n, rng):
        keys = jax.random.split(jax.random.key(int(rng.integers(2**31))), -(-n // batch) * batch)
        params = env.table_params(table)
        out = [call(params, keys[i : i + batch]) for i in range(0, keys.shape[0], batch)]
        return np.asarray(jnp.concatenate(out)[:n], np.float64)

    return m


def audit_pairs():
    x0 = np.zeros((3, AUDIT_T))
    entry = x0.copy()
    entry[0, 0] = 1.0  # one entry of arm 0's phase-1 window
    column = x0.copy()
    column[:, 0] = 1.0  # one whole round (stress test)
    return [(x0, entry), (x0, column)]


def test_audit_dpbai_no_violation_and_broken_variants_caught():
    """Claimed ε = 1. Correct DP-BAI: not flagged (a correct mechanism is flagged with
    probability <= α = 0.05; fixed seed). Noise removed (ε = inf) and noise mis-scaled by 1/4
    (really 4-DP): both flagged."""
    pairs = audit_pairs()
    ok = audit(dpbai_mechanism(1.0), pairs, 1.0, 2000, 10000, seed=1)
    assert not ok.flagged, ok
    none = audit(dpbai_mechanism(math.inf), pairs, 1.0, 500, 2000, seed=2)
    assert none.flagged and none.epsilon_lb > 5
    scaled = audit(dpbai_mechanism(4.0), pairs, 1.0, 2000, 10000, seed=3)
    assert scaled.flagged and scaled.epsilon_lb > 2


@pytest.mark.slow
def test_audit_dpbai_bigger_and_secure_mode():
    """The same audit with 10x the samples (the bound tightens towards ε = 1 from below),
    and the secure (exact discrete Laplace) noise."""
    pairs = audit_pairs()
    ok = audit(dpbai_mechanism(1.0), pairs, 1.0, 20_000, 100_000, seed=4)
    assert not ok.flagged and ok.epsilon_lb > 0.5, ok
    sec = audit(dpbai_mechanism(1.0, "secure"), pairs, 1.0, 2000, 10_000, seed=5)
    assert not sec.flagged, sec


def test_accounting_parity_with_dp_accounting():
    """Per table entry: the releases that read it (from the schedule of a run), composed as
    dp_accounting Laplace events (noise_multiplier = scale / sensitivity = (1/(ε n)) / (1/n)),
    give the agent's declared ε, and `privacy.accounting.PureDP` composed over the same
    releases agrees; the sequential composition of all releases (the wrong relation: one
    entry in every release) gives 6 ε in both. dp_accounting's PLD is pessimistic at δ = 0
    (inf), so ε is read at δ = 1e-12 (its discretisation: 1e-4; tolerance 1e-6)."""
    dpa = pytest.importorskip("dp_accounting")
    from dp_accounting.pld import pld_privacy_accountant

    env = TableLinearBAI(FEATURES, THETA, track_reads=True)
    epsilon = 0.5
    agent = dpbai.DPBAI(epsilon=epsilon)
    table = np.full((6, 203), 0.5)
    pulls, _, _ = engine_run(env, table, agent, jax.random.key(0))
    uses = np.zeros((6, 203), int)  # releases reading each entry (the last pull is discarded)
    t = 0
    for arm, n in pulls[:-1]:
        uses[arm, t : t + n] += 1
        t += n
    assert uses.max() == 1 and len(pulls) - 1 == 6

    def theirs(k: int) -> float:
        acc = pld_privacy_accountant.PLDAccountant(value_discretization_interval=1e-4)
        acc.compose(dpa.LaplaceDpEvent(noise_multiplier=1 / epsilon), k)
        assert acc.get_delta(target_epsilon=k * epsilon) < 1e-12
        return acc.get_epsilon(target_delta=1e-12)

    def ours(k: int) -> float:
        g = agent.guarantee()
        for _ in range(k - 1):
            g = g.compose(agent.guarantee())
        return g.epsilon

    per_entry = int(uses.max())
    assert theirs(per_entry) == pytest.approx(ours(per_entry), abs=1e-6)
    assert ours(per_entry) == agent.guarantee().epsilon == epsilon
    assert theirs(6) == pytest.approx(ours(6), abs=1e-6) and ours(6) == pytest.approx(6 * epsilon)


# --------------------------------------------------------------------------- phase-level form
def test_phase_rollout_equals_the_engine_on_the_same_table_and_key():
    """`phase_rollout` (M steps, no scan) reads the same table windows and draws the same
    noise as the engine's rollout: identical recommendation, releases equal to float32."""
    env = TableLinearBAI(FEATURES, THETA, track_reads=True)
    agent = dpbai.DPBAI(epsilon=1.0)
    means = np.asarray(FEATURES) @ np.asarray(THETA)
    spec = env.spec(None, 203)
    f = jax.jit(lambda p, k: dpbai.phase_rollout(agent, spec, p, k))
    for seed in range(4):
        table = (np.random.default_rng(seed).random((6, 203)) < means[:, None]).astype(float)
        key = jax.random.key(seed)
        _, state, _ = engine_run(env, table, agent, key)
        fast = f(env.table_params(table), key)
        assert int(fast.choice) == int(state.choice)
        np.testing.assert_allclose(fast.releases, state.releases, atol=1e-6)


@pytest.mark.slow
def test_phase_rollout_error_rate_matches_the_engine_in_distribution():
    """Bernoulli path (Binomial sums drawn per phase; other draws than the engine's): error
    rates of 20000 runs each on `soare` (ω = 0.3), T = 400, ε = 1, agree within 4.5 standard
    deviations of the difference of two proportions (a false alarm has probability < 1e-5)."""
    from experiments.simulate import simulate

    env = linear_bai("soare", omega=0.3)
    params = env.default_params()
    agent = dpbai.DPBAI(epsilon=1.0)
    n = 20000
    eng = simulate(env, params, agent, 400, n, seed=1).final["error"].mean()
    spec = env.spec(params, 400)
    keys = jax.random.split(jax.random.key(2), n)
    f = jax.jit(jax.vmap(lambda k: dpbai.phase_rollout(agent, spec, params, k).choice))
    fast = float(np.mean(np.asarray(f(keys)) != 0))
    pooled = (eng + fast) / 2
    assert abs(eng - fast) <= 4.5 * math.sqrt(2 * pooled * (1 - pooled) / n), (eng, fast)


@pytest.mark.parametrize(
    "make",
    [
        lambda **kw: dpbai.DPBAI(**kw),
        lambda **kw: __import__("privacy.od_linbai", fromlist=["x"]).ODLinBAI(**kw),
        lambda **kw: __import__("privacy.halving", fromlist=["x"]).DPSequentialHalving(**kw),
    ],
    ids=["dp_bai", "dp_od_linbai", "dp_sh"],
)
def test_secure_noise_refuses_rewards_off_its_grid_unless_snap(make):
    """Secure noise releases sums on the grid 2^-40: an env that declares no reward grid (or a
    finer one) is refused in one line naming `snap`; snap=true accepts it; Bernoulli rewards
    (grid 0) and a declared grid 2^-3 are accepted; snap needs noise=secure."""
    key = jax.random.key(0)
    off = TableLinearBAI(FEATURES, THETA).spec(None, 2000)  # reward_grid None: not declared
    with pytest.raises(ConfigError, match=r"^snap: noise=secure needs rewards on a grid 2\^-k"):
        make(noise="secure").init(key, off)
    make(noise="secure", snap=True).init(key, off)
    make(noise="research").init(key, off)  # research noise: floats, nothing rounded
    for grid in (0, 3):
        make(noise="secure").init(
            key, TableLinearBAI(FEATURES, THETA, reward_grid=grid).spec(None, 2000)
        )
    make(noise="secure").init(
        key, linear_bai("soare").spec(linear_bai("soare").default_params(), 2000)
    )
    with pytest.raises(ConfigError, match=r"^snap: used only with noise=secure"):
        make(noise="research", snap=True)


# --------------------------------------------------------------------------- audit of R3
R3_ENV = dict(instance="sphere", K=16, d=10, alpha=0.1, instance_seed=0)


def r3_instance() -> tuple[np.ndarray, np.ndarray]:
    """R3's lifted features (K = 16, d = 11) and means, from the env's own parameters."""
    env = linear_bai(**R3_ENV)
    a = np.asarray(env.features, float)
    return a, a @ np.asarray(env.theta, float)


@pytest.mark.parametrize("horizon, n1", [(1000, 22), (3000, 68)])
def test_r3_schedule_matches_the_hand_computed_one(horizon, n1):
    """Audit of R3 (docs/dpbai.md, "Audit of R3"): d = 11 of K = 16, so M = ⌈log2 11⌉ = 4
    phases keeping ⌈11/2^p⌉ = 6, 3, 2, 1 arms; phase 1 pulls the 11 arms of the Max-Det
    collection (brute-force enumeration of the C(16, 11) subsets) n_1 = ⌊T/44⌋ times each
    (Chen et al. 2024, Algorithm 1, line 8), DP-SH pulls all 16 arms ⌊T/64⌋ times (Karnin et
    al. 2013, Algorithm 1). The best arm and the runner-up are both in the collection."""
    from privacy import halving

    a, mu = r3_instance()
    assert a.shape == (16, 11) and np.linalg.matrix_rank(a) == 11
    env = linear_bai(**R3_ENV)
    state = dpbai.DPBAI(epsilon=0.1).init(
        jax.random.key(0), env.spec(env.default_params(), horizon)
    )
    pl = state.plan
    assert (pl.phases, pl.keep, pl.rank) == (4, (6, 3, 2, 1), 11)
    basis, _ = brute_max_det(a)
    assert pl.first_basis == basis
    expected = np.zeros(16, int)
    expected[list(basis)] = horizon // 44
    assert horizon // 44 == n1
    np.testing.assert_array_equal(np.asarray(state.alloc), expected)
    top2 = np.argsort(-mu)[:2]
    assert set(top2.tolist()) <= set(basis)
    sizes, pulls = halving.schedule(16, horizon)
    assert sizes == (16, 8, 4, 2)
    assert pulls == tuple(horizon // (4 * s) for s in sizes)


@pytest.mark.parametrize("epsilon", [0.1, 0.5])
def test_r3_phase_one_gap_noise_variance_dpbai_vs_dpsh(epsilon):
    """Phase 1's privacy noise on the estimated gap best − runner-up at T = 1000, from each
    agent's own `end_phase` (zero rewards: the release is the noise alone): DP-BAI (both arms
    in the collection, α rows unit vectors) 2·2/(ε n_1)², n_1 = 22; DP-SH 2·2/(ε t_0)², t_0 = 15:
    a ratio (22/15)² = 2.15. 20000 draws: the sample variance of a difference of two iid
    Laplace variables (excess kurtosis 3/2) has relative sd sqrt(3.5/20000) = 1.3%; 6%
    tolerance is 4.5 sd."""
    from privacy import halving

    _, mu = r3_instance()
    best, ru = np.argsort(-mu)[:2]
    env = linear_bai(**R3_ENV)
    spec = env.spec(env.default_params(), 1000)
    keys = jax.random.split(jax.random.key(7), 20000)
    for agent, n in (
        (dpbai.DPBAI(epsilon=epsilon), 22),
        (halving.DPSequentialHalving(epsilon=epsilon), 15),
    ):

        def phase_one(key, agent=agent):
            s = agent.init(key, spec)
            stats = s.stats._replace(counts=s.alloc.astype(s.stats.counts.dtype))
            return agent.end_phase(s._replace(stats=stats)).releases[0]

        rel = np.asarray(jax.jit(jax.vmap(phase_one))(keys), float)
        gap = rel[:, best] - rel[:, ru]
        assert np.var(gap) == pytest.approx(4 / (epsilon * n) ** 2, rel=0.06), type(agent)


def numpy_dpbai_error(
    a: np.ndarray, mu: np.ndarray, horizon: int, epsilon: float, n: int, seed: int
):
    """Error rate of an independent NumPy DP-BAI on features `a` with linearly independent
    active sets after phase 1 (R3): Max-Det by enumeration, phase p pulls its |B_p| arms
    ⌊T/(M |B_p|)⌋ times, releases Binomial mean + Laplace(1/(ε n_p)), phase 1 estimates
    μ̂ = α μ̃_B (a_i = Σ_j α_ij a_Bj), keeps the top ⌈d/2^p⌉ (Chen et al. 2024, Algorithm 1)."""
    rng = np.random.default_rng(seed)
    k, d = a.shape
    m = math.ceil(math.log2(d))
    basis = list(brute_max_det(a)[0])
    alpha = np.linalg.solve(a[basis].T, a.T).T

    def top(scores, active, keep):
        idx = np.argsort(-np.where(active, scores, -np.inf), axis=1, kind="stable")[:, :keep]
        out = np.zeros_like(active)
        np.put_along_axis(out, idx, True, axis=1)
        return out & active

    def release(pulls, arms):
        lap = rng.laplace(0, 1 / (epsilon * pulls), (n, len(arms)))
        return rng.binomial(pulls, mu[arms], (n, len(arms))) / pulls + lap

    est = release(horizon // (m * d), basis) @ alpha.T
    active = top(est, np.ones((n, k), bool), math.ceil(d / 2))
    for p in range(2, m + 1):
        size = math.ceil(d / 2 ** (p - 1))  # |A_p| <= d_p: all active arms are pulled
        active = top(release(horizon // (m * size), list(range(k))), active, math.ceil(d / 2**p))
    return float(np.mean(~active[:, int(np.argmax(mu))]))


@pytest.mark.slow
def test_r3_error_rate_matches_an_independent_numpy_dpbai():
    """The whole algorithm on R3 (T = 3000, ε = 0.1, error ≈ 0.09): `phase_rollout` (Bernoulli
    path) against `numpy_dpbai_error`, 20000 runs each, within 4.5 standard deviations of the
    difference of two proportions. Guards the schedule, noise scale and elimination together."""
    a, mu = r3_instance()
    env = linear_bai(**R3_ENV)
    params = env.default_params()
    spec = env.spec(params, 3000)
    agent = dpbai.DPBAI(epsilon=0.1)
    n = 20000
    keys = jax.random.split(jax.random.key(3), n)
    f = jax.jit(jax.vmap(lambda k: dpbai.phase_rollout(agent, spec, params, k).choice))
    ours = float(np.mean(np.asarray(f(keys)) != int(np.argmax(mu))))
    ref = numpy_dpbai_error(a, mu, 3000, 0.1, n, seed=4)
    pooled = (ours + ref) / 2
    assert abs(ours - ref) <= 4.5 * math.sqrt(2 * pooled * (1 - pooled) / n), (ours, ref)
