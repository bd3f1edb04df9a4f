"""The simulation engine: ``jit(vmap over seeds(scan over steps))``, chunked (DESIGN.md).

A Python loop over chunks keeps memory bounded, advances a progress bar and collects the recorded
points; inside a chunk everything is one compiled XLA program.

Randomness. For seed ``s`` the run key is ``split(key(seed), N)[s]``; the declared draws of each
block of 100 steps come from that key, the component (environment or agent) and the draw's name
(`experiments.rollout`, which also runs one seed on its own with the same draws), so that

* results do not depend on the chunk size (the draws of step t depend on t alone; chunks that
  follow one another are whole blocks),
* the environment's randomness does not depend on the agent: every agent of a run meets the same
  reward draws for the same seed (common random numbers).

Shapes. Besides plain per-step problems the engine carries *final-answer* problems (no curve
metric; ``final_metrics`` of the agent's ``output``), *trace-driven* ones (exogenous per-step
inputs kept on the host, e.g. memory-mapped, sliced per chunk and fed to the compiled chunk as
arguments, so compile time and device memory do not grow with the trace) and *episodic* ones
(`experiments.episodic.EpisodicEnv`: ``horizon`` counts episodes of ``episode_length`` steps and
curves are recorded at episode ends).

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

import dataclasses
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from experiments.lift import Lifted, freeze, lift
from experiments.protocol import Agent, Env, Exogenous, IllegalActionError
from experiments.rollout import (
    RNG_BLOCK,
    Carry,
    Probe,
    advance,
    draw_steps,
    initial_carry,
    probe,
    step_inputs,
    sum_host_value,
    sum_value,
)

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


# --------------------------------------------------------------------------- engine
@dataclass
class _Program:
    """The compiled pieces of one (env, agent, shapes) simulation, and the numbers to run them
    with (`args`: env numbers, agent numbers; the params pytree is given at run time)."""

    init: Callable
    chunk: Callable
    tail: Callable | None
    final: Callable
    multi_round: bool
    metric_names: list[str]
    compile_seconds: float
    numbers: tuple = ((), ())
    cached: bool = False  # found in this process's program cache (no compilation)
    lifted: tuple[str, str] = ("none", "none")  # env / agent numbers: arguments|constants|none
    params_as_argument: bool = True
    program_seconds: dict[str, float] = field(default_factory=dict)  # per program, when compiled

    def reused(self, parts, compile_seconds: float = 0.0, cached: bool = True) -> _Program:
        """This program with the numbers of `parts` (another object of the same static key)."""
        return dataclasses.replace(
            self,
            numbers=(parts.env.numbers, parts.agent.numbers),
            compile_seconds=compile_seconds,
            cached=cached,
            lifted=(parts.env.mode, parts.agent.mode),
            params_as_argument=parts.params is None,
            program_seconds=self.program_seconds if not cached else {},
        )


class _Parts(NamedTuple):
    """What a compiled program is a function of besides its state: env and agent numbers
    (lifted hyperparameters, `experiments.lift`) and, unless `params` holds them as constants,
    the env's params pytree."""

    env: Lifted
    agent: Lifted
    params: Any = None  # None: params are an argument; else the params, closed over

    def bind(self, h):
        """(env, agent, params) inside a program, from its argument h."""
        params = h[2] if self.params is None else self.params
        return self.env.rebuild(h[0]), self.agent.rebuild(h[1]), params


class _Layout(NamedTuple):
    """The sizes a simulation's programs are compiled for (all static)."""

    horizon_steps: int
    seeds: int
    chunk: int  # steps per chunk
    tail: int  # steps of a shorter last chunk (one-round runs), 0 if none
    slots: int  # most grid points in one chunk
    probe: Probe
    per_seed_inputs: tuple[str, ...]


def _build(env: Env, params, agent: Agent, layout: _Layout) -> _Program:
    """Compile init, chunk (and tail) and final programs; `slots` = grid points per chunk.

    Hyperparameters are arguments: the env's params pytree and the float attributes of the env
    and agent objects (`experiments.lift`) are inputs of the programs, so objects that differ
    only in those numbers share one program (cached in this process; across processes JAX's
    persistent cache sees the same program). A component that needs a number as a constant (to
    make a shape, or to branch in Python) is compiled with its numbers as constants instead.
    """
    attempts = [
        _Parts(lift(env), lift(agent)),
        _Parts(Lifted.static(env), lift(agent)),
        _Parts(lift(env), Lifted.static(agent)),
        _Parts(Lifted.static(env), Lifted.static(agent)),
        _Parts(Lifted.static(env), Lifted.static(agent), params),  # everything a constant
    ]
    try:
        params_shape = jax.tree.map(_abstract, params)
    except TypeError:  # params that are not arrays: constants only
        params_shape, attempts = None, attempts[-1:]
    seen = set()
    for parts in attempts:
        if (parts.env.key, parts.agent.key, parts.params is None) in seen:
            continue
        seen.add((parts.env.key, parts.agent.key, parts.params is None))
        key = _program_key(parts, params_shape, layout)
        with _PROGRAMS_LOCK:  # agents of a run compile in threads (simulate_agents)
            hit = _PROGRAMS.get(key)
            if hit is not None:
                _PROGRAMS.move_to_end(key)
        if hit is not None:
            return hit.reused(parts)
        try:
            prog = _compile(parts, params_shape, layout)
        except Exception:  # a number needed as a constant (tracer errors, hashing, numpy)
            if parts.params is not None:
                raise  # the all-constant attempt: a real error of the env or agent
            continue
        with _PROGRAMS_LOCK:
            _PROGRAMS[key] = prog
            while len(_PROGRAMS) > PROGRAM_CACHE_SIZE:
                _PROGRAMS.popitem(last=False)
        return prog.reused(parts, compile_seconds=prog.compile_seconds, cached=False)
    raise AssertionError("unreachable: the all-constant attempt returns or raises")


PROGRAM_CACHE_SIZE = 64  # compiled simulations kept in this process (least recently used go)
_PROGRAMS: OrderedDict = OrderedDict()
_PROGRAMS_LOCK = threading.Lock()


def _abstract(x):
    x = jnp.asarray(x)
    return jax.ShapeDtypeStruct(x.shape, x.dtype, weak_type=x.weak_type)


def _program_key(parts: _Parts, params_shape, layout: _Layout) -> tuple:
    """Everything a compiled program depends on besides its arguments: the static keys of env
    and agent, the params' structure and shapes (or the params themselves when constant), the
    sizes, and what the probe fixed statically (the agent's spec, the draws, the inputs)."""
    *sizes, probe, per_seed = layout
    leaves, treedef = jax.tree.flatten(params_shape)
    try:
        constants = () if parts.params is None else freeze(jax.tree.map(np.asarray, parts.params))
        spec = freeze(probe.spec)
    except TypeError:  # cannot be keyed: a key that matches nothing else
        return (object(),)
    return (
        parts.env.key,
        parts.agent.key,
        constants,
        spec,
        tuple(sorted(probe.env_draws.items())),
        tuple(sorted(probe.agent_draws.items())),
        treedef,
        tuple((x.shape, x.dtype, x.weak_type) for x in leaves),
        tuple(sizes),
        tuple(sorted((k, v.shape, v.dtype) for k, v in probe.inputs.items())),
        per_seed,
        bool(jax.config.jax_enable_x64),
        SCAN_UNROLL,
    )


def _compile(parts: _Parts, params_shape, layout: _Layout) -> _Program:
    horizon_steps, n_seeds, chunk, tail, slots, probe, per_seed_inputs = layout
    multi_round = probe.multi_round
    names = probe.tracked
    limit = horizon_steps if multi_round else None

    def init_one(h, run_key):
        env, agent, params = parts.bind(h)
        return initial_carry(env, params, agent, probe, run_key)

    def chunk_one(h, state, step_key, first_block, slot_of_step, shared, mine, n_steps):
        env, agent, params = parts.bind(h)

        def body(carry, xs):
            core, rec = carry
            (rng_env, rng_agent), inputs, slot = xs
            core, _ = advance(
                env, params, agent, core, rng_env, rng_agent, inputs, limit, multi_round
            )
            values = {k: sum_value(core.sums[k]) for k in names}
            if multi_round:  # emit every step; the host interpolates grid points between steps
                return (core, rec), (core.rounds, values)
            # One round per step: the grid rounds of this chunk are known steps (`slot` <
            # `slots` there, = `slots` elsewhere, an index the scatter drops): write only those.
            rec = {k: rec[k].at[slot].set(values[k], mode="drop") for k in names}
            return (core, rec), None

        rng = draw_steps(step_key, first_block, n_steps, probe.env_draws, probe.agent_draws)
        rec = {k: jnp.zeros((slots,), jnp.result_type(float)) for k in names}
        xs = (rng, {**shared, **mine}, slot_of_step)
        (state, rec), emitted = jax.lax.scan(
            body, (state, rec), xs, length=n_steps, unroll=min(SCAN_UNROLL, n_steps)
        )
        return state, (emitted if multi_round else rec)

    def final_one(h, state: Carry):
        env, agent, params = parts.bind(h)
        return env.final_metrics(state.env_state, agent.output(state.agent_state), params)

    def numbers(lifted: Lifted):
        return tuple(
            jax.ShapeDtypeStruct((), jnp.result_type(float), weak_type=True) for _ in lifted.numbers
        )

    h_shape = (
        numbers(parts.env),
        numbers(parts.agent),
        params_shape if parts.params is None else (),
    )
    t0 = time.perf_counter()
    seconds = {}  # wall seconds per program (trace + lower + XLA compile)
    keys = jax.random.split(jax.random.key(0), n_seeds)
    init = jax.jit(jax.vmap(init_one, in_axes=(None, 0))).lower(h_shape, keys).compile()
    seconds["init"] = time.perf_counter() - t0
    state_shape, key_shape = jax.eval_shape(jax.vmap(init_one, in_axes=(None, 0)), h_shape, keys)
    block0 = jnp.zeros((), jnp.int32)

    def compile_chunk(n):
        def inputs_shape(per_seed: bool):
            lead = (n_seeds, n) if per_seed else (n,)
            return {
                k: jax.ShapeDtypeStruct((*lead, *v.shape), v.dtype)
                for k, v in probe.inputs.items()
                if (k in per_seed_inputs) == per_seed
            }

        f = jax.vmap(
            lambda h, s, k, b, i, sh, mi: chunk_one(h, s, k, b, i, sh, mi, n),
            in_axes=(None, 0, 0, None, None, None, 0),
        )
        slot_shape = jax.ShapeDtypeStruct((n,), jnp.int32)
        lowered = jax.jit(f, donate_argnums=1).lower(
            h_shape,
            state_shape,
            key_shape,
            block0,
            slot_shape,
            inputs_shape(False),
            inputs_shape(True),
        )
        return lowered.compile()

    def timed(name, make):
        t = time.perf_counter()
        out = make()
        seconds[name] = time.perf_counter() - t
        return out

    chunk_fn = timed("chunk", lambda: compile_chunk(chunk))
    tail_fn = timed("tail", lambda: compile_chunk(tail)) if tail and not multi_round else None
    final_fn = timed(
        "final",
        lambda: (
            jax.jit(jax.vmap(final_one, in_axes=(None, 0))).lower(h_shape, state_shape).compile()
        ),
    )
    compile_seconds = time.perf_counter() - t0
    prog = _Program(init, chunk_fn, tail_fn, final_fn, multi_round, names, compile_seconds)
    prog.program_seconds = {k: round(v, 3) for k, v in seconds.items()}
    return prog


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
    """A simulation compiled for (env, params, agent, horizon, seeds, grid): run it with `run`.

    `steps_per_round` is 1, or an episodic env's episode length H (a "round" is an episode:
    `horizon` episodes are horizon H steps, recorded at the ends of the grid's episodes).
    `inputs` are the host-side exogenous inputs (raw and prepared), streamed per chunk.
    """

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
    steps_per_round: int = 1
    inputs: dict[str, Exogenous] = field(default_factory=dict)

    def run(
        self,
        seed: int = 0,
        progress: bool | Callable[[int], None] = False,
        desc: str = "",
    ) -> SimResult:
        return _run(self, seed, progress, desc)


def host_inputs(env: Env, params, horizon: int, seeds: int) -> dict[str, Exogenous]:
    """The env's exogenous inputs and the results of its preparation pass (host side).

    ``exogenous`` declares the inputs (arrays or memory-mapped files, never copied into a
    program); ``prepare`` sees all of them once and returns per-step arrays streamed the same
    way (e.g. next-arrival times of a request trace). Each must cover `horizon` steps.
    """
    raw = dict(getattr(env, "exogenous", lambda *a: {})(params, horizon, seeds))
    if not raw:
        return {}
    _check_exogenous(raw)
    prepared = dict(getattr(env, "prepare", lambda *a: {})(raw, params, horizon))
    _check_exogenous(prepared)
    clash = set(raw) & set(prepared)
    if clash:
        raise ValueError(f"env: prepare() returned names of raw inputs again: {sorted(clash)}")
    inputs = {**raw, **prepared}
    for name, x in inputs.items():
        shape = np.shape(x.data)
        length = shape[1] if x.per_seed else shape[0]
        if x.per_seed and shape[0] != seeds:
            raise ValueError(f"env input {name!r}: per-seed rows {shape[0]} != seeds {seeds}")
        if length < horizon:
            raise ValueError(f"env input {name!r}: covers {length} steps < horizon {horizon}")
    return inputs


def _check_exogenous(inputs: dict) -> None:
    for name, x in inputs.items():
        if not isinstance(x, Exogenous):
            raise TypeError(f"env input {name!r}: must be an experiments.protocol.Exogenous")


def _steps_per_round(env: Env) -> int:
    return int(getattr(env, "episode_length", 1))


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
    per_round = _steps_per_round(env)
    steps = horizon * per_round
    if steps > INT32_MAX and not jax.config.jax_enable_x64:
        raise ValueError(f"horizon: {steps} steps > 2^31 - 1 needs x64=true (64-bit counters)")
    grid = make_grid(horizon) if grid is None else np.asarray(grid, np.int64)
    if grid.size == 0 or grid[0] < 1 or grid[-1] > horizon or np.any(np.diff(grid) <= 0):
        raise ValueError("grid: must be increasing rounds within [1, horizon]")

    inputs = host_inputs(env, params, steps, seeds)
    probe_ = probe(env, params, agent, horizon, step_inputs(inputs))
    if probe_.multi_round and (inputs or per_round > 1):
        raise ValueError("env: multi-round steps cannot be combined with inputs or episodes")
    per_step = 8 + probe_.draws_per_step + _input_elements(probe_.inputs, inputs)
    chunk = _choose_chunk(steps, seeds, per_step, chunk_size, not probe_.multi_round)
    tail = steps % chunk  # one-round runs: a shorter last chunk; multi-round runs idle instead
    # Most grid points in one chunk: chunk j holds steps (j chunk, (j + 1) chunk].
    slots = int(np.unique((grid * per_round - 1) // chunk, return_counts=True)[1].max())
    per_seed = tuple(sorted(k for k, x in inputs.items() if x.per_seed))
    layout = _Layout(steps, seeds, chunk, tail, slots, probe_, per_seed)
    prog = _build(env, params, agent, layout)
    return CompiledSimulation(
        env, params, agent, horizon, seeds, grid, chunk, tail, slots, prog, per_round, inputs
    )


def _input_elements(abstract: dict, inputs: dict[str, Exogenous]) -> int:
    """Input values per step and seed (per-seed inputs count fully, shared ones once)."""
    return sum(
        int(np.prod(abstract[k].shape, dtype=np.int64)) for k, x in inputs.items() if x.per_seed
    )


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
    For an episodic env, `horizon` and `grid` count episodes.
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


def _weak(numbers: tuple) -> tuple:
    """Lifted numbers as the programs take them: weakly typed scalars, like Python floats."""
    return tuple(jnp.asarray(float(x)) for x in numbers)


def _chunk_inputs(inputs: dict[str, Exogenous], first: int, n: int) -> tuple[dict, dict]:
    """Rows [first, first + n) of every input, on the device: (shared, per seed)."""
    shared, mine = {}, {}
    for name, x in inputs.items():
        rows = np.asarray(x.data[:, first : first + n] if x.per_seed else x.data[first : first + n])
        value = jnp.asarray(rows, jax.dtypes.canonicalize_dtype(rows.dtype))
        (mine if x.per_seed else shared)[name] = value
    return shared, mine


def _run(c: CompiledSimulation, seed: int, progress, desc: str) -> SimResult:
    """Execute a compiled simulation: the chunk loop, recording and final metrics."""
    prog, grid, seeds = c.program, c.grid, c.seeds
    chunk, tail, slots, per_round = c.chunk, c.tail, c.slots, c.steps_per_round
    horizon = c.horizon * per_round  # in steps
    grid_steps = grid * per_round
    bar = _progress_bar(progress, c.horizon, desc, "episode" if per_round > 1 else "round")
    t_start = time.perf_counter()
    run_keys = jax.random.split(jax.random.key(seed), seeds)
    h = (
        _weak(prog.numbers[0]),
        _weak(prog.numbers[1]),
        c.params if prog.params_as_argument else (),
    )
    state, step_keys = prog.init(h, run_keys)
    curves = {k: np.full((seeds, grid.size), np.nan) for k in prog.metric_names}
    prev_rounds = np.zeros(seeds, np.int64)
    prev_values = {k: np.zeros(seeds) for k in prog.metric_names}
    block, done, steps = 0, 0, 0
    while True:
        if prog.multi_round:
            n, fn = chunk, prog.chunk
        else:
            if done >= horizon:
                break
            n, fn = (chunk, prog.chunk) if horizon - done >= chunk else (tail, prog.tail)
        sel = np.nonzero((grid_steps > done) & (grid_steps <= done + n))[0]
        slot_of_step = np.full(n, slots, np.int32)
        if not prog.multi_round:
            slot_of_step[grid_steps[sel] - done - 1] = np.arange(sel.size, dtype=np.int32)
        shared, mine = _chunk_inputs(c.inputs, done, n)
        block_ = jnp.asarray(block, jnp.int32)
        state, out = fn(h, state, step_keys, block_, slot_of_step, shared, mine)
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
                bar(min(reached, horizon) - done)
            if reached <= done and reached < horizon and steps > chunk:
                stuck = int(np.argmin(prev_rounds))
                raise IllegalActionError(f"seed {stuck} made no progress in a whole chunk of steps")
            done = reached
            if reached >= horizon:
                break
        else:
            for k, v in out.items():
                curves[k][:, sel] = np.asarray(v[:, : sel.size], np.float64)
            if bar is not None:
                bar((done + n) // per_round - done // per_round)
            done += n
    final_metrics = prog.final(h, state)
    jax.block_until_ready(final_metrics)
    run_seconds = time.perf_counter() - t_start
    if bar is not None:
        bar(None)

    final = {k: sum_host_value(state.sums[k]) for k in prog.metric_names}
    final.update({k: np.asarray(v, np.float64) for k, v in final_metrics.items()})
    if grid[-1] == c.horizon:
        for k in prog.metric_names:
            curves[k][:, -1] = final[k]
    info = {
        "chunk_size": chunk,
        "rng_block": RNG_BLOCK,
        "rng_streams": "by draw name (crc32)",
        "multi_round": prog.multi_round,
        "steps_per_round": per_round,
        "exogenous_inputs": sorted(c.inputs),
        "program_cache": "hit" if prog.cached else "compiled",
        # wall seconds per compiled program; with several agents of one run compiled side by
        # side (simulate_agents), these and compile_seconds overlap in time
        "compile_seconds_by_program": prog.program_seconds,
        "hyperparameters": {"env": prog.lifted[0], "agent": prog.lifted[1]},
        "x64": bool(jax.config.jax_enable_x64),
        "prng": "threefry2x32",
        "jax_version": jax.__version__,
        "backend": jax.default_backend(),
    }
    return SimResult(
        grid, curves, final, prog.compile_seconds, run_seconds, steps, seeds, c.horizon, info
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


def _check_illegal(state: Carry) -> None:
    illegal = np.asarray(state.illegal)
    if np.any(illegal > 0):
        s = int(np.argmax(illegal > 0))
        raise IllegalActionError(
            f"seed {s}: illegal action in step {int(illegal[s])} (the environment forbids it)"
        )


def _progress_bar(progress, total: int, desc: str, unit: str = "round"):
    """A callable advancing a progress bar by n rounds (None closes it), or None."""
    if callable(progress):
        return progress
    if not progress:
        return None
    from tqdm.auto import tqdm

    bar = tqdm(total=total, desc=desc, unit=unit, unit_scale=True, leave=False)

    def advance(n):
        if n is None:
            bar.close()
        else:
            bar.update(n)

    return advance
