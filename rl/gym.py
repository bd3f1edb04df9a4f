"""Gymnasium wrapper of the latent-MDP environment, for users who bring their own agents.

    import gymnasium
    import rl.gym  # registers the id below

    env = gymnasium.make("regretlab/LatentMDP-v0", num_states=4, episode_length=5)
    obs, info = env.reset(seed=0)
    obs, reward, terminated, truncated, info = env.step(1)
    model = env.unwrapped.model  # weights, init, transitions, rewards; horizon

One gymnasium episode is one LMDP episode of H steps (Zhou, Wang & Du, ICML 2023, §3.1: nature
draws the hidden context m ~ w and s_1 ~ ν_m; the learner sees s_h, plays a_h, earns
R_m(s_h, a_h); the context is revealed after step H).

* observation: the state s_h, ``Discrete(S)``; action: ``Discrete(A)``; reward: R_m(s_h, a_h).
* terminated: True on step H (the horizon ends the problem with zero continuation value, so it
  is a termination, not a time-limit truncation); truncated: always False. Stepping again before
  `reset` raises RuntimeError.
* info: ``h`` (steps taken) on every step; ``context`` (the hidden m) **only** in the info of the
  episode's last step (hindsight); ``v_star`` (the exact optimal value over history-dependent
  policies) in the info of `reset`.
* ``env.unwrapped.model`` (`rl.planning.LatentModel`) and ``env.unwrapped.v_star`` for exact
  planners and regret computations (as FrozenLake exposes ``P``).

Keyword arguments are the fields of `rl.latent_mdp.LatentMDP` (``instance``, ``num_contexts``,
``num_states``, ``num_actions``, ``episode_length``, ``degree``, ...), or ``model=`` a
`LatentModel` built in Python.

Randomness: ``reset(seed=s)`` sets the JAX key ``key(s)`` (without a seed, the first reset draws
one from ``np_random``; later ones continue the stream). Each reset and each step splits the key
(key, sub = split(key)) and draws the env's declared uniforms from sub
(`experiments.rollout.draw_once`). This per-step path is for interoperability; experiments use
`experiments.simulate`, which draws randomness in bulk.
"""

from __future__ import annotations

from typing import Any

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np

from experiments.protocol import IllegalActionError
from experiments.rollout import draw_once
from rl.latent_mdp import LatentMDP, LatentState
from rl.planning import LatentModel

LATENT_MDP_ID = "regretlab/LatentMDP-v0"


class LatentMDPEnv(gymnasium.Env):
    """A `LatentMDP` as a `gymnasium.Env` (context hidden, revealed in the last step's info)."""

    metadata: dict[str, Any] = {"render_modes": []}  # noqa: RUF012 (gymnasium's class attribute)

    def __init__(self, latent: LatentMDP, render_mode: str | None = None):
        if render_mode is not None:
            raise ValueError(f"render_mode: latent-MDP envs do not render (got {render_mode!r})")
        self.latent = latent
        self.params = latent.default_params()
        _, S, A, H = latent.model.sizes
        self.horizon = H
        self.action_space = gymnasium.spaces.Discrete(A)
        self.observation_space = gymnasium.spaces.Discrete(S)
        self.render_mode = None
        self._int = np.dtype(jnp.result_type(int))
        self._reset_spec = dict(latent.reset_randomness(self.params))
        self._step_spec = dict(latent.step_randomness(self.params, None))
        self._reset_fn = jax.jit(self._jax_reset)
        self._step_fn = jax.jit(self._jax_step)
        self._key: jax.Array | None = None
        self._state: LatentState | None = None  # None: reset() needed

    @property
    def model(self) -> LatentModel:
        return self.latent.model

    @property
    def v_star(self) -> float:
        return self.latent.v_star

    def _jax_reset(self, key):
        key, sub = jax.random.split(key)
        return key, self.latent.reset_env(draw_once(sub, self._reset_spec), self.params)

    def _jax_step(self, key, state: LatentState, action):
        key, sub = jax.random.split(key)
        new, _, _ = self.latent.step_env(
            draw_once(sub, self._step_spec), state, state.t, action, self.params
        )
        return key, new

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.int64, dict[str, Any]]:
        super().reset(seed=seed)
        if seed is not None:
            self._key = jax.random.key(seed)
        elif self._key is None:
            self._key = jax.random.key(int(self.np_random.integers(0, 2**31 - 1)))
        self._key, self._state = self._reset_fn(self._key)
        return np.int64(self._state.s), {"h": 0, "v_star": self.v_star}

    def step(self, action) -> tuple[np.int64, float, bool, bool, dict[str, Any]]:
        if self._state is None or int(self._state.t) >= self.horizon:
            raise RuntimeError("the episode is over (or never began): call reset() first")
        if not self.action_space.contains(action):
            raise IllegalActionError(
                f"action: must be in 0..{self.action_space.n - 1} (got {action!r})"
            )
        before = self._state
        self._key, self._state = self._step_fn(self._key, before, self._int.type(action))
        reward = float(self.params.rewards[before.context, before.s, int(action)])
        h = int(self._state.t)
        info: dict[str, Any] = {"h": h}
        terminated = h == self.horizon
        if terminated:
            info["context"] = int(self._state.context)
        return np.int64(self._state.s), reward, terminated, False, info


def make_latent_mdp(
    model: LatentModel | None = None, render_mode: str | None = None, **fields: Any
) -> LatentMDPEnv:
    """Entry point of ``regretlab/LatentMDP-v0``: a `LatentMDP` from its fields or a model."""
    latent = LatentMDP.from_model(model, **fields) if model is not None else LatentMDP(**fields)
    return LatentMDPEnv(latent, render_mode)


def register_envs() -> None:
    """Register the latent-MDP id with gymnasium (idempotent)."""
    if LATENT_MDP_ID not in gymnasium.registry:
        gymnasium.register(id=LATENT_MDP_ID, entry_point="rl.gym:make_latent_mdp")


register_envs()
