"""A functional environment as a `gymnasium.Env`: the one base of the domains' gymnasium wrappers
(`bandits.gym`, `rl.gym`, `paging.gym`), for users who bring their own agents.

A subclass gives two pure JAX functions and the host-side reading of their results:

* ``reset_fn(key, params) -> state`` and ``step_fn(key, state, action, params) -> (state, out)``
  (`out`: any pytree the host needs, e.g. the reward and per-step metrics, fetched once per step);
* ``observation(state)``, ``reset_info(state)`` and ``transition(before, state, out, action) ->
  (obs, reward, terminated, truncated, info)``, on the host (``steps_taken``: the steps since the
  last reset, this one included, counted on the host).

The base owns what every wrapper did for itself: the key stream; the compiled (`jax.jit`) reset
and step (``params`` is an argument of both programs, never a constant baked into them: a trace
of 10^6 requests stays an input); the checks (stepping before `reset` or after the episode's end
raises RuntimeError, an action outside ``action_space`` raises
`experiments.protocol.IllegalActionError`); the ``render_mode`` refusal.

Randomness: ``reset(seed=s)`` sets the JAX key ``key(s)``; without a seed, the first reset draws
one from ``np_random`` and later ones continue the stream. Each step, and each reset when
``reset_uses_key`` is set, splits the key (key, sub = split(key)) and gives ``sub`` to the pure
function. This per-step path is for interoperability; experiments use `experiments.simulate`,
which draws randomness in bulk.
"""

from __future__ import annotations

from typing import Any

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np

from experiments.protocol import IllegalActionError, PyTree


class FunctionalGymEnv(gymnasium.Env):
    """The gymnasium side of a functional env (module docstring); subclasses set the spaces in
    ``__init__`` (after calling ``super().__init__``) and write the five methods below."""

    metadata: dict[str, Any] = {"render_modes": []}  # noqa: RUF012 (gymnasium's class attribute)
    kind: str = "functional"  # words for messages ("bandit envs do not render")
    reset_uses_key: bool = True  # False: reset is deterministic and leaves the key stream alone

    def __init__(self, params: PyTree, render_mode: str | None = None):
        if render_mode is not None:
            raise ValueError(f"render_mode: {self.kind} envs do not render (got {render_mode!r})")
        self.params = params
        self.render_mode = None
        self._int = np.dtype(jnp.result_type(int))  # int32, or int64 under x64
        self._reset_jit = jax.jit(self._reset_with_key)
        self._step_jit = jax.jit(self._step_with_key)
        self._key: jax.Array | None = None
        self._state: PyTree | None = None
        self._over = True  # no episode under way: reset() needed
        self.steps_taken = 0  # steps since the last reset (host-side; transition sees this one)

    # ------------------------------------------------------------------ written by subclasses
    def reset_fn(self, key: jax.Array, params: PyTree) -> PyTree:
        """The state at the start of an episode (pure JAX)."""
        raise NotImplementedError

    def step_fn(self, key: jax.Array, state: PyTree, action: jax.Array, params: PyTree):
        """(state, out) after `action` (pure JAX); `out` is what `transition` reads."""
        raise NotImplementedError

    def observation(self, state: PyTree) -> Any:
        raise NotImplementedError

    def reset_info(self, state: PyTree) -> dict[str, Any]:
        return {}

    def transition(
        self, before: PyTree, state: PyTree, out: Any, action: Any
    ) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        raise NotImplementedError

    def illegal_action(self, action: Any) -> str:
        """The one-line message for an action outside ``action_space``."""
        return f"action: must be in 0..{self.action_space.n - 1} (got {action!r})"

    def action_array(self, action: Any) -> Any:
        """The action as the compiled step receives it (default: the JAX default integer)."""
        return self._int.type(action)

    # ------------------------------------------------------------------ owned here
    def _reset_with_key(self, key: jax.Array, params: PyTree):
        if self.reset_uses_key:
            key, sub = jax.random.split(key)
        else:
            sub = key
        return key, self.reset_fn(sub, params)

    def _step_with_key(self, key: jax.Array, state: PyTree, action: jax.Array, params: PyTree):
        key, sub = jax.random.split(key)
        state, out = self.step_fn(sub, state, action, params)
        return key, state, out

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        super().reset(seed=seed)
        if seed is not None:
            self._key = seed_key(seed)
        elif self._key is None:
            self._key = jax.random.key(int(self.np_random.integers(0, 2**31 - 1)))
        self._key, self._state = self._reset_jit(self._key, self.params)
        self._over = False
        self.steps_taken = 0
        return self.observation(self._state), self.reset_info(self._state)

    def step(self, action) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        if self._over:
            raise RuntimeError("the episode is over (or never began): call reset() first")
        if not self.action_space.contains(action):
            raise IllegalActionError(self.illegal_action(action))
        before = self._state
        action_ = self.action_array(action)
        self._key, self._state, out = self._step_jit(self._key, before, action_, self.params)
        self.steps_taken += 1
        obs, reward, terminated, truncated, info = self.transition(before, self._state, out, action)
        self._over = bool(terminated or truncated)
        return obs, reward, terminated, truncated, info


def register(env_id: str, entry_point: str) -> None:
    """Register `env_id` with gymnasium unless it is known (idempotent, no warning)."""
    if env_id not in gymnasium.registry:
        gymnasium.register(id=env_id, entry_point=entry_point)


__all__ = ["FunctionalGymEnv", "register"]


def seed_key(seed: int) -> jax.Array:
    """The JAX key of a gymnasium seed (any integer >= 0): ``key(seed mod 2^32)``, then each
    further 32-bit word of the seed folded in (``fold_in``), so that seeds differing only above
    bit 32 give different streams (``key(seed)`` keeps only the low 32 bits without x64, and
    overflows from 2^63). Seeds below 2^32 give ``key(seed)`` exactly."""
    seed = int(seed)
    if seed < 0:
        raise ValueError(f"seed: must be an integer >= 0 (got {seed})")
    key = jax.random.key(seed & 0xFFFFFFFF)
    rest = seed >> 32
    while rest:
        key = jax.random.fold_in(key, rest & 0xFFFFFFFF)
        rest >>= 32
    return key
