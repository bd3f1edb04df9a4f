"""The simulation engine: ``jit(vmap over seeds(scan over steps))``, chunked (README.md, "How the
engine works").

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
which grows linearly within a batch of pulls of one arm). Seeds that reached the horizon idle;
a chunk stops at the first step in which every seed idles (`_until_idle`: no env or agent work).

Horizon as an input. A multi-round agent with ``horizon_inputs(spec)`` takes the horizon T as an
input of its programs, so runs that differ only in T (a sweep over T, or over ε at several T)
share one compiled program (in this process and in JAX's persistent cache). On the host, from
the concrete spec, ``horizon_inputs`` checks T (a ConfigError line before anything is traced)
and returns the arrays its plan takes from T that device arithmetic cannot reproduce exactly
(float64 host arithmetic without x64; ``()``: none). In the program the agent's ``init`` gets
``(key, spec, inputs)``, with ``spec.horizon`` a traced integer scalar (int32, int64 under x64)
and those arrays traced; the engine's horizon (when a lane idles) is traced too. Such an agent
promises that its draws, state shapes and `max_steps` do not depend on T (its probe is shared
across T). Called as ``init(key, spec)`` (a concrete spec) it computes the same itself.

Per-step cost. On the CPU a one-round chunk runs its steps in loops that hold nothing but the
step and records its grid points between them (`_segments`); on an accelerator it is one scan
with a fixed trip count that writes its grid points in the body (`_scan_recording`; a
data-dependent loop bound or branch there is a device-to-host copy per step). Only the grid
points a chunk filled are copied to the host. The env's init program is compiled once per run
and shared by its agents (`_shared_env_init`). Measurements: bench/engine_floor_results.md,
bench/gpu_results.md.
"""

from __future__ import annotations

import contextlib
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

from experiments import interrupt
from experiments.batched_cond import lane_block
from experiments.lift import Lifted, freeze, lift
from experiments.protocol import Agent, Env, Exogenous, IllegalActionError
from experiments.rollout import (
    GENERATOR,
    RNG_BLOCK,
    Carry,
    Probe,
    advance,
    carry_of,
    draw_steps,
    init_keys,
    probe,
    step_inputs,
    sum_host_value,
    sum_value,
)

INT32_MAX = 2**31 - 1
PRNG_NAMES = {  # what summary.json records of the engine's draws
    "threefry": "threefry2x32, non-partitionable (2 words per hash)",
    "threefry-partitionable": "threefry2x32, partitionable (jax default)",
}
DEFAULT_CHUNK_ELEMENTS = 1 << 22  # random numbers + recorded values per chunk, all seeds
# Steps of the scan body unrolled into one loop iteration (`lax.scan(unroll=...)`): 1 keeps
# compiles short on CPU; on a GPU a larger value amortises the per-iteration loop overhead of
# small per-step kernels. Numerics do not depend on it. Read once, at import.
SCAN_UNROLL = int(os.environ.get("REGRETLAB_SCAN_UNROLL", "1"))
# One-round chunk loops: ``cpu`` (segments between grid steps, `_segments`; a shorter last chunk
# skipped by a branch) or ``accelerator`` (one scan with a fixed trip count, records written in
# the body, the tail masked by a select: on a GPU a data-dependent loop bound or branch is a
# device-to-host copy and a stall per step). Default: by the default backend, read when a
# program is compiled (part of its key). Same results either way (tests/test_engine.py).
LOOPS_ENV = "REGRETLAB_LOOPS"
LOOPS = ("cpu", "accelerator")


def chunk_loops() -> str:
    """`LOOPS_ENV` if set, else ``cpu`` on the CPU backend and ``accelerator`` on another."""
    raw = os.environ.get(LOOPS_ENV, "").strip()
    if raw and raw not in LOOPS:
        raise ValueError(f"{LOOPS_ENV}: must be one of {', '.join(LOOPS)} (got {raw!r})")
    return raw or ("cpu" if jax.default_backend() == "cpu" else "accelerator")


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
    steps: int  # steps a seed took (one-round: the horizon's; multi-round: the most over lanes)
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
    with (`numbers`: per config, its env numbers and agent numbers; the params pytree is given
    at run time)."""

    init: Callable
    chunk: Callable
    final: Callable
    multi_round: bool
    metric_names: list[str]
    compile_seconds: float
    numbers: tuple = ()  # per config: (env numbers, agent numbers)
    cached: bool = False  # found in this process's program cache (no compilation)
    lifted: tuple[str, str] = ("none", "none")  # env / agent numbers: arguments|constants|none
    params_as_argument: bool = True
    program_seconds: dict[str, float] = field(default_factory=dict)  # per program, when compiled
    seed_sharding: Any = None  # the seed axis split over the local devices (`seed_sharding`)
    traced_horizon: bool = False  # init and chunk take the horizon as an argument (module doc)

    def reused(self, parts: list, compile_seconds: float = 0.0, cached: bool = True) -> _Program:
        """This program with the numbers of `parts` (one per config, all of this static key)."""
        return dataclasses.replace(
            self,
            numbers=tuple((p.env.numbers, p.agent.numbers) for p in parts),
            compile_seconds=compile_seconds,
            cached=cached,
            lifted=(parts[0].env.mode, parts[0].agent.mode),
            params_as_argument=parts[0].params is None,
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
    """The sizes a simulation's programs are compiled for (all static, but the horizon and the
    grid's slots where `traced_horizon`: then arguments, and out of the program key)."""

    horizon_steps: int
    seeds: int
    chunk: int  # steps per chunk
    tail: int  # steps of a shorter last chunk (one-round runs), 0 if none
    slots: int  # most grid points in one chunk
    probe: Probe
    per_seed_inputs: tuple[str, ...]
    configs: int = 1  # configs of a sweep run side by side (a vmapped axis outside the seeds)
    traced_horizon: bool = False  # a multi-round agent with `horizon_inputs` (module doc)
    horizon_inputs: Any = ()  # its arrays' shapes (jax.ShapeDtypeStruct), one config's


def _build(variants: Sequence[tuple[Env, Any, Agent]], layout: _Layout) -> _Program | None:
    """Compile init, chunk and final programs for the (env, params, agent) `variants` (one, or
    the configs of a sweep), or return None when the variants cannot share one program.

    Hyperparameters are arguments: the env's params pytree and the float attributes of the env
    and agent objects (`experiments.lift`) are inputs of the programs, so objects that differ
    only in those numbers share one program (cached in this process; across processes JAX's
    persistent cache sees the same program). A component that needs a number as a constant (to
    make a shape, or to branch in Python) is compiled with its numbers as constants instead;
    sweep configs then share a program only where those constants agree.
    """
    modes = [  # (env lifted, agent lifted, params an argument), most shared first
        (True, True, True),
        (False, True, True),
        (True, False, True),
        (False, False, True),
        (False, False, False),  # everything a constant
    ]
    try:
        shapes = [jax.tree.map(_abstract, params) for _, params, _ in variants]
    except TypeError:  # params that are not arrays: constants only
        shapes, modes = None, modes[-1:]
    params_shape = shapes[0] if shapes else None
    if shapes and any(_shape_key(x) != _shape_key(params_shape) for x in shapes):
        return None
    seen = set()
    for mode in modes:
        parts = [_parts(v, *mode) for v in variants]
        keys = [_program_key(p, params_shape, layout) for p in parts]
        if len(set(keys)) > 1 or (parts[0].env.key, parts[0].agent.key, mode[2]) in seen:
            continue  # the configs differ in what this mode keeps static
        seen.add((parts[0].env.key, parts[0].agent.key, mode[2]))
        with _PROGRAMS_LOCK:  # agents of a run compile in threads (simulate_agents)
            hit = _PROGRAMS.get(keys[0])
            if hit is not None:
                _PROGRAMS.move_to_end(keys[0])
        if hit is not None:
            return hit.reused(parts)
        try:
            prog = _compile(parts[0], params_shape, layout)
        except Exception:  # a number needed as a constant (tracer errors, hashing, numpy)
            if mode[2] or len(variants) > 1:
                continue
            raise  # the all-constant attempt of one config: a real error of the env or agent
        with _PROGRAMS_LOCK:
            _PROGRAMS[keys[0]] = prog
            while len(_PROGRAMS) > PROGRAM_CACHE_SIZE:
                _PROGRAMS.popitem(last=False)
        return prog.reused(parts, compile_seconds=prog.compile_seconds, cached=False)
    return None  # configs that differ in a constant: the caller runs them apart


def _parts(variant: tuple[Env, Any, Agent], env_lifted: bool, agent_lifted: bool, params_arg: bool):
    env, params, agent = variant
    return _Parts(
        lift(env) if env_lifted else Lifted.static(env),
        lift(agent) if agent_lifted else Lifted.static(agent),
        None if params_arg else params,
    )


def _shape_key(params_shape) -> tuple:
    leaves, treedef = jax.tree.flatten(params_shape)
    return treedef, tuple((x.shape, x.dtype, x.weak_type) for x in leaves)


PROGRAM_CACHE_SIZE = 64  # compiled simulations kept in this process (least recently used go)
_PROGRAMS: OrderedDict = OrderedDict()
_PROGRAMS_LOCK = threading.Lock()


def seed_devices(seeds: int, devices: int | None = None) -> int:
    """How many of the `devices` local JAX devices (default: all of the default backend's) split
    a seed axis of `seeds`: the largest n <= devices that divides `seeds` into at least 2 seeds
    per device (seeds=100 on 16 devices: 10, 10 seeds each; 4 on 4: 2; a prime: 1), or 1 under
    ``REGRETLAB_SHARD_SEEDS=0``. At least 2 per device: XLA compiles a batch of one lane
    differently (its degenerate axis is dropped), which moved a counter's float32 squared error
    by an ulp against the batched program (tests/test_launchers.py)."""
    if os.environ.get("REGRETLAB_SHARD_SEEDS") == "0":
        return 1
    devices = len(jax.local_devices()) if devices is None else devices
    return next((n for n in range(min(devices, seeds // 2), 1, -1) if seeds % n == 0), 1)


def seed_sharding(seeds: int) -> jax.sharding.NamedSharding | None:
    """The sharding that splits a leading axis of `seeds` over the first `seed_devices(seeds)`
    local JAX devices (the default backend's: the GPUs where there are, else the host devices of
    `experiments.devices`), or None where that is one device. Each device runs its seeds' lanes
    as a program of its own (`_per_device`), so the results equal a one-device run's bit for
    bit (tests/test_launchers.py)."""
    n = seed_devices(seeds)
    if n < 2:
        return None
    mesh = jax.sharding.Mesh(np.asarray(jax.local_devices()[:n]), (SEED_DEVICES,))
    return jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(SEED_DEVICES))


def _sharded_devices(sharding: jax.sharding.NamedSharding | None) -> int:
    """The devices a seed sharding splits the seeds over (1 for None)."""
    return 1 if sharding is None else sharding.mesh.devices.size


def _placed(x: jax.ShapeDtypeStruct, sharding) -> jax.ShapeDtypeStruct:
    return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding, weak_type=x.weak_type)


def _abstract(x):
    x = jnp.asarray(x)
    return jax.ShapeDtypeStruct(x.shape, x.dtype, weak_type=x.weak_type)


def _program_key(parts: _Parts, params_shape, layout: _Layout) -> tuple:
    """Everything a compiled program depends on besides its arguments: the static keys of env
    and agent, the params' structure and shapes (or the params themselves when constant), the
    sizes, and what the probe fixed statically (the agent's spec, the draws, the inputs)."""
    *sizes, probe, per_seed, configs, traced, hz_inputs = layout
    if traced:  # the horizon and the grid (unused by multi-round chunks) are not in the program
        sizes[0] = sizes[4] = None
    leaves, treedef = jax.tree.flatten(params_shape)
    try:
        constants = () if parts.params is None else freeze(jax.tree.map(np.asarray, parts.params))
        spec = freeze(_untimed(probe.spec) if traced else probe.spec)
    except TypeError:  # cannot be keyed: a key that matches nothing else
        return (object(),)
    hz_leaves, hz_tree = jax.tree.flatten(hz_inputs)
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
        configs,
        seed_devices(layout.seeds),  # the programs are compiled for this seed sharding
        bool(jax.config.jax_enable_x64),
        SCAN_UNROLL,
        chunk_loops(),
        lane_block(),
        traced,
        hz_tree,
        tuple((x.shape, x.dtype) for x in hz_leaves),
    )


def _untimed(spec):
    """`spec` (a NamedTuple) without its horizon (None), for an agent that takes T traced."""
    return spec._replace(horizon=None)


def _compile(parts: _Parts, params_shape, layout: _Layout) -> _Program:
    """Trace, lower and compile the init, chunk and final programs of `layout`.

    Each is ``vmap`` over seeds of one run's function of (h, ...), h = (env numbers, agent
    numbers, params); a sweep of C configs adds an outer ``vmap`` over h (states (C, seeds, ...)).
    One chunk program serves every chunk: with a shorter last chunk (`layout.tail`), steps from
    its argument ``n_active`` on are not run (a loop bound, or a ``lax.cond`` on the step index,
    the same for every seed: a real branch, not a select; on an accelerator a select). Multi-round
    chunks stop at the first step in which no lane is active (`_until_idle`).
    """
    horizon_steps, n_seeds, chunk, _, slots, probe, per_seed_inputs, configs = layout[:8]
    multi_round = probe.multi_round
    names = probe.tracked
    traced = layout.traced_horizon
    on_cpu = chunk_loops() == "cpu"
    static_limit = horizon_steps if multi_round else None

    def env_init_one(h_env, h_params, run_key):
        """The env's part of the initial state: a function of the env's numbers and params
        only, so the agents of a run share its program (`_shared_env_init`)."""
        env = parts.env.rebuild(h_env)
        params = h_params if parts.params is None else parts.params
        k_env, _, step_key = init_keys(run_key)
        return env.init(k_env, params), step_key

    def agent_init_one(h, env_state, run_key, hz=None):
        _, agent, _ = parts.bind(h)
        _, k_agent, _ = init_keys(run_key)
        if not traced:
            return carry_of(env_state, agent.init(k_agent, probe.spec), probe)
        horizon, inputs = hz
        spec = probe.spec._replace(horizon=horizon)
        return carry_of(env_state, agent.init(k_agent, spec, inputs), probe)

    def chunk_one(h, state, step_key, first_block, slot_of_step, n_active, shared, mine, lim=None):
        env, agent, params = parts.bind(h)
        limit = lim if traced else static_limit
        rng = draw_steps(step_key, first_block, chunk, probe.env_draws, probe.agent_draws)
        xs = (rng, {**shared, **mine})

        def step(core, x):
            (rng_env, rng_agent), inputs = x
            return advance(
                env, params, agent, core, rng_env, rng_agent, inputs, limit, multi_round
            )[0]

        def emit(core):
            return {k: sum_value(core.sums[k]) for k in names}

        if multi_round:  # emit every step; the host interpolates grid points between steps
            return _until_idle(step, emit, state, xs, chunk, limit, configs)
        if SCAN_UNROLL > 1 or not on_cpu:  # one scan; the grid steps write their slot
            return _scan_recording(step, emit, state, xs, slot_of_step, n_active, layout, on_cpu)
        return _segments(step, emit, state, xs, slot_of_step, n_active, slots)

    def final_one(h, state: Carry):
        env, agent, params = parts.bind(h)
        return env.final_metrics(state.env_state, agent.output(state.agent_state), params)

    def over_configs(f, seed_axes, config_axes):
        """`f` vmapped over seeds, and over a sweep's configs when there are any (h, states
        and step keys have a config axis; run keys and exogenous inputs are shared)."""
        f = jax.vmap(f, in_axes=seed_axes, axis_name=SEEDS)
        if configs == 1:
            return f
        return jax.vmap(f, in_axes=config_axes, axis_name=CONFIGS, axis_size=configs)

    lead = () if configs == 1 else (configs,)

    def numbers(lifted: Lifted):
        return tuple(
            jax.ShapeDtypeStruct(lead, jnp.result_type(float), weak_type=True)
            for _ in lifted.numbers
        )

    h_shape = (
        numbers(parts.env),
        numbers(parts.agent),
        jax.tree.map(lambda x: _with_lead(x, lead), params_shape) if parts.params is None else (),
    )
    t0 = time.perf_counter()
    seconds = {}  # wall seconds per program (trace + lower + XLA compile)
    keys = jax.random.split(jax.random.key(0), n_seeds)
    sharding = seed_sharding(n_seeds)
    lanes: dict[str, Any] = {}  # outputs' shardings: every leaf split on its seed axis
    P = jax.sharding.PartitionSpec
    # per-device specs: run keys and per-seed inputs split on axis 0 (SEED), states and outputs
    # on the seed axis (LANE: axis 1 under a sweep's config axis), h and the rest replicated
    SEED, REP = P(SEED_DEVICES), P()
    LANE = SEED if configs == 1 else P(None, SEED_DEVICES)
    if sharding is not None:
        keys = jax.device_put(keys, sharding)
        lanes = {"out_shardings": jax.sharding.NamedSharding(sharding.mesh, LANE)}

    def per_device(f, in_specs):  # `_per_device` on this program's mesh
        return _per_device(f, sharding, in_specs, LANE)

    def placed(tree):  # the next program takes `tree` as the previous one leaves it
        if sharding is None:
            return tree
        return jax.tree.map(lambda x: _placed(x, lanes["out_shardings"]), tree)

    env_all = over_configs(env_init_one, (None, None, 0), (0, 0, None))
    env_args = (h_shape[0], h_shape[2], keys)
    env_program = per_device(env_all, (REP, REP, SEED))
    env_init, seconds["init_env"] = _shared_env_init(
        _env_init_key(parts, params_shape, layout, sharding),
        lambda: jax.jit(env_program, **lanes).lower(*env_args).compile(),
    )
    env_shape, key_shape = placed(jax.eval_shape(env_all, *env_args))
    scalar = jax.ShapeDtypeStruct((), jnp.int32)
    # a traced horizon: (T, the agent's horizon inputs), T shared, the inputs per config
    horizon_shape = jax.ShapeDtypeStruct((), jnp.result_type(int))
    hz_shape = (horizon_shape, jax.tree.map(lambda x: _with_lead(x, lead), layout.horizon_inputs))
    agent_args = (h_shape, env_shape, keys, *((hz_shape,) if traced else ()))
    n_agent_args = len(agent_args)
    agent_all = over_configs(
        agent_init_one, (None, 0, 0, None)[:n_agent_args], (0, 0, None, (None, 0))[:n_agent_args]
    )
    agent_program = per_device(agent_all, (REP, LANE, SEED, REP)[:n_agent_args])
    t = time.perf_counter()
    agent_init = jax.jit(agent_program, **lanes).lower(*agent_args).compile()
    seconds["init_agent"] = time.perf_counter() - t
    state_shape = placed(jax.eval_shape(agent_all, *agent_args))

    def init(h, run_keys, hz=None):
        env_state, step_keys = env_init(h[0], h[2], run_keys)
        hz_args = (hz,) if traced else ()
        return agent_init(h, env_state, run_keys, *hz_args), step_keys

    def inputs_shape(per_seed: bool):
        lead_ = (n_seeds, chunk) if per_seed else (chunk,)
        place = sharding if per_seed else None
        return {
            k: jax.ShapeDtypeStruct((*lead_, *v.shape), v.dtype, sharding=place)
            for k, v in probe.inputs.items()
            if (k in per_seed_inputs) == per_seed
        }

    def timed(name, make):
        t = time.perf_counter()
        out = make()
        seconds[name] = time.perf_counter() - t
        return out

    n_chunk_args = 9 if traced else 8  # a traced horizon: the limit, last
    chunk_all = over_configs(
        chunk_one,
        (None, 0, 0, None, None, None, None, 0, None)[:n_chunk_args],
        (0, 0, 0, None, None, None, None, None, None)[:n_chunk_args],
    )
    chunk_program = per_device(
        chunk_all, (REP, LANE, LANE, REP, REP, REP, REP, SEED, REP)[:n_chunk_args]
    )
    chunk_args = (
        h_shape,
        state_shape,
        key_shape,
        scalar,
        jax.ShapeDtypeStruct((chunk,), jnp.int32),
        scalar,
        inputs_shape(False),
        inputs_shape(True),
        horizon_shape,
    )[:n_chunk_args]
    chunk_fn = timed(
        "chunk",
        lambda: jax.jit(chunk_program, donate_argnums=1, **lanes).lower(*chunk_args).compile(),
    )
    final_all = over_configs(final_one, (None, 0), (0, 0))
    final_program = per_device(final_all, (REP, LANE))
    final_fn = timed(
        "final", lambda: jax.jit(final_program, **lanes).lower(h_shape, state_shape).compile()
    )
    compile_seconds = time.perf_counter() - t0
    prog = _Program(init, chunk_fn, final_fn, multi_round, names, compile_seconds)
    prog.traced_horizon = traced
    prog.program_seconds = {k: round(v, 3) for k, v in seconds.items()}
    prog.seed_sharding = sharding
    return prog


SEEDS, CONFIGS = "seeds", "configs"  # the vmapped axes of the engine's programs
SEED_DEVICES = "seed_devices"  # the mesh axis that splits the seeds over devices


def _per_device(f: Callable, sharding, in_specs: tuple, out_specs) -> Callable:
    """`f` (vmapped over the seeds) run by every device of the seed `sharding` on its own seeds,
    as a program of its own (``jax.shard_map``; `f` itself where there is no sharding).

    Plain sharding (GSPMD) partitions one program over the whole seed axis, so every reduction
    over the seeds inside a step (a multi-round chunk's "any lane active", `_until_idle`; a batched
    cond's "any lane", `experiments.batched_cond`) becomes a cross-device all-reduce per step.
    Here the vmapped axis is a device's own seeds: those reductions are local, no collective is
    left in the programs, and each device stops a chunk when its own lanes all idle.
    Results are the same lane by lane: a step a lane idles in changes nothing of it, and a branch
    taken for some lanes keeps its results only in the lanes that asked (tests/test_launchers.py
    checks them bit for bit against one device). Every output of the programs is per lane
    (`out_specs`: split on the seed axis); nothing reduces over all seeds in a program."""
    if sharding is None:
        return f
    return jax.shard_map(
        f, mesh=sharding.mesh, in_specs=in_specs, out_specs=out_specs, check_vma=False
    )


def _segments(step, emit, state, xs, slot_of_step, n_active, slots: int):
    """A one-round chunk as `slots` segments that end at its grid steps, then the rest.

    Each segment is a loop over its steps with nothing but `step` in the body, and the values
    are recorded between segments. Why not record inside one scan: on XLA:CPU a write in the
    scan body (even one skipped by a cond) is an independent branch of the body's kernel graph,
    which the runtime hands to its thread pool every step; that doubled to tripled the per-step
    cost of a cheap vmapped step (bench/engine_floor_results.md). The bounds are the same for
    every seed (unbatched), so the loops stay loops under ``vmap``. Step i of the chunk reads
    row i of `xs`, as a scan would: the same values.
    """
    steps = jnp.arange(1, slot_of_step.shape[0] + 1, dtype=jnp.int32)
    ends = jnp.zeros((slots,), jnp.int32).at[slot_of_step].set(steps, mode="drop")
    ends = jax.lax.cummax(ends)  # unused slots: empty segments at the last grid step
    ends = jnp.append(ends, n_active)  # the rest of the chunk: one more segment

    def segment(carry, end):  # one loop in the program: the step is traced and compiled once
        core, start = carry
        core = jax.lax.fori_loop(
            start, end, lambda i, c: step(c, jax.tree.map(lambda x: x[i], xs)), core
        )
        return (core, end), emit(core)

    (state, _), rec = jax.lax.scan(segment, (state, jnp.int32(0)), ends)
    return state, jax.tree.map(lambda r: r[:slots], rec)


def _scan_recording(
    step, emit, state, xs, slot_of_step, n_active, layout: _Layout, branch: bool = True
):
    """A one-round chunk as one scan whose grid steps write their slot (an accelerator's loop,
    or `SCAN_UNROLL` > 1; see `_segments` for the CPU). With a shorter last chunk the steps from
    `n_active` on are skipped by a branch (`branch`) or computed and discarded by a select (an
    accelerator's: no per-step predicate read by the host; the discarded steps read draws of
    rounds past the horizon and change nothing)."""
    slots = layout.slots

    def body(carry, x):
        core, rec = carry
        x, slot = x
        core = step(core, x)
        values = emit(core)
        return (core, {k: rec[k].at[slot].set(values[k], mode="drop") for k in rec}), None

    def masked_body(carry, x):  # a shorter last chunk: steps from n_active on are skipped
        i, x = x
        if branch:
            return jax.lax.cond(i < n_active, body, lambda c, _: (c, None), carry, x)
        new, _ = body(carry, x)
        return jax.tree.map(lambda a, b: jnp.where(i < n_active, a, b), new, carry), None

    # each metric's slots in its own dtype (an int32 count must not pass through float32)
    rec = jax.tree.map(lambda v: jnp.zeros((slots,), v.dtype), emit(state))
    body_, xs = (
        (masked_body, (jnp.arange(layout.chunk), (xs, slot_of_step)))
        if layout.tail
        else (body, (xs, slot_of_step))
    )
    (state, rec), _ = jax.lax.scan(body_, (state, rec), xs, unroll=min(SCAN_UNROLL, layout.chunk))
    return state, rec


def _until_idle(step, emit, state, xs, chunk: int, limit, configs: int):
    """A multi-round chunk: `step` while some lane of the batch is still active, at most `chunk`
    steps; emits (rounds, values) for every step of the chunk.

    A lane that has used the horizon (`limit` rounds) idles (`advance` keeps its states and
    adds zeros), so a step in which every lane idles changes nothing; but a fixed-budget agent
    spends its horizon in a few dozen steps of a chunk of at least one RNG block (100 steps:
    DP-BAI uses 5). The loop (``lax.while_loop``) stops at the first step in which no lane is
    active, and the steps after it emit the state it stopped in: what running them would emit.
    Whether any lane is active is a sum over the vmapped axes (``psum`` over the named axes),
    the same for every lane, so the loop's predicate is unbatched: a real loop bound, not a
    select. With the seeds split over devices (`_per_device`) the named axes are a device's own
    lanes: each device stops at its own lanes' last active step. Step i reads row i of `xs`,
    as a scan would.
    """
    axes = (SEEDS,) if configs == 1 else (SEEDS, CONFIGS)

    def live(core):
        return jax.lax.psum((core.rounds < limit).astype(jnp.int32), axes) > 0

    def record(out, i, core):
        rounds, values = out
        now = emit(core)
        return rounds.at[i].set(core.rounds), {k: v.at[i].set(now[k]) for k, v in values.items()}

    def more(carry):
        i, core, _ = carry
        return (i < chunk) & live(core)

    def one(carry):
        i, core, out = carry
        core = step(core, jax.tree.map(lambda x: x[i], xs))
        return i + 1, core, record(out, i, core)

    first = (state.rounds, emit(state))
    empty = jax.tree.map(lambda x: jnp.zeros((chunk, *jnp.shape(x)), jnp.result_type(x)), first)
    stop, state, out = jax.lax.while_loop(more, one, (jnp.int32(0), state, empty))
    after = jnp.arange(chunk) >= stop  # the idle steps: the state the loop stopped in
    rounds, values = jax.tree.map(
        lambda buf, last: jnp.where(after.reshape((chunk,) + (1,) * last.ndim), last, buf),
        out,
        (state.rounds, emit(state)),
    )
    return state, (rounds, values)


def cached_probe(env: Env, params, agent: Agent, horizon: int, inputs=None) -> Probe:
    """`experiments.rollout.probe`, cached in this process per (env, agent, params, horizon,
    inputs' shapes): the probe traces one step of env and agent (twice), which on a repeat of a
    run (another seed, the timed call of a benchmark) cost more than the run itself (DP-BAI,
    bench/dpbai.py: ~0.3-2.5 s). The key holds every value the probe may depend on (both
    objects' static keys and numbers, the params' values, the horizon), so a hit returns what
    the probe would compute; objects that cannot be keyed are probed every time. An agent with
    ``horizon_inputs`` (module doc) promises draws and shapes that do not depend on T: its
    probe is shared by every horizon, with this horizon's spec."""
    inputs = dict(inputs or {})
    any_t = _takes_horizon(agent)
    try:
        e, a = lift(env), lift(agent)
        key = (
            e.key,
            e.numbers,
            a.key,
            a.numbers,
            freeze(jax.tree.map(np.asarray, params)),
            None if any_t else int(horizon),
            tuple(sorted((k, v.shape, str(v.dtype)) for k, v in inputs.items())),
            bool(jax.config.jax_enable_x64),
        )
        hash(key)
    except TypeError:  # cannot be keyed: probe every time
        return probe(env, params, agent, horizon, inputs)
    with _PROBES_LOCK:
        hit = _PROBES.get(key)
        if hit is not None:
            _PROBES.move_to_end(key)
    if hit is None:
        global PROBE_TRACES
        hit = probe(env, params, agent, horizon, inputs)
        with _PROBES_LOCK:
            PROBE_TRACES += 1
            _PROBES[key] = hit
            while len(_PROBES) > PROGRAM_CACHE_SIZE:
                _PROBES.popitem(last=False)
    out = Probe(*(dict(x) if isinstance(x, dict) else x for x in hit))
    return out._replace(spec=env.spec(params, horizon)) if any_t else out


def _takes_horizon(agent: Agent) -> bool:
    """Whether `agent` takes the horizon as an input (``horizon_inputs``, module doc)."""
    return callable(getattr(agent, "horizon_inputs", None))


def _horizon_arguments(variants, probe_: Probe, horizon: int) -> tuple | None:
    """(T, the agents' horizon inputs: one config's, or stacked on a config axis), for
    variants whose agents take the horizon as an input in a multi-round run; None otherwise.
    The inputs are computed on the host from each config's concrete spec (T checked there)."""
    if not probe_.multi_round or not all(_takes_horizon(a) for _, _, a in variants):
        return None
    if "horizon" not in getattr(probe_.spec, "_fields", ()):  # a spec `_untimed` cannot edit
        return None
    per_config = []
    for env, params, agent in variants:
        spec = env.spec(params, horizon)
        per_config.append(jax.tree.map(jnp.asarray, agent.horizon_inputs(spec)))
    shapes = [_shape_key(jax.tree.map(_abstract, x)) for x in per_config]
    if any(s != shapes[0] for s in shapes):
        return None  # configs whose inputs differ in shape: the horizon stays a constant
    inputs = per_config[0]
    if len(variants) > 1:
        inputs = jax.tree.map(lambda *xs: jnp.stack(xs), *per_config)
    return jnp.asarray(horizon, jnp.result_type(int)), inputs


_PROBES: OrderedDict = OrderedDict()  # probes of this process, by `cached_probe`'s key
_PROBES_LOCK = threading.Lock()
PROBE_TRACES = 0  # probes traced by `cached_probe` in this process (the rest were hits)


def _env_init_key(parts: _Parts, params_shape, layout: _Layout, sharding) -> tuple:
    """What the env's init program depends on: the env's static key, the params (constants,
    or their structure and shapes), the lanes and the seed sharding."""
    leaves, treedef = jax.tree.flatten(params_shape)
    try:
        constants = () if parts.params is None else freeze(jax.tree.map(np.asarray, parts.params))
        hash((parts.env.key, constants))
    except TypeError:  # cannot be keyed: a key that matches nothing else
        return (object(),)
    return (
        parts.env.key,
        constants,
        treedef,
        tuple((x.shape, x.dtype, x.weak_type) for x in leaves),
        layout.seeds,
        layout.configs,
        _sharded_devices(sharding),
        bool(jax.config.jax_enable_x64),
    )


_ENV_INITS: OrderedDict = OrderedDict()  # compiled env init programs, by `_env_init_key`
_ENV_INITS_LOCK = threading.Lock()


def _shared_env_init(key: tuple, compile_: Callable) -> tuple[Callable, float]:
    """The env's init program for `key`, compiled once per process (the agents of a run share
    it: it was about 1.4 s of XLA compile per agent for the streaming env) and the seconds
    spent compiling it here (0 where it was found). Compiled under a lock, so agents compiled
    side by side in threads (`simulate_agents`) wait for one compile instead of repeating it."""
    with _ENV_INITS_LOCK:
        hit = _ENV_INITS.get(key)
        if hit is not None:
            _ENV_INITS.move_to_end(key)
            return hit, 0.0
        t = time.perf_counter()
        program = compile_()
        _ENV_INITS[key] = program
        while len(_ENV_INITS) > PROGRAM_CACHE_SIZE:
            _ENV_INITS.popitem(last=False)
        return program, time.perf_counter() - t


def _with_lead(x: jax.ShapeDtypeStruct, lead: tuple) -> jax.ShapeDtypeStruct:
    return jax.ShapeDtypeStruct((*lead, *x.shape), x.dtype, weak_type=x.weak_type)


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


def _declared_chunk(variants, spec) -> int | None:
    """Whole RNG blocks covering the most steps any variant's agent declares (`max_steps`) for
    a multi-round run; None where one declares nothing."""
    declared = [getattr(agent, "max_steps", lambda _: None)(spec) for _, _, agent in variants]
    if not declared or any(d is None for d in declared):
        return None
    most = max(1, *(int(d) for d in declared))
    return -(-most // RNG_BLOCK) * RNG_BLOCK


@dataclass
class CompiledSimulation:
    """A simulation compiled for (env, params, agent, horizon, seeds, grid): run it with `run`.

    `steps_per_round` is 1, or an episodic env's episode length H (a "round" is an episode:
    `horizon` episodes are horizon H steps, recorded at the ends of the grid's episodes).
    `inputs` are the host-side exogenous inputs (raw and prepared), streamed per chunk.
    A sweep's group of configs compiled as one program (`compile_sweep`) has its
    (env, params, agent) `variants` (the first is `env`, `params`, `agent`); `run_configs` runs
    them side by side and returns one result per config.
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
    variants: list = field(default_factory=list)
    horizon_arguments: Any = None  # (T, the agents' horizon inputs) of a traced horizon

    def run(
        self,
        seed: int = 0,
        progress: bool | Callable[[int], None] = False,
        desc: str = "",
    ) -> SimResult:
        if len(self.variants) > 1:
            raise ValueError("a sweep's program: use run_configs (one result per config)")
        return _run(self, seed, progress, desc)[0]

    def run_configs(
        self,
        seed: int = 0,
        progress: bool | Callable[[int], None] = False,
        desc: str = "",
    ) -> list[SimResult]:
        """One result per config of `variants`, each identical to its own `simulate`."""
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
    compiled = _compile_group([(env, params, agent)], horizon, seeds, grid, chunk_size)
    assert compiled is not None  # one config always compiles (or raises)
    return compiled


def _compile_group(
    variants: list[tuple[Env, Any, Agent]],
    horizon: int,
    seeds: int,
    grid: np.ndarray | Sequence[int] | None,
    chunk_size: int | None,
    probe_: Probe | None = None,
) -> CompiledSimulation | None:
    """`compile_simulation` for configs that share their static facts (None: they cannot share
    one program; see `compile_sweep`)."""
    env, params, agent = variants[0]
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
    if probe_ is None:
        probe_ = cached_probe(env, params, agent, horizon, step_inputs(inputs))
    if probe_.multi_round and (inputs or per_round > 1):
        raise ValueError("env: multi-round steps cannot be combined with inputs or episodes")
    lanes = seeds * len(variants)
    per_step = 8 + probe_.draws_per_step + _input_elements(probe_.inputs, inputs)
    chunk = _choose_chunk(steps, lanes, per_step, chunk_size, not probe_.multi_round)
    if probe_.multi_round and chunk_size is None:
        chunk = min(chunk, _declared_chunk(variants, probe_.spec) or chunk)
    # one-round runs: a shorter last chunk (masked); multi-round runs idle instead
    tail = 0 if probe_.multi_round else steps % chunk
    # Most grid points in one chunk: chunk j holds steps (j chunk, (j + 1) chunk].
    slots = int(np.unique((grid * per_round - 1) // chunk, return_counts=True)[1].max())
    per_seed = tuple(sorted(k for k, x in inputs.items() if x.per_seed))
    hz = _horizon_arguments(variants, probe_, horizon)
    hz_shape = ()
    if hz is not None:  # one config's input shapes
        hz_shape = jax.tree.map(lambda x: _abstract(x[0] if len(variants) > 1 else x), hz[1])
    layout = _Layout(
        steps, seeds, chunk, tail, slots, probe_, per_seed, len(variants), hz is not None, hz_shape
    )
    prog = _build(variants, layout)
    if prog is None:
        return None
    return CompiledSimulation(
        env,
        params,
        agent,
        horizon,
        seeds,
        grid,
        chunk,
        tail,
        slots,
        prog,
        per_round,
        inputs,
        list(variants),
        hz,
    )


def compile_sweep(
    variants: Sequence[tuple[Env, Any, Agent]],
    horizon: int,
    seeds: int,
    grid: np.ndarray | Sequence[int] | None = None,
    chunk_size: int | None = None,
) -> list[tuple[list[int], CompiledSimulation]]:
    """Compile the (env, params, agent) configs of a sweep into as few programs as they allow.

    Configs that differ only in numbers the programs take as arguments (float hyperparameters,
    the params pytree's values) and agree on everything static (classes, integer fields,
    shapes, the env's spec, the draws) run as one program, vmapped over a config axis outside the
    seed axis. Configs of an env with exogenous inputs, or that differ in something static, get
    programs of their own (still shared through the program cache where their static keys
    agree). Returns (indices of `variants`, compiled program) per group.
    """
    groups: dict[Any, list[int]] = {}
    probes = {}
    for i, (env, params, agent) in enumerate(variants):
        key: Any = ("alone", i)
        if not _has_inputs(env):
            probes[i] = cached_probe(env, params, agent, horizon)
            with contextlib.suppress(TypeError):  # unhashable static facts: a group alone
                key = _probe_key(probes[i])
        groups.setdefault(key, []).append(i)
    compiled = []
    for indices in groups.values():
        members = [tuple(variants[i]) for i in indices]
        c = _compile_group(members, horizon, seeds, grid, chunk_size, probes.get(indices[0]))
        if c is not None:
            compiled.append((indices, c))
            continue
        for i in indices:  # configs that differ in a constant: one program each
            one = _compile_group([tuple(variants[i])], horizon, seeds, grid, chunk_size)
            compiled.append(([i], one))
    return sorted(compiled, key=lambda g: g[0][0])


def _has_inputs(env: Env) -> bool:
    """Whether `env` may declare exogenous inputs (it overrides `EnvBase.exogenous`)."""
    from experiments.protocol import EnvBase

    method = getattr(type(env), "exogenous", None)
    return method is not None and method is not EnvBase.exogenous


def _probe_key(p: Probe) -> tuple:
    """The static facts of one config's step: spec, draws, metric shapes (hashable)."""
    return (
        freeze(p.spec),
        tuple(sorted(p.env_draws.items())),
        tuple(sorted(p.agent_draws.items())),
        tuple(sorted((k, v.shape, str(v.dtype)) for k, v in p.metrics.items())),
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
    sweep = {name: [(env, params, a)] for name, a in agents.items()}
    results = simulate_sweep(sweep, horizon, seeds, seed, grid, chunk_size, progress, workers)
    return {name: r[0] for name, r in results.items()}


def simulate_sweep(
    variants: dict[str, Sequence[tuple[Env, Any, Agent]]],
    horizon: int,
    seeds: int,
    seed: int = 0,
    grid: np.ndarray | Sequence[int] | None = None,
    chunk_size: int | None = None,
    progress: bool = False,
    workers: int | None = None,
) -> dict[str, list[SimResult]]:
    """Run every (env, params, agent) config of a sweep, per agent name, in as few programs as
    the configs allow (`compile_sweep`): configs that differ only in float hyperparameters or
    the env's params values are vmapped side by side in one program.

    Result i of a name is identical to ``simulate(*variants[name][i], horizon, seeds, seed, ...)``
    (same draws per seed; the same arithmetic, vectorised). Programs are compiled concurrently
    in `workers` threads, then run one after another. In a group of C configs the first result
    carries the compile seconds and every result carries 1/C of the group's run seconds
    (``info["sweep"]`` has the group's totals).
    """
    from concurrent.futures import ThreadPoolExecutor

    distinct = {name: _distinct(vs) for name, vs in variants.items()}  # identical configs: once

    def build(name):
        unique, _ = distinct[name]
        return compile_sweep(unique, horizon, seeds, grid, chunk_size)

    names = list(variants)
    workers = workers or min(len(names), os.cpu_count() or 1)
    if workers <= 1 or len(names) <= 1:
        compiled = {name: build(name) for name in names}
    else:
        with ThreadPoolExecutor(workers) as pool:
            futures = {name: pool.submit(build, name) for name in names}
            compiled = {name: f.result() for name, f in futures.items()}
    out = {}
    for name in names:
        unique, which = distinct[name]
        results: list[SimResult | None] = [None] * len(unique)
        for indices, c in compiled[name]:
            for i, r in zip(indices, c.run_configs(seed, progress, desc=name), strict=True):
                results[i] = r
        out[name] = [results[u] for u in which]
    return out


def _distinct(variants: Sequence[tuple[Env, Any, Agent]]) -> tuple[list, list[int]]:
    """The distinct configs of `variants` and, per variant, the index of its distinct config
    (configs compare by class, static fields, numbers and params values)."""
    unique, keys, which = [], {}, []
    for v in variants:
        env, params, agent = v
        try:
            lifted = [lift(env), lift(agent)]
            key = (*((x.key, x.numbers) for x in lifted), freeze(jax.tree.map(np.asarray, params)))
            hash(key)
        except TypeError:  # cannot be compared: a config of its own
            key = object()
        if key not in keys:
            keys[key] = len(unique)
            unique.append(tuple(v))
        which.append(keys[key])
    return unique, which


def _arguments(c: CompiledSimulation) -> tuple:
    """The programs' argument h: env numbers, agent numbers (weakly typed, like Python floats)
    and the params pytree, each stacked on a leading config axis for a sweep's group."""
    prog = c.program

    def weak(numbers: tuple) -> tuple:
        return tuple(jnp.asarray(float(x)) for x in numbers)

    def params_of(i: int):
        return c.variants[i][1] if prog.params_as_argument else ()

    if len(prog.numbers) == 1:
        env_numbers, agent_numbers = prog.numbers[0]
        return weak(env_numbers), weak(agent_numbers), params_of(0)

    def stacked(j: int) -> tuple:
        columns = zip(*(weak(n[j]) for n in prog.numbers), strict=True)
        return tuple(jnp.stack(col) for col in columns)

    params = jax.tree.map(lambda *xs: jnp.stack(xs), *map(params_of, range(len(prog.numbers))))
    return stacked(0), stacked(1), params


def _chunk_inputs(inputs: dict[str, Exogenous], first: int, n: int) -> tuple[dict, dict]:
    """Rows [first, first + n) of every input, on the device, padded with their last row to n
    rows when fewer are left (a shorter last chunk): (shared, per seed)."""
    shared, mine = {}, {}
    for name, x in inputs.items():
        rows = np.asarray(x.data[:, first : first + n] if x.per_seed else x.data[first : first + n])
        axis = 1 if x.per_seed else 0
        short = n - rows.shape[axis]
        if short:
            last = np.take(rows, [-1], axis=axis)
            rows = np.concatenate([rows, np.repeat(last, short, axis=axis)], axis=axis)
        value = jnp.asarray(rows, jax.dtypes.canonicalize_dtype(rows.dtype))
        (mine if x.per_seed else shared)[name] = value
    return shared, mine


def _run(c: CompiledSimulation, seed: int, progress, desc: str) -> list[SimResult]:
    """Execute a compiled simulation: the chunk loop, recording and final metrics (per config)."""
    prog, grid, seeds = c.program, c.grid, c.seeds
    chunk, slots, per_round = c.chunk, c.slots, c.steps_per_round
    configs = len(prog.numbers)
    lanes = configs * seeds  # host side: config-major rows (config i: rows i seeds ...)

    def host(x) -> np.ndarray:  # a device value with leading (configs, seeds) or (seeds,) axes
        x = np.asarray(x)
        return x.reshape(lanes, *x.shape[2:]) if configs > 1 else x

    horizon = c.horizon * per_round  # in steps
    grid_steps = grid * per_round
    bar = _progress_bar(progress, c.horizon, desc, "episode" if per_round > 1 else "round")
    t_start = time.perf_counter()
    run_keys = jax.random.split(jax.random.key(seed), seeds)
    if prog.seed_sharding is not None:
        run_keys = jax.device_put(run_keys, prog.seed_sharding)
    h = _arguments(c)
    hz = (c.horizon_arguments,) if prog.traced_horizon else ()
    state, step_keys = prog.init(h, run_keys, *hz)
    curves = {k: np.full((lanes, grid.size), np.nan) for k in prog.metric_names}
    prev_rounds = np.zeros(lanes, np.int64)
    prev_values = {k: np.zeros(lanes) for k in prog.metric_names}
    block, done, scanned = 0, 0, 0
    lane_steps = np.zeros(lanes, np.int64)  # multi-round: the steps that advanced each lane
    stalled = 0  # multi-round: steps since the slowest lane last completed a round
    while True:
        if not prog.multi_round and done >= horizon:
            break
        n = chunk if prog.multi_round else min(chunk, horizon - done)
        sel = np.nonzero((grid_steps > done) & (grid_steps <= done + n))[0]
        slot_of_step = np.full(chunk, slots, np.int32)
        if not prog.multi_round:
            slot_of_step[grid_steps[sel] - done - 1] = np.arange(sel.size, dtype=np.int32)
        shared, mine = _chunk_inputs(c.inputs, done, chunk)
        if prog.seed_sharding is not None and mine:
            mine = jax.device_put(mine, prog.seed_sharding)
        args = (jnp.asarray(block, jnp.int32), slot_of_step, jnp.asarray(n, jnp.int32))
        limit = (c.horizon_arguments[0],) if prog.traced_horizon else ()
        state, out = prog.chunk(h, state, step_keys, *args, shared, mine, *limit)
        block += chunk // RNG_BLOCK
        scanned += n
        interrupt.check()  # a Ctrl-C swallowed while the chunk ran still stops the run here
        _check_illegal(host(state.illegal), seeds)
        if prog.multi_round:
            rounds = host(out[0]).astype(np.int64)
            before = np.concatenate([prev_rounds[:, None], rounds[:, :-1]], axis=1)
            lane_steps += (rounds > before).sum(axis=1)
            values = {k: host(v).astype(np.float64) for k, v in out[1].items()}
            _interpolate(grid, curves, rounds, values, prev_rounds, prev_values)
            prev_rounds = rounds[:, -1]
            prev_values = {k: v[:, -1] for k, v in values.items()}
            reached = int(prev_rounds.min())
            if bar is not None:
                bar(min(reached, horizon) - done)
            # zero-round steps are legal (a streaming agent's reads), so only a long run of
            # chunks without progress is an error: a bound in steps, not in chunks, so that
            # whether a run passes does not depend on the chunk size
            stalled = stalled + chunk if reached <= done and reached < horizon else 0
            if stalled >= max(MAX_STALLED_STEPS, chunk) and scanned > chunk:
                stuck = int(np.argmin(prev_rounds))
                where = _lane_name(stuck, seeds, configs)
                raise IllegalActionError(
                    f"{where} made no progress (no round completed) in {stalled} steps"
                )
            done = reached
            if reached >= horizon:
                break
        else:
            for k, v in out.items() if sel.size else ():
                curves[k][:, sel] = host(_filled_slots(v, sel.size)).astype(np.float64)
            if bar is not None:
                bar((done + n) // per_round - done // per_round)
            done += n
    final_metrics = prog.final(h, state)
    jax.block_until_ready(final_metrics)
    run_seconds = time.perf_counter() - t_start
    if bar is not None:
        bar(None)

    final = {k: host(sum_host_value(state.sums[k])) for k in prog.metric_names}
    final.update({k: host(v).astype(np.float64) for k, v in final_metrics.items()})
    if grid[-1] == c.horizon:
        for k in prog.metric_names:
            curves[k][:, -1] = final[k]
    info = {
        "chunk_size": chunk,
        "chunk_loops": chunk_loops(),
        "lane_block": lane_block(),  # lanes per iteration of a cond_lanes branch
        "scan_unroll": SCAN_UNROLL,
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
        "prng": PRNG_NAMES[GENERATOR],
        "jax_version": jax.__version__,
        "backend": jax.default_backend(),
        "seed_devices": _sharded_devices(prog.seed_sharding),
    }
    results = []
    for i in range(configs):
        rows = slice(i * seeds, (i + 1) * seeds)
        info_i = dict(info)
        if configs > 1:
            info_i["sweep"] = {
                "configs_in_program": configs,
                "index_in_program": i,
                "group_run_seconds": run_seconds,
                "group_compile_seconds": prog.compile_seconds,
            }
            if i:
                info_i["program_cache"] = "shared in sweep"
        results.append(
            SimResult(
                rounds=grid,
                curves={k: v[rows] for k, v in curves.items()},
                final={k: v[rows] for k, v in final.items()},
                compile_seconds=prog.compile_seconds if i == 0 else 0.0,
                run_seconds=run_seconds / configs,
                steps=int(lane_steps[rows].max()) if prog.multi_round else scanned,
                seeds=seeds,
                horizon=c.horizon,
                info=info_i,
            )
        )
    return results


MAX_STALLED_STEPS = 100_000  # multi-round steps without a completed round before an error


def _lane_name(lane: int, seeds: int, configs: int) -> str:
    seed = f"seed {lane % seeds}"
    return seed if configs == 1 else f"config {lane // seeds} of the sweep, {seed}"


def _interpolate(grid, curves, rounds, values, prev_rounds, prev_values):
    """Multi-round chunk: grid points between step ends are linearly interpolated within a step.

    Per lane s the knots are ``xs = [prev_rounds[s], rounds[s, 0], ...]`` (non-decreasing: idle
    steps and zero-round steps repeat a round). A grid point g in ``(prev_rounds[s], xs[-1]]``
    equal to a knot takes the value of the first step that reached that round (the metric when
    the round completed); one strictly between two distinct rounds r < r' is interpolated from
    the *last* step at r (every zero-round step there done: it happened before round r + 1) to
    the first step at r', with ``np.interp``'s formula. The chunk boundary's left end is that
    last step too (``prev_values``), so the curve does not depend on where chunks end.
    All lanes at once: one `searchsorted` of every knot into the grid finds each step's grid
    points (O(lanes x steps + points); 10^4 lanes are common). Nothing to do, and no index
    arithmetic, when no curve metric is recorded (a final-answer env: `values` is empty)."""
    if not values:
        return
    lo, hi = int(prev_rounds.min()), int(rounds[:, -1].max())
    sel = np.nonzero((grid > lo) & (grid <= hi))[0]
    if sel.size == 0:
        return
    g = grid[sel]
    xs = np.concatenate([prev_rounds[:, None], rounds], axis=1)
    pos = np.searchsorted(g, xs, side="right")  # grid points <= each knot
    count = pos[:, 1:] - pos[:, :-1]  # grid points in (xs[j - 1], xs[j]], for step j >= 1
    lane, step = np.nonzero(count)  # the steps (segments) that hold grid points
    if lane.size == 0:
        return
    # a segment with grid points rises: xs[step] is the last step at its round, xs[step + 1]
    # the first at the next
    left, right = step, step + 1
    xl, xr = xs[lane, left].astype(np.float64), xs[lane, right].astype(np.float64)
    n = count[lane, step]
    seg = np.repeat(np.arange(lane.size), n)  # each (lane, grid point) pair's segment
    at = pos[lane, step][seg] + np.arange(seg.size) - (n.cumsum() - n)[seg]  # its grid index
    x = g[at].astype(np.float64)
    at_knot = x == xr[seg]
    rows, cols = lane[seg], sel[at]
    for k, v in values.items():
        ys = np.concatenate([prev_values[k][:, None], v], axis=1)
        yl, yr = ys[lane, left], ys[lane, right]
        with np.errstate(all="ignore"):  # a NaN value; exact knots (x = xr) take yr below
            slope = (yr - yl) / (xr - xl)
            y = slope[seg] * (x - xl[seg]) + yl[seg]
            bad = np.nonzero(np.isnan(y))[0]
            if bad.size:  # np.interp's fallbacks: from the right knot, then a flat segment
                b = seg[bad]
                y[bad] = slope[b] * (x[bad] - xr[b]) + yr[b]
                y[bad] = np.where(np.isnan(y[bad]) & (yl[b] == yr[b]), yl[b], y[bad])
        curves[k][rows, cols] = np.where(at_knot, yr[seg], y)


def _filled_slots(records: jax.Array, filled: int) -> np.ndarray:
    """The first `filled` slots of a chunk's records (..., slots), to be read on the host.

    On an accelerator they are sliced on the device before the copy: the records hold every
    slot the busiest chunk needs (a log grid puts ~100 points in the first chunk), so copying
    them whole cost 10^5 lanes x 100 slots per metric in every chunk, ~40% of UCB1's run time
    on a GPU (bench/gpu_results.md). On the CPU the read is no copy over a bus, and a slice is
    one more dispatch per chunk (2.6x the run time of 200 seeds in chunks of 100 steps)."""
    on_cpu = all(d.platform == "cpu" for d in records.devices())
    return np.asarray(records)[..., :filled] if on_cpu else np.asarray(records[..., :filled])


def _check_illegal(illegal: np.ndarray, seeds: int) -> None:
    """Raise when a lane (config-major: config i holds lanes i seeds ...) took an illegal action."""
    if np.any(illegal > 0):
        lane = int(np.argmax(illegal > 0))
        raise IllegalActionError(
            f"{_lane_name(lane, seeds, illegal.size // seeds)}: illegal action in step"
            f" {int(illegal[lane])} (the environment forbids it)"
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
