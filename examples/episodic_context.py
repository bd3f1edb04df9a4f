"""A worked example of an episodic environment with a context revealed in hindsight.

Each episode of H steps draws a hidden context c in {0, 1} (P(c = 1) = `w`) and starts in state 0
of a two-state chain. In step h the agent sees the state s and picks an action a in {0, 1}; it
earns a Bernoulli(mu[c, a]) reward and moves to state a, except that with probability `slip` it
lands in the other state. At the episode's end the env reveals c (the latent-MDP setting of
Kwon, Efroni, Caramanis & Mannor, NeurIPS 2021, with context in hindsight) and adds the episode's
``regret`` = v* - (episode return), where v* = H max_a sum_c P(c) mu[c, a] -- the value of the best
action chosen without knowing the context, computed when the env is built -- so the cumulative
curve reads per episode. (A policy that infers c from rewards within an episode may beat v*.)

`EpisodicEnv` (experiments/episodic.py) owns the step counter, the reset and the revelation; this
file writes only ``reset_env``, ``observe_env``, ``step_env``, ``reveal`` and ``episode_metrics``.

    PYTHONPATH=examples uv run regretlab hydra.searchpath=[file://examples/conf] \\
        env=episodic_context agents=[context_greedy,context_random] horizon=2000 seeds=50
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from experiments.config import ConfigError, check_float, check_int
from experiments.episodic import EpisodeFeedback, EpisodeObs, EpisodicEnv
from experiments.protocol import UNIFORM, AgentBase, Draw, MetricInfo


class ContextParams(NamedTuple):
    mu: jax.Array  # (2, 2) reward means mu[c, a]
    w: jax.Array  # P(c = 1)
    slip: jax.Array  # probability of landing in the other state
    v_star: jax.Array  # H max_a sum_c P(c) mu[c, a]


class ContextState(NamedTuple):
    context: jax.Array  # hidden c
    s: jax.Array  # chain state
    ret: jax.Array  # return of the episode so far


class ContextSpec(NamedTuple):
    episode_length: int
    mu: tuple[tuple[float, float], tuple[float, float]]


def best_blind_value(mu: np.ndarray, w: float, horizon: int) -> float:
    """v* = H max_a ((1 - w) mu[0, a] + w mu[1, a])."""
    return float(horizon * np.max((1 - w) * mu[0] + w * mu[1]))


@dataclass(frozen=True)
class TwoStateContext(EpisodicEnv):
    """Two contexts, two states, two actions; episodes of `episode_length` steps."""

    episode_length: int = 5
    mu: Sequence[Sequence[float]] = ((0.9, 0.2), (0.1, 0.6))
    w: float = 0.3
    slip: float = 0.1

    primary_metric = "regret"

    def __post_init__(self):
        check_int("env.episode_length", self.episode_length, 1)
        check_float("env.w", self.w, 0.0, 1.0)
        check_float("env.slip", self.slip, 0.0, 1.0)
        mu = np.asarray(self.mu, np.float64)
        if mu.shape != (2, 2) or np.any((mu < 0) | (mu > 1)):
            raise ConfigError(f"env.mu: must be 2x2 means in [0, 1] (got {self.mu!r})")
        object.__setattr__(self, "mu", tuple(tuple(float(x) for x in row) for row in mu))

    def metric_info(self) -> dict[str, MetricInfo]:
        return {
            "regret": MetricInfo(label="cumulative regret against v*"),
            "reward": MetricInfo(label="cumulative reward", lower_is_better=False),
        }

    def default_params(self) -> ContextParams:
        mu = np.asarray(self.mu)
        f = jnp.result_type(float)
        v = best_blind_value(mu, self.w, self.episode_length)
        return ContextParams(
            mu=jnp.asarray(mu, f),
            w=jnp.asarray(self.w, f),
            slip=jnp.asarray(self.slip, f),
            v_star=jnp.asarray(v, f),
        )

    def spec(self, params, horizon: int) -> ContextSpec:
        return ContextSpec(self.episode_length, self.mu)

    def reset_randomness(self, params):
        return {"context": Draw(UNIFORM)}

    def step_randomness(self, params, action):
        return {"reward": Draw(UNIFORM), "slip": Draw(UNIFORM)}

    def reset_env(self, rng, params) -> ContextState:
        i = jnp.result_type(int)
        return ContextState(
            context=(rng["context"] < params.w).astype(i),
            s=jnp.zeros((), i),
            ret=jnp.zeros((), params.mu.dtype),
        )

    def observe_env(self, inner: ContextState, h, params):
        return inner.s

    def step_env(self, rng, inner: ContextState, h, action, params):
        a = jnp.asarray(action, inner.s.dtype)
        reward = (rng["reward"] < params.mu[inner.context, a]).astype(params.mu.dtype)
        s = jnp.where(rng["slip"] < params.slip, 1 - a, a)
        new = inner._replace(s=s, ret=inner.ret + reward)
        return new, reward, {"reward": reward, "illegal": (a < 0) | (a > 1)}

    def reveal(self, inner: ContextState, params):
        return inner.context

    def episode_metrics(self, inner: ContextState, params):
        return {"regret": params.v_star - inner.ret}


@dataclass(frozen=True)
class HindsightGreedy(AgentBase):
    """Plays argmax_a sum_c P̂(c) mu[c, a], with P̂ the Laplace estimate from revealed contexts."""

    def init(self, key, spec: ContextSpec):
        self_mu = jnp.asarray(spec.mu, jnp.result_type(float))
        return (jnp.zeros((2,), jnp.result_type(int)), self_mu)

    def act(self, rng, state, obs: EpisodeObs):
        counts, mu = state
        p = (counts + 1) / (counts.sum() + 2)
        return jnp.argmax(p @ mu).astype(jnp.result_type(int))

    def update(self, state, obs, action, feedback: EpisodeFeedback):
        counts, mu = state
        seen = jax.nn.one_hot(feedback.revealed, 2, dtype=counts.dtype)
        return (counts + jnp.where(feedback.done, seen, 0), mu)


@dataclass(frozen=True)
class RandomAction(AgentBase):
    """Uniformly random actions (one engine-drawn uniform per step)."""

    def randomness(self, spec):
        return {"u": Draw(UNIFORM)}

    def init(self, key, spec):
        return ()

    def act(self, rng, state, obs):
        return (rng["u"] < 0.5).astype(jnp.result_type(int))

    def update(self, state, obs, action, feedback):
        return state
