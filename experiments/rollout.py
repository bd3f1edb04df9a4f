"""One rollout of the online protocol: the step that `simulate` and every other loop share.

`rollout(env, params, agent, key, steps)` runs one seed for `steps` protocol steps and returns the
final states, the exact sums of the per-step metrics and, when asked, per-step outputs. It is a
pure function: `jit` it, `vmap` it over keys (and per-seed inputs). The engine
(`experiments.simulate`) is built from the same pieces -- `start`, `draw_steps` and `advance` --
so a rollout with seed s's run key reproduces the engine's seed s exactly (same draws, same sums).

Randomness (part of the definition of a seed). A run key is split into an initial key and a step
key; the initial key into the environment's and the agent's ``init`` keys. The declared draws of
steps ``[100 b, 100 b + 100)`` (block b) come from ``fold_in(step_key, b)``, then ``fold_in(., 0)``
for the environment and ``fold_in(., 1)`` for the agent, then ``fold_in(., tag(name))`` for each
draw (threefry, non-partitionable: see `draw`), where ``tag(name)`` is the CRC-32 of the draw's
name: a draw's stream depends on its own name only, so declaring another draw leaves it
unchanged, the results do not depend on how steps are cut into chunks, and every agent meets the
same environment draws (common random numbers).
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from experiments.accumulate import KahanSum, kahan_add, kahan_value
from experiments.protocol import KEY, NORMAL, UNIFORM, Agent, Draw, Env, Exogenous

RNG_BLOCK = 100  # steps per block of pre-drawn randomness (part of the definition of a seed)
GENERATORS = ("threefry", "threefry-partitionable")  # layouts of the uniform and normal draws
GENERATOR = os.environ.get("REGRETLAB_RNG", GENERATORS[0])  # read once, at import
if GENERATOR not in GENERATORS:
    raise ValueError(f"REGRETLAB_RNG: must be one of {', '.join(GENERATORS)} (got {GENERATOR!r})")
RESERVED = ("rounds", "illegal")  # metric names the engine interprets (experiments.protocol)


# --------------------------------------------------------------------------- randomness
def draw_tag(name: str) -> int:
    """The stream tag of a draw: CRC-32 of its name (31 bits, a valid `fold_in` datum)."""
    return zlib.crc32(name.encode()) & 0x7FFFFFFF


def draw(key: jax.Array, d: Draw, n: int) -> jax.Array:
    """`n` draws of kind `d` stacked on a leading axis: shape (n, *d.shape).

    Uniform and normal draws are `jax.random`'s threefry in its non-partitionable layout
    (`GENERATOR`, the default): each Threefry-2x32 hash gives two 32-bit words, where the
    partitionable layout (JAX's default, needed only to shard one draw across devices) spends a
    hash on every word: about 1.6x cheaper on the CPU. ``REGRETLAB_RNG=threefry-partitionable``
    selects JAX's default. Keys are split as always.
    """
    shape = (n, *d.shape)
    with jax.threefry_partitionable(GENERATOR == "threefry-partitionable"):
        if d.kind == UNIFORM:
            return jax.random.uniform(key, shape)
        if d.kind == NORMAL:
            return jax.random.normal(key, shape)
    if d.kind == KEY:
        return jax.random.split(key, n * int(np.prod(d.shape, dtype=np.int64))).reshape(shape)
    raise ValueError(f"unknown draw kind {d.kind!r}; allowed: uniform, normal, key")


def draw_once(key: jax.Array, spec: Mapping[str, Draw]) -> dict[str, jax.Array]:
    """One draw of each declared input, each from its own name-tagged stream of `key`."""
    return {
        name: draw(jax.random.fold_in(key, draw_tag(name)), d, 1)[0] for name, d in spec.items()
    }


def _draw_block(key: jax.Array, spec: Mapping[str, Draw]) -> dict[str, jax.Array]:
    return {
        name: draw(jax.random.fold_in(key, draw_tag(name)), d, RNG_BLOCK)
        for name, d in spec.items()
    }


def draw_steps(
    step_key: jax.Array,
    first_block: jax.Array | int,
    n_steps: int,
    env_spec: Mapping[str, Draw],
    agent_spec: Mapping[str, Draw],
) -> tuple[dict, dict]:
    """The draws of `n_steps` steps from block `first_block` on, each shaped (n_steps, ...)."""
    if not env_spec and not agent_spec:
        return {}, {}
    n_blocks = -(-n_steps // RNG_BLOCK)

    def one_block(b):
        k = jax.random.fold_in(step_key, b)
        return (
            _draw_block(jax.random.fold_in(k, 0), env_spec),
            _draw_block(jax.random.fold_in(k, 1), agent_spec),
        )

    blocks = jax.vmap(one_block)(first_block + jnp.arange(n_blocks))
    return jax.tree.map(lambda x: x.reshape(-1, *x.shape[2:])[:n_steps], blocks)


# --------------------------------------------------------------------------- probing
class Probe(NamedTuple):
    """What one abstract step reveals: the draws of env and agent and the metrics' shapes."""

    spec: Any  # env.spec(params, horizon), given to the agent's init
    agent_draws: dict[str, Draw]
    env_draws: dict[str, Draw]
    metrics: dict[str, jax.ShapeDtypeStruct]  # per-step metrics, reserved names included
    inputs: dict[str, jax.ShapeDtypeStruct]  # one step's exogenous inputs

    @property
    def multi_round(self) -> bool:
        return "rounds" in self.metrics

    @property
    def tracked(self) -> list[str]:
        """The metric names summed by the engine (all but the reserved ones), sorted."""
        return sorted(k for k in self.metrics if k not in RESERVED)

    @property
    def draws_per_step(self) -> int:
        """Random numbers drawn per step (both components), for the chunk memory budget."""
        ds = [*self.agent_draws.values(), *self.env_draws.values()]
        return sum(int(np.prod(d.shape, dtype=np.int64)) * (2 if d.kind == KEY else 1) for d in ds)


def step_inputs(exogenous: Mapping[str, Exogenous]) -> dict[str, jax.ShapeDtypeStruct]:
    """The abstract inputs of one step (dtype as the device will see it) from host inputs."""
    out = {}
    for name, x in exogenous.items():
        # slices, which every storage supports (an `experiments.inputs.NpyRows` reads only those)
        row = x.data[:, 0:1][0, 0] if x.per_seed else x.data[0:1][0]
        dtype = jax.dtypes.canonicalize_dtype(np.asarray(row).dtype)
        out[name] = jax.ShapeDtypeStruct(np.shape(row), dtype)
    return out


def probe(
    env: Env,
    params,
    agent: Agent,
    horizon: int,
    inputs: Mapping[str, jax.ShapeDtypeStruct] | None = None,
) -> Probe:
    """Trace one step abstractly (nothing is compiled or run)."""
    spec = env.spec(params, horizon)
    agent_draws = dict(agent.randomness(spec))
    inputs = dict(inputs or {})
    key = jax.random.key(0)

    def first_step(env_draws):
        e_state, a_state, _ = start(env, params, agent, spec, key)
        xs = {k: jnp.zeros(v.shape, v.dtype) for k, v in inputs.items()}
        rng_agent = {k: draw(key, d, 1)[0] for k, d in agent_draws.items()}
        if env_draws is None:  # first pass: only the action, to ask the env for its draws
            e_state = _feed(env, e_state, xs, params)
            return agent.act(rng_agent, a_state, env.observe(e_state, params))
        rng_env = {k: draw(key, d, 1)[0] for k, d in env_draws.items()}
        return step(env, params, agent, e_state, a_state, rng_env, rng_agent, xs)[0].metrics

    action = jax.eval_shape(lambda: first_step(None))
    env_draws = dict(env.randomness(params, action))
    clash = set(env_draws) & set(inputs)
    if clash:
        raise ValueError(f"env: names used both as draws and as exogenous inputs: {sorted(clash)}")
    metrics = jax.eval_shape(lambda: first_step(env_draws))
    return Probe(spec, agent_draws, env_draws, dict(metrics), inputs)


# --------------------------------------------------------------------------- one step
class Transition(NamedTuple):
    """What one protocol step produced (before the engine's bookkeeping)."""

    obs: Any
    action: Any
    feedback: Any
    metrics: dict[str, jax.Array]


def init_keys(run_key: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """The env's and the agent's ``init`` keys and the step key of one run (see module doc)."""
    init_key, step_key = jax.random.split(run_key)
    k_env, k_agent = jax.random.split(init_key)
    return k_env, k_agent, step_key


def start(env: Env, params, agent: Agent, spec, run_key: jax.Array):
    """Initial env and agent states of one run, and the run's step key (see module doc)."""
    k_env, k_agent, step_key = init_keys(run_key)
    return env.init(k_env, params), agent.init(k_agent, spec), step_key


def _feed(env: Env, state, inputs: Mapping[str, jax.Array], params):
    return env.feed(state, inputs, params) if inputs else state


def step(env: Env, params, agent: Agent, e_state, a_state, rng_env, rng_agent, inputs=None):
    """One step of the protocol: feed inputs, observe, act, step the env, update the agent."""
    e_state = _feed(env, e_state, inputs or {}, params)
    obs = env.observe(e_state, params)
    action = agent.act(rng_agent, a_state, obs)
    e_next, feedback, metrics = env.step(rng_env, e_state, action, params)
    agent_metrics = getattr(env, "agent_metrics", None)  # optional (EnvBase: none)
    if agent_metrics is not None:
        metrics = {**metrics, **agent_metrics(params, agent, a_state, feedback)}
    a_next = agent.update(a_state, obs, action, feedback)
    return Transition(obs, action, feedback, metrics), e_next, a_next


# --------------------------------------------------------------------------- exact sums
def _is_float(x) -> bool:
    return jnp.issubdtype(jnp.result_type(x), jnp.floating)


def sums_zeros(example: Mapping[str, Any]) -> dict[str, Any]:
    """Zero accumulators: integers for integer metrics, Kahan sums (float) for the rest."""
    out = {}
    for name, x in example.items():
        if _is_float(x):
            z = jnp.zeros((), jnp.result_type(float))
            out[name] = KahanSum(z, z)
        else:
            out[name] = jnp.zeros((), jnp.result_type(int))
    return out


def sums_add(acc: Mapping[str, Any], metrics: Mapping[str, jax.Array]) -> dict[str, Any]:
    """The running sums plus this step's metrics (each a scalar: a JAX array, a NumPy or a
    Python number, as an env's `step` may return it)."""
    return {
        name: kahan_add(a, jnp.asarray(metrics[name]).astype(a.total.dtype))
        if isinstance(a, KahanSum)
        else a + jnp.asarray(metrics[name]).astype(a.dtype)
        for name, a in acc.items()
    }


def sum_value(a) -> jax.Array:
    """The device value of an accumulator (compensated for Kahan sums)."""
    return kahan_value(a) if isinstance(a, KahanSum) else a


def sum_host_value(a) -> np.ndarray:
    """An accumulator's value on the host in float64 (total - comp, both exact in float64)."""
    if isinstance(a, KahanSum):
        return np.asarray(a.total, np.float64) - np.asarray(a.comp, np.float64)
    return np.asarray(a, np.float64)


# --------------------------------------------------------------------------- the engine's step
class Carry(NamedTuple):
    """The state of one run between steps."""

    env_state: Any
    agent_state: Any
    sums: dict[str, Any]  # exact sums of the tracked per-step metrics
    rounds: jax.Array  # rounds used so far
    steps: jax.Array  # steps that used rounds
    illegal: jax.Array  # 1-based number of the first illegal step; 0: none


def initial_carry(env: Env, params, agent: Agent, probe_: Probe, run_key: jax.Array):
    """The carry before the first step of one run, and its step key."""
    e_state, a_state, step_key = start(env, params, agent, probe_.spec, run_key)
    return carry_of(e_state, a_state, probe_), step_key


def carry_of(e_state, a_state, probe_: Probe) -> Carry:
    """The carry before the first step, from the initial env and agent states."""
    zero = jnp.zeros((), jnp.result_type(int))
    sums = sums_zeros({k: probe_.metrics[k] for k in probe_.tracked})
    return Carry(e_state, a_state, sums, zero, zero, zero)


def advance(
    env: Env,
    params,
    agent: Agent,
    carry: Carry,
    rng_env,
    rng_agent,
    inputs,
    horizon: int | None,
    multi_round: bool,
) -> tuple[Carry, Transition]:
    """One step with the engine's bookkeeping: exact sums, rounds, illegal actions, idling.

    Multi-round runs (`multi_round`) that have used `horizon` rounds idle (states kept, metrics
    zero); a step that would run past the horizon is illegal. `horizon=None`: never idle.
    """
    tr, e_next, a_next = step(
        env, params, agent, carry.env_state, carry.agent_state, rng_env, rng_agent, inputs
    )
    metrics = tr.metrics
    names = list(carry.sums)
    int_t = jnp.result_type(int)
    bad = jnp.asarray(metrics.get("illegal", False))
    if multi_round:
        active = jnp.ones((), bool) if horizon is None else carry.rounds < horizon
        used = jnp.where(active, metrics["rounds"].astype(int_t), 0)
        if horizon is not None:  # the agent knows t and T, so it caps n itself
            bad = bad | (carry.rounds + used > horizon)
        bad = bad & active
        e_next, a_next = jax.tree.map(
            lambda new, old: jnp.where(active, new, old),
            (e_next, a_next),
            (carry.env_state, carry.agent_state),
        )
        step_metrics = {k: jnp.where(active, metrics[k], 0) for k in names}
        steps = carry.steps + active.astype(int_t)
    else:
        used = jnp.ones((), int_t)
        step_metrics = {k: metrics[k] for k in names}
        steps = carry.steps + 1
    illegal = jnp.where((carry.illegal == 0) & bad, steps, carry.illegal)
    new = Carry(
        e_next, a_next, sums_add(carry.sums, step_metrics), carry.rounds + used, steps, illegal
    )
    return new, tr


# --------------------------------------------------------------------------- rollout
class Rollout(NamedTuple):
    """The result of `rollout` for one seed."""

    env_state: Any
    agent_state: Any
    totals: dict[str, jax.Array]  # exact sums of the per-step metrics; "rounds" among them
    emitted: Any  # stacked outputs of `emit`, leading axis = steps; () without `emit`
    illegal: jax.Array  # 1-based number of the first illegal step; 0 when none


def rollout(
    env: Env,
    params,
    agent: Agent,
    key: jax.Array,
    steps: int,
    *,
    inputs: Mapping[str, jax.Array] | None = None,
    emit: Callable[[Transition], Any] | None = None,
    horizon: int | None = None,
) -> Rollout:
    """Run one seed of the protocol for `steps` steps from `init` (pure; jit/vmap it).

    `key` is the run key (the engine's seed s uses ``split(key(seed), seeds)[s]``); `inputs` the
    exogenous inputs of these steps, each shaped (steps, ...); `emit(transition)` chooses what to
    keep of every step (e.g. ``lambda tr: tr.action`` for a mechanism's releases); `horizon` is
    given to ``env.spec`` (default `steps`) and, for multi-round steps, stops at that many rounds.
    Sums are exact (integers, or compensated float sums), as in the engine.
    """
    horizon_ = steps if horizon is None else horizon
    abstract_inputs = {
        k: jax.ShapeDtypeStruct(v.shape[1:], jnp.result_type(v)) for k, v in (inputs or {}).items()
    }
    p = probe(env, params, agent, horizon_, abstract_inputs)
    carry, step_key = initial_carry(env, params, agent, p, key)
    env_rng, agent_rng = draw_steps(step_key, 0, steps, p.env_draws, p.agent_draws)
    multi = p.multi_round

    def body(c, xs):
        rng_env, rng_agent, xin = xs
        c, tr = advance(env, params, agent, c, rng_env, rng_agent, xin, horizon, multi)
        return c, (emit(tr) if emit is not None else ())

    carry, emitted = jax.lax.scan(
        body, carry, (env_rng, agent_rng, dict(inputs or {})), length=steps
    )
    totals = {k: sum_value(a) for k, a in carry.sums.items()}
    totals["rounds"] = carry.rounds
    return Rollout(carry.env_state, carry.agent_state, totals, emitted, carry.illegal)
