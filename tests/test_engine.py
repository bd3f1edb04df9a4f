"""Correctness of the simulation engine (`experiments.simulate`).

Every check compares the engine with something independent: a NumPy reference of a deterministic
schedule, an exact distribution (Binomial, Gaussian), or the same run under another chunking.
Only UCB1 and the small agents defined here are used.

Compiling a chunk costs seconds on 2 cores, so most runs use ``chunk_size=100`` and share their
compiled programs through JAX's persistent compilation cache (a temporary directory, for this
module only): runs that differ only in seed, grid or (for one-round agents) horizon compile once.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from bandits.agents import UCB1
from bandits.envs import BernoulliBandit, GaussianBandit, Pull
from experiments.protocol import UNIFORM, AgentBase, Draw, IllegalActionError
from experiments.simulate import INT32_MAX, SimResult, make_grid, simulate, simulate_agents

REPO = Path(__file__).resolve().parents[1]
INT = jnp.result_type(int)  # int32, or int64 under x64


# --------------------------------------------------------------------------- test agents
@dataclass(frozen=True)
class FixedArm(AgentBase):
    """Pulls `arm` once per step."""

    arm: int = 0

    def init(self, key, spec):
        return jnp.zeros((), INT)

    def act(self, rng, state, obs):
        return jnp.asarray(self.arm, INT)

    def update(self, state, obs, action, feedback):
        return state


@dataclass(frozen=True)
class RoundRobin(AgentBase):
    """Pulls arm t mod K in round t (t = rounds completed, the bandit observation)."""

    num_arms: int

    def init(self, key, spec):
        return jnp.zeros((), INT)

    def act(self, rng, state, obs):
        return (obs % self.num_arms).astype(INT)

    def update(self, state, obs, action, feedback):
        return state


@dataclass(frozen=True)
class UniformArm(AgentBase):
    """Pulls a uniformly random arm, from an engine-drawn uniform (it declares randomness)."""

    num_arms: int

    def randomness(self, spec):
        return {"u": Draw(UNIFORM)}

    def init(self, key, spec):
        return jnp.zeros((), INT)

    def act(self, rng, state, obs):
        return jnp.minimum((rng["u"] * self.num_arms).astype(INT), self.num_arms - 1)

    def update(self, state, obs, action, feedback):
        return state


@dataclass(frozen=True)
class FixedPull(AgentBase):
    """Pulls `arm` `n` times per step (`Pull`, a multi-round step)."""

    arm: int = 0
    n: int = 1

    def init(self, key, spec):
        return jnp.zeros((), INT)

    def act(self, rng, state, obs):
        return Pull(jnp.asarray(self.arm, INT), jnp.asarray(self.n, INT))

    def update(self, state, obs, action, feedback):
        return state


@dataclass(frozen=True)
class CyclicPull(AgentBase):
    """Step s pulls arm s mod K, (s mod 4) + 1 times: multi-round steps of varying length."""

    num_arms: int

    def init(self, key, spec):
        return jnp.zeros((), INT)  # steps taken

    def act(self, rng, state, obs):
        return Pull((state % self.num_arms).astype(INT), (state % 4 + 1).astype(INT))

    def update(self, state, obs, action, feedback):
        return state + 1


@dataclass(frozen=True)
class FirstPullSize(AgentBase):
    """Pulls arm 0: `n0` times in its first step, once per step afterwards."""

    n0: int

    def init(self, key, spec):
        return jnp.zeros((), INT)

    def act(self, rng, state, obs):
        return Pull(jnp.asarray(0, INT), jnp.where(state == 0, self.n0, 1).astype(INT))

    def update(self, state, obs, action, feedback):
        return state + 1


@pytest.fixture(scope="module", autouse=True)
def _compilation_cache(tmp_path_factory):
    """Turn on JAX's persistent compilation cache in a temporary directory; restore afterwards."""
    from jax.experimental.compilation_cache import compilation_cache

    names = ("jax_compilation_cache_dir", "jax_persistent_cache_min_compile_time_secs")
    old = {k: getattr(jax.config, k) for k in names}
    jax.config.update(names[0], str(tmp_path_factory.mktemp("jax_cache")))
    jax.config.update(names[1], 0.0)
    compilation_cache.reset_cache()
    yield
    for k, v in old.items():
        jax.config.update(k, v)
    compilation_cache.reset_cache()


def _run(env, agent, horizon, seeds, **kw) -> SimResult:
    return simulate(env, env.default_params(), agent, horizon, seeds, **kw)


def _assert_identical(a: SimResult, b: SimResult) -> None:
    np.testing.assert_array_equal(a.rounds, b.rounds)
    assert a.curves.keys() == b.curves.keys() and a.final.keys() == b.final.keys()
    for k in a.curves:
        np.testing.assert_array_equal(a.curves[k], b.curves[k], err_msg=k)
    for k in a.final:
        np.testing.assert_array_equal(a.final[k], b.final[k], err_msg=k)


# --------------------------------------------------------------------------- determinism, chunks
BERN3 = BernoulliBandit((0.3, 0.5, 0.6))
GAUSS3 = GaussianBandit((0.3, 0.5, 0.6), sigma=1.0)


@pytest.fixture(scope="module")
def ucb_runs() -> dict[str, SimResult]:
    """UCB1 on 3 Bernoulli arms, T = 500 (default chunk 500; chunk 300 leaves a 200-step tail)."""
    grid = make_grid(500, "every")
    runs = {c: _run(BERN3, UCB1(), 500, 8, grid=grid, chunk_size=c) for c in (100, 300, None)}
    runs["again"] = _run(BERN3, UCB1(), 500, 8, grid=grid, chunk_size=100)
    runs["seed1"] = _run(BERN3, UCB1(), 500, 8, seed=1, grid=grid, chunk_size=100)
    return runs


def test_same_seed_bit_identical(ucb_runs):
    _assert_identical(ucb_runs[100], ucb_runs["again"])


def test_concurrent_compilation_gives_the_same_results(ucb_runs):
    """`simulate_agents` compiles its agents in threads; each result is bit-identical to a
    separate `simulate` call (the programs and the draws do not depend on the threading)."""
    grid = make_grid(500, "every")
    agents = {"a": UCB1(), "b": UCB1(c=1.0)}
    sims = simulate_agents(BERN3, BERN3.default_params(), agents, 500, 8, 0, grid, 100, workers=2)
    _assert_identical(sims["a"], ucb_runs[100])
    alone = simulate(BERN3, BERN3.default_params(), UCB1(c=1.0), 500, 8, 0, grid, 100)
    _assert_identical(sims["b"], alone)


def test_different_seed_differs(ucb_runs):
    a, b = ucb_runs[100], ucb_runs["seed1"]
    assert not np.array_equal(a.final["realized_regret"], b.final["realized_regret"])
    # Within one run the seeds are independent, too.
    assert np.unique(a.final["realized_regret"]).size > 1


def test_chunk_size_independent_one_round(ucb_runs):
    assert ucb_runs[None].info["chunk_size"] == 500  # the default really is a third chunking
    assert ucb_runs[300].info["chunk_size"] == 300
    _assert_identical(ucb_runs[100], ucb_runs[300])
    _assert_identical(ucb_runs[100], ucb_runs[None])


def test_chunk_size_independent_multi_round():
    # Steps pull 1, 2, 3, 4 rounds in turn: 10 rounds per 4 steps, so T = 200 ends on step 80.
    # Chunk 300 > 80 steps: the seeds idle after the horizon. (Gaussian: cheaper to compile than
    # the Binomial sampler of Bernoulli Pulls, which test_pull_bernoulli_is_binomial covers.)
    grid = make_grid(200, "every")
    runs = [_run(GAUSS3, CyclicPull(3), 200, 6, grid=grid, chunk_size=c) for c in (100, 300, None)]
    assert all(r.info["multi_round"] for r in runs)
    assert runs[2].info["chunk_size"] not in (100, 300)
    assert [r.steps for r in runs] == [80, 80, 80]  # the steps taken, not the chunk's length
    _assert_identical(runs[0], runs[1])
    _assert_identical(runs[0], runs[2])


@dataclass(frozen=True)
class DeclaredCyclicPull(CyclicPull):
    """`CyclicPull` declaring its step count (`max_steps`): 80 steps spend T = 200."""

    def max_steps(self, spec):
        return 80


def test_declared_max_steps_sizes_the_chunk_and_changes_nothing():
    """A multi-round agent's `max_steps` caps the default chunk (whole RNG blocks: 100 steps
    for 80), so a phased algorithm does not idle through a horizon-sized chunk; the results are
    those of any other chunk size."""
    grid = make_grid(200, "every")
    declared = _run(GAUSS3, DeclaredCyclicPull(3), 200, 6, grid=grid)
    assert declared.info["chunk_size"] == 100
    _assert_identical(declared, _run(GAUSS3, CyclicPull(3), 200, 6, grid=grid, chunk_size=300))


# --------------------------------------------------------------------------- grids and curves
@pytest.mark.parametrize("horizon", [1, 7, 1000, 12_345, 10**9])
@pytest.mark.parametrize("kind", ["linear", "log"])
def test_grid_shape(kind, horizon):
    g = make_grid(horizon, kind, points=50)
    assert g.dtype == np.int64 and g[-1] == horizon and g[0] >= 1
    assert np.all(np.diff(g) > 0)
    assert g.size <= 51  # the points asked for, plus at most the horizon
    if kind == "log":
        assert g[0] == 1
        big = g[:-1] >= 1000  # above 1000, rounding to integers moves a ratio by < 1e-3
        if big.any():
            np.testing.assert_allclose((g[1:] / g[:-1])[big], horizon ** (1 / 49), rtol=1e-3)
    if kind == "linear" and horizon >= 1000:
        np.testing.assert_allclose(np.diff(g), horizon / 50, atol=1)  # integer rounding


def test_grid_every_and_errors():
    np.testing.assert_array_equal(make_grid(5, "every"), [1, 2, 3, 4, 5])
    with pytest.raises(ValueError, match=r"record\.grid"):
        make_grid(10, "cubic")
    for bad in ([0, 5], [3, 2], [5, 11]):
        with pytest.raises(ValueError, match="grid"):
            _run(BERN3, FixedArm(0), 10, 1, grid=bad)


T_RR = 300


@pytest.fixture(scope="module")
def round_robin_every() -> SimResult:
    """Round robin on 3 Gaussian arms, T = 300 in chunks of 100, every round recorded."""
    return _run(GAUSS3, RoundRobin(3), T_RR, 4, grid=make_grid(T_RR, "every"), chunk_size=100)


def test_curve_every_round_matches_numpy(round_robin_every):
    r = round_robin_every
    gaps = 0.6 - np.array([0.3, 0.5, 0.6], np.float32).astype(np.float64)
    ref = np.cumsum(gaps[np.arange(T_RR) % 3])  # float64 NumPy re-simulation of the schedule
    np.testing.assert_array_equal(r.rounds, np.arange(1, T_RR + 1))
    assert r.curves["regret"].shape == (4, T_RR)
    # rtol 1e-6: float32 means (relative error 2^-24 each, gaps ~0.1 -> < 1e-6) and float32 curve
    # values; a missing or repeated round changes a value by >= 0.1, i.e. >= 1e-3 relative.
    np.testing.assert_allclose(r.curves["regret"], np.broadcast_to(ref, (4, T_RR)), rtol=1e-6)
    np.testing.assert_allclose(r.final["regret"], ref[-1], rtol=1e-6)


def test_tail_chunk_matches_numpy():
    """T = 250 in chunks of 100: two full chunks and a 50-step tail chunk."""
    r = _run(BERN3, RoundRobin(3), 250, 2, grid=make_grid(250, "every"), chunk_size=100)
    gaps = 0.6 - np.array([0.3, 0.5, 0.6], np.float32).astype(np.float64)
    ref = np.cumsum(gaps[np.arange(250) % 3])
    np.testing.assert_allclose(r.curves["regret"], np.broadcast_to(ref, (2, 250)), rtol=1e-6)
    assert r.steps == 250
    # Bernoulli rewards: each realized-regret increment is mu* - r with r in {0, 1}.
    rewards = 0.6 - np.diff(r.curves["realized_regret"], prepend=0.0, axis=1)
    np.testing.assert_allclose(np.abs(rewards - 0.5), 0.5, atol=1e-4)  # float32 curve values


def test_curve_and_final_agree(round_robin_every):
    r = round_robin_every
    for k in r.curves:
        np.testing.assert_array_equal(r.curves[k][:, -1], r.final[k])
        assert np.all(np.isfinite(r.curves[k]))


@pytest.mark.parametrize("kind", ["linear", "log"])
def test_grid_curve_is_every_curve_at_grid(round_robin_every, kind):
    grid = make_grid(T_RR, kind, points=30)
    r = _run(GAUSS3, RoundRobin(3), T_RR, 4, grid=grid, chunk_size=100)
    np.testing.assert_array_equal(r.rounds, grid)
    for k in r.curves:
        np.testing.assert_array_equal(r.curves[k], round_robin_every.curves[k][:, grid - 1])


# --------------------------------------------------------------------------- common random numbers
def test_env_randomness_does_not_depend_on_agent(round_robin_every):
    """Gaussian rewards: realized - pseudo regret = sum of (mu_a - r) = -sigma sum z, whatever a."""
    grid = make_grid(T_RR, "every")
    runs = [_run(GAUSS3, a, T_RR, 4, grid=grid, chunk_size=100) for a in (FixedArm(0), UCB1())]
    runs.append(_run(GAUSS3, UniformArm(3), T_RR, 4, grid=grid, chunk_size=100))
    runs.append(round_robin_every)
    noise = [r.curves["realized_regret"] - r.curves["regret"] for r in runs]
    assert np.abs(noise[0]).max() > 1.0  # there is noise to compare
    for other in noise[1:]:
        # Both curves are recorded in float32 (ulp(100) = 7.6e-6) and each reward mu_a + sigma z
        # is rounded to float32 (~1e-7 per round): differences stay << 1e-4, while another draw
        # of the noise would differ by O(1).
        np.testing.assert_allclose(other, noise[0], atol=1e-4)


# --------------------------------------------------------------------------- multi-round steps
# Distribution checks: N = 2000 seeds, T = 100 rounds of arm 0 (mu = 0.3), in 10 `Pull`s of 10 or
# in 100 one-round steps. Each of the 6 tests below uses alpha = 1e-3, so with a correct engine the
# family fails with probability <= 0.6% (Bonferroni); seeds are fixed, so the outcome is
# deterministic. Power: at N = 2000 the two-sample KS critical distance at 1e-3 is
# 1.95 sqrt(2/N) = 0.062, so e.g. a variance off by 25% or a mean shift of 0.15 sd is detected.
N_DIST, T_DIST, ALPHA = 2000, 100, 1e-3


def _final_rewards(env, agent) -> np.ndarray:
    """Sum of rewards per seed: T mu* - realized regret."""
    r = _run(env, agent, T_DIST, N_DIST, chunk_size=100)
    best = max(env.means)
    np.testing.assert_allclose(r.final["regret"], T_DIST * (best - env.means[0]), rtol=1e-6)
    return T_DIST * np.float32(best).astype(np.float64) - r.final["realized_regret"]


def _binned_counts(x: np.ndarray, edges: np.ndarray) -> np.ndarray:
    return np.histogram(x, bins=edges)[0]


def test_pull_bernoulli_is_binomial():
    env = BernoulliBandit((0.3, 0.6))
    many = np.round(_final_rewards(env, FixedPull(0, 10)))
    ones = np.round(_final_rewards(env, FixedArm(0)))
    assert many.min() >= 0 and many.max() <= T_DIST
    # Bins of Binomial(100, 0.3) counts, outer ones merged so each expects >= 5 (chi-square rule).
    edges = np.array([-0.5, 19.5, *np.arange(21.5, 39.5, 2), 40.5, 100.5])
    expected = N_DIST * np.diff(stats.binom.cdf(edges, T_DIST, 0.3))
    assert expected.min() >= 5
    for sample in (many, ones):
        obs = _binned_counts(sample, edges)
        assert stats.chisquare(obs, expected * obs.sum() / expected.sum()).pvalue > ALPHA
    table = np.stack([_binned_counts(many, edges), _binned_counts(ones, edges)])
    assert stats.chi2_contingency(table).pvalue > ALPHA


def test_pull_gaussian_is_exact_gaussian_sum():
    env = GaussianBandit((0.3, 0.6), sigma=1.0)
    many = _final_rewards(env, FixedPull(0, 10))
    ones = _final_rewards(env, FixedArm(0))
    exact = stats.norm(T_DIST * 0.3, np.sqrt(T_DIST))  # sum of 100 N(0.3, 1)
    for sample in (many, ones):
        assert stats.kstest(sample, exact.cdf).pvalue > ALPHA
    assert stats.ks_2samp(many, ones).pvalue > ALPHA


def test_pull_curve_interpolation_is_exact():
    """Pulls of 7 rounds; the `every` grid falls inside steps: regret at t is gap * t exactly."""
    env = BernoulliBandit((0.4, 0.5))
    r = _run(env, FixedPull(0, 7), 98, 3, grid=make_grid(98, "every"), chunk_size=100)
    assert r.info["multi_round"] and r.steps == 14  # 98 rounds in pulls of 7
    gap = np.float32(0.5) - np.float32(0.4)  # the float32 gap the env uses
    ref = gap.astype(np.float64) * np.arange(1, 99)
    np.testing.assert_allclose(r.curves["regret"], np.broadcast_to(ref, (3, 98)), rtol=1e-6)
    np.testing.assert_allclose(r.final["regret"], gap * 98.0, rtol=1e-6)
    # Realized regret changes only at step ends and then by at most 7 (mu* - r, r in 0..7).
    assert np.all(np.abs(np.diff(r.curves["realized_regret"][:, 6::7])) <= 7 * 0.5 + 1e-5)


def test_step_past_horizon_is_illegal():
    """Pulls of 7 rounds with T = 100: the 15th step would end at round 105 > T.

    Counting it would report regret for 105 rounds; the engine rejects the step instead (the
    agent knows t and T and must cap n itself).
    """
    env = BernoulliBandit((0.4, 0.5))
    with pytest.raises(IllegalActionError):
        _run(env, FixedPull(0, 7), 100, 2, grid=make_grid(100, "every"), chunk_size=100)


# --------------------------------------------------------------------------- exact accumulation
T_LONG = 10**7


def test_regret_sum_exact_at_ten_million_rounds():
    """Fixed arm with gap 0.1 (not representable in binary) for 10^7 one-round steps.

    Reference: float64 NumPy, t * gap. Tolerance 1e-6 relative: the env's float32 gap
    0.5 - float32(0.4) is within 6e-8 of 0.1, a compensated sum errs by <= 2 eps = 1.2e-7 relative
    (Higham, Accuracy and Stability, §4.3), and recorded curve values are float32 (6e-8). A naive
    float32 running sum is off by ~9% here (checked below), so 1e-6 separates the two clearly.
    """
    env = BernoulliBandit((0.4, 0.5))
    grid = np.array([1, 10**3, 10**5, 1_234_567, 9_999_999, T_LONG])
    r = _run(env, FixedArm(0), T_LONG, 1, grid=grid)
    ref = 0.1 * grid.astype(np.float64)
    np.testing.assert_allclose(r.curves["regret"][0], ref, rtol=1e-6)
    np.testing.assert_allclose(r.final["regret"], 0.1 * T_LONG, rtol=1e-6)
    # The same increments summed naively in float32 (np.cumsum adds sequentially).
    naive = np.cumsum(np.full(T_LONG, np.float32(0.5) - np.float32(0.4)), dtype=np.float32)[-1]
    assert abs(naive / (0.1 * T_LONG) - 1) > 1e-2
    # Realized regret T mu* - sum r: reward sum ~ Binomial(10^7, 0.4) so the mean over the run
    # must be within 6 sd = 6 sqrt(0.24 / 10^7) = 9.3e-4 of 0.4 (p < 2e-9).
    mean_reward = (T_LONG * 0.5 - r.final["realized_regret"][0]) / T_LONG
    assert abs(mean_reward - 0.4) < 9.3e-4


def test_horizon_above_int32_needs_x64():
    assert not jax.config.jax_enable_x64, "another test left jax_enable_x64 on"
    with pytest.raises(ValueError, match="x64"):
        _run(BERN3, FixedPull(0, 10**8), 3 * 10**9, 1)


_X64_SCRIPT = """
import json, jax
jax.config.update("jax_enable_x64", True)
import numpy as np
from tests.test_engine import FixedPull
from bandits.envs import GaussianBandit
from experiments.simulate import simulate
env = GaussianBandit((0.4, 0.5))
T = 3 * 10**9
r = simulate(env, env.default_params(), FixedPull(0, 10**8), T, 2, chunk_size=100,
             grid=np.array([1, 10**8 + 1, 2**31, T]))
print(json.dumps({"curve": r.curves["regret"].tolist(), "final": r.final["regret"].tolist(),
                  "steps": r.steps, "x64": r.info["x64"]}))
"""


def test_horizon_above_int32_runs_under_x64():
    """3e9 rounds in 30 Pulls of 1e8, int64 round counts and float64 sums, in a subprocess."""
    out = subprocess.run(
        [sys.executable, "-c", _X64_SCRIPT], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-2000:]
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert res["x64"] is True
    # Under x64 the means are float64, so the gap is 0.1 to 1 ulp; interpolation inside a Pull of
    # 1e8 rounds is exact for pseudo-regret, and sums of 30 float64 terms err by < 1e-14.
    grid = np.array([1, 10**8 + 1, 2**31, 3 * 10**9], np.float64)
    np.testing.assert_allclose(res["curve"], [0.1 * grid] * 2, rtol=1e-12)
    np.testing.assert_allclose(res["final"], [0.1 * 3e9] * 2, rtol=1e-12)
    assert INT32_MAX < 3e9


# --------------------------------------------------------------------------- illegal actions
@pytest.mark.parametrize(
    "agent",
    [FixedArm(2), FixedPull(-1, 3), FixedPull(0, -2)],
    ids=["arm=K", "pull arm=-1", "pull n<0"],
)
def test_illegal_action_raises(agent):
    with pytest.raises(IllegalActionError):
        _run(BernoulliBandit((0.4, 0.5)), agent, 200, 2, chunk_size=100)


def test_illegal_first_step_raises():
    """The agent pulls 0 times in its first step only, then legally; the run must fail.

    (A `Pull` with n = 0 in every step is caught, as "no progress"; see test_illegal_action_raises.)
    """
    with pytest.raises(IllegalActionError):
        _run(BernoulliBandit((0.4, 0.5)), FirstPullSize(0), 300, 2, chunk_size=100)


def test_pull_zero_forever_raises():
    with pytest.raises(IllegalActionError):
        _run(BernoulliBandit((0.4, 0.5)), FixedPull(0, 0), 300, 2, chunk_size=100)


# --------------------------------------------------------------------------- timings, memory
def test_compile_and_run_time_reported(ucb_runs):
    """Compile and run time are reported apart (their presence, not a threshold: no timing test)."""
    r = ucb_runs[100]
    reported = (r.compile_seconds, r.run_seconds)
    assert all(x > 0 for x in reported)
    rate, by_definition = r.agent_steps_per_second, 8 * 500 / reported[1]  # seeds x T / run
    assert rate == pytest.approx(by_definition)


def test_recorded_arrays_do_not_grow_with_horizon():
    """Curves are (N, G) for a fixed grid size whatever T; nothing of length T is kept."""
    for horizon in (10**3, 10**5):
        grid = make_grid(horizon, "log", points=40)
        r = _run(GAUSS3, FixedArm(0), horizon, 4, grid=grid, chunk_size=100)
        arrays = [r.rounds, *r.curves.values(), *r.final.values()]
        assert all(a.size <= 4 * grid.size for a in arrays)
        assert all(c.shape == (4, grid.size) for c in r.curves.values())
        assert r.rounds.shape == (grid.size,) and grid.size <= 41


@dataclass(frozen=True)
class CountingRoundRobin(RoundRobin):
    """Round robin whose state counts its own updates (the policy index of the step)."""

    def update(self, state, obs, action, feedback):
        return state + 1


@dataclass(frozen=True)
class StateReadingBandit(BernoulliBandit):
    """Reports, through `agent_metrics`, the agent's state before its update."""

    def agent_metrics(self, params, agent, agent_state, feedback):
        return {"policy_index": agent_state.astype(jnp.float32)}


def test_agent_metrics_read_the_state_that_chose_the_action():
    """`Env.agent_metrics` sees the agent's state before its update: step t (0-based) reports t,
    so the curve is the exact triangular sum 0 + 1 + ... + (t - 1) (integers below 2^24: exact
    in float32), across a chunk boundary and the tail."""
    env = StateReadingBandit(means=(0.3, 0.6))
    r = _run(env, CountingRoundRobin(2), 250, 2, grid=make_grid(250, "every"), chunk_size=100)
    t = np.arange(1, 251)
    np.testing.assert_array_equal(
        r.curves["policy_index"], np.broadcast_to(t * (t - 1) / 2, (2, 250))
    )
    assert "regret" in r.curves  # the env's own metrics are kept beside


def test_multi_round_interpolation_equals_the_per_lane_rule():
    """The vectorised within-step interpolation of multi-round chunks gives, bit for bit, the
    per-lane rule written out here with `np.interp`'s formula: a grid point at a knot takes the
    first step that reached that round; one between distinct rounds r < r' interpolates from the
    last step at r to the first at r' (idle and zero-round steps repeat a round); 200 random
    lanes-by-steps cases with repeats and exact knots."""
    from experiments.simulate import _interpolate

    rng = np.random.default_rng(0)
    for _ in range(200):
        lanes, steps = rng.integers(1, 30), rng.integers(1, 12)
        prev = rng.integers(0, 50, lanes)
        rounds = prev[:, None] + np.cumsum(
            rng.integers(0, 7, (lanes, steps)) * (rng.random((lanes, steps)) < 0.7), axis=1
        )
        grid = np.unique(rng.integers(1, 150, rng.integers(1, 60)))
        values = {"v": rng.normal(size=(lanes, steps)).cumsum(1)}
        prev_values = {"v": rng.normal(size=lanes)}
        got = {"v": np.full((lanes, grid.size), np.nan)}
        _interpolate(grid, got, rounds, values, prev, prev_values)
        want = np.full((lanes, grid.size), np.nan)
        for s in range(lanes):
            xs = np.concatenate([[prev[s]], rounds[s]]).astype(np.float64)
            ys = np.concatenate([[prev_values["v"][s]], values["v"][s]])
            for i, g in enumerate(grid):
                if not prev[s] < g <= xs[-1]:
                    continue
                if g in xs:
                    want[s, i] = ys[np.argmax(xs == g)]  # first step at that round
                    continue
                lo = np.flatnonzero(xs < g)[-1]  # last step below g
                hi = lo + 1  # first step above it
                slope = (ys[hi] - ys[lo]) / (xs[hi] - xs[lo])
                want[s, i] = slope * (g - xs[lo]) + ys[lo]
        np.testing.assert_array_equal(got["v"], want)


# --------------------------------------------------------------------------- the engine's floor
def test_idle_steps_skipped_match_a_rollout_that_runs_them():
    """Multi-round chunks stop at the first step in which no lane is active (`_until_idle`:
    T = 200 is spent by step 80 of a 300-step chunk, the chunk sizes' test above checks the
    curves); `experiments.rollout.rollout` runs every one of the 300 steps
    (idle lanes add zeros) and is the independent reference. (Bit-identity of the engine
    before and after the skip was checked on the CLI's agents; chunk sizes: above.)"""
    from experiments.rollout import rollout

    seeds, params = 4, GAUSS3.default_params()
    r = _run(GAUSS3, CyclicPull(3), 200, seeds, chunk_size=300)
    keys = jax.random.split(jax.random.key(0), seeds)
    ref = jax.jit(
        jax.vmap(lambda k: rollout(GAUSS3, params, CyclicPull(3), k, 300, horizon=200).totals)
    )(keys)
    for k, v in r.final.items():
        if k in ref:  # the rollout rounds total - comp to float32 (the engine's final is that
            # difference in float64, exact): equal to within one float32 rounding, 2^-24 relative
            np.testing.assert_allclose(v, np.asarray(ref[k], np.float64), rtol=2**-24, err_msg=k)
    np.testing.assert_array_equal(np.asarray(ref["rounds"]), 200)


def test_recording_between_segments_equals_recording_in_the_scan(monkeypatch):
    """One-round chunks record between segments that end at grid steps (`_segments`); with
    ``SCAN_UNROLL`` > 1 the engine records inside one unrolled scan instead. Same curves and
    finals, bit for bit, with a shorter last chunk (500 = 300 + 200) and every round recorded."""

    sim = importlib.import_module("experiments.simulate")
    grid = make_grid(500, "every")
    segments = _run(BERN3, UCB1(), 500, 3, grid=grid, chunk_size=300)
    monkeypatch.setattr(sim, "SCAN_UNROLL", 2)
    scan = _run(BERN3, UCB1(), 500, 3, grid=grid, chunk_size=300)
    _assert_identical(segments, scan)


def test_accelerator_loops_equal_the_cpu_loops(monkeypatch):
    """``REGRETLAB_LOOPS=accelerator`` (a GPU's default: a one-round chunk is one scan with a
    fixed trip count, records written in its body, a select-masked tail) against the CPU's loops
    (segments between grid steps, a branch-skipped tail), forced on this CPU: the same curves
    and finals bit for bit. UCB1, T = 500 in chunks of 300 (a 200-step tail), every round
    recorded; an unknown value is one line."""
    grid = make_grid(500, "every")
    runs = {}
    for loops in ("cpu", "accelerator"):
        monkeypatch.setenv("REGRETLAB_LOOPS", loops)
        runs[loops] = _run(BERN3, UCB1(), 500, 3, grid=grid, chunk_size=300)
        assert runs[loops].info["chunk_loops"] == loops
    _assert_identical(runs["cpu"], runs["accelerator"])
    monkeypatch.setenv("REGRETLAB_LOOPS", "gpu")
    with pytest.raises(ValueError, match=r"^REGRETLAB_LOOPS: must be one of cpu, accelerator"):
        _run(BERN3, UCB1(), 50, 2)


@dataclass(frozen=True)
class CounterStateEnv:
    """A minimal env whose state is the steps taken (an integer), with no params, draws or
    final metrics; subclasses give `step`."""

    def default_params(self):
        return ()

    def spec(self, params, horizon):
        return int(horizon)

    def randomness(self, params, action):
        return {}

    def init(self, key, params):
        return jnp.zeros((), INT)

    def observe(self, state, params):
        return state

    def final_metrics(self, state, output, params):
        return {}


@dataclass(frozen=True)
class _CountEnv(CounterStateEnv):
    """A metric counted in int32, 1001 per round (past 2^24 within 17 000 rounds)."""

    def step(self, rng, state, action, params):
        return state + 1, (), {"count": jnp.asarray(1001, jnp.int32)}


def test_integer_curves_stay_exact_in_every_loop(monkeypatch):
    """An int32 count past 2^24 recorded at grid rounds 16 001 … 20 000: exact on the CPU's loops
    and on the accelerator's scan (its slots were float32: off by ±1 at 17 001 and 19 999)."""
    grid = np.array([16001, 17001, 19999, 20000])
    for loops in ("cpu", "accelerator"):
        monkeypatch.setenv("REGRETLAB_LOOPS", loops)
        r = simulate(_CountEnv(), (), FixedArm(), 20000, 2, grid=grid)
        np.testing.assert_array_equal(np.asarray(r.curves["count"][0], np.int64), 1001 * grid)


def test_env_init_is_compiled_once_per_run(monkeypatch):
    """The agents of a run share the env's init program (`_shared_env_init`): one of them
    compiles it, the other finds it; each result equals its own `simulate`."""
    sim = importlib.import_module("experiments.simulate")
    monkeypatch.setattr(sim, "_ENV_INITS", OrderedDict())  # no program left by earlier tests
    compiles = []
    shared = sim._shared_env_init

    def counting(key, compile_):
        return shared(key, lambda: compiles.append(key) or compile_())

    monkeypatch.setattr(sim, "_shared_env_init", counting)
    grid = make_grid(300, "log", 20)
    agents = {"a": UCB1(), "b": FixedArm(1)}
    sims = simulate_agents(GAUSS3, GAUSS3.default_params(), agents, 300, 5, 0, grid, workers=2)
    assert len(compiles) == 1 and len(sim._ENV_INITS) == 1  # two agents, one env init compiled
    for name, agent in agents.items():
        _assert_identical(sims[name], _run(GAUSS3, agent, 300, 5, grid=grid))


def test_kahan_sum_of_an_infinite_increment_is_infinite():
    """`experiments.accumulate.kahan_add`: an inf increment leaves the sum inf, not NaN (the
    compensation (inf - s) - inf was NaN), and later finite increments keep it inf; finite
    sums are unchanged by the guard (2^30 then a thousand +1: exact)."""
    from experiments.accumulate import kahan_add, kahan_value, kahan_zeros

    acc = kahan_add(kahan_add(kahan_zeros(), jnp.float32(1.0)), jnp.float32(jnp.inf))
    acc = kahan_add(acc, jnp.float32(2.0))
    assert float(kahan_value(acc)) == float("inf")
    acc = kahan_add(kahan_zeros(), jnp.float32(2**30))
    for _ in range(1000):
        acc = kahan_add(acc, jnp.float32(1.0))
    assert float(acc.total) - float(acc.comp) == 2**30 + 1000


@dataclass(frozen=True)
class _ReadThenPull(CounterStateEnv):
    """Streaming-like multi-round env: action n = 0 reads (0 rounds, one 'read'), n > 0 pulls
    n rounds."""

    def step(self, rng, state, n, params):
        reads = (n == 0).astype(jnp.float32)
        return state + n, (), {"reads": reads, "rounds": n}


@dataclass(frozen=True)
class _Alternate(AgentBase):
    """Step s reads when s is odd, else pulls 3 rounds (capped at the horizon)."""

    horizon: int = 300

    def init(self, key, spec):
        return jnp.zeros((), INT)

    def act(self, rng, state, rounds):
        return jnp.where(state % 2 == 1, 0, jnp.minimum(3, self.horizon - rounds)).astype(INT)

    def update(self, state, obs, action, feedback):
        return state + 1


def test_zero_round_steps_interpolate_the_same_whatever_the_chunk():
    """A read (a zero-round step) after round 147 happened before round 148: grid points in
    (147, 150) start from the value after it, and a point at 150 is the value when round 150
    completed (before the read there). Within a chunk the left end was the first step at a
    round, at a chunk boundary the last: chunks of 100 gave 50 reads at rounds 151-153 where
    chunks of 200 gave 49.33, 49.67."""
    grid = np.array([149, 150, 151, 152, 153, 300])
    for chunk in (100, 200, 300):
        r = simulate(_ReadThenPull(), (), _Alternate(), 300, 2, grid=grid, chunk_size=chunk)
        np.testing.assert_array_equal(r.curves["reads"][0], [49, 49, 50, 50, 50, 99])


def test_step_inputs_of_per_seed_rows_read_from_a_file(tmp_path):
    """Per-seed exogenous inputs (seeds, T) stored as an `experiments.inputs.NpyRows` (read on
    demand by slices): the step's abstract input is that of the in-memory array (it raised
    IndexError: the probe indexed [0, 0], which the file reader does not support)."""
    from experiments.inputs import NpyRows
    from experiments.protocol import Exogenous
    from experiments.rollout import step_inputs

    data = np.arange(20, dtype=np.int32).reshape(2, 10)
    np.save(tmp_path / "x.npy", data)
    from_file = step_inputs({"x": Exogenous(NpyRows(tmp_path / "x.npy"), per_seed=True)})
    assert from_file == step_inputs({"x": Exogenous(data, per_seed=True)})
    assert from_file["x"].shape == ()


@dataclass(frozen=True)
class _ReadsFirst(AgentBase):
    """Reads (zero-round steps) `reads` times, then pulls one round per step."""

    reads: int = 250

    def init(self, key, spec):
        return jnp.zeros((), INT)

    def act(self, rng, state, rounds):
        return jnp.where(state < self.reads, 0, 1).astype(INT)

    def update(self, state, obs, action, feedback):
        return state + 1


def test_long_runs_of_zero_round_steps_pass_whatever_the_chunk(monkeypatch):
    """250 reads before the first pull: legal, and the same result in chunks of 100 (it raised
    "no progress in a whole chunk") and 300; an agent that never completes a round is still
    stopped, after `MAX_STALLED_STEPS` steps (lowered here to 1000)."""
    sim = importlib.import_module("experiments.simulate")
    for chunk in (100, 300):
        r = simulate(_ReadThenPull(), (), _ReadsFirst(), 50, 2, grid=[50], chunk_size=chunk)
        np.testing.assert_array_equal(r.final["reads"], [250, 250])
    monkeypatch.setattr(sim, "MAX_STALLED_STEPS", 1000)
    with pytest.raises(IllegalActionError, match=r"^seed 0 made no progress .* in 1000 steps"):
        simulate(_ReadThenPull(), (), _ReadsFirst(reads=10**9), 50, 2, chunk_size=100)
