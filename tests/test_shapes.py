"""The engine's shapes beside plain per-step problems: trace-driven and episodic environments, the
one public rollout, and draw streams derived from names (experiments.rollout, simulate, episodic).

Each toy environment of `examples/` is checked against a NumPy loop that is given the same draws
(taken from `experiments.rollout.draw_steps` with the seed's keys, as the engine's documented
randomness defines them): results must be identical, not merely close. The deterministic
agents need no draws at all, so those comparisons are exact by construction of the reference.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from episodic_context import HindsightGreedy, RandomAction, TwoStateContext
from trace_cache import (
    AlwaysAdmit,
    Belady,
    RandomAdmit,
    TraceCache,
    next_arrivals,
    next_arrivals_streamed,
)

from bandits.agents import UCB1
from bandits.envs import BernoulliBandit, Pull
from experiments.inputs import NpyRows, NpyWriter
from experiments.protocol import NORMAL, UNIFORM, AgentBase, Draw
from experiments.rollout import draw_steps, probe, rollout, start
from experiments.simulate import compile_simulation, simulate


def seed_keys(seed: int, seeds: int, s: int):
    """(init key of the env, step key) of seed s, as `experiments.rollout.start` derives them."""
    run_key = jax.random.split(jax.random.key(seed), seeds)[s]
    init_key, step_key = jax.random.split(run_key)
    return jax.random.split(init_key)[0], step_key


def engine_draws(env, agent, horizon: int, steps: int, seed: int, seeds: int, s: int):
    """The env's and the agent's per-step draws of seed s (NumPy arrays, leading axis = step)."""
    p = probe(env, env.default_params(), agent, horizon, _inputs_of(env, horizon, seeds))
    _, step_key = seed_keys(seed, seeds, s)
    env_rng, agent_rng = draw_steps(step_key, 0, steps, p.env_draws, p.agent_draws)
    as_np = lambda d: {k: np.asarray(v) for k, v in d.items()}
    return as_np(env_rng), as_np(agent_rng)


def _inputs_of(env, horizon, seeds):
    from experiments.rollout import step_inputs
    from experiments.simulate import host_inputs

    return step_inputs(host_inputs(env, env.default_params(), horizon, seeds))


# --------------------------------------------------------------------------- trace-driven
def test_next_arrivals_brute_force():
    rng = np.random.default_rng(0)
    trace = rng.integers(0, 5, 300)
    want = [next((s for s in range(t + 1, 300) if trace[s] == trace[t]), 300) for t in range(300)]
    np.testing.assert_array_equal(next_arrivals(trace), want)


def numpy_cache(trace: np.ndarray, admit) -> np.ndarray:
    """Cumulative faults of the one-slot cache; `admit(t, request, next, cached, cached_next)`."""
    nxt = next_arrivals(trace)
    cached, cached_next, faults, out = -1, 0, 0, []
    for t, page in enumerate(trace):
        if page == cached:
            cached_next = nxt[t]
        else:
            faults += 1
            if admit(t, page, nxt[t], cached, cached_next):
                cached, cached_next = page, nxt[t]
        out.append(faults)
    return np.asarray(out, np.float64)


@pytest.mark.parametrize("agent_name", ["belady", "always", "random"])
def test_trace_env_equals_numpy_loop(agent_name):
    T, N = 2_000, 3
    env = TraceCache(length=T, pages=6, alpha=0.8, trace_seed=3)
    agent = {"belady": Belady(), "always": AlwaysAdmit(), "random": RandomAdmit(0.3)}[agent_name]
    grid = np.array([1, 7, 100, 999, T])
    res = simulate(env, env.default_params(), agent, T, N, seed=5, grid=grid, chunk_size=300)
    trace = np.asarray(env.exogenous((), T, N)["request"].data)
    for s in range(N):
        if agent_name == "random":
            u = engine_draws(env, agent, T, T, 5, N, s)[1]["u"]
            admit = lambda t, *_, u=u: bool(u[t] < np.float32(0.3))
        elif agent_name == "belady":
            admit = lambda t, page, nx, cached, cnx: cached < 0 or nx < cnx
        else:
            admit = lambda *_: True
        want = numpy_cache(trace, admit)
        np.testing.assert_array_equal(res.curves["faults"][s], want[grid - 1])
        assert res.final["fault_rate"][s] == pytest.approx(want[-1] / T, rel=1e-6)


def test_belady_is_optimal_among_the_cache_agents():
    """Belady's rule minimises faults (Belady 1966): never more than the other two, every seed."""
    env = TraceCache(length=1_000, pages=8, per_seed=True)
    runs = {
        name: simulate(env, env.default_params(), a, 1_000, 4, grid=[1_000]).final["faults"]
        for name, a in {"b": Belady(), "a": AlwaysAdmit(), "r": RandomAdmit()}.items()
    }
    assert np.all(runs["b"] <= runs["a"]) and np.all(runs["b"] <= runs["r"])


def test_per_seed_inputs_stream_each_seed_its_own_trace():
    """Seed s of a per-seed run equals a shared run on seed s's trace (Belady needs no draws)."""
    T, N = 1_500, 3
    env = TraceCache(length=T, pages=5, per_seed=True, trace_seed=10)
    res = simulate(env, env.default_params(), Belady(), T, N, grid=[T], chunk_size=200)
    for s in range(N):
        one = TraceCache(length=T, pages=5, trace_seed=10 + s)
        alone = simulate(one, one.default_params(), Belady(), T, 1, grid=[T])
        assert res.final["faults"][s] == alone.final["faults"][0]


def test_streamed_next_arrivals_equal_the_in_memory_pass(tmp_path):
    """The backward pass over chunks of 7 rows (a page's next arrival often in a later chunk)."""
    trace = np.random.default_rng(1).integers(0, 9, 500)
    np.save(tmp_path / "t.npy", trace)
    got = next_arrivals_streamed(NpyRows(tmp_path / "t.npy"), tmp_path / "n.npy", chunk=7)
    np.testing.assert_array_equal(np.asarray(got), next_arrivals(trace))
    np.testing.assert_array_equal(np.load(tmp_path / "n.npy"), next_arrivals(trace))


def test_npy_rows_reads_row_ranges(tmp_path):
    x = np.arange(3 * 10 * 2, dtype=np.int16).reshape(3, 10, 2)
    np.save(tmp_path / "x.npy", x)
    rows = NpyRows(tmp_path / "x.npy")
    assert rows.shape == x.shape and rows.dtype == x.dtype and len(rows) == 3
    np.testing.assert_array_equal(rows[1:3], x[1:3])
    np.testing.assert_array_equal(rows[:, 4:9], x[:, 4:9])
    np.testing.assert_array_equal(rows[:, 8:20], x[:, 8:20])  # clipped like NumPy
    np.testing.assert_array_equal(np.asarray(rows), x)
    with NpyWriter(tmp_path / "y.npy", (5, 2), np.float64) as w:
        w.write(3, np.ones((2, 2)))
        w.write(0, np.zeros((3, 2)))
    np.testing.assert_array_equal(
        np.load(tmp_path / "y.npy"), np.r_[np.zeros((3, 2)), np.ones((2, 2))]
    )


def test_trace_from_a_file(tmp_path):
    """A .npy trace is read chunk by chunk from the file; same result as the array."""
    T = 1_000
    gen = TraceCache(length=T, pages=7, trace_seed=1)
    np.save(tmp_path / "t.npy", gen.exogenous((), T, 1)["request"].data.astype(np.int64))
    env = TraceCache(trace=str(tmp_path / "t.npy"), length=T)
    assert isinstance(env.exogenous((), T, 1)["request"].data, NpyRows)
    a = simulate(gen, (), Belady(), T, 2, grid=[10, T], chunk_size=100)
    b = simulate(env, (), Belady(), T, 2, grid=[10, T])
    np.testing.assert_array_equal(a.curves["faults"], b.curves["faults"])


def test_trace_results_do_not_depend_on_the_chunk():
    T = 1_000
    env = TraceCache(length=T, pages=6)
    runs = [
        simulate(env, (), RandomAdmit(0.4), T, 3, seed=2, grid=[50, T], chunk_size=c)
        for c in (100, 300, None)
    ]
    for r in runs[1:]:
        np.testing.assert_array_equal(r.curves["faults"], runs[0].curves["faults"])


def test_trace_is_not_baked_into_the_program():
    """The compiled chunk is the same program whatever the trace's length (inputs are arguments):
    same chunk size, same optimised HLO text. Peak memory and compile time at 10^5..10^7 are
    measured by `bench/trace.py`."""
    texts = []
    for T in (20_000, 200_000):
        env = TraceCache(length=T, pages=16)
        c = compile_simulation(env, (), Belady(), T, 2, grid=[T], chunk_size=10_000)
        assert c.chunk == 10_000
        texts.append(c.program.chunk.as_text())
    assert texts[0] == texts[1]


def test_short_trace_is_refused():
    env = TraceCache(length=100)
    with pytest.raises(ValueError, match="covers 100 steps < horizon 200"):
        compile_simulation(env, (), Belady(), 200, 1)


# --------------------------------------------------------------------------- episodic
class Switch(AgentBase):
    """Moves to the other state each step (its action is 1 - s: the observation matters)."""

    def init(self, key, spec):
        return ()

    def act(self, rng, state, obs):
        return 1 - obs.obs

    def update(self, state, obs, action, feedback):
        return state


AGENTS = {"greedy": HindsightGreedy(), "random": RandomAction(), "switch": Switch()}


def numpy_episodes(env: TwoStateContext, agent_name, episodes, seed, seeds, s):
    """The two-state context env and the agent in plain NumPy, on the engine's draws of seed s."""
    H = env.episode_length
    mu, w, slip = np.asarray(env.mu, np.float32), np.float32(env.w), np.float32(env.slip)
    v_star = np.float32(H * np.max((1 - w) * mu[0] + w * mu[1]))
    agent = AGENTS[agent_name]
    env_rng, agent_rng = engine_draws(env, agent, episodes, episodes * H, seed, seeds, s)
    k_env, _ = seed_keys(seed, seeds, s)
    from experiments.rollout import draw_once

    first = float(draw_once(k_env, {"context": Draw(UNIFORM)})["context"])
    context, state, ret, counts = int(first < w), 0, 0.0, np.zeros(2)
    regret, rewards = [], 0.0
    cum_regret = 0.0
    for t in range(episodes * H):
        h = t % H
        if agent_name == "greedy":
            p = (counts + 1) / (counts.sum() + 2)
            a = int(np.argmax(p.astype(np.float32) @ mu))
        elif agent_name == "switch":
            a = 1 - state
        else:
            a = int(agent_rng["u"][t] < 0.5)
        r = float(env_rng["reward"][t] < mu[context, a])
        state = 1 - a if env_rng["slip"][t] < slip else a
        rewards += r
        ret += r
        if h == H - 1:
            cum_regret += float(v_star) - ret
            regret.append(cum_regret)
            counts[context] += 1
            context, state, ret = int(env_rng["reset/context"][t] < w), 0, 0.0
    return np.asarray(regret), rewards


@pytest.mark.parametrize("agent_name", ["greedy", "random", "switch"])
def test_episodic_env_equals_numpy_loop(agent_name):
    K, N = 60, 2
    env = TwoStateContext(episode_length=4, slip=0.3)
    agent = AGENTS[agent_name]
    grid = np.arange(1, K + 1)
    res = simulate(env, env.default_params(), agent, K, N, seed=1, grid=grid, chunk_size=100)
    assert res.steps == K * 4  # horizon counts episodes
    for s in range(N):
        regret, rewards = numpy_episodes(env, agent_name, K, 1, N, s)
        # float32 sums of at most 60 terms of size <= 4: agreement to 1e-4 absolute
        np.testing.assert_allclose(res.curves["regret"][s], regret, atol=1e-4)
        assert res.final["reward"][s] == rewards


def test_episodic_greedy_learns_the_context_prior():
    """With the prior learnt from revealed contexts the greedy agent plays the v* action, so its
    mean regret per episode tends to 0; uniform play loses H (v*/H - mean reward) per episode.
    Here v*/H = 0.66 and uniform play earns 0.49 per step: 0.17 H = 0.85 per episode (H = 5)."""
    env = TwoStateContext()
    g = simulate(env, env.default_params(), HindsightGreedy(), 400, 200, grid=[400])
    r = simulate(env, env.default_params(), RandomAction(), 400, 200, grid=[400])
    # Per-episode regret of greedy: mean 0, sd <= sqrt(5 * 0.25) ~ 1.1 per episode, so the mean
    # over 200 seeds x 400 episodes has sd ~ 0.004; allow 0.05 for the first episodes' learning.
    assert abs(g.final["regret"].mean() / 400) < 0.05
    assert r.final["regret"].mean() / 400 == pytest.approx(0.85, abs=0.05)


def test_the_context_is_revealed_only_at_an_episode_end():
    """Context in hindsight: `revealed` is the context at the last step, -1 on every other."""
    from experiments.rollout import draw_once

    env = TwoStateContext(episode_length=3)
    params = env.default_params()
    names = env.randomness(params, 0)
    state = env.init(jax.random.key(0), params)
    seen = []
    for t in range(9):
        rng = draw_once(jax.random.fold_in(jax.random.key(1), t), names)
        context = int(state.inner.context)
        state, feedback, _ = env.step(rng, state, jnp.int32(0), params)
        want = context if t % 3 == 2 else -1
        seen.append((int(feedback.revealed), bool(feedback.done), want))
    assert all(r == w and d == (w >= 0) for r, d, w in seen), seen


# --------------------------------------------------------------------------- rollout
def test_rollout_reproduces_the_engine_seed_by_seed():
    env = BernoulliBandit((0.2, 0.5, 0.7))
    T, N = 700, 3
    res = simulate(env, env.default_params(), UCB1(), T, N, seed=4, grid=[T])
    keys = jax.random.split(jax.random.key(4), N)
    out = jax.jit(jax.vmap(lambda k: rollout(env, env.default_params(), UCB1(), k, T)))(keys)
    np.testing.assert_allclose(np.asarray(out.totals["regret"]), res.final["regret"], rtol=1e-6)
    assert np.all(np.asarray(out.totals["rounds"]) == T)


def test_rollout_with_inputs_and_emit():
    T = 500
    env = TraceCache(length=T, pages=4)
    trace = env.exogenous((), T, 1)["request"].data
    inputs = {"request": jnp.asarray(trace), "request_next": jnp.asarray(next_arrivals(trace))}
    out = rollout(env, (), Belady(), jax.random.key(0), T, inputs=inputs, emit=lambda tr: tr.action)
    assert out.emitted.shape == (T,)
    want = numpy_cache(trace, lambda t, page, nx, cached, cnx: cached < 0 or nx < cnx)
    assert float(out.totals["faults"]) == want[-1]


@pytest.mark.slow
def test_rollout_multi_round_stops_at_the_horizon():
    """Multi-round steps: with `horizon`, a rollout idles once the rounds are used up."""

    class Doubling(AgentBase):
        def init(self, key, spec):
            return jnp.ones((), jnp.int32)

        def act(self, rng, state, obs):
            return Pull(jnp.zeros((), jnp.int32), jnp.minimum(state, 100 - obs))

        def update(self, state, obs, action, feedback):
            return state * 2

    env = BernoulliBandit((0.5, 0.6))
    out = rollout(env, env.default_params(), Doubling(), jax.random.key(0), 20, horizon=100)
    assert int(out.totals["rounds"]) == 100 and int(out.illegal) == 0


# --------------------------------------------------------------------------- randomness
class Draws(AgentBase):
    """An agent that records its draws: `names` uniforms (and a normal, when `extra`)."""

    def __init__(self, extra: bool):
        self.extra = extra

    def randomness(self, spec):
        out = {"b": Draw(UNIFORM)}
        return {**out, "a": Draw(NORMAL)} if self.extra else out

    def init(self, key, spec):
        return jnp.zeros(())

    def act(self, rng, state, obs):
        return jnp.zeros((), jnp.int32)

    def update(self, state, obs, action, feedback):
        return state


def test_a_draw_stream_depends_on_its_name_only():
    """Declaring another draw ("a", sorted before "b") leaves the stream of "b" unchanged."""
    _, step_key = seed_keys(0, 1, 0)
    b1 = draw_steps(step_key, 0, 250, {}, Draws(False).randomness(None))[1]["b"]
    b2 = draw_steps(step_key, 0, 250, {}, Draws(True).randomness(None))[1]["b"]
    np.testing.assert_array_equal(np.asarray(b1), np.asarray(b2))


def test_env_draws_count_in_the_chunk_budget():
    env = TraceCache(length=100)
    p = probe(env, (), RandomAdmit(), 100, _inputs_of(env, 100, 1))
    assert p.draws_per_step == 1 and set(p.inputs) == {"request", "request_next"}
    g = BernoulliBandit((0.1, 0.2))
    assert probe(g, g.default_params(), UCB1(), 10).draws_per_step == 1  # the env's uniform


def test_exogenous_must_be_declared_as_such():
    class Bad(TraceCache):
        def exogenous(self, params, horizon, seeds):
            return {"request": np.zeros(horizon, np.int32)}

    with pytest.raises(TypeError, match="Exogenous"):
        compile_simulation(Bad(length=100), (), Belady(), 100, 1)


def test_start_splits_the_run_key_as_documented():
    env = BernoulliBandit((0.1, 0.2))
    key = jax.random.key(9)
    spec = env.spec(env.default_params(), 10)
    _, _, step_key = start(env, env.default_params(), UCB1(), spec, key)
    want = jax.random.split(key)[1]
    assert jnp.array_equal(jax.random.key_data(step_key), jax.random.key_data(want))
