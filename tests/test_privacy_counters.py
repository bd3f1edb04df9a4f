"""Continual counters: R1 exact oracles (the loss table of the binary tree, Honaker's online
tree, the square-root factorisation and the smooth binary mechanism, with the nuclear-norm lower
bound), factorisation identities, streaming code against the factorisation, R2 Monte Carlo
(T = 2^10 and 2^12), the closed-form noise paths against the rollout, prefix dependence, the
engine run, secure (exact integer) noise, the pure-DP Laplace option, bad input."""

from __future__ import annotations

import dataclasses
import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments.config import ConfigError
from experiments.rollout import rollout
from experiments.simulate import simulate
from privacy import counters as cnt
from privacy import factorization as fz
from privacy.continual import ContinualSpec, continual_bernoulli, continual_fixed
from privacy.counters import (
    COUNTERS,
    noise_from_draws,
    noise_paths,
    noise_streams,
    noise_sum_of_squares,
    releases,
)
from privacy.counters import secure as sec
from privacy.noise import discrete_gaussian_pmf, discrete_laplace_pmf

# exact losses, computed (binary max, mean, Honaker max, mean, sqrt max, mean, lower bound,
# smooth): Dwork et al. STOC 2010, Honaker TPDP 2015, Fichtenberger et al. ICML 2023 §3,
# Andersson & Pagh NeurIPS 2023 §3
TABLE = {
    2**4: (20.00, 10.31, 13.86, 7.09, 3.779, 3.229, 2.652, 9.0),
    2**8: (72.00, 36.04, 43.21, 21.62, 8.015, 7.122, 6.108, 36.0),
    2**10: (110.00, 55.01, 63.83, 31.92, 10.710, 9.671, 8.466, 49.0),
    2**12: (156.00, 78.00, 88.44, 44.22, 13.793, 12.612, 11.222, 64.0),
    2**16: (272.00, 136.00, 149.66, 74.83, 21.127, 19.664, 17.911, 100.0),
    2**20: (420.00, 210.00, 226.87, 113.44, 30.019, 28.275, 26.159, 144.0),
}
TREES = ["binary", "smooth", "honaker"]


def _check_row(T):
    row = TABLE[T]
    got = []
    for m in ("binary", "honaker", "sqrt"):
        loss = fz.loss(m, T)
        got += [loss.max(), loss.mean()]
    got += [fz.nuclear_lower_bound(T), fz.loss("smooth", T).max()]
    # 3 significant digits: the table prints 4-5 digits, rounded
    np.testing.assert_allclose(got, row, rtol=5e-3)


@pytest.mark.parametrize("T", [2**4, 2**8, 2**10, 2**12, 2**16])
def test_r1_table(T):
    _check_row(T)


@pytest.mark.slow
def test_r1_table_2_20():
    _check_row(2**20)


def test_per_step_patterns():
    T = 16
    L = fz.binary_depth(T)
    t = np.arange(1, T + 1)
    np.testing.assert_allclose(fz.loss("binary", T) / L, np.bitwise_count(t))
    h = fz.loss("honaker", T) / L
    assert h[3] == pytest.approx(4 / 7) and h[7] == pytest.approx(8 / 15)
    assert h[6] == pytest.approx(4 / 7 + 2 / 3 + 1)
    assert np.all(fz.loss("honaker", 60) <= fz.loss("binary", 60) * (1 + 1e-6))
    assert np.ptp(fz.loss("smooth", 1000)) == 0


@pytest.mark.parametrize("n", [1, 2, 10, 100])
def test_sqrt_factor_squares_to_prefix(n):
    C = fz.sqrt_factorisation(n).C
    np.testing.assert_allclose(C @ C, fz.prefix_matrix(n), atol=1e-6)
    np.testing.assert_allclose(C @ np.linalg.inv(C), np.eye(n), atol=1e-6)


@pytest.mark.parametrize("mech", fz.MECHANISMS)
@pytest.mark.parametrize("T", [1, 2, 5, 16, 37])
def test_dense_factorisation_matches_oracle(mech, T):
    """B C = A, and the dense loss equals the scalable oracle (smooth: calibrated bound D/2)."""
    F = fz.factorisation(mech, T)
    np.testing.assert_allclose(F.B @ F.C, fz.prefix_matrix(T), atol=1e-12)
    if mech == "smooth":
        D = fz.smooth_depth(T)
        assert F.sens2 <= D / 2
        np.testing.assert_allclose(np.sum(F.B**2, 1), D / 2)
    else:
        np.testing.assert_allclose(F.loss(), fz.loss(mech, T), rtol=1e-12)


def test_nuclear_bound_is_a_lower_bound():
    A = fz.prefix_matrix(64)
    nuc = np.linalg.svd(A, compute_uv=False).sum()
    assert fz.nuclear_lower_bound(64) == pytest.approx((nuc / 64) ** 2, rel=1e-12)
    for T in (16, 100, 1024):
        lb = fz.nuclear_lower_bound(T)
        assert all(fz.loss(m, T).mean() >= lb for m in fz.MECHANISMS)


@pytest.mark.parametrize("name", TREES)
@pytest.mark.parametrize("T", [16, 21])
def test_streaming_equals_factorisation_and_draws_feed_one_node(name, T):
    """d noise/d draws is linear: each draw that is used must be exactly one node column of B
    (a draw reused by two nodes would give a sum of columns), and every node gets a draw. The
    draws used are exactly `mask_table` (what secure mode draws on the host) and `draw_mask`."""
    counter = COUNTERS[name]()
    strategy = counter.strategy
    spec = ContinualSpec(T, 1, 1.0)
    state = strategy.init_state(spec, jnp.float32)
    shape = strategy.draw_shape(state)
    Z = jnp.zeros((T, *shape))
    # one jitted program, not op-by-op dispatch (hundreds of tiny compiles); same derivative
    J = jax.jit(jax.jacfwd(lambda z: noise_from_draws(counter, spec, z)[:, 0]))(Z)
    J = np.asarray(J).reshape(T, -1)
    used_cols = np.any(J != 0, axis=0)
    used = J[:, used_cols]
    B = fz.factorisation(name, T).B
    key = lambda M: sorted(map(tuple, np.round(M.T.astype(np.float64), 5)))  # float32: 5 digits
    assert key(used) == key(B[:, np.any(B != 0, axis=0)])
    table = strategy.mask_table(T)
    np.testing.assert_array_equal(used_cols.reshape(T, -1), table)

    def step(s, t):  # the JAX mask of each step, advancing the tree position
        m = strategy.draw_mask(s, t)
        return strategy.advance(s, t, jnp.zeros(shape))[0], m

    masks = np.asarray(jax.lax.scan(step, state, jnp.arange(1, T + 1))[1]).reshape(T, -1)
    np.testing.assert_array_equal(masks, table)


def test_honaker_level_forms_agree():
    """Honaker's two forms of the level recursion (loop over levels 1..top; unrolled products
    `honaker_chain`) give the same noise path for the same draws (float32: 1e-5), T = 100."""
    spec = ContinualSpec(100, 2, 1.0)
    strategy = COUNTERS["honaker"]().strategy
    shape = strategy.draw_shape(strategy.init_state(spec, jnp.float32))
    Z = jax.random.normal(jax.random.key(1), (100, *shape))
    forms = [COUNTERS["honaker"](unrolled=u) for u in (False, True)]
    paths = [np.asarray(noise_from_draws(c, spec, Z)) for c in forms]
    np.testing.assert_allclose(paths[0], paths[1], rtol=1e-5, atol=1e-5)
    with pytest.raises(ConfigError, match=r"^unrolled:"):
        COUNTERS["honaker"](unrolled="yes")


@pytest.mark.parametrize("T", [16, 21])
def test_honaker_agent_draws_feed_one_node_each(T):
    """The research agent path (two draws per step, level nodes pre-drawn in `aux`) is linear
    in its per-step draws U with exactly the used columns of Honaker's B, each draw feeding at
    most one node (a reused draw would show as a sum of columns): the same check as the
    streaming test above, through init/act/update instead of `advance` alone."""
    spec = ContinualSpec(T, 1, 1.0)

    env = continual_fixed(np.zeros(T))

    def path(U):
        class Injected(cnt.Honaker):
            def step_draws(self, key, t, d, unit):
                return U[t - 1]  # step t's two draws

        c = cnt.Counter(strategy=Injected(), rho=0.5)
        scale = c.node_scale(spec)
        out = rollout(env, jnp.zeros((T, 1)), c, jax.random.key(0), T, emit=lambda tr: tr.action)
        return out.emitted[:, 0] / scale

    J = np.asarray(jax.jit(jax.jacfwd(path))(jnp.zeros((T + 1, 2, 1)))).reshape(T, -1)
    used = J[:, np.any(J != 0, axis=0)]
    B = fz.factorisation("honaker", T).B
    key = lambda M: sorted(map(tuple, np.round(M.T.astype(np.float64), 5)))
    assert key(used) == key(B[:, np.any(B != 0, axis=0)])


@pytest.mark.parametrize("T", [16, 21, 64])
def test_binary_vectorised_path_is_b_times_used_nodes(T):
    """The scan-free harness path (`path_from_nodes`) is linear in the node draws with exactly
    the used columns of the binary tree's B, one draw per column (as the streaming test above),
    and `level_sizes` counts the used nodes: T in all (one node completes per step)."""
    counter = COUNTERS["binary"]().strategy
    sizes = counter.level_sizes(T)
    assert sum(sizes) == T
    flat = jnp.zeros((T, 1))

    def path(v):
        nodes, i = [], 0
        for m in sizes:
            nodes.append(v[i : i + m])
            i += m
        return counter.path_from_nodes(nodes, T)[:, 0]

    J = np.asarray(jax.jit(jax.jacfwd(path))(flat)).reshape(T, T)
    B = fz.factorisation("binary", T).B
    key = lambda M: sorted(map(tuple, np.round(M.T.astype(np.float64), 5)))
    assert key(J) == key(B[:, np.any(B != 0, axis=0)])


@pytest.mark.parametrize("T", [1, 2, 16, 21, 64])
def test_honaker_closed_form_is_b_times_all_nodes(T):
    """Honaker's scan-free R2 path (`path_from_draws`: estimates level by level, then the binary
    tree's prefix doubling) is linear in the Σ_j (T >> j) node draws with exactly the columns of
    Honaker's B, one draw per column."""
    n = sum(T >> j for j in range(fz.binary_depth(T)))
    J = jax.jit(jax.jacfwd(lambda v: cnt.Honaker.path_from_draws(v, T)[:, 0]))(jnp.zeros((n, 1)))
    B = fz.factorisation("honaker", T).B
    key = lambda M: sorted(map(tuple, np.round(M.T.astype(np.float64), 5)))
    assert key(np.asarray(J).reshape(T, n)) == key(B[:, np.any(B != 0, axis=0)])


@pytest.mark.parametrize(("T", "K"), [(1, 64), (5, 64), (100, 64), (1000, 64), (300, 7)])
def test_blt_blocks_are_the_toeplitz_product(T, K):
    """BLT's R2 path in blocks of K steps (`paths_from_draws`) equals Toeplitz(b) z (float64
    NumPy) for the same draws, including a last block past T; float32 error ~1e-7 × |b|₁ |z|,
    so atol 1e-4 at T = 1000 (the step recursion `noise_from_draws` is held to the same)."""
    counter = COUNTERS["blt"](rho=0.5)
    n = -(-T // min(K, T)) * min(K, T)
    z = jax.random.normal(jax.random.key(T), (3, n))
    b = counter.strategy.noise_coefficients(T)
    # jitted: one program each instead of op-by-op dispatch (speed only)
    got = np.asarray(jax.jit(lambda z: counter.strategy.paths_from_draws(z, T, K))(z), np.float64)
    want = np.asarray(z, np.float64)[:, :T] @ fz.toeplitz(b).T
    np.testing.assert_allclose(got, want, atol=1e-4)
    spec = ContinualSpec(T, 1, 1.0)
    step = jax.jit(lambda z: noise_from_draws(counter, spec, z[0, :T, None]))(z)
    step = np.asarray(step)[:, 0]
    np.testing.assert_allclose(step, want[0], atol=1e-4)


@pytest.mark.parametrize(
    ("name", "N"),
    [
        ("binary", 37),
        ("binary", 40),
        ("honaker", 37),
        ("blt", 37),
        # the chunk loop is shared: the divisible case once in the default tier
        pytest.param("honaker", 40, marks=pytest.mark.slow),
        pytest.param("blt", 40, marks=pytest.mark.slow),
    ],
)
def test_sum_of_squares_in_chunks(name, N):
    """`noise_sum_of_squares` over chunks of streams (N = 40: 4 chunks of 10; N = 37, prime: a
    last chunk filled with weight-0 repeats) is the sum of the squared `noise_paths` of all
    streams at once (float32 sums: rtol 1e-5)."""
    counter = COUNTERS[name](rho=0.5)
    spec = ContinualSpec(64, 2, 1.0)
    keys = jax.random.split(jax.random.key(2), N)
    small = type("Small", (type(counter.strategy),), {"chunk_elements": 10 * 64 * 2})
    chunked = dataclasses.replace(counter, strategy=small())  # chunks of 10 streams
    # jitted: one program each instead of op-by-op dispatch (many small compiles); same draws
    paths = jax.jit(lambda k: noise_paths(counter, spec, k))(keys)
    whole = np.sum(np.asarray(paths, np.float64) ** 2, 1)
    for c in (chunked, counter):
        got = np.asarray(jax.jit(lambda k, c=c: noise_sum_of_squares(c, spec, k))(keys))
        np.testing.assert_allclose(got, whole, rtol=1e-5)


@pytest.mark.parametrize("T", [5, 1000])
def test_sqrt_noise_path_is_the_toeplitz_product(T):
    """The FFT path equals Toeplitz(f) z (numpy float64 reference) and the step-by-step form."""
    counter = COUNTERS["sqrt"](rho=0.5)
    spec = ContinualSpec(T, 2, 1.0)
    key = jax.random.key(3)
    # jitted: one program each instead of op-by-op dispatch (speed only)
    unit = jax.jit(lambda k: counter.backend.unit(jax.random.fold_in(k, 0), (T, 2)))
    z = np.asarray(unit(key), np.float64)
    want = fz.toeplitz(fz.sqrt_coefficients(T)) @ z
    path = np.asarray(jax.jit(lambda k: counter.init(k, spec).strategy.path)(key), np.float64)
    # float32 FFT: error ~ 1e-7 × ‖f‖₁ ‖z‖ ≲ 1e-4 at T = 1000
    np.testing.assert_allclose(path, want, atol=2e-4)
    if T <= 64:
        step = jax.jit(lambda z: noise_from_draws(counter, spec, z))(jnp.asarray(z, jnp.float32))
        step = np.asarray(step)
        np.testing.assert_allclose(step, want, atol=1e-5)


def test_sqrt_closed_form_is_the_rollout():
    """The square root's closed-form noise paths (`noise_paths_closed_form`: one FFT per stream,
    no scan) use the agent's own draws (step_key(agent key, 0)): given the agent keys that
    `rollout` derives from the run keys, they are the rollout's releases on an all-zero stream,
    bit for bit. (The binary tree's closed form draws per level instead: same law, checked
    against the oracle with the rollout in `test_r2_small`.)"""
    counter = COUNTERS["sqrt"](rho=0.5)
    T = 50
    spec = ContinualSpec(T, 2, 1.0)
    env = continual_fixed(np.zeros((T, 2)))
    # both sides jitted (as the engine and the R2 harness run them): one program each
    run = jax.jit(
        jax.vmap(
            lambda k: rollout(env, env.default_params(), counter, k, T, emit=lambda tr: tr.action)
        )
    )
    out = run(jax.random.split(jax.random.key(5), 3))
    closed = jax.jit(lambda k: noise_paths(counter, spec, k))(out.agent_state.key)  # (T, N, d)
    np.testing.assert_array_equal(np.swapaxes(np.asarray(closed), 0, 1), out.emitted)


@pytest.mark.parametrize("name", list(COUNTERS))
def test_r2_small(name):
    """Default tier: N = 20000 streams, T = 32, through `rollout` of the counter (its own
    init/act/update, agent draws) and through `noise_paths` (closed forms for the binary tree and
    the square root, bulk draws through `advance` otherwise): both against the exact oracle. The
    per-step variance estimate has relative SE sqrt(2/N) = 1%; over 32 steps the max deviation
    stays < 5% (5 SE)."""
    counter = COUNTERS[name](rho=0.5)
    spec = ContinualSpec(32, 1, 1.0)
    keys = jax.random.split(jax.random.key(1), 20_000)
    for agent in (True, False):
        # jitted: one program instead of op-by-op dispatch (many small compiles); same draws
        e = np.asarray(jax.jit(lambda k, a=agent: noise_streams(counter, spec, k, agent=a))(keys))
        var = (e[..., 0].astype(np.float64) ** 2).mean(0)
        np.testing.assert_allclose(var, counter.variance(spec), rtol=0.05)
    np.testing.assert_allclose(counter.variance(spec), _loss(name, 32))  # ρ = 1/2: σ² = loss


def _loss(name, T):
    """Per-step loss (variance at ρ = 1/2) from `privacy.factorization`, or BLT's own oracle."""
    return COUNTERS[name]().strategy.blt(T).loss(T) if name == "blt" else fz.loss(name, T)


def _r2(counter, T, N=100_000, batch=10_000):
    """Per-step empirical variance of N streams (vmapped, 10 batches) and the oracle."""
    spec = ContinualSpec(T, 1, 1.0)
    f = jax.jit(lambda k: noise_sum_of_squares(counter, spec, k)[:, 0])
    keys = lambda b: jax.random.split(jax.random.key(b), batch)
    total = sum(np.asarray(f(keys(b)), np.float64) for b in range(N // batch))
    return total / N, counter.variance(spec)


@pytest.mark.slow
@pytest.mark.parametrize("T", [2**10, 2**12])
@pytest.mark.parametrize("name", list(COUNTERS))
def test_r2_monte_carlo(name, T):
    """R2: N = 10^5 streams at T = 2^10 and 2^12, ρ = 1/2: per-step variance within ±3% of the
    oracle at every t (the error is Gaussian: relative SE sqrt(2/N) = 0.45%; 3% is 6.7 SE, so
    4096 steps give no false failures: 4096 · P(|N(0,1)| > 6.7) < 1e-7); the max over t of the
    empirical variance matches the max of the oracle; smooth: flat D²/4."""
    var, oracle = _r2(COUNTERS[name](rho=0.5), T)
    np.testing.assert_allclose(oracle, _loss(name, T))  # ρ = 1/2: σ² = loss
    np.testing.assert_allclose(var, oracle, rtol=0.03)
    assert var.max() == pytest.approx(oracle.max(), rel=0.03)


@pytest.mark.slow
def test_r2_laplace_binary():
    """Pure-DP binary tree, research Laplace, ε = 1, T = 2^10, N = 10^5: per-step variance within
    ±3% of 2 popcount(t) (L/ε)². A single Laplace has Var(X²) = 5 Var(X)², so the relative SE is
    at most sqrt(5/N) = 0.71% (popcount 1: 11 steps; sums of more nodes are closer to Gaussian,
    popcount 2: sqrt(3.5/N) = 0.59%): 3% is >= 4.2 SE, and 11 · P(|z| > 4.2) + 55 · P(|z| > 5.1)
    + ... < 1e-3."""
    var, oracle = _r2(COUNTERS["binary"](distribution="laplace", epsilon=1.0, rho=None), 2**10)
    np.testing.assert_allclose(var, oracle, rtol=0.03)


@pytest.mark.parametrize("name", list(COUNTERS))
@pytest.mark.parametrize("noise", ["research", "secure"])
def test_outputs_depend_only_on_the_prefix(name, noise):
    """Checklist item 9: flipping x_{cut+1..T} leaves the releases up to `cut` unchanged (same
    key), in both noise modes."""
    T, cut = 32, 13
    rng = np.random.default_rng(0)
    x = rng.integers(0, 2, T).astype(float)
    y = x.copy()
    y[cut:] = 1 - y[cut:]
    counter = COUNTERS[name](noise=noise, source="key")
    spec = ContinualSpec(T, 1, 1.0)
    rx, ry = _rel(counter, spec, x, 5), _rel(counter, spec, y, 5)
    np.testing.assert_array_equal(rx[:cut], ry[:cut])
    assert np.all(rx[cut:] != ry[cut:])
    # exact counts plus noise: subtracting the prefix sums leaves the data-independent noise
    np.testing.assert_allclose(rx - np.cumsum(x), ry - np.cumsum(y), atol=1e-4)


def test_engine_run_and_final_max_error():
    env = continual_bernoulli(0.5)
    counter = COUNTERS["binary"](rho=0.5)
    res = simulate(env, env.default_params(), counter, 100, 300, seed=0, grid=[50, 100])
    spec = env.spec(env.default_params(), 100)
    mse = res.final["sq_error"].mean() / 100
    # mean per-step variance of the oracle; SE of the mean over 300 x 100 correlated terms < 5%
    assert mse == pytest.approx(counter.variance(spec).mean(), rel=0.1)
    assert np.all(res.final["max_abs_error"] ** 2 >= res.final["sq_error"] / 100)


def test_bad_input():
    with pytest.raises(ConfigError, match=r"^horizon:"):
        fz.loss("binary", 0)
    with pytest.raises(ConfigError, match=r"^env.d:"):
        continual_bernoulli(0.5, d=0)
    with pytest.raises(ConfigError, match=r"^rho:"):
        COUNTERS["binary"](rho=0.0)
    with pytest.raises(ConfigError, match=r"^env.sequence:"):
        continual_fixed([0, 1, 2])  # outside the declared bound 1
    env = continual_fixed([0, 2, 1], bound=2.0)
    with pytest.raises(ConfigError, match=r"^bound:"):
        simulate(env, env.default_params(), COUNTERS["binary"](), 3, 2)
    with pytest.raises(ConfigError, match=r"^horizon:"):
        simulate(env, env.default_params(), COUNTERS["binary"](bound=2.0), 5, 2)
    with pytest.raises(ConfigError, match=r"^noise: must be one of research, secure"):
        COUNTERS["binary"](noise="fast")
    with pytest.raises(ConfigError, match=r"^distribution: must be one of gaussian, laplace"):
        COUNTERS["binary"](distribution="cauchy")
    with pytest.raises(ConfigError, match=r"^source: must be one of os, key"):
        COUNTERS["binary"](noise="secure", source="numpy")
    with pytest.raises(ConfigError, match=r"^epsilon: required"):
        COUNTERS["binary"](distribution="laplace")
    with pytest.raises(ConfigError, match=r"^epsilon:"):
        COUNTERS["binary"](distribution="laplace", epsilon=-1.0)
    with pytest.raises(ConfigError, match=r"^epsilon: used only with distribution=laplace"):
        COUNTERS["binary"](epsilon=1.0)
    with pytest.raises(ConfigError, match=r"^grid_k:"):
        COUNTERS["binary"](grid_k=-1)
    with pytest.raises(ConfigError, match=r"^grid_k: bound 0.25 rounds to 0"):
        COUNTERS["binary"](noise="secure", bound=0.25)
    spec = ContinualSpec(16, 1, 1.0)
    for name in COUNTERS:  # 16 · 2^30 overflows int32 (x64 off)
        c = COUNTERS[name](noise="secure", grid_k=30)
        with pytest.raises(ConfigError, match=r"^grid_k: .*x64"):
            c.init(jax.random.key(0), spec)


def test_clipping_only_when_asked():
    env = continual_fixed([0, 2, 1], bound=2.0)
    counter = COUNTERS["binary"](clip=True, rho=1e6)  # nearly noiseless
    res = simulate(env, env.default_params(), counter, 3, 1, grid=[3])
    # the clipped counter counts 0 + 1 + 1 = 2 while S_3 = 3: error 1 at steps 2 and 3
    assert res.final["sq_error"][0] == pytest.approx(2.0, abs=1e-2)


# --------------------------------------------------------------------------- Laplace (pure ε-DP)
def test_laplace_oracles():
    """Research: Var_t = 2 popcount(t) (L bound d/ε)² (ℓ1 sensitivity L per node); sqrt: scale
    Σ f_k bound d/ε. Secure: node variance of Lap_Z(b) = Σ y² pmf(y) (noise.py's pmf)."""
    T, eps, d = 16, 0.5, 3
    spec = ContinualSpec(T, d, 2.0)
    b = fz.binary_depth(T) * 2.0 * d / eps
    binary = COUNTERS["binary"](distribution="laplace", epsilon=eps, bound=2.0)
    want = 2 * np.bitwise_count(np.arange(1, T + 1)) * b**2
    np.testing.assert_allclose(binary.variance(spec), want, rtol=1e-12)
    sq = COUNTERS["sqrt"](distribution="laplace", epsilon=eps, bound=2.0)
    b_sqrt = fz.sqrt_coefficients(T).sum() * 2.0 * d / eps
    s_t = np.cumsum(fz.sqrt_coefficients(T) ** 2)
    np.testing.assert_allclose(sq.variance(spec), 2 * b_sqrt**2 * s_t, rtol=1e-12)
    secure = COUNTERS["binary"](distribution="laplace", epsilon=eps, noise="secure", grid_k=2)
    sn = secure.secure_noise(ContinualSpec(T, 1, 1.0))
    assert sn.param == fz.binary_depth(T) * 4 / eps  # Δ_g = 4 on the 1/4 grid
    y = np.arange(-4000, 4001)
    pmf_var = np.sum(y**2 * discrete_laplace_pmf(y, float(sn.param)))
    assert cnt.discrete_laplace_variance(float(sn.param)) == pytest.approx(pmf_var, rel=1e-9)
    np.testing.assert_allclose(
        secure.variance(ContinualSpec(T, 1, 1.0)),
        np.bitwise_count(np.arange(1, T + 1)) * pmf_var / 16,
        rtol=1e-9,
    )


@pytest.mark.parametrize("name", ["binary", "honaker"])
def test_laplace_research_variance(name):
    """Research Laplace through the R2 harness, N = 20000, T = 32: a single Laplace has
    Var(X²) = 5 Var(X)², relative SE <= sqrt(5/N) = 1.6%; 8% is 5 SE at every step."""
    counter = COUNTERS[name](distribution="laplace", epsilon=2.0)
    spec = ContinualSpec(32, 1, 1.0)
    # jitted: one program instead of op-by-op dispatch (many small compiles); same draws
    streams = jax.jit(lambda k: noise_streams(counter, spec, k))
    e = np.asarray(streams(jax.random.split(jax.random.key(4), 20_000)))
    np.testing.assert_allclose(
        (e[..., 0].astype(np.float64) ** 2).mean(0), counter.variance(spec), rtol=0.08
    )


# --------------------------------------------------------------------------- secure mode
def _chi2_gof(samples: np.ndarray, pmf) -> tuple[float, int]:
    """Pearson χ² against an integer pmf, bins grown left to right until each expects >= 5
    (the leftover upper tail joins the last bin), as OpenDP's sampler tests."""
    n = samples.size
    support = np.arange(samples.min() - 200, samples.max() + 201)  # pmf mass outside < e^-50
    p = pmf(support)
    p = p / p.sum()
    uppers, acc = [], 0.0
    for v, pv in zip(support.tolist(), p.tolist(), strict=True):
        acc += pv
        if acc * n >= 5:
            uppers.append(v)
            acc = 0.0
    uppers[-1] = int(support[-1])
    counts = np.bincount(np.searchsorted(uppers, samples), minlength=len(uppers))
    cdf = np.cumsum(p)[np.searchsorted(support, uppers)]
    expected = np.diff(np.concatenate([[0.0], cdf])) * n
    return float(np.sum((counts - expected) ** 2 / expected)), len(uppers) - 1


@pytest.mark.parametrize("distribution", ["gaussian", "laplace"])
def test_secure_binary_noise_fits_the_exact_distribution(distribution):
    """Secure binary tree, T = 8 (L = 4), N = 1500 streams: the error at t = 1 is one node's
    exact noise, N_Z(0, σ²) with σ² = L/(2ρ) = 4 or Lap_Z(L/ε) = Lap_Z(2); Pearson χ² binned to
    expected counts >= 5 is below df + 6 sqrt(2 df) (the threshold of OpenDP's sampler tests,
    `samplers/test.rs`). All releases are integers (k = 0 grid), and the pooled mean and
    variance match."""
    extra = {"rho": 0.5} if distribution == "gaussian" else {"epsilon": 2.0}
    counter = COUNTERS["binary"](noise="secure", source="key", distribution=distribution, **extra)
    spec = ContinualSpec(8, 1, 1.0)
    # jitted: one program instead of op-by-op dispatch (speed only); the same host draws
    streams = jax.jit(lambda k: noise_streams(counter, spec, k))
    e = np.asarray(streams(jax.random.split(jax.random.key(7), 1500)))[..., 0]
    assert np.array_equal(e, np.round(e))
    param = float(counter.secure_noise(spec).param)
    assert param == (4.0 if distribution == "gaussian" else 2.0)
    pmf = (
        (lambda y: discrete_gaussian_pmf(y, param))
        if distribution == "gaussian"
        else (lambda y: discrete_laplace_pmf(y, param))
    )
    chi2, df = _chi2_gof(e[:, 0].astype(np.int64), pmf)
    assert chi2 <= df + 6 * math.sqrt(2 * df)
    _check_mean_and_variance(e, counter.variance(spec))


def _check_mean_and_variance(e: np.ndarray, var: np.ndarray) -> None:
    """z-tests over independent streams (rows), |z| < 5 (false alarm 6e-7 each): the
    per-stream statistics M = Σ_t e_t/sqrt(v_t) (mean 0) and Q = Σ_t e_t²/v_t (mean T, exact
    for unbiased noise) are iid across streams; their SE is estimated from the streams (CLT)."""
    e = e.astype(np.float64)
    M = (e / np.sqrt(var)).sum(1)
    Q = (e**2 / var).sum(1)
    n = e.shape[0]
    assert abs(M.mean()) < 5 * M.std(ddof=1) / math.sqrt(n)
    assert abs(Q.mean() - e.shape[1]) < 5 * Q.std(ddof=1) / math.sqrt(n)


@pytest.mark.parametrize("name", ["smooth", "honaker", "sqrt"])
def test_secure_variance_matches_the_oracle(name):
    """Secure smooth / Honaker / sqrt, T = 8, N = 1000: pooled mean and variance z-tests
    against the exact oracle (discrete Gaussian variance × ‖B[t]‖², sqrt: integer C̃, B̃)."""
    counter = COUNTERS[name](noise="secure", source="key")
    spec = ContinualSpec(8, 1, 1.0)
    # jitted: one program instead of op-by-op dispatch (speed only); the same host draws
    streams = jax.jit(lambda k: noise_streams(counter, spec, k))
    e = np.asarray(streams(jax.random.split(jax.random.key(8), 1000)))
    _check_mean_and_variance(e[..., 0], counter.variance(spec))


def test_secure_oracles():
    """Secure node variance: the exact N_Z variance (noise.py's pmf summed) and, at σ² >= 36,
    σ² itself; trees: ‖B[t]‖² = loss/sens²; sqrt: within 2^-q·T of the float oracle."""
    for s2 in (0.3, 4.0, 40.0):
        y = np.arange(-400, 401)
        want = np.sum(y**2 * discrete_gaussian_pmf(y, s2))
        assert cnt.discrete_gaussian_variance(s2) == pytest.approx(want, rel=1e-12)
    spec = ContinualSpec(64, 2, 1.0)
    for name in COUNTERS:
        secure = COUNTERS[name](noise="secure", grid_k=3, rho=0.25)
        research = COUNTERS[name](rho=0.25)
        # discrete σ² >= 36 here: the secure oracle is the float one (sqrt: up to C̃'s rounding)
        toeplitz = name in ("sqrt", "blt")
        rtol = 64 * 2.0 ** -secure.integer_strategy(spec).bits if toeplitz else 1e-12
        np.testing.assert_allclose(secure.variance(spec), research.variance(spec), rtol=rtol)


def test_quantised_sqrt_strategy():
    """B̃ C̃ = A (dense float64 check), C̃ integer with c̃_0 = 2^q, b̃ ≈ 2^-q f; the series inverse
    equals the exact rational recurrence."""
    T, q = 200, 16
    c, b = fz.quantised_sqrt(T, q)
    assert c.dtype == np.int64 and c[0] == 2**q
    np.testing.assert_allclose(
        fz.toeplitz(b) @ fz.toeplitz(c.astype(float)), fz.prefix_matrix(T), atol=1e-9
    )
    np.testing.assert_allclose(b * 2.0**q, fz.sqrt_coefficients(T), atol=T * 2.0**-q)
    from fractions import Fraction

    h = [Fraction(1, int(c[0]))]
    for k in range(1, 40):
        h.append(-sum(int(c[i]) * h[k - i] for i in range(1, k + 1)) / int(c[0]))
    np.testing.assert_allclose(fz.series_inverse(c, 40), [float(v) for v in h], rtol=1e-12, atol=0)


@pytest.mark.parametrize("name", list(COUNTERS))
def test_secure_grid_prefix_and_reproducibility(name):
    """Secure mode on a stream on the 1/8 grid (grid_k = 3): binary and smooth releases are
    integers / 8 (the noisy integer nodes summed); outputs up to t depend only on x_1..t; the
    same key reproduces them bit for bit, another key does not; release - S_t is the same
    data-independent noise for both streams (Honaker, sqrt: float post-processing, ~1e-5)."""
    T, cut = 16, 6
    rng = np.random.default_rng(1)
    x = rng.integers(0, 9, T) / 8
    y = x.copy()
    y[cut:] = 1 - y[cut:]
    counter = COUNTERS[name](noise="secure", source="key", grid_k=3, rho=2.0)
    spec = ContinualSpec(T, 1, 1.0)
    rx, ry = _rel(counter, spec, x, 5), _rel(counter, spec, y, 5)
    np.testing.assert_array_equal(rx[:cut], ry[:cut])
    np.testing.assert_array_equal(rx, _rel(counter, spec, x, 5))
    assert np.any(rx != _rel(counter, spec, x, 6))
    if name in ("binary", "smooth"):
        assert np.array_equal(rx * 8, np.round(rx * 8))
    np.testing.assert_allclose(rx - np.cumsum(x), ry - np.cumsum(y), atol=1e-4)


@pytest.mark.parametrize("name", list(COUNTERS))
def test_secure_draws_one_per_node(name, monkeypatch):
    """No noise reuse: a tracer sampler hands out 1, 2, 3, ... in draw order. Trees: the secure
    release minus S_t equals the research streaming noise fed with those ids at the
    `mask_table` slots (which the Jacobian test shows are one node each); sqrt: the release is
    B̃ (C̃ n + ids) computed in float64 numpy. So every node gets its own draw."""
    ids = itertools.count(1)
    monkeypatch.setitem(cnt.SAMPLERS, "gaussian", lambda param, src: next(ids))
    T = 21
    spec = ContinualSpec(T, 1, 1.0)
    x = np.random.default_rng(2).integers(0, 2, T).astype(float)
    secure = COUNTERS[name](noise="secure", source="key", rho=100.0)
    rel = _rel(secure, spec, x, 0)
    if name in ("sqrt", "blt"):
        ints = secure.integer_strategy(spec)
        c, b = ints.c, ints.b
        want = fz.toeplitz(b) @ (fz.toeplitz(c.astype(float)) @ x + np.arange(1, T + 1))
        np.testing.assert_allclose(rel, want, rtol=1e-5)
        return
    table = secure.strategy.mask_table(T)
    Z = np.zeros(table.shape)
    Z[table] = np.arange(1, table.sum() + 1)  # C order: step by step, rows in order
    research = COUNTERS[name]()
    # the state's shapes only (no compile); one jitted program for the noise (speed only)
    state = jax.eval_shape(lambda k: research.init(k, spec), jax.random.key(0))
    shape = research.strategy.draw_shape(state.strategy)
    noise = jax.jit(lambda z: noise_from_draws(research, spec, z))(
        jnp.asarray(Z.reshape(T, *shape), jnp.float32)
    )
    np.testing.assert_allclose(rel - np.cumsum(x), np.asarray(noise)[:, 0], rtol=1e-5)


def test_host_draws_are_keyed_by_stream_and_step():
    """Source `key`: the same (key, t) gives the same draws, any other (key, t) different ones
    (64 draws of N_Z(0, 10^6) coincide by chance with probability < 1e-100); `os` never repeats."""
    from fractions import Fraction

    noise = cnt.SecureNoise("gaussian", Fraction(10**6), 10**9, "key")
    kd = np.array([[0, 1], [0, 1], [0, 2], [7, 1]], np.uint32)
    t = np.array([3, 4, 3, 3])
    mask = np.ones((4, 64), bool)
    a = cnt.host_draws(noise, kd, t, mask)
    np.testing.assert_array_equal(a, cnt.host_draws(noise, kd, t, mask))
    assert len({tuple(r) for r in a}) == 4
    os_noise = noise._replace(source="os")
    b = cnt.host_draws(os_noise, kd, t, mask)
    assert len({tuple(r) for r in b}) == 4 and not np.array_equal(
        b, cnt.host_draws(os_noise, kd, t, mask)
    )
    part = cnt.host_draws(noise, kd, t, np.arange(64)[None, :].repeat(4, 0) % 2 == 0)
    assert np.all(part[:, 1::2] == 0) and np.all(part[:, ::2] == a[:, :32])  # one draw per slot


def test_secure_host_call_batches_nested_vmaps(monkeypatch):
    """Nested vmaps (configs x seeds) still make one host call per step for the whole batch
    (the custom_vmap rule re-applies at every level), with the full batch shape, and each
    stream's draws are those it gets alone (source ``key``: keyed by stream and step)."""
    calls = []
    real = sec.host_draws

    def spy(noise, kd, t, mask, dtype=np.int32):
        calls.append(np.shape(t))
        return real(noise, kd, t, mask, dtype)

    monkeypatch.setattr(sec, "host_draws", spy)
    T = 8
    counter = COUNTERS["binary"](noise="secure", source="key")
    env = continual_fixed(np.ones(T))
    x = env.default_params()

    def run(key):
        return rollout(env, x, counter, key, T, emit=lambda tr: tr.action).emitted

    keys = jax.random.split(jax.random.key(3), 6).reshape(2, 3)
    out = jax.jit(jax.vmap(jax.vmap(run)))(keys)
    assert calls == [(2, 3)] * (T + 1)  # init's draw + one per step
    np.testing.assert_array_equal(out[1, 2], jax.jit(run)(keys[1, 2]))


def test_secure_engine_run():
    """The secure counter under the engine (jit, vmap over seeds, chunked scan with donated
    state): the host draws run and the per-seed MSE (iid over 200 seeds) matches the oracle's
    mean variance within 5 SE, the SE estimated from the seeds (CLT)."""
    env = continual_bernoulli(0.5)
    counter = COUNTERS["binary"](noise="secure", source="key", rho=0.5)
    res = simulate(env, env.default_params(), counter, 50, 200, seed=0, grid=[50])
    spec = env.spec(env.default_params(), 50)
    per_seed = res.final["sq_error"] / 50
    se = per_seed.std(ddof=1) / math.sqrt(per_seed.size)
    assert abs(per_seed.mean() - counter.variance(spec).mean()) < 5 * se


@pytest.mark.slow
@pytest.mark.parametrize("name", list(COUNTERS))
def test_secure_monte_carlo(name):
    """Secure mode, N = 10^4 streams, T = 32, ρ = 1/2: per-step variance within 7% of the exact
    oracle at every t (discrete Gaussian σ² >= 2.5, near-Gaussian sums: relative SE
    sqrt(2/N) = 1.4%, 7% = 5 SE, 32 · 6e-7 false alarms), plus the pooled z-tests."""
    counter = COUNTERS[name](noise="secure", source="key", rho=0.5)
    spec = ContinualSpec(32, 1, 1.0)
    e = np.asarray(noise_streams(counter, spec, jax.random.split(jax.random.key(9), 10_000)))
    e = e[..., 0].astype(np.float64)
    np.testing.assert_allclose((e**2).mean(0), counter.variance(spec), rtol=0.07)
    _check_mean_and_variance(e, counter.variance(spec))


def _rel(counter, spec, x, seed):
    """Releases of the first coordinate for a scalar stream x (`counters.releases`)."""
    return releases(counter, spec, x, seed)[:, 0]


def test_smooth_leaves_past_int32_need_x64():
    """The smooth mechanism's leaves (weight D/2 in D bits) pass 2^31 from T = C(31, 16) =
    300 540 195 (D = 32): int32 below that (checked against the exact count of weight-16 numbers
    below 2^31), a one-line error without x64 from there, int64 with x64, where Gosper's step
    crosses 2^31 exactly (the largest weight-16 number below 2^31 is bits 15..30; the next one
    is bit 31 plus bits 0..14)."""
    from privacy.counters.smooth import _leaf_dtype, _next

    limit = math.comb(31, 16)
    assert _leaf_dtype(limit - 1) == jnp.int32
    assert _leaf_dtype(10**6) == jnp.int32
    with pytest.raises(ConfigError, match=r"^horizon: .* overflow int32; use x64=true"):
        _leaf_dtype(limit)
    with jax.enable_x64(True):
        assert _leaf_dtype(limit) == jnp.int64
        last = jnp.asarray(2**31 - 2**15, jnp.int64)
        assert int(_next(last)) == 2**31 + 2**15 - 1


def test_float32_running_sums_refused_past_2_24():
    """float32 holds every integer to 2^24 but 2^24 + 1 == 2^24: the env's exact S_t (and a
    counter's running total) would silently stall there, so horizons with T·bound > 2^24 need
    x64 (one line naming `horizon`); at T·bound = 2^24 and with x64 the spec is built."""
    from privacy.maxsum import maxsum_leader

    assert np.float32(2**24) + np.float32(1) == np.float32(2**24)
    env = continual_bernoulli(0.5, 1)
    assert env.spec(env.default_params(), 2**24).horizon == 2**24
    for e in (env, maxsum_leader("maxsum", 2)):
        with pytest.raises(ConfigError, match=r"^horizon: sums up to T·bound = .* use x64=true"):
            e.spec(e.default_params(), 2**24 + 1)
    with jax.enable_x64(True):
        assert env.spec(env.default_params(), 2**24 + 1).horizon == 2**24 + 1
