"""Streaming algorithms: pull schedules on tiny K against hand-computed schedules, level constants
against the spec's worked numbers, and (slow tier) faithful mode against the published re-runs."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bandits.streaming import (
    GameOfArms,
    StreamLog,
    StreamLogLog,
    StreamLogStar,
    StreamNaive,
    StreamUniform,
    streaming_bandit,
)


def run_steps(agent, means, T, memory=8, max_steps=100):
    """Drive agent and env step by step (Gaussian rewards, sigma 1e-9: empirical means equal the
    true means, so the schedule is deterministic). Returns [(read?, pulled stream pos, n)], the
    output stream position and total pseudo-regret."""
    env = streaming_bandit(
        K=len(means),
        horizon=T,
        memory=memory,
        instance="explicit",
        means=list(means),
        order="given",
        reward="gaussian",
        sigma=1e-9,
    )
    params = env.default_params()
    spec = env.spec(params, T)
    a_state = agent.init(jax.random.key(0), spec)
    e_state = env.init(jax.random.key(0), params)

    @jax.jit
    def one(e_state, a_state):
        obs = env.observe(e_state, params)
        rng = {"u": jnp.zeros(()), "z": jnp.zeros(()), "key": jax.random.key(0)}
        act = agent.act(rng, a_state, obs)
        e_next, fb, m = env.step(rng, e_state, act, params)
        return e_next, agent.update(a_state, obs, act, fb), act, m, e_next.slot_pos

    sched, regret, rounds = [], 0.0, 0
    for _ in range(max_steps):
        if rounds >= T:
            break
        e_state, a_state, act, m, pos = one(e_state, a_state)
        assert not bool(m["illegal"])
        n = int(act.n)
        sched.append((int(act.read) >= 0, int(pos[int(act.pull)]) if n else -1, n))
        regret += float(m["regret"])
        rounds += int(m["rounds"])
    return sched, int(agent.output(a_state)), regret, int(e_state.peak)


def test_uniform_schedule():
    # K = 4, T = 1000: b = ceil((1000/4)^{2/3} (ln 1000)^{1/3}) = ceil(39.685 * 1.9045) = 76
    means = [0.2, 0.9, 0.5, 0.7]
    sched, out, regret, peak = run_steps(StreamUniform(), means, 1000)
    assert sched == [
        (True, 0, 76),
        (True, 1, 76),
        (True, 2, 76),
        (True, 3, 76),
        (False, 1, 1000 - 4 * 76),
    ]
    assert out == 1 and peak == 2
    assert regret == pytest.approx(76 * (0.7 + 0.0 + 0.4 + 0.2), rel=1e-6)


def test_naive_schedule():
    # K = 4, T = 1000: eps^2 = 0.004^{2/3} = 0.025198; b = ceil(ln 4 / eps^2) = ceil(55.02) = 56
    sched, out, _, _ = run_steps(StreamNaive(), [0.2, 0.9, 0.5, 0.7], 1000)
    assert [n for _, _, n in sched] == [56] * 4 + [1000 - 4 * 56]
    assert out == 1


@pytest.mark.parametrize("mode, chosen", [("corrected", 16), ("faithful", 3)])
def test_log_tower_schedule(mode, chosen):
    # K = 20, T = 20000: eps = 0.1, 1/eps^2 = 100; L = int(ln 20) = 2; b = [100, 120], C = 6 b.
    # Level 0 takes arms 0..6 (c = 700 > 600: full) -> its king (arm 3) is promoted to the empty
    # level 1 and re-pulled 120 times (uncounted); arms 7..13: arm 7 is king with the stale
    # benchmark max(0.9, 0.1) = 0.9 (quirk (d)), so arm 10 (0.8) cannot take over; arm 7 is
    # promoted and compared at level 1 (120 pulls, loses to arm 3); arms 14..19 (c = 600, not
    # full; arm 16 beats the stale 0.9); stream ends:
    # T - counted = 20000 - 2120 >= max_level b[0] = 100 -> re-pull the kings of levels 0 and 1
    # (100 each) and commit T - 2440 = 17560. The level-0 king (arm 16, 0.95) is the empirical
    # best (corrected); the authors' selection returns the last non-empty level (arm 3, faithful).
    means = [0.1] * 20
    means[3], means[10], means[16] = 0.9, 0.8, 0.95
    sched, out, _, peak = run_steps(StreamLog(mode), means, 20000)
    expect = [(True, i, 100) for i in range(7)] + [(False, 3, 120)]
    expect += [(True, i, 100) for i in range(7, 14)] + [(False, 7, 120)]
    expect += [(True, i, 100) for i in range(14, 20)] + [(False, 16, 100), (False, 3, 100)]
    expect += [(False, chosen, 17560)]
    assert sched == expect
    assert out == chosen and peak <= 3  # L + 1 = 3 slots


def test_goa_schedule():
    # K = 4, T = 4000: eps = 0.1; n_l = 100 2^l; B0 = 120; +100 per arm; frac_n = ceil(138.6) =
    # 139; frac probability 1.5/ln 4 > 1 (every arm). king_est starts at eps/2 = 0.05.
    # arm0: frac pull 139 (king, budget 120 -> 220). arm1 (0.3): level 0 (100, budget 120),
    # 0.3 > 0.05 - 0.02 -> level 1 costs 200 > 120: dethrones (120 pulls), frac pull 139.
    # arm2 (0.9): 100, then dethrones (120), frac 139 (new fallback). arm3 (0.6): 100, discarded
    # (0.6 <= 0.9 - 0.02), frac 139. Commit to the king (arm 2): 4000 - 1096 = 2904.
    for mode in ("corrected", "faithful"):
        sched, out, _, peak = run_steps(GameOfArms(mode), [0.5, 0.3, 0.9, 0.6], 4000)
        assert [(p, n) for _, p, n in sched] == [
            (0, 139),
            (1, 100),
            (1, 120),
            (1, 139),
            (2, 100),
            (2, 120),
            (2, 139),
            (3, 100),
            (3, 139),
            (2, 2904),
        ]
        assert out == 2 and peak == 3


def test_level_constants_match_spec_worked_numbers():
    # spec §2.4: at K = 50 000, T = 1.25e17: log has 10 levels, loglog 3, log* 4 (r = 2,4,16,65536)
    K, T = 50_000, 1000 * 50_000**3
    e2 = (K / T) ** (2 / 3)
    assert len(StreamLog().levels(K, T)[0]) == 10
    assert len(StreamLogLog().levels(K, T)[0]) == 3
    b, cap = StreamLogStar().levels(K, T)
    assert len(b) == 4
    assert b[1] == math.ceil(4 / e2) and b[2] == math.ceil(16 / e2)
    # comparisons per level before promotion: 4, 4, 4096 (spec table)
    assert [round(c / x) for c, x in zip(cap[:3], b[:3], strict=True)] == [4, 4, 4096]
    assert 1 / e2 == pytest.approx(1.84e8, rel=0.01)  # spec: 1/eps^2 = 1.84e8


# --------------------------------------------------------------------------- slow tier
def _ratios(mode, instance, seeds, K=1000, beta=2):
    from experiments.simulate import simulate

    jax.config.update("jax_enable_x64", True)
    T = 1000 * K**beta
    env = streaming_bandit(K=K, horizon=T, memory=16, instance=instance, mode=mode)
    out = {}
    for ag in (
        StreamUniform(mode),
        StreamNaive(mode),
        StreamLogLog(mode),
        GameOfArms(mode),
        StreamLog(mode),
    ):
        out[type(ag).__name__] = simulate(env, env.default_params(), ag, T, seeds).final["regret"]
    return out


@pytest.mark.slow
def test_faithful_mode_matches_published_rerun_k1000_beta2():
    """Spec §3.4 [RE-RUN], K = 1000, T = 1e9, clear-cut, code as published, 10 seeds: uniform
    8.79e6; ratios naive 2.52, loglog 0.39, GoA 0.91."""
    r = _ratios("faithful", "clear_cut", 10)
    uni = r["StreamUniform"].mean()
    # uniform's regret is K b (0.82 - E mu) up to the commit: seed-to-seed sd ~1%; 3% tolerance
    assert uni == pytest.approx(8.79e6, rel=0.03)
    assert r["StreamNaive"].mean() / uni == pytest.approx(2.52, rel=0.05)
    # loglog and GoA vary more between seeds (which arm wins): 25% tolerance
    assert r["StreamLogLog"].mean() / uni == pytest.approx(0.39, rel=0.25)
    assert r["GameOfArms"].mean() / uni == pytest.approx(0.91, rel=0.15)


@pytest.mark.slow
def test_corrected_mode_beats_uniform_k1000_beta2():
    """Spec §3.4 "both fixes", K = 1000, T = 1e9, clear-cut: log 0.43, loglog 0.59 (< 1)."""
    r = _ratios("corrected", "clear_cut", 10)
    uni = r["StreamUniform"].mean()
    assert r["StreamLogLog"].mean() < uni and r["StreamLog"].mean() < uni
    assert np.all(np.isfinite(r["GameOfArms"]))
