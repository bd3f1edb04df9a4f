"""The simulation engine: ``jit(vmap over seeds(scan over steps))``, chunked (DESIGN.md).

A Python loop over chunks keeps memory bounded, advances a progress bar and collects the recorded
points; inside a chunk everything is one compiled XLA program.

Randomness. For seed ``s`` the run key is ``split(key(seed), N)[s]``. The random inputs of steps
``[100 b, 100 b + 100)`` ("block" ``b``) are drawn in bulk from ``fold_in(run_key, b)``, separately
for the environment and the agent, so that

* results do not depend on the chunk size (the draws of step t depend on t alone; chunks that
  follow one another are whole blocks),
* the environment's randomness does not depend on the agent: every agent of a run meets the same
  reward draws for the same seed (common random numbers).

Accumulation. Per-step metric increments are summed in integers (int32, or int64 under x64) or,
for floats, with compensated (Kahan) sums, so cumulative regret stays exact to float precision at
T = 10^7 and beyond (`experiments.accumulate`). Rounds are counted in int32 (int64 under x64);
horizons above 2^31 - 1 need ``x64``.

Multi-round steps. When a step reports ``metrics["rounds"] = n`` it used n rounds (pull one arm n
times, sampled exactly by the environment). Curves are recorded against rounds; a grid point that
falls inside a multi-round step is linearly interpolated within that step (exact for pseudo-regret,
which grows linearly within a batch of pulls of one arm). Seeds that reached the horizon idle.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from experiments.accumulate import KahanSum, kahan_add, kahan_value
from experiments.protocol import KEY, NORMAL, UNIFORM, Agent, Draw, Env, IllegalActionError

RNG_BLOCK = 100  # steps per block of pre-drawn randomness (part of the definition of a seed)
INT32_MAX = 2**31 - 1
DEFAULT_CHUNK_ELEMENTS = 1 << 22  # random numbers + recorded values per chunk, all seeds
# Steps of the scan body unrolled into one loop iteration (`lax.scan(unroll=...)`): 1 keeps
# compiles short on CPU; on a GPU a larger value amortises the per-iteration loop overhead of
# small per-step kernels. Numerics do not depend on it. Read once, at import.
SCAN_UNROLL = int(os.environ.get("REGRETLAB_SCAN_UNROLL", "1"))


# --------------------------------------------------------------------------- recording grids
def make_grid(horizon: int, kind: str = "log", points: int = 200) -> np.ndarray:
    """Rounds (1-based counts of completed rounds) at which cumulative metrics are recorded.

    ``every``: 1..T; ``linear``: `points` evenly spaced; ``log``: `points` log-spaced. The horizon
    is always included.
    """
    if kind == "every":
        return np.arange(1, horizon + 1, dtype=np.int64)
    if kind == "linear":
        grid = np.linspace(horizon / points, horizon, points)
    elif kind == "log":
        grid = np.geomspace(1, horizon, points)
    else:
        raise ValueError(f"record.grid: must be one of every, linear, log (got {kind!r})")
    grid = np.unique(np.clip(np.round(grid).astype(np.int64), 1, horizon))
    return np.union1d(grid, [horizon])


# --------------------------------------------------------------------------- results
@dataclass
class SimResult:
    """Cumulative metrics of N seeds recorded at the grid rounds, plus final metrics."""

    rounds: np.ndarray  # (G,) int64
    curves: dict[str, np.ndarray]  # name -> (N, G) float64
    final: dict[str, np.ndarray]  # name -> (N,) float64
    compile_seconds: float
    run_seconds: float
    steps: int  # scan steps executed per seed
    seeds: int
    horizon: int
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def agent_steps_per_second(self) -> float:
        """Agent-rounds per second of run time: seeds x horizon / run seconds."""
        return self.seeds * self.horizon / max(self.run_seconds, 1e-12)


# --------------------------------------------------------------------------- randomness
def _draw(key: jax.Array, draw: Draw, n: int) -> jax.Array:
    shape = (n, *draw.shape)
    if draw.kind == UNIFORM:
        return jax.random.uniform(key, shape)
    if draw.kind == NORMAL:
        return jax.random.normal(key, shape)
    if draw.kind == KEY:
        return jax.random.split(key, n * int(np.prod(draw.shape, dtype=np.int64))).reshape(shape)
    raise ValueError(f"unknown draw kind {draw.kind!r}; allowed: uniform, normal, key")


def _draw_block(key: jax.Array, spec: dict[str, Draw]) -> dict[str, jax.Array]:
    """All of a component's draws for one block of RNG_BLOCK steps."""
    return {
        name: _draw(jax.random.fold_in(key, j), spec[name], RNG_BLOCK)
        for j, name in enumerate(sorted(spec))
    }


def _draw_steps(step_key, first_block, n_blocks: int, n_steps: int, env_spec, agent_spec):
    """Draws for `n_steps` steps starting at block `first_block`, shaped (n_steps, ...)."""
    if not env_spec and not agent_spec:
        return {}, {}

    def one_block(b):
        k = jax.random.fold_in(step_key, b)
        return (
            _draw_block(jax.random.fold_in(k, 0), env_spec),
            _draw_block(jax.random.fold_in(k, 1), agent_spec),
        )

    blocks = jax.vmap(one_block)(first_block + jnp.arange(n_blocks))
    return jax.tree.map(lambda x: x.reshape(-1, *x.shape[2:])[:n_steps], blocks)


# --------------------------------------------------------------------------- accumulation
def _is_float(x) -> bool:
    return jnp.issubdtype(jnp.result_type(x), jnp.floating)


def _acc_zeros(example: dict[str, Any]):
    """Zero accumulators for a dict of (abstract) per-step metrics."""
    out = {}
    for name, x in example.items():
        if _is_float(x):
            z = jnp.zeros((), jnp.result_type(float))
            out[name] = KahanSum(z, z)
        else:
            out[name] = jnp.zeros((), jnp.result_type(int))
    return out


def _acc_add(acc, metrics):
    return {
        name: kahan_add(a, metrics[name].astype(a.total.dtype))
        if isinstance(a, KahanSum)
        else a + metrics[name].astype(a.dtype)
        for name, a in acc.items()
    }


def _acc_value(a):
    return kahan_value(a) if isinstance(a, KahanSum) else a


def _acc_host_value(a) -> np.ndarray:
    """Final value on the host in float64 (total - comp, both exact in float64)."""
    if isinstance(a, KahanSum):
        return np.asarray(a.total, np.float64) - np.asarray(a.comp, np.float64)
    return np.asarray(a, np.float64)


# --------------------------------------------------------------------------- engine
@dataclass
class _Program:
    """The compiled pieces of one (env, agent, shapes) simulation."""

    init: Callable
    chunk: Callable
    tail: Callable | None
    final: Callable
    multi_round: bool
    metric_names: list[str]
    compile_seconds: float


def _probe(env: Env, params, agent: Agent, horizon: int):
    """Trace one step abstractly: the draws of env and agent and the metrics' shapes."""
    spec = env.spec(params, horizon)
    agent_spec = dict(agent.randomness(spec))

    # Abstract action and metrics, to learn the env's draws and whether steps are multi-round.
    def _abstract_action():
        key = jax.random.key(0)
        a_state = agent.init(key, spec)
        e_state = env.init(key, params)
        obs = env.observe(e_state, params)
        rng = {k: _draw(key, d, 1)[0] for k, d in agent_spec.items()}
        return agent.act(rng, a_state, obs)

    action_shape = jax.eval_shape(_abstract_action)
    env_spec = dict(env.randomness(params, action_shape))

    def _abstract_metrics():
        key = jax.random.key(0)
        e_state = env.init(key, params)
        a_state = agent.init(key, spec)
        obs = env.observe(e_state, params)
        rng_a = {k: _draw(key, d, 1)[0] for k, d in agent_spec.items()}
        rng_e = {k: _draw(key, d, 1)[0] for k, d in env_spec.items()}
        return env.step(rng_e, e_state, agent.act(rng_a, a_state, obs), params)[2]

    return spec, agent_spec, env_spec, jax.eval_shape(_abstract_metrics)


def _build(
    env: Env,
    params,
    agent: Agent,
    horizon: int,
    n_seeds: int,
    chunk: int,
    tail: int,
    slots: int,
    probe: tuple,
):
    """Compile init, chunk (and tail) and final programs; `slots` = grid points per chunk."""
    spec, agent_spec, env_spec, metrics_shape = probe
    multi_round = "rounds" in metrics_shape
    tracked = {k: v for k, v in metrics_shape.items() if k not in ("rounds", "illegal")}
    names = sorted(tracked)
    int_t = jnp.result_type(int)

    def init_one(run_key):
        init_key, step_key = jax.random.split(run_key)
        k_env, k_agent = jax.random.split(init_key)
        e_state = env.init(k_env, params)
        a_state = agent.init(k_agent, spec)
        acc = _acc_zeros(tracked)
        zero = jnp.zeros((), int_t)
        return (e_state, a_state, acc, zero, zero, zero), step_key  # rounds, steps, illegal

    def body(carry, xs):
        (e_state, a_state, acc, rounds, steps, illegal), rec = carry
        (rng_env, rng_agent), slot = xs
        obs = env.observe(e_state, params)
        action = agent.act(rng_agent, a_state, obs)
        e_next, feedback, metrics = env.step(rng_env, e_state, action, params)
        a_next = agent.update(a_state, obs, action, feedback)
        bad = jnp.asarray(metrics.get("illegal", False))
        if multi_round:
            active = rounds < horizon
            used = jnp.where(active, metrics["rounds"].astype(int_t), 0)
            # A step may not run past the horizon: the agent knows t and T, so it caps n itself.
            bad = (bad | (rounds + used > horizon)) & active
            e_next, a_next = jax.tree.map(
                lambda new, old: jnp.where(active, new, old), (e_next, a_next), (e_state, a_state)
            )
            step_metrics = {k: jnp.where(active, metrics[k], 0) for k in names}
            steps = steps + active.astype(int_t)
        else:
            used = jnp.ones((), int_t)
            step_metrics = {k: metrics[k] for k in names}
            steps = steps + 1
        acc = _acc_add(acc, step_metrics)
        rounds = rounds + used
        # Remember the first illegal action by its (1-based) step number.
        illegal = jnp.where((illegal == 0) & bad, steps, illegal)
        core = (e_next, a_next, acc, rounds, steps, illegal)
        values = {k: _acc_value(acc[k]) for k in names}
        if multi_round:  # emit every step; the host interpolates the grid points between steps
            return (core, rec), (rounds, values)
        # One round per step: the grid rounds of this chunk are known steps (`slot` < `slots`
        # there, = `slots` elsewhere, an index the scatter drops), so write only those.
        rec = {k: rec[k].at[slot].set(values[k], mode="drop") for k in names}
        return (core, rec), None

    def chunk_one(state, step_key, first_block, slot_of_step, n_steps):
        n_blocks = -(-n_steps // RNG_BLOCK)
        rng = _draw_steps(step_key, first_block, n_blocks, n_steps, env_spec, agent_spec)
        rec = {k: jnp.zeros((slots,), jnp.result_type(float)) for k in names}
        (state, rec), emitted = jax.lax.scan(
            body, (state, rec), (rng, slot_of_step), unroll=min(SCAN_UNROLL, n_steps)
        )
        return state, (emitted if multi_round else rec)

    def final_one(state):
        e_state, a_state, *_ = state
        return env.final_metrics(e_state, agent.output(a_state), params)

    t0 = time.perf_counter()
    keys = jax.random.split(jax.random.key(0), n_seeds)
    init = jax.jit(jax.vmap(init_one)).lower(keys).compile()
    state_shape, key_shape = jax.eval_shape(jax.vmap(init_one), keys)
    block0 = jnp.zeros((), jnp.int32)

    def compile_chunk(n):
        f = jax.vmap(lambda s, k, b, i: chunk_one(s, k, b, i, n), in_axes=(0, 0, None, None))
        slot_shape = jax.ShapeDtypeStruct((n,), jnp.int32)
        return (
            jax.jit(f, donate_argnums=0).lower(state_shape, key_shape, block0, slot_shape).compile()
        )

    chunk_fn = compile_chunk(chunk)
    tail_fn = compile_chunk(tail) if tail and not multi_round else None
    final_fn = jax.jit(jax.vmap(final_one)).lower(state_shape).compile()
    compile_seconds = time.perf_counter() - t0
    return _Program(init, chunk_fn, tail_fn, final_fn, multi_round, names, compile_seconds)


def _choose_chunk(
    horizon: int, n_seeds: int, per_step: int, chunk_size: int | None, one_round: bool
) -> int:
    """Steps per chunk: a multiple of RNG_BLOCK, dividing the horizon where possible.

    A one-round run whose whole horizon fits the memory budget is one chunk of any length (one
    compile); chunks that follow one another must be whole RNG blocks.
    """
    if chunk_size is not None:
        if chunk_size < 1 or chunk_size % RNG_BLOCK:
            raise ValueError(
                f"chunk_size: must be a positive multiple of {RNG_BLOCK} (got {chunk_size})"
            )
        return chunk_size
    budget = max(RNG_BLOCK, DEFAULT_CHUNK_ELEMENTS // max(1, n_seeds * per_step))
    if one_round and horizon <= min(budget, 10_000):
        return horizon
    budget = min(budget, 10_000, max(RNG_BLOCK, horizon))
    budget -= budget % RNG_BLOCK
    budget = max(budget, RNG_BLOCK)
    for c in range(budget, RNG_BLOCK - 1, -RNG_BLOCK):
        if horizon % c == 0 and c * 4 >= budget:
            return c
    return budget


@dataclass
class CompiledSimulation:
    """A simulation compiled for (env, params, agent, horizon, seeds, grid): run it with `run`."""

    env: Env
    params: Any
    agent: Agent
    horizon: int
    seeds: int
    grid: np.ndarray
    chunk: int
    tail: int
    slots: int
    program: _Program

    def run(
        self,
        seed: int = 0,
        progress: bool | Callable[[int], None] = False,
        desc: str = "",
    ) -> SimResult:
        return _run(self, seed, progress, desc)


def compile_simulation(
    env: Env,
    params,
    agent: Agent,
    horizon: int,
    seeds: int,
    grid: np.ndarray | Sequence[int] | None = None,
    chunk_size: int | None = None,
) -> CompiledSimulation:
    """Validate the arguments and compile the programs of a simulation (see `simulate`)."""
    if horizon < 1:
        raise ValueError(f"horizon: must be an integer >= 1 (got {horizon})")
    if seeds < 1:
        raise ValueError(f"seeds: must be an integer >= 1 (got {seeds})")
    if horizon > INT32_MAX and not jax.config.jax_enable_x64:
        raise ValueError(f"horizon: {horizon} > 2^31 - 1 needs x64=true (64-bit counters)")
    grid = make_grid(horizon) if grid is None else np.asarray(grid, np.int64)
    if grid.size == 0 or grid[0] < 1 or grid[-1] > horizon or np.any(np.diff(grid) <= 0):
        raise ValueError("grid: must be increasing rounds within [1, horizon]")

    probe = _probe(env, params, agent, horizon)
    per_step = 8 + sum(int(np.prod(d.shape, dtype=np.int64)) for d in probe[1].values())
    chunk = _choose_chunk(horizon, seeds, per_step, chunk_size, "rounds" not in probe[3])
    tail = horizon % chunk  # one-round runs: a shorter last chunk; multi-round runs idle instead
    # Most grid points in one chunk: chunk j holds rounds (j chunk, (j + 1) chunk].
    slots = int(np.unique((grid - 1) // chunk, return_counts=True)[1].max())
    prog = _build(env, params, agent, horizon, seeds, chunk, tail, slots, probe)
    return CompiledSimulation(env, params, agent, horizon, seeds, grid, chunk, tail, slots, prog)


def simulate(
    env: Env,
    params,
    agent: Agent,
    horizon: int,
    seeds: int,
    seed: int = 0,
    grid: np.ndarray | Sequence[int] | None = None,
    chunk_size: int | None = None,
    progress: bool | Callable[[int], None] = False,
    desc: str = "",
) -> SimResult:
    """Run `agent` on `env` for `horizon` rounds and `seeds` independent seeds.

    Returns cumulative metrics at the rounds of `grid` (default: 200 log-spaced points) and the
    final metrics. Bit-identical for the same arguments on the same machine, whatever the chunk.
    """
    compiled = compile_simulation(env, params, agent, horizon, seeds, grid, chunk_size)
    return compiled.run(seed, progress, desc)


def simulate_agents(
    env: Env,
    params,
    agents: dict[str, Agent],
    horizon: int,
    seeds: int,
    seed: int = 0,
    grid: np.ndarray | Sequence[int] | None = None,
    chunk_size: int | None = None,
    progress: bool = False,
    workers: int | None = None,
) -> dict[str, SimResult]:
    """`simulate` each agent; their programs are compiled concurrently in `workers` threads.

    XLA compiles outside Python's GIL, so compiling the agents of one run side by side uses the
    machine's cores (compile time dominates short runs); the runs themselves go one after another
    (each already uses every core). Each result's ``compile_seconds`` is the wall time of its own
    compilation, which overlaps with the others'. Same results as separate `simulate` calls.
    """
    from concurrent.futures import ThreadPoolExecutor

    workers = workers or min(len(agents), os.cpu_count() or 1)

    def build(agent):
        return compile_simulation(env, params, agent, horizon, seeds, grid, chunk_size)

    if workers <= 1 or len(agents) <= 1:
        compiled = {name: build(a) for name, a in agents.items()}
    else:
        with ThreadPoolExecutor(workers) as pool:
            futures = {name: pool.submit(build, a) for name, a in agents.items()}
            compiled = {name: f.result() for name, f in futures.items()}
    return {name: c.run(seed, progress, desc=name) for name, c in compiled.items()}


def _run(c: CompiledSimulation, seed: int, progress, desc: str) -> SimResult:
    """Execute a compiled simulation: the chunk loop, recording and final metrics."""
    prog, grid, horizon, seeds = c.program, c.grid, c.horizon, c.seeds
    chunk, tail, slots = c.chunk, c.tail, c.slots
    bar = _progress_bar(progress, horizon, desc)
    t_start = time.perf_counter()
    run_keys = jax.random.split(jax.random.key(seed), seeds)
    state, step_keys = prog.init(run_keys)
    curves = {k: np.full((seeds, grid.size), np.nan) for k in prog.metric_names}
    prev_rounds = np.zeros(seeds, np.int64)
    prev_values = {k: np.zeros(seeds) for k in prog.metric_names}
    block, done_rounds, steps = 0, 0, 0
    while True:
        if prog.multi_round:
            n, fn = chunk, prog.chunk
        else:
            if done_rounds >= horizon:
                break
            n, fn = (chunk, prog.chunk) if horizon - done_rounds >= chunk else (tail, prog.tail)
        sel = np.nonzero((grid > done_rounds) & (grid <= done_rounds + n))[0]
        slot_of_step = np.full(n, slots, np.int32)
        if not prog.multi_round:
            slot_of_step[grid[sel] - done_rounds - 1] = np.arange(sel.size, dtype=np.int32)
        state, out = fn(state, step_keys, jnp.asarray(block, jnp.int32), slot_of_step)
        block += n // RNG_BLOCK
        steps += n
        _check_illegal(state)
        if prog.multi_round:
            rounds = np.asarray(out[0], np.int64)
            values = {k: np.asarray(v, np.float64) for k, v in out[1].items()}
            _interpolate(grid, curves, rounds, values, prev_rounds, prev_values)
            prev_rounds = rounds[:, -1]
            prev_values = {k: v[:, -1] for k, v in values.items()}
            reached = int(prev_rounds.min())
            if bar is not None:
                bar(min(reached, horizon) - done_rounds)
            if reached <= done_rounds and reached < horizon and steps > chunk:
                stuck = int(np.argmin(prev_rounds))
                raise IllegalActionError(f"seed {stuck} made no progress in a whole chunk of steps")
            done_rounds = reached
            if reached >= horizon:
                break
        else:
            for k, v in out.items():
                curves[k][:, sel] = np.asarray(v[:, : sel.size], np.float64)
            done_rounds += n
            if bar is not None:
                bar(n)
    final_metrics = prog.final(state)
    jax.block_until_ready(final_metrics)
    run_seconds = time.perf_counter() - t_start
    if bar is not None:
        bar(None)

    acc = state[2]
    final = {k: _acc_host_value(acc[k]) for k in prog.metric_names}
    final.update({k: np.asarray(v, np.float64) for k, v in final_metrics.items()})
    if grid[-1] == horizon:
        for k in prog.metric_names:
            curves[k][:, -1] = final[k]
    info = {
        "chunk_size": chunk,
        "rng_block": RNG_BLOCK,
        "multi_round": prog.multi_round,
        "x64": bool(jax.config.jax_enable_x64),
        "prng": "threefry2x32",
        "jax_version": jax.__version__,
        "backend": jax.default_backend(),
    }
    return SimResult(
        grid, curves, final, prog.compile_seconds, run_seconds, steps, seeds, horizon, info
    )


def _interpolate(grid, curves, rounds, values, prev_rounds, prev_values):
    """Multi-round chunk: grid points between step ends are linearly interpolated within a step."""
    lo, hi = int(prev_rounds.min()), int(rounds[:, -1].max())
    sel = np.nonzero((grid > lo) & (grid <= hi))[0]
    for s in range(rounds.shape[0] if sel.size else 0):
        xs = np.concatenate([[prev_rounds[s]], rounds[s]])
        mine = sel[(grid[sel] > prev_rounds[s]) & (grid[sel] <= xs[-1])]
        if mine.size == 0:
            continue
        xs_u, first = np.unique(xs, return_index=True)  # idle steps repeat the last round
        for k, v in values.items():
            ys = np.concatenate([[prev_values[k][s]], v[s]])[first]
            curves[k][s, mine] = np.interp(grid[mine], xs_u, ys)


def _check_illegal(state) -> None:
    illegal = np.asarray(state[5])
    if np.any(illegal > 0):
        s = int(np.argmax(illegal > 0))
        raise IllegalActionError(
            f"seed {s}: illegal action in step {int(illegal[s])} (the environment forbids it)"
        )


def _progress_bar(progress, total: int, desc: str):
    """A callable advancing a progress bar by n rounds (None closes it), or None."""
    if callable(progress):
        return progress
    if not progress:
        return None
    from tqdm.auto import tqdm

    bar = tqdm(total=total, desc=desc, unit="round", unit_scale=True, leave=False)

    def advance(n):
        if n is None:
            bar.close()
        else:
            bar.update(n)

    return advance
