"""Gymnasium wrappers of the K-armed bandit environments, for users who bring their own agents.

    import gymnasium
    import bandits.gym  # registers the ids below

    env = gymnasium.make("regretlab/BernoulliBandit-v0", means=[0.3, 0.5, 0.7], horizon=1000)
    obs, info = env.reset(seed=0)
    obs, reward, terminated, truncated, info = env.step(2)
    # or N(mu_a, sigma^2) rewards:
    env = gymnasium.make("regretlab/GaussianBandit-v0", means=[0.0, 0.5], horizon=100, sigma=1.0)

One episode is one bandit run of `horizon` rounds (Lattimore & Szepesvári, "Bandit Algorithms",
2020, §4.1: in round t the learner picks A_t and observes X_t ~ P_{A_t}).

* action: an arm, ``Discrete(K)``.
* observation: the number of rounds completed, ``Discrete(horizon + 1)`` (0 after reset). It is
  the functional env's own observation: a stochastic bandit has no state the learner can see.
* reward: the sampled reward X_t (Bernoulli(mu_a), or N(mu_a, sigma^2)).
* terminated: always False (no terminal state); truncated: True on the step completing round
  `horizon`. Stepping again before `reset` raises RuntimeError.
* info: ``regret`` (pseudo-regret increment mu* - mu_a), ``realized_regret`` (mu* - X_t),
  ``rounds`` (rounds completed).

Randomness (`experiments.gym.FunctionalGymEnv`, the base of every regretlab gymnasium wrapper):
``reset(seed=s)`` sets the JAX key `experiments.gym.seed_key(s)` (without a seed, the first reset
draws one from ``np_random``; later ones continue the stream). Each step splits the key (key, sub =
split(key)) and draws the env's declared random inputs from sub (a reset draws nothing). This
per-step path is for interoperability; experiments use `experiments.simulate`, which draws
randomness in bulk.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np

from bandits.envs import BanditState, BernoulliBandit, GaussianBandit
from experiments.config import check_int
from experiments.gym import FunctionalGymEnv, register
from experiments.protocol import KEY, NORMAL, UNIFORM, Draw

BERNOULLI_ID = "regretlab/BernoulliBandit-v0"
GAUSSIAN_ID = "regretlab/GaussianBandit-v0"


def draw(key: jax.Array, spec: Mapping[str, Draw]) -> dict[str, jax.Array]:
    """One step's random inputs: an independent subkey per declared name (sorted by name)."""
    out = {}
    for k, name in zip(jax.random.split(key, len(spec)), sorted(spec), strict=True):
        d = spec[name]
        if d.kind == UNIFORM:
            out[name] = jax.random.uniform(k, d.shape)
        elif d.kind == NORMAL:
            out[name] = jax.random.normal(k, d.shape)
        elif d.kind == KEY:
            out[name] = jax.random.split(k, d.shape) if d.shape else k
        else:
            raise ValueError(f"unknown draw kind {d.kind!r}; allowed: uniform, normal, key")
    return out


class BanditEnv(FunctionalGymEnv):
    """A K-armed functional bandit (`BernoulliBandit` or `GaussianBandit`) as a `gymnasium.Env`
    (`experiments.gym.FunctionalGymEnv`: key stream, compiled step, checks)."""

    kind = "bandit"
    reset_uses_key = False  # the start of a run is deterministic (round 0)

    def __init__(
        self,
        bandit: BernoulliBandit | GaussianBandit,
        horizon: int,
        render_mode: str | None = None,
    ):
        super().__init__(bandit.default_params(), render_mode)
        self.bandit = bandit
        self.horizon = check_int("horizon", horizon, 1)
        self.action_space = gymnasium.spaces.Discrete(bandit.num_arms)
        self.observation_space = gymnasium.spaces.Discrete(self.horizon + 1)
        arm = jax.ShapeDtypeStruct((), self._int)
        self._spec = dict(bandit.randomness(self.params, arm))

    def reset_fn(self, key, params) -> BanditState:
        return BanditState(jnp.zeros((), self._int))

    def step_fn(self, key, state: BanditState, arm, params):
        new, reward, metrics = self.bandit.step(draw(key, self._spec), state, arm, params)
        return new, jnp.stack([reward, metrics["regret"], metrics["realized_regret"]])

    def observation(self, state) -> np.int64:
        return np.int64(self.steps_taken)  # rounds completed (no transfer to read it)

    def transition(self, before, state, out, action):
        reward, regret, realized = np.asarray(out, np.float64).tolist()  # one transfer
        t = self.steps_taken
        info = {"regret": regret, "realized_regret": realized, "rounds": t}
        return np.int64(t), reward, False, t == self.horizon, info

    def illegal_action(self, action) -> str:
        return f"action: must be an arm in 0..{self.bandit.num_arms - 1} (got {action!r})"


def make_bernoulli(
    means: Sequence[float], horizon: int, render_mode: str | None = None
) -> BanditEnv:
    """Entry point of ``regretlab/BernoulliBandit-v0``: arms with Bernoulli(means[a]) rewards."""
    return BanditEnv(BernoulliBandit(tuple(float(m) for m in means)), horizon, render_mode)


def make_gaussian(
    means: Sequence[float], horizon: int, sigma: float = 1.0, render_mode: str | None = None
) -> BanditEnv:
    """Entry point of ``regretlab/GaussianBandit-v0``: arms with N(means[a], sigma^2) rewards."""
    bandit = GaussianBandit(tuple(float(m) for m in means), float(sigma))
    return BanditEnv(bandit, horizon, render_mode)


def register_envs() -> None:
    """Register the bandit ids with gymnasium (idempotent: known ids are left alone)."""
    register(BERNOULLI_ID, "bandits.gym:make_bernoulli")
    register(GAUSSIAN_ID, "bandits.gym:make_gaussian")


register_envs()
