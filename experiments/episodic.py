"""Episodic environments: episodes of H steps, auto-reset owned once, by this base class.

As gymnax's ``environment.Environment`` owns auto-reset for its environments, `EpisodicEnv` owns
what every episodic domain needs, so none re-invents it:

* the step counter h in 0..H-1 inside the episode (the agent observes ``EpisodeObs(obs, h)``);
* the reset at the end of each episode, from the env's declared reset draws (``reset/<name>`` among
  the step's draws, so the engine draws them in bulk like any other);
* the end-of-episode revelation (e.g. the latent context of a latent MDP, revealed in hindsight)
  passed to the agent's ``update`` as ``EpisodeFeedback(feedback, done, revealed)``, masked on
  every other step (-1 for integers, NaN for floats, False for booleans);
* per-episode metrics added at an episode's last step (e.g. the episode's regret against a value
  computed when the env was built), so cumulative curves read per episode.

The engine records curves against episodes: ``horizon`` counts episodes, the grid's points are
episode ends (`experiments.simulate`).

A subclass sets `episode_length` and writes ``reset_env``, ``observe_env`` and ``step_env``; the
rest has defaults.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from experiments.protocol import EnvBase, Metrics, PyTree, RandomSpec

RESET = "reset/"  # prefix of the reset draws among a step's draws


class EpisodeState(NamedTuple):
    inner: Any  # the env's own state
    h: jax.Array  # steps taken in the current episode, 0..H-1
    episodes: jax.Array  # episodes completed


class EpisodeObs(NamedTuple):
    obs: Any  # the env's own observation
    h: jax.Array  # step within the episode, 0..H-1


class EpisodeFeedback(NamedTuple):
    feedback: Any  # the env's per-step feedback
    done: jax.Array  # True at an episode's last step
    revealed: Any  # what the env reveals at an episode's end; masked (`_hidden`) before it


def _hidden(x: jax.Array) -> jax.Array:
    """The masked value of a revealed leaf before an episode's end: -1 (integers), NaN (floats),
    False (booleans), so that nothing of the hidden context reaches the agent mid-episode."""
    x = jnp.asarray(x)
    if jnp.issubdtype(x.dtype, jnp.bool_):
        return jnp.zeros_like(x)
    if jnp.issubdtype(x.dtype, jnp.inexact):
        return jnp.full_like(x, jnp.nan)
    return jnp.full_like(x, -1)


class EpisodicEnv(EnvBase):
    """Base class of episodic environments (one pure method per concern, gymnax style)."""

    episode_length: int  # H, static
    x_label: str = "episode k"

    # ----------------------------------------------------------------- to write
    def reset_env(self, rng: Mapping[str, jax.Array], params: PyTree) -> PyTree:
        """The first state of an episode, from the draws declared by `reset_randomness`."""
        raise NotImplementedError

    def observe_env(self, inner: PyTree, h: jax.Array, params: PyTree) -> PyTree:
        raise NotImplementedError

    def step_env(
        self, rng: Mapping[str, jax.Array], inner: PyTree, h: jax.Array, action, params: PyTree
    ) -> tuple[PyTree, PyTree, Metrics]:
        """One step inside an episode: (next inner state, feedback, per-step metrics)."""
        raise NotImplementedError

    # ----------------------------------------------------------------- defaults
    def reset_randomness(self, params: PyTree) -> RandomSpec:
        return {}

    def step_randomness(self, params: PyTree, action: PyTree) -> RandomSpec:
        return {}

    def reveal(self, inner: PyTree, params: PyTree) -> PyTree:
        """What the agent learns at the end of an episode (its last inner state)."""
        return ()

    def episode_metrics(self, inner: PyTree, params: PyTree) -> Metrics:
        """Metrics of the whole episode, added at its last step (its last inner state)."""
        return {}

    # ----------------------------------------------------------------- the protocol
    def randomness(self, params: PyTree, action: PyTree) -> RandomSpec:
        reset = {RESET + k: d for k, d in self.reset_randomness(params).items()}
        return {**self.step_randomness(params, action), **reset}

    def init(self, key: jax.Array, params: PyTree) -> EpisodeState:
        from experiments.rollout import draw_once  # the engine's draw, for the first reset

        inner = self.reset_env(draw_once(key, self.reset_randomness(params)), params)
        zero = jnp.zeros((), jnp.result_type(int))
        return EpisodeState(inner=inner, h=zero, episodes=zero)

    def observe(self, state: EpisodeState, params: PyTree) -> EpisodeObs:
        return EpisodeObs(obs=self.observe_env(state.inner, state.h, params), h=state.h)

    def step(self, rng, state: EpisodeState, action, params):
        step_rng = {k: v for k, v in rng.items() if not k.startswith(RESET)}
        reset_rng = {k[len(RESET) :]: v for k, v in rng.items() if k.startswith(RESET)}
        inner, feedback, metrics = self.step_env(step_rng, state.inner, state.h, action, params)
        done = state.h == self.episode_length - 1
        metrics = dict(metrics)
        for name, value in self.episode_metrics(inner, params).items():
            add = jnp.where(done, value, jnp.zeros_like(value))
            metrics[name] = metrics[name] + add if name in metrics else add
        revealed = self.reveal(inner, params)
        revealed = jax.tree.map(lambda x: jnp.where(done, x, _hidden(x)), revealed)
        fresh = self.reset_env(reset_rng, params)
        inner = jax.tree.map(lambda new, old: jnp.where(done, new, old), fresh, inner)
        nxt = EpisodeState(
            inner=inner,
            h=jnp.where(done, 0, state.h + 1),
            episodes=state.episodes + done.astype(state.episodes.dtype),
        )
        return nxt, EpisodeFeedback(feedback=feedback, done=done, revealed=revealed), metrics
