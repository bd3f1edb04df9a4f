"""The online protocol that every environment and agent implements (DESIGN.md, "The protocol").

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


class AgentBase:
    """Defaults for agents that need no per-step randomness and have no final answer."""

    def randomness(self, spec: Any) -> RandomSpec:
        return {}

    def output(self, state: PyTree) -> PyTree:
        return ()
