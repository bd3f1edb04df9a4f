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

Randomness (`experiments.gym.FunctionalGymEnv`, the base of every regretlab gymnasium wrapper):
``reset(seed=s)`` sets the JAX key ``key(s)`` (without a seed, the first reset draws one from
``np_random``; later ones continue the stream). Each reset and each step splits the key
(key, sub = split(key)) and draws the env's declared uniforms from sub
(`experiments.rollout.draw_once`). This per-step path is for interoperability; experiments use
`experiments.simulate`, which draws randomness in bulk.
"""

from __future__ import annotations

from typing import Any

import gymnasium
import jax.numpy as jnp
import numpy as np

from experiments.gym import FunctionalGymEnv, register
from experiments.rollout import draw_once
from rl.latent_mdp import LatentMDP, LatentState
from rl.planning import LatentModel

LATENT_MDP_ID = "regretlab/LatentMDP-v0"


class LatentMDPEnv(FunctionalGymEnv):
    """A `LatentMDP` as a `gymnasium.Env` (context hidden, revealed in the last step's info;
    `experiments.gym.FunctionalGymEnv`: key stream, compiled reset and step, checks)."""

    kind = "latent-MDP"

    def __init__(self, latent: LatentMDP, render_mode: str | None = None):
        super().__init__(latent.default_params(), render_mode)
        self.latent = latent
        _, S, A, H = latent.model.sizes
        self.horizon = H
        self.action_space = gymnasium.spaces.Discrete(A)
        self.observation_space = gymnasium.spaces.Discrete(S)
        self._reset_spec = dict(latent.reset_randomness(self.params))
        self._step_spec = dict(latent.step_randomness(self.params, None))

    @property
    def model(self) -> LatentModel:
        return self.latent.model

    @property
    def v_star(self) -> float:
        return self.latent.v_star

    def reset_fn(self, key, params) -> LatentState:
        return self.latent.reset_env(draw_once(key, self._reset_spec), params)

    def step_fn(self, key, state: LatentState, action, params):
        new, _, _ = self.latent.step_env(
            draw_once(key, self._step_spec), state, state.t, action, params
        )
        reward = params.rewards[state.context, state.s, action]
        return new, jnp.stack([reward, new.s, new.t, new.context])

    def observation(self, state: LatentState) -> np.int64:
        return np.int64(state.s)

    def reset_info(self, state: LatentState) -> dict[str, Any]:
        return {"h": 0, "v_star": self.v_star}

    def transition(self, before, state, out, action):
        reward, s, h, context = np.asarray(out, np.float64).tolist()  # one transfer
        h = int(h)
        info: dict[str, Any] = {"h": h}
        terminated = h == self.horizon
        if terminated:
            info["context"] = int(context)
        return np.int64(s), reward, terminated, False, info


def make_latent_mdp(
    model: LatentModel | None = None, render_mode: str | None = None, **fields: Any
) -> LatentMDPEnv:
    """Entry point of ``regretlab/LatentMDP-v0``: a `LatentMDP` from its fields or a model."""
    latent = LatentMDP.from_model(model, **fields) if model is not None else LatentMDP(**fields)
    return LatentMDPEnv(latent, render_mode)


def register_envs() -> None:
    """Register the latent-MDP id with gymnasium (idempotent)."""
    register(LATENT_MDP_ID, "rl.gym:make_latent_mdp")


register_envs()
