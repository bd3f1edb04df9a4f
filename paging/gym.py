"""Gymnasium wrapper of the paging environment (``env=paging``), for users who bring their own
paging policies.

    import gymnasium
    import paging.gym  # registers the id below

    env = gymnasium.make("regretlab/Paging-v0", trace="zipf", length=1000, pages=50,
                         cache_size=8, predictions="next_arrival", sigma=1.0)
    obs, info = env.reset(seed=0)
    obs, reward, terminated, truncated, info = env.step(3)  # the slot to evict, if needed

One gymnasium episode replays the request trace once (demand paging with unit-size pages,
Sleator & Tarjan, CACM 1985; the rules of `paging.env.Paging`): each step serves the request in
the observation; on a fault with a full cache the action is the slot to evict, otherwise it is
ignored (any slot is a legal action).

* observation (a ``Dict``): ``t`` (request index), ``page`` (dense page id), ``hit``,
  ``slot`` (the page's slot on a hit, the first free slot on a fault with a free slot, -1 when
  the agent must evict), ``bit`` (the predicted bit; 0 without bit predictions),
  ``predicted_next`` (the predicted next request, clipped to the float32 range, so that noise
  overflowing to infinity reads as the largest float; the trace's length without next-arrival
  predictions), ``slot_page`` (the page in each slot, -1 empty). Exact future information
  (Belady's decisions, exact next arrivals) is not in the observation.
* action: ``Discrete(cache_size)``; reward: -1 on a fault, 0 on a hit (cost = faults).
* terminated: True on the step serving the last request (``horizon`` requests; default the
  whole trace); truncated: always False. Stepping again before `reset` raises RuntimeError.
* info: ``fault`` and ``opt_fault`` (Belady faults on this request), cumulative ``faults`` and
  ``opt_faults``; with bit predictions ``eta0`` / ``eta1`` (this request's wrong bit, by kind).
* ``env.unwrapped.paging`` is the `paging.env.Paging` instance.

Keyword arguments are the fields of `paging.env.Paging` (``trace``, ``length``, ``pages``,
``cache_size``, ``predictions``, ``flip_p``, ``sigma``, ...) and ``horizon``. The trace and its
host-side preparation (next arrivals, Belady, exact bits) are computed once and kept as inputs of
the compiled step (arguments, not constants).

Randomness (`experiments.gym.FunctionalGymEnv`): ``reset(seed=s)`` sets the JAX key ``key(s)``;
each reset and each step splits it and draws the env's declared noise (prediction noise with
``prediction_seed=null``) from the subkey (`experiments.rollout.draw_once`).
"""

from __future__ import annotations

from typing import Any

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np

from experiments.config import check_int
from experiments.gym import FunctionalGymEnv, register
from experiments.rollout import draw_once
from paging.env import BITS, Paging

PAGING_ID = "regretlab/Paging-v0"
BIG = float(np.finfo(np.float32).max)  # predicted_next is clipped to the float32 range
OBS_FIELDS = ("t", "page", "hit", "slot", "bit", "predicted_next", "slot_page")


class PagingEnv(FunctionalGymEnv):
    """`paging.env.Paging` as a `gymnasium.Env` (module docstring)."""

    kind = "paging"

    def __init__(self, paging: Paging, horizon: int | None = None, render_mode: str | None = None):
        horizon = paging._L if horizon is None else check_int("horizon", horizon, 1)
        spec = paging.spec(paging.default_params(), horizon)  # one line if horizon > trace
        host = paging.host(horizon)
        inputs = {name: jnp.asarray(np.asarray(x.data[0:horizon])) for name, x in host.items()}
        super().__init__({"env": paging.default_params(), "inputs": inputs}, render_mode)
        self.paging = paging
        self.horizon = horizon
        k, n = spec.cache_size, spec.pages
        i64 = np.int64
        self.action_space = gymnasium.spaces.Discrete(k)
        self.observation_space = gymnasium.spaces.Dict(
            {
                "t": gymnasium.spaces.Discrete(horizon + 1),
                "page": gymnasium.spaces.Discrete(n),
                "hit": gymnasium.spaces.Discrete(2),
                "slot": gymnasium.spaces.Box(-1, k - 1, (), i64),
                "bit": gymnasium.spaces.Discrete(2),
                "predicted_next": gymnasium.spaces.Box(-BIG, BIG, (), np.float32),
                "slot_page": gymnasium.spaces.Box(-1, n - 1, (k,), i64),
            }
        )
        self._draws = dict(paging.randomness(paging.default_params(), None))

    # ------------------------------------------------------------------ pure functions
    def _at(self, inputs, t):
        t = jnp.minimum(t, self.horizon - 1)
        return {name: x[t] for name, x in inputs.items()}

    def _observe(self, state, params):
        obs = self.paging.observe(state, params["env"])
        return {f: jnp.asarray(getattr(obs, f)) for f in OBS_FIELDS}

    def reset_fn(self, key, params):
        state = self.paging.init(key, params["env"])
        state = self.paging.feed(state, self._at(params["inputs"], 0), params["env"])
        return state, self._observe(state, params)

    def step_fn(self, key, carry, action, params):
        state, _ = carry
        rng = draw_once(key, self._draws)
        new, feedback, metrics = self.paging.step(rng, state, action, params["env"])
        fed = self.paging.feed(new, self._at(params["inputs"], new.t), params["env"])
        more = new.t < self.horizon
        new = jax.tree_util.tree_map(lambda a, b: jnp.where(more, a, b), fed, new)
        i = jnp.int32
        out = jnp.stack(
            [
                feedback.fault.astype(i),
                metrics["opt_faults"].astype(i),
                new.faults.astype(i),
                new.opt_faults.astype(i),
                metrics.get("eta0", jnp.zeros((), i)).astype(i),
                metrics.get("eta1", jnp.zeros((), i)).astype(i),
            ]
        )
        return (new, self._observe(new, params)), out

    # ------------------------------------------------------------------ host side
    def observation(self, carry) -> dict[str, Any]:
        obs = jax.device_get(carry[1])
        out = {f: np.asarray(obs[f], np.int64) for f in OBS_FIELDS if f != "predicted_next"}
        out["hit"] = np.int64(out["hit"])
        pred = np.clip(np.asarray(obs["predicted_next"]), -BIG, BIG)  # clip, then cast
        out["predicted_next"] = np.asarray(pred, np.float32)
        for f in ("t", "page", "bit"):
            out[f] = np.int64(out[f])
        return out

    def reset_info(self, carry) -> dict[str, Any]:
        return {"faults": 0, "opt_faults": 0}

    def transition(self, before, carry, out, action):
        fault, opt_fault, faults, opt_faults, eta0, eta1 = np.asarray(out).tolist()
        info: dict[str, Any] = {
            "fault": bool(fault),
            "opt_fault": bool(opt_fault),
            "faults": faults,
            "opt_faults": opt_faults,
        }
        if self.paging.predictions in BITS:
            info["eta0"], info["eta1"] = eta0, eta1
        done = self.steps_taken == self.horizon
        return self.observation(carry), -float(fault), done, False, info


def make_paging(
    horizon: int | None = None, render_mode: str | None = None, **fields: Any
) -> PagingEnv:
    """Entry point of ``regretlab/Paging-v0``: a `paging.env.Paging` from its fields."""
    return PagingEnv(Paging(**fields), horizon, render_mode)


def register_envs() -> None:
    """Register the paging id with gymnasium (idempotent)."""
    register(PAGING_ID, "paging.gym:make_paging")


register_envs()
