"""The online protocol that every environment and agent implements (README.md, "How the engine
works"; docs/shapes.md).

In each step the environment shows an observation, the agent answers with an action, the
environment returns feedback and per-step metrics. Environments and agents are stateless objects
whose methods are pure JAX functions of explicit state (gymnax style), so the engine can `jit`,
`vmap` over seeds and `lax.scan` over steps.

Randomness is owned by the engine. Each component declares the random inputs it needs per step
(`randomness`), the engine draws them for a whole chunk of steps at once, outside the scan, and
hands each step its slice as `rng`: a dict mapping the declared names to arrays (or to a PRNG key
for draws of kind ``"key"``, for samplers that need an unbounded number of draws).

Metrics returned by `Env.step` are per-step *increments*; the engine accumulates them exactly
(integers, or compensated float sums) and records the cumulative values against rounds. Two names
are reserved:

* ``"rounds"``: rounds this step used (an agent may pull one arm n times in one step). When
  absent the step used one round.
* ``"illegal"``: True when the action broke the environment's rules. The engine raises
  `IllegalActionError`; an illegal action is never silently fixed.

Metric semantics belong to the environment (`MetricInfo`): its ``metric_info()`` says, for each
metric, its label, whether it is a *curve* (a per-step increment, summed and recorded against
rounds) or a *final* answer (from ``final_metrics``, one value per run), its axis scale, its
support (which decides the confidence interval: Student t, a bootstrap that respects a
non-negative support, or an exact binomial interval for an indicator) and its direction. Its
``primary_metric`` is the headline of tables and figures and ``x_label`` names the x-axis of
its curves. `EnvBase` gives every optional method a default.

Two optional hooks let a run check and explain itself (`experiments.results.declared`):

* ``Env.oracle(params, agent, horizon) -> {metric: (T,) array}``: the exact expected per-step
  increment of a curve metric under `agent`, t = 1..T, where the domain knows it ({} otherwise;
  `EnvBase`'s default). The run's summary prints, and summary.json and ``regretlab-table``
  record, the per-step mean and maximum over t beside it (`results.self_check`);
* ``Agent.info(spec) -> {name: dict}``: facts about the agent's run to record in summary.json
  (JSON values; an item's ``message`` is printed after the summary table), e.g. inputs it
  rounded on request.

Three shapes beside the plain per-step protocol, each carried once by the engine:

* *final answer*: ``final_metrics(state, agent.output(agent_state), params)`` only (no curve);
* *trace-driven*: ``exogenous(params, horizon, seeds)`` declares per-step inputs held on the
  host (arrays or memory-mapped files; `Exogenous`), ``prepare(inputs, params, horizon)`` is a
  host pass over the whole input whose per-step results are streamed the same way, and the
  engine hands each step its slice through ``feed(state, inputs, params)`` before ``observe``;
* *episodic*: `EpisodicEnv` (experiments/episodic.py) owns auto-reset, the end-of-episode
  revelation passed to the agent's update and per-episode metrics; curves are recorded against
  episodes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple, Protocol, runtime_checkable

import jax

Array = jax.Array
PyTree = Any
Metrics = dict[str, Array]

UNIFORM = "uniform"
NORMAL = "normal"
KEY = "key"


class Draw(NamedTuple):
    """One random input a component needs per step: U[0,1), N(0,1) or a PRNG key."""

    kind: str
    shape: tuple[int, ...] = ()


RandomSpec = Mapping[str, Draw]


CURVE = "curve"  # MetricInfo.kind: per-step increments, cumulative curve against rounds
FINAL = "final"  # MetricInfo.kind: one value per run, from final_metrics
REAL = "real"  # MetricInfo.support: Student-t interval of the mean
NONNEGATIVE = "nonnegative"  # heavy-tailed >= 0: bootstrap interval (never below 0), median too
INDICATOR = "indicator"  # {0, 1}: exact binomial interval of the probability


class MetricInfo(NamedTuple):
    """How a metric is read, plotted and summarised (declared by its environment)."""

    label: str = ""  # axis / column label; "" = the metric's name
    kind: str = CURVE  # CURVE | FINAL
    scale: str = "linear"  # y-axis scale: linear | log
    support: str = REAL  # REAL | NONNEGATIVE | INDICATOR
    lower_is_better: bool = True


class Exogenous(NamedTuple):
    """A per-step exogenous input held on the host (e.g. a request trace), streamed per chunk.

    `data` is any array-like with NumPy slicing (an ndarray or an ``np.memmap`` of a file): shape
    (T, ...) shared by all seeds, or (seeds, T, ...) with ``per_seed=True``. Row t is the input of
    step t (0-based). Never a constant of the compiled program.
    """

    data: Any
    per_seed: bool = False


class IllegalActionError(RuntimeError):
    """An agent broke the rules of its environment (e.g. pulled an arm it does not hold)."""


@runtime_checkable
class Env(Protocol):
    """A pure-functional environment. Shapes may depend only on static fields of `self`."""

    def default_params(self) -> PyTree: ...

    def spec(self, params: PyTree, horizon: int) -> Any:
        """Static facts the agent may use (number of actions, horizon, ...); hashable."""
        ...

    def randomness(self, params: PyTree, action: PyTree) -> RandomSpec:
        """Per-step random inputs, given the (abstract) action the agent will emit."""
        ...

    def init(self, key: Array, params: PyTree) -> PyTree: ...

    def observe(self, state: PyTree, params: PyTree) -> PyTree: ...

    def step(
        self, rng: Mapping[str, Array], state: PyTree, action: PyTree, params: PyTree
    ) -> tuple[PyTree, PyTree, Metrics]: ...

    def final_metrics(self, state: PyTree, output: PyTree, params: PyTree) -> Metrics: ...


class EnvBase:
    """Defaults for the optional parts of the environment protocol.

    ``randomness``: none; ``final_metrics``: none; ``metric_info``: every metric a real-valued
    curve named by itself; no exogenous inputs; ``feed`` ignores inputs; no ``oracle``; no
    ``agent_metrics``.
    """

    primary_metric: str = "regret"
    x_label: str = "round t"

    def randomness(self, params: PyTree, action: PyTree) -> RandomSpec:
        return {}

    def final_metrics(self, state: PyTree, output: PyTree, params: PyTree) -> Metrics:
        return {}

    def metric_info(self) -> dict[str, MetricInfo]:
        return {}

    def exogenous(self, params: PyTree, horizon: int, seeds: int) -> dict[str, Exogenous]:
        return {}

    def prepare(
        self, inputs: Mapping[str, Any], params: PyTree, horizon: int
    ) -> dict[str, Exogenous]:
        return {}

    def feed(self, state: PyTree, inputs: Mapping[str, Array], params: PyTree) -> PyTree:
        return state

    def oracle(self, params: PyTree, agent: Any, horizon: int) -> dict[str, Any]:
        return {}

    def agent_metrics(
        self, params: PyTree, agent: Any, agent_state: PyTree, feedback: PyTree
    ) -> Metrics:
        """Per-step metrics that depend on the agent's state *before* its update, i.e. on the
        policy that chose this step's action (e.g. exact pseudo-regret V* - V^{pi_k} at an
        episode's end, with pi_k read from the agent). Traced inside the step like `step`'s
        own metrics and summed the same way; none by default."""
        return {}


def metric_info(env: Any, name: str, final: bool = False) -> MetricInfo:
    """The declared `MetricInfo` of `name`, or the default (a real-valued curve or final value)."""
    declared = getattr(env, "metric_info", dict)()
    if name in declared:
        info = declared[name]
        return info._replace(label=info.label or name)
    return MetricInfo(label=name, kind=FINAL if final else CURVE)


@runtime_checkable
class Agent(Protocol):
    """A pure-functional learner."""

    def randomness(self, spec: Any) -> RandomSpec: ...

    def init(self, key: Array, spec: Any) -> PyTree: ...

    def act(self, rng: Mapping[str, Array], state: PyTree, obs: PyTree) -> PyTree: ...

    def update(self, state: PyTree, obs: PyTree, action: PyTree, feedback: PyTree) -> PyTree: ...

    def output(self, state: PyTree) -> PyTree:
        """The agent's final answer where the problem has one (e.g. a recommended arm)."""
        ...

    def max_steps(self, spec: Any) -> int | None:
        """Optional, for multi-round steps: an upper bound on the steps the agent takes to spend
        the horizon (a phased algorithm knows it: a few pulls of n rounds each). The engine
        sizes its chunks by it instead of by the horizon; a run that takes more steps still
        completes, in more chunks. None: unknown."""
        ...

    # Optional, for multi-round agents whose programs can be shared across horizons:
    #   horizon_inputs(spec) -> PyTree
    # called on the host with the concrete spec: checks T (one ConfigError line) and returns the
    # arrays its plan takes from T that device arithmetic cannot reproduce exactly (() if none).
    # The engine then calls ``init(key, spec, inputs)`` with ``spec.horizon`` a traced integer
    # and those arrays traced, so one compiled program serves every T; the agent promises that
    # its draws, state shapes and `max_steps` do not depend on T (experiments.simulate's module
    # docstring, "Horizon as an input"). ``init(key, spec)`` with a concrete spec still works.


def step_key(key: Array, t: Array, *tags: int) -> Array:
    """The one documented way for a component to get keys beyond its declared draws.

    A component that needs an unbounded number of draws (a rejection sampler's fallback, a
    counter's tree-node noise, a coin flip at a stream position) keeps the key its ``init``
    received from the engine in its state and derives the key of step (or position) `t` as
    ``fold_in(key, t)``, then ``fold_in(., tag)`` for each tag: counter-based, so no key is
    carried forward or reused, and the engine alone decides where every key comes from (each
    seed's run key is split into an environment and an agent key before ``init``).
    """
    k = jax.random.fold_in(key, t)
    for tag in tags:
        k = jax.random.fold_in(k, tag)
    return k


class AgentBase:
    """Defaults for agents that need no per-step randomness and have no final answer."""

    def randomness(self, spec: Any) -> RandomSpec:
        return {}

    def output(self, state: PyTree) -> PyTree:
        return ()

    def max_steps(self, spec: Any) -> int | None:
        return None
