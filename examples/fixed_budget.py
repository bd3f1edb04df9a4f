"""A user's own final-answer problem: fixed-budget best-arm identification with Bernoulli arms.

The learner has a budget of T pulls (the run's ``horizon``) and is judged only at the end, on the
arm it recommends (Audibert, Bubeck & Munos, "Best Arm Identification in Multi-Armed Bandits",
COLT 2010, §2 "Problem setup"; Lattimore & Szepesvári, "Bandit Algorithms", 2020, §33.3).
No per-step metric: the environment's step returns only the reserved ``illegal`` flag, and
`final_metrics` scores the agent's ``output()``:

* ``error``: 1[recommended arm != best arm], an indicator whose mean is the error probability
  (exact Clopper–Pearson interval; log scale, since it decays like exp(-c T));
* ``simple_regret``: mu* - mu_recommended >= 0 (bootstrap interval, median beside the mean).

Agents: `RoundRobin` pulls arms 0, 1, ..., K-1, 0, ... and recommends the empirical best (ties
to the lowest index; an unpulled arm is never recommended); `UniformAllocation` pulls an arm
uniformly at random each round and recommends likewise. For two arms with round robin, arm 0 is
pulled n0 = ceil(T/2) times and arm 1 n1 = floor(T/2) times, so with S_a ~ Binomial(n_a, mu_a)
the error probability is the finite sum (`round_robin_error`)

    P(error) = P(S_1 / n1 <= S_0 / n0)  if mu_1 > mu_0,   P(S_1 / n1 > S_0 / n0)  otherwise.

Use it from the repository root (``examples`` on the path, ``examples/conf`` on Hydra's):

    PYTHONPATH=examples uv run regretlab hydra.searchpath=[file://examples/conf] \\
        env=fixed_budget agents=[round_robin,uniform_allocation] horizon=40 seeds=1000
    PYTHONPATH=examples uv run regretlab -m hydra.searchpath=[file://examples/conf] \\
        env=fixed_budget agents=[round_robin,uniform_allocation] horizon=10,40,160 seeds=200
    uv run regretlab-plot multirun/DATE/TIME --x horizon      # error probability against T
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from scipy import stats

from bandits.envs import BanditSpec
from experiments.config import ConfigError, check_float
from experiments.protocol import (
    FINAL,
    INDICATOR,
    NONNEGATIVE,
    UNIFORM,
    AgentBase,
    Draw,
    EnvBase,
    MetricInfo,
)


class BAIParams(NamedTuple):
    means: jax.Array  # (K,)


class BAIState(NamedTuple):
    t: jax.Array  # rounds completed


@dataclass(frozen=True)
class FixedBudgetBAI(EnvBase):
    """K Bernoulli arms (two by default); reward r = 1[u < mu_a] from one engine uniform."""

    means: tuple[float, ...] = (0.5, 0.6)
    primary_metric: ClassVar[str] = "error"
    x_label: ClassVar[str] = "round t"

    def __post_init__(self):
        if len(self.means) < 2:
            raise ConfigError(f"env.means: need at least 2 arms (got {len(self.means)})")
        for m in self.means:
            check_float("env.means", m, 0.0, 1.0)
        top = max(self.means)
        if sum(m == top for m in self.means) > 1:
            raise ConfigError(f"env.means: the best arm must be unique (got {list(self.means)})")

    def metric_info(self) -> dict[str, MetricInfo]:
        return {
            "error": MetricInfo(
                label="error probability", kind=FINAL, scale="log", support=INDICATOR
            ),
            "simple_regret": MetricInfo(label="simple regret", kind=FINAL, support=NONNEGATIVE),
        }

    def default_params(self) -> BAIParams:
        return BAIParams(jnp.asarray(self.means, jnp.result_type(float)))

    def spec(self, params: BAIParams, horizon: int) -> BanditSpec:
        return BanditSpec(len(self.means), int(horizon))

    def randomness(self, params, action) -> dict[str, Draw]:
        return {"u": Draw(UNIFORM)}

    def init(self, key: jax.Array, params: BAIParams) -> BAIState:
        return BAIState(jnp.zeros((), jnp.result_type(int)))

    def observe(self, state: BAIState, params: BAIParams) -> jax.Array:
        return state.t

    def step(self, rng: Mapping[str, jax.Array], state: BAIState, action, params: BAIParams):
        K = params.means.shape[0]
        reward = (rng["u"] < params.means[jnp.clip(action, 0, K - 1)]).astype(params.means.dtype)
        return BAIState(state.t + 1), reward, {"illegal": (action < 0) | (action >= K)}

    def final_metrics(self, state: BAIState, output, params: BAIParams) -> dict[str, jax.Array]:
        if isinstance(output, tuple) and not output:
            raise ConfigError("env: fixed-budget BAI needs an agent whose output() is an arm")
        arm = jnp.asarray(output)
        best = jnp.argmax(params.means)
        error = (arm != best).astype(params.means.dtype)
        return {"error": error, "simple_regret": params.means[best] - params.means[arm]}


class AllocationState(NamedTuple):
    counts: jax.Array  # (K,) pulls of each arm
    sums: jax.Array  # (K,) reward sums


def _empirical_best(state: AllocationState) -> jax.Array:
    """argmax of the sample means; ties to the lowest index; unpulled arms last."""
    means = state.sums / jnp.maximum(state.counts, 1)
    return jnp.argmax(jnp.where(state.counts > 0, means, -jnp.inf))


def _add(state: AllocationState, action, reward) -> AllocationState:
    hot = jnp.arange(state.counts.shape[0]) == action
    return AllocationState(state.counts + hot, state.sums + jnp.where(hot, reward, 0.0))


def _zeros(spec: BanditSpec) -> AllocationState:
    k = spec.num_arms
    return AllocationState(jnp.zeros((k,), jnp.result_type(int)), jnp.zeros((k,)))


@dataclass(frozen=True)
class RoundRobin(AgentBase):
    """Pull arm t mod K in round t + 1 (uniform allocation); recommend the empirical best."""

    def init(self, key: jax.Array, spec: BanditSpec) -> AllocationState:
        return _zeros(spec)

    def act(self, rng, state: AllocationState, t: jax.Array) -> jax.Array:
        return (t % state.counts.shape[0]).astype(jnp.int32)

    def update(self, state: AllocationState, t, action, reward) -> AllocationState:
        return _add(state, action, reward)

    def output(self, state: AllocationState) -> jax.Array:
        return _empirical_best(state)


@dataclass(frozen=True)
class UniformAllocation(AgentBase):
    """Pull an arm uniformly at random each round (one engine uniform); recommend the best."""

    def randomness(self, spec: Any) -> dict[str, Draw]:
        return {"u": Draw(UNIFORM)}

    def init(self, key: jax.Array, spec: BanditSpec) -> AllocationState:
        return _zeros(spec)

    def act(self, rng, state: AllocationState, t: jax.Array) -> jax.Array:
        k = state.counts.shape[0]
        return jnp.minimum((rng["u"] * k).astype(jnp.int32), k - 1)

    def update(self, state: AllocationState, t, action, reward) -> AllocationState:
        return _add(state, action, reward)

    def output(self, state: AllocationState) -> jax.Array:
        return _empirical_best(state)


def round_robin_error(means: Sequence[float], horizon: int) -> float:
    """Exact error probability of `RoundRobin` on two Bernoulli arms with budget `horizon`.

    Sum over the joint Binomial(n0, mu_0) x Binomial(n1, mu_1) law of (S_0, S_1) of the event
    that the empirical best (ties to arm 0; arm 1 unpulled when n1 = 0) is not the best arm.
    """
    if len(means) != 2:
        raise ValueError("round_robin_error: two arms only")
    n0, n1 = -(-horizon // 2), horizon // 2
    p0 = stats.binom.pmf(np.arange(n0 + 1), n0, means[0])
    p1 = stats.binom.pmf(np.arange(n1 + 1), n1, means[1])
    s0, s1 = np.meshgrid(np.arange(n0 + 1), np.arange(n1 + 1), indexing="ij")
    picks_one = (s1 * n0 > s0 * n1) if n1 > 0 else np.zeros_like(s0, bool)
    wrong = ~picks_one if means[1] > means[0] else picks_one
    return float(np.sum(np.outer(p0, p1)[wrong]))
