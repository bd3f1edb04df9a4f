"""Continual MaxSum / SumSelect (privacy/maxsum.py, streams): error definitions against NumPy,
stream schedules, the adaptive rule, SVT epoch logic against a brute-force reference, calibration
identities, the engine run, bad input, and R5 (quick here, full grid in the slow tier)."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments.config import ConfigError
from experiments.simulate import simulate
from privacy import r5
from privacy.continual import ContinualSpec
from privacy.counters import BinaryTreeCounter
from privacy.maxsum import (
    BatchMaxSum,
    ContinualMaxSum,
    CounterMaxSum,
    MaxSumSpec,
    MinCombination,
    SparseVectorMaxSum,
    _noise_bound,
    counter_bound,
    maxsum_adaptive,
    maxsum_leader,
    rho_for,
    rollout,
    svt_calibration,
)
from privacy.streams import AdaptiveStream, LeaderStream, fixed_stream

RNG = np.random.default_rng(0)
RECORDS = (RNG.random((12, 3)) < 0.5).astype(float)


def _run_agent(agent, records, problem, key=0):
    """Releases of `agent` on a fixed (T, d) stream, step by step (act, then update)."""
    T, d = records.shape
    state = agent.init(jax.random.key(key), MaxSumSpec(T, d, problem))
    out = []
    for x in jnp.asarray(records, jnp.float32):
        a = agent.act({"u": jnp.full((d,), 0.5)}, state, x)
        state = agent.update(state, x, a, ())
        out.append(np.asarray(a))
    return np.array(out), state


# --------------------------------------------------------------------------- environment
@pytest.mark.parametrize("problem", ["maxsum", "sumselect"])
def test_env_errors_match_numpy(problem):
    env = ContinualMaxSum(fixed_stream(RECORDS.tolist()), problem)
    params = env.default_params()
    state = env.init(jax.random.key(0), params)
    S = np.cumsum(RECORDS, 0)
    acts = RNG.integers(0, 3, 12) if problem == "sumselect" else RNG.normal(3, 2, 12)
    worst = 0.0
    for t in range(12):
        np.testing.assert_array_equal(env.observe(state, params), RECORDS[t])
        a = jnp.asarray(acts[t], jnp.int32 if problem == "sumselect" else jnp.float32)
        state, _, m = env.step({}, state, a, params)
        ref = S[t].max() - S[t, acts[t]] if problem == "sumselect" else abs(acts[t] - S[t].max())
        assert float(m["error"]) == pytest.approx(ref, abs=1e-5)  # float32 of small integers
        assert not bool(m["illegal"])
        worst = max(worst, ref)
    assert float(env.final_metrics(state, (), params)["max_error"]) == pytest.approx(worst, 1e-6)


def test_env_flags_illegal_index_and_rejects_float_index():
    env = ContinualMaxSum(fixed_stream(RECORDS.tolist()), "sumselect")
    params = env.default_params()
    state = env.init(jax.random.key(0), params)
    assert bool(env.step({}, state, jnp.asarray(3, jnp.int32), params)[2]["illegal"])
    with pytest.raises(TypeError):
        env.step({}, state, jnp.asarray(1.0), params)


def test_bad_config():
    with pytest.raises(ConfigError, match=r"env\.problem"):
        ContinualMaxSum(LeaderStream(4), "sum")
    with pytest.raises(ConfigError, match=r"env\.p_lead"):
        LeaderStream(4, p_lead=1.5)
    with pytest.raises(ConfigError, match=r"env\.bound"):
        ContinualMaxSum(fixed_stream([2.0], bound=2.0))
    with pytest.raises(ConfigError, match="problem"):
        CounterMaxSum("maxsum").init(jax.random.key(0), MaxSumSpec(8, 2, "sumselect"))
    with pytest.raises(ConfigError, match="horizon, d"):
        MinCombination("maxsum", horizon=64, d=2).init(
            jax.random.key(0), MaxSumSpec(32, 2, "maxsum")
        )


# --------------------------------------------------------------------------- streams
def test_leader_switching_schedule():
    """p_lead = 1, p_base = 0: the sums are deterministic; the arg-max between the contenders
    changes at every multiple of P (ties there), as the LeaderStream docstring derives."""
    P, T = 6, 48
    s = LeaderStream(4, 1.0, 0.0, P)
    env, params = ContinualMaxSum(s), s.params()
    state = env.init(jax.random.key(0), params)
    xs = []
    for _ in range(T):
        xs.append(np.asarray(state.x))
        state, _, _ = env.step({"u": jnp.full((4,), 0.5)}, state, jnp.float32(0), params)
    xs = np.array(xs)
    lead = ((np.arange(T) + P // 2) // P) % 2
    np.testing.assert_array_equal(xs, np.eye(4)[lead])
    S = np.cumsum(xs, 0)
    gap = S[:, 1] - S[:, 0]
    np.testing.assert_array_equal(gap[P - 1 :: P], 0)  # ties at t = P, 2P, ...
    assert np.all(np.abs(gap) <= P / 2 + 1)  # triangle wave of amplitude P/2
    assert r5.make_env("switching", "maxsum", 4, 4096).stream.period == round(4096 ** (2 / 3))


def test_adaptive_rule():
    adv = AdaptiveStream(4, 0.9, 0.5)
    params = adv.params()
    tot = jnp.asarray([5.0, 7.0, 3.0, 6.0])
    sel = np.asarray(adv.probabilities(jnp.asarray(1, jnp.int32), tot, params))
    np.testing.assert_allclose(sel, [0.5, 0.0, 0.5, 0.9])  # ĵ starved, strongest rival pushed
    under = np.asarray(adv.probabilities(jnp.asarray(6.0), tot, params))
    np.testing.assert_allclose(under, [0.5, 0.9, 0.5, 0.5])
    np.testing.assert_array_equal(adv.probabilities(jnp.asarray(7.0), tot, params), 0)


# --------------------------------------------------------------------------- mechanisms
@pytest.mark.parametrize("problem", ["maxsum", "sumselect"])
def test_counter_maxsum_is_max_of_counter(problem):
    """Releases = max / argmax of the binary-tree counter's release on the same key."""
    agent = CounterMaxSum(problem, rho=0.5)
    got, _ = _run_agent(agent, RECORDS, problem)
    counter = BinaryTreeCounter(rho=0.5)
    st = counter.init(jax.random.key(0), ContinualSpec(12, 3, 1.0))
    for t, x in enumerate(jnp.asarray(RECORDS, jnp.float32)):
        est = np.asarray(counter.act({}, st, x))
        st = counter.update(st, x, est, ())
        ref = est.max() if problem == "maxsum" else est.argmax()
        assert got[t] == pytest.approx(ref, rel=1e-6)
    # joint calibration: σ² = d L / (2ρ) with L = ⌊log2 T⌋ + 1
    assert float(st.noise.scale) ** 2 == pytest.approx(3 * 4 / 1.0, rel=1e-6)


def _svt_reference(records, tau, cap, problem):
    """Noise-free SVT epochs in NumPy: release at t = 1, then whenever the query reaches τ."""
    S = np.cumsum(records, 0)
    out, rel, epochs = [], None, 0
    for t in range(len(S)):
        top = S[t].max()
        q = None if rel is None else abs(top - rel) if problem == "maxsum" else top - S[t, rel]
        if rel is None or (q >= tau and epochs < cap):
            rel = top if problem == "maxsum" else int(np.argmax(S[t]))
            epochs += 1
        out.append(rel)
    return np.array(out), epochs


@pytest.mark.parametrize("problem", ["maxsum", "sumselect"])
@pytest.mark.parametrize("tau", [1.5, 3.0])
def test_svt_epochs_match_reference(problem, tau):
    """With ε huge the Laplace noise is ~1e-9: the epoch logic is the deterministic reference
    (τ is half-integer or integer + 0.5-free: ties at τ = 3 are decided by >= in both)."""
    records = (np.random.default_rng(1).random((40, 3)) < 0.6).astype(float)
    agent = SparseVectorMaxSum(problem, epsilon=1e12, threshold=tau)
    got, state = _run_agent(agent, records, problem)
    cal = agent.calibration(MaxSumSpec(40, 3, problem))
    ref, epochs = _svt_reference(records, tau, cal.epochs, problem)
    np.testing.assert_allclose(got, ref, atol=1e-3)
    assert int(state.epochs) == epochs


def test_svt_cap_and_threshold_refresh():
    """With a cap k = 3 and a query that always exceeds the threshold, releases happen at steps
    1, 2, 3 and are then held; each epoch draws a fresh noisy threshold."""
    agent = SparseVectorMaxSum("maxsum", epsilon=1e4, threshold=0.5)  # noise scales <= 0.014
    spec = MaxSumSpec(8, 2, "maxsum")
    state = agent.init(jax.random.key(3), spec)._replace(cap=jnp.asarray(3, jnp.int32))
    releases, thresholds = [], []
    for x in jnp.ones((8, 2)):
        state = agent.update(state, x, agent.act({}, state, x), ())
        releases.append(float(state.release))
        thresholds.append(float(state.noisy_threshold))
    np.testing.assert_allclose(releases, [1, 2, 3, 3, 3, 3, 3, 3], atol=0.05)
    assert int(state.epochs) == 3
    assert len(set(thresholds[:3])) == 3  # refreshed per epoch (continuous noise: distinct)


def test_svt_calibration_fixed_point_and_budget():
    """τ = 2 B(k(τ)) (the auto choice), k = ⌈2T/τ⌉ + 1, and the k epochs' releases compose to
    exactly ρ (zCDP) or ε (pure), counted event by event with `privacy.accounting`."""
    from privacy.accounting import PureDP

    c = svt_calibration(0.5, None, 2**16, 4, "maxsum")
    assert c.epochs == math.ceil(2 * 2**16 / c.threshold) + 1
    # Every epoch runs two ε0/2-DP mechanisms (the release, one AboveThreshold), each converted
    # to zCDP on its own, then all 2k added: the budget is spent exactly, not over- or under-.
    half = PureDP(c.eps0 / 2).to_zcdp()
    total = half
    for _ in range(2 * c.epochs - 1):
        total = total.compose(half)
    assert total.rho == pytest.approx(0.5, rel=1e-9)
    B = (12 / c.eps0 + 2 / c.eps0) * math.log(3 * 2**16 / 0.1)
    assert c.threshold == pytest.approx(2 * B, rel=1e-4)  # brentq tolerance, k is an integer
    p = svt_calibration(0.5, 2.0, 1024, 4, "maxsum", threshold=50.0)
    assert p.epochs * p.eps0 == pytest.approx(2.0)

    # The rate each composition gives (k = 2T/τ + 1 epochs, B ∝ ln(3T/β)/ε0, τ = 2B):
    # zCDP, ε0 = 2 sqrt(ρ/k): τ^{3/2} ∝ sqrt(T) ln(3T/β), the T^{1/3} rate;
    # pure, ε0 = ε/k: τ² ∝ T ln(3T/β), the sqrt(T) rate. Ratios of τ from T to 16 T against these
    # laws; the tolerances (1%, 2%) are the "+1" and the ceiling in k, which the laws drop
    # (k = 60 and 19 epochs at T = 2^16, 336 and 67 at 2^20, 1928 and 245 at 2^24).
    def ratio(eps, T):
        return svt_calibration(0.5, eps, 16 * T, 4, "maxsum").threshold / (
            svt_calibration(0.5, eps, T, 4, "maxsum").threshold
        )

    def log_ratio(T):
        return math.log(3 * 16 * T / 0.1) / math.log(3 * T / 0.1)

    assert ratio(None, 2**16) == pytest.approx(
        16 ** (1 / 3) * log_ratio(2**16) ** (2 / 3), rel=0.01
    )
    assert ratio(1.0, 2**20) == pytest.approx(4 * log_ratio(2**20) ** (1 / 2), rel=0.02)


@pytest.mark.parametrize("problem", ["maxsum", "sumselect"])
def test_svt_threshold_is_at_least_twice_the_noise_bound(problem):
    """The auto τ satisfies τ >= 2 B(k(τ)) — the premise under which epochs last >= τ/2 steps and
    k(τ) epochs suffice — at every grid point, including those where τ - 2B(k(τ)) jumps over 0
    (k an integer): before the fix brentq returned a point left of the jump there (T = 2048,
    MaxSum: τ = 2048.0 < 2B = 2101.2; T = 2^15 SumSelect: 10922.7 < 11254.3)."""
    for T in [2**j for j in range(8, 21)] + [3000, 5000, 10_000, 50_000, 123_457, 400_000]:
        for d in (1, 4, 64):
            for rho, eps in ((rho_for(1.0, 1.0 / T**2), None), (0.5, None), (0.5, 1.0)):
                c = svt_calibration(rho, eps, T, d, problem)
                B = _noise_bound(c.eps0, c.sensitivity, problem, T, d, 0.1)
                assert c.epochs == min(T, math.ceil(2 * T / c.threshold) + 1)
                assert c.threshold >= 2 * B or c.threshold == T, (T, d, rho, eps, c, 2 * B)


def test_rho_for_inverts_the_conversion():
    """ρ's conversion is ε to 1e-7 and never above it (the largest ρ "at most ε"), also for a
    tiny ε whose ρ lies below the usual bracket (it raised a raw ValueError before)."""
    from privacy.accounting import zcdp_to_dp_cks

    for eps, delta in ((1.0, 2.0**-20), (0.1, 1e-6), (5.0, 1e-9), (1e-4, 1e-10)):
        rho = rho_for(eps, delta)
        got = zcdp_to_dp_cks(rho, delta)
        # rel 1e-7: the conversion itself is a bisection to 1e-12 absolute (1e-8 at ε = 1e-4)
        assert got <= eps and got == pytest.approx(eps, rel=1e-7)


def test_min_combination_equals_chosen_mechanism():
    for d, expect in ((1, "counters"), (4096, "svt")):
        comb = MinCombination("maxsum", rho=0.5, horizon=4096, d=d)
        pick = min(comb.bounds, key=comb.bounds.get)
        assert pick == expect  # √d vs T^{1/3}: counters win at d = 1, SVT at d = 4096
    comb = MinCombination("maxsum", rho=0.5, horizon=12, d=3)
    np.testing.assert_array_equal(
        _run_agent(comb, RECORDS, "maxsum")[0], _run_agent(comb.chosen, RECORDS, "maxsum")[0]
    )


def test_engine_run_and_bounds():
    """Through the engine: errors within the mechanisms' (1 - β) bounds on every seed (β = 0.1
    per seed; the bounds are union bounds, loose by a large factor, so a failure is a bug)."""
    T, d = 200, 4
    env = maxsum_leader("maxsum", d)
    agent = SparseVectorMaxSum("maxsum", rho=0.5)
    res = simulate(env, env.default_params(), agent, T, 8, grid=[T], chunk_size=T)
    assert np.all(res.final["max_error"] <= svt_calibration(0.5, None, T, d, "maxsum").bound)
    assert np.all(res.final["error"] / T <= res.final["max_error"] + 1e-6)
    cnt = rollout(env, env.default_params(), CounterMaxSum("maxsum", rho=0.5), T, 8)
    assert np.all(cnt["max_error"] <= counter_bound("binary", 0.5, T, d, "maxsum", 0.1))
    adv = maxsum_adaptive("sumselect", d)
    batch = rollout(adv, adv.default_params(), BatchMaxSum("sumselect", epsilon=1e9), T, 4)
    np.testing.assert_array_equal(batch["max_error"], 0)  # noise-free batch = exact argmax


def test_rollout_is_the_engines_seed():
    """`maxsum.rollout` wraps the engine's one-seed rollout: seed s of `rollout(..., seed=7)` is
    seed s of `simulate(..., seed=7)` (same run keys, same draws of env and agent), here with
    agent noise and an adaptive stream (env draws that depend on the release)."""
    T, seeds = 150, 3  # two engine chunks of 100 steps
    env = maxsum_adaptive("sumselect", 3)
    agent = CounterMaxSum("sumselect", rho=0.5)
    res = simulate(env, env.default_params(), agent, T, seeds, seed=7, grid=[T], chunk_size=100)
    out = rollout(env, env.default_params(), agent, T, seeds, seed=7)
    np.testing.assert_array_equal(out["max_error"], res.final["max_error"])
    np.testing.assert_allclose(out["error"], res.final["error"], rtol=1e-12, atol=0)
    assert not out["illegal"].any() and out["max_error"].std() > 0


# --------------------------------------------------------------------------- R5
def test_r5_quick():
    """Default-tier R5 at T = 256: counters grow ≈ √(d log d) (slope 0.5 + 0.5 ln(ln 256/ln 4) /
    ln 64 ≈ 0.62 between d = 4 and 256; band [0.45, 0.8] for 8 seeds), and the batch baseline is
    far below both (the price of continual release). SVT's flatness in d is checked at T = 2^14,
    where it re-releases (its mean error well below the trivial ≈ 0.55 T of a run that never
    does, which is all it can do at T = 256 with the whp calibration): its calibration and query
    ignore d for MaxSum, so |slope| < 0.1 (4 seeds: the means' standard errors are ~2%, a slope
    error of ~0.01 over d = 4..64; the full grid's d = 256 is in the slow tier)."""
    rows = r5.run_point(256, 4, 8) + r5.run_point(256, 256, 8, ("counters",))
    m = {(r["mech"], r["d"]): r["mean"] for r in rows}
    assert 0.45 <= r5.loglog_slope([4, 256], [m["counters", 4], m["counters", 256]]) <= 0.8
    assert m["batch", 4] * 5 < min(m["counters", 4], m["svt", 4])
    T = 2**14
    svt = [r5.run_point(T, d, 4, ("svt",))[0]["mean"] for d in (4, 64)]
    assert max(svt) < 0.5 * 0.55 * T  # re-released: not the trivial regime
    assert abs(r5.loglog_slope([4, 64], svt)) < 0.1


@pytest.mark.slow
def test_r5_full():
    """Spec grid (30 seeds). SVT T-slope on T = 2^14..2^20 within 0.1 of the slope of its
    calibrated threshold τ(T) (1/3 + log terms, ≈ 0.43), and below 1/2 (the naive √T analysis);
    counters' d-slope in [0.45, 0.8] (√d times the √log d of a max); SVT flat in d (d = 4 vs 256
    at T = 2^16, where it re-releases); the
    crossover d at T = 2^12 between 16 and 4096 (T^{2/3} = 256 up to logs)."""
    rows = r5.sweep(r5.GRIDS["full"])
    s = r5.summarise(rows, r5.GRIDS["full"])
    assert abs(s["svt_slope_T_long"] - s["svt_slope_T_long_predicted"]) < 0.1
    assert 1 / 3 - 0.05 < s["svt_slope_T_long"] < 0.5
    assert 0.45 <= s["counters_slope_d"] <= 0.8
    assert abs(s["svt_slope_d_long"]) < 0.1  # where it re-releases (T = 2^16)
    assert s["crossover_d"] is not None and 16 < s["crossover_d"] <= 4096


@pytest.mark.parametrize("problem", ["maxsum", "sumselect"])
def test_svt_noise_reaches_the_draws_at_dwork_roth_scales(problem):
    """AboveThreshold with budget ε1 and query sensitivity Δ (Dwork & Roth 2014, Alg. 1): noisy
    threshold τ + Lap(2Δ/ε1), each query + Lap(4Δ/ε1); here ε1 = ε0/2 with ε0 = ε/k (pure DP, ε
    = 4, k = ⌈2T/τ⌉ + 1 = 27 epochs at T = 64, τ = 5) and Δ = 1 (MaxSum) or 2 (SumSelect).
    Measured through the real `_advance` on 4000 keys (removing the query noise or halving the
    threshold noise passed every test before): (a) a fresh epoch's noisy threshold minus τ has
    mean absolute deviation 2Δ/ε1 (a Laplace(b)'s |X| has mean b, sd b: 4000 draws put the mean
    within 3.5 % at 2 sd); (b) with the query 0 and the noisy threshold c fixed, P[restart] =
    P[Lap(4Δ/ε1) >= c] = e^{-c/b}/2 (c = b: 0.184; binomial sd 0.006 at 4000, tolerance 4 sd)."""
    eps, n = 4.0, 4000
    spec = MaxSumSpec(64, 3, problem)
    agent = SparseVectorMaxSum(problem, epsilon=eps, threshold=5.0)
    cal = agent.calibration(spec)
    assert cal.epochs == 27 and cal.eps0 == pytest.approx(eps / 27)
    delta = 1.0 if problem == "maxsum" else 2.0
    e1 = cal.eps0 / 2
    keys = jax.random.split(jax.random.key(11), n)
    # jitted: one program each instead of op-by-op dispatch (speed only); `update` serves both
    states = jax.jit(jax.vmap(lambda key: agent.init(key, spec)))(keys)
    update = jax.jit(jax.vmap(agent.update, in_axes=(0, None, None, None)))
    first = update(states, jnp.zeros(3), jnp.zeros((), states.release.dtype), ())
    dev = np.abs(np.asarray(first.noisy_threshold) - cal.threshold)
    assert dev.mean() == pytest.approx(2 * delta / e1, rel=0.035)
    b = 4 * delta / e1
    held = first._replace(
        noisy_threshold=jnp.full((n,), b, first.noisy_threshold.dtype),
        release=jnp.zeros_like(first.release),  # totals 0: the query |0 - 0| or 0 - 0 is 0
    )
    after = update(held, jnp.zeros(3), jnp.zeros((), states.release.dtype), ())
    restarted = np.asarray(after.epochs > first.epochs).mean()
    p = math.exp(-1.0) / 2
    assert abs(restarted - p) <= 4 * math.sqrt(p * (1 - p) / n)
