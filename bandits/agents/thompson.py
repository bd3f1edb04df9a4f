"""Thompson sampling for Bernoulli (Beta posteriors) and Gaussian rewards.

`ThompsonSampling`: Agrawal & Goyal (2012), "Analysis of Thompson Sampling for the Multi-armed
Bandit Problem", COLT, Algorithm 2 (general rewards in [0, 1]); for {0, 1} rewards it is their
Algorithm 1. With S_i successes and F_i failures, each round draws

    theta_i ~ Beta(S_i + 1, F_i + 1)  for every arm,   plays argmax_i theta_i,

and, after reward r in [0, 1], performs a Bernoulli trial with success probability r: S_i += 1
on success, F_i += 1 otherwise (line 5 of Algorithm 2). The Beta draws use the vectorised
Marsaglia-Tsang sampler of `bandits.agents.gamma` on candidates hashed from the step's key (all
shapes are >= 1 thanks to the Beta(1, 1) prior); argmax_i theta_i is taken as argmax_i G_a,i /
G_b,i (`gamma.beta_argmax`).

`GaussianThompsonSampling`: Agrawal & Goyal (2017), "Near-optimal regret bounds for Thompson
sampling", JACM 64(5), Algorithm 2 (also AISTATS 2013, "Further optimal regret bounds for
Thompson sampling"): with k_i pulls and reward sum s_i,

    theta_i ~ N(s_i / (k_i + 1), 1 / (k_i + 1)),

i.e. the exact posterior of mu_i under a N(0, 1) prior and N(mu_i, 1) likelihood. `sigma` scales
the standard deviation (posterior for a N(0, sigma^2) prior and N(mu_i, sigma^2) likelihood);
sigma = 1 is the paper's algorithm.

Ties go to the lowest arm index (they have probability zero for continuous samples).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import jax
import jax.numpy as jnp

from bandits.agents import gamma
from bandits.agents.stats import ArmStats, add_reward, arm_stats, pulled
from bandits.envs import BanditSpec, check_unit_rewards
from experiments import threefry
from experiments.config import check_float, check_int
from experiments.protocol import KEY, NORMAL, AgentBase, Draw


class BetaState(NamedTuple):
    successes: jax.Array  # (K,) int S_i
    failures: jax.Array  # (K,) int F_i
    keys: jax.Array  # (2,) PRNG keys: sampler fallback, Bernoulli trials


@dataclass(frozen=True)
class ThompsonSampling(AgentBase):
    """Beta-Bernoulli Thompson sampling with Beta(1, 1) priors (Agrawal & Goyal 2012, Alg. 2).

    Each step hashes one declared PRNG key into 1 + `spares` rounds of Marsaglia-Tsang
    candidates (a normal and a uniform) for each of the 2K Gamma variates; a variate keeps its
    first accepted candidate, and the rare variate that rejects them all is finished by the keyed
    fallback of `gamma.gamma_keyed` (only in the lanes that need it). Every value of `spares` is
    exact; it only trades candidates against fallback work. Default 1 (two rounds): the fallback
    is then needed in a few lanes in about a third of the steps at N = 1000 seeds, where with
    no spare round it is needed in dozens of lanes in every step. Rewards must lie in [0, 1] (a
    `Pull`'s reward is the sum of its n rewards).
    """

    spares: int = 1

    def __post_init__(self):
        check_int("spares", self.spares, 0)

    def randomness(self, spec: BanditSpec) -> dict[str, Draw]:
        return {"key": Draw(KEY)}

    def init(self, key, spec: BanditSpec) -> BetaState:
        check_unit_rewards(spec, "Beta-Bernoulli Thompson sampling")
        z = jnp.zeros((spec.num_arms,), jnp.result_type(int))
        return BetaState(successes=z, failures=z, keys=jax.random.split(key))

    def act(self, rng, state: BetaState, t) -> jax.Array:
        dtype = jnp.result_type(float)
        a = (state.successes + 1).astype(dtype)
        b = (state.failures + 1).astype(dtype)
        ab = jnp.concatenate([a, b])
        g = gamma.gamma_keyed(ab, rng["key"], 1 + self.spares, state.keys[0], t)
        k = a.shape[0]
        return gamma.beta_argmax(g[:k], g[k:])

    def update(self, state: BetaState, t, action, reward) -> BetaState:
        arm, n = pulled(action)
        wins = bernoulli_trials(state.keys[1], t, reward).astype(state.successes.dtype)
        hot = jnp.arange(state.successes.shape[0]) == arm
        return BetaState(
            successes=state.successes + jnp.where(hot, wins, 0),
            failures=state.failures + jnp.where(hot, n - wins, 0),
            keys=state.keys,
        )


def bernoulli_trials(key: jax.Array, t: jax.Array, reward: jax.Array) -> jax.Array:
    """Successes of the Bernoulli trial(s) for `reward` (Agrawal & Goyal 2012, Alg. 2, line 5).

    One reward r in [0, 1] succeeds with probability r. A `Pull`'s sum s of n rewards counts
    floor(s) + Bernoulli(s - floor(s)) successes: exact for {0, 1} rewards, mean-preserving
    otherwise. The uniform is `gamma.unit_interval` of the first words of `step_key(key, t)`
    (= `fold_in(key, t)`); it is computed for every reward and used only when the reward is
    fractional (a select: one hash per step, cheaper under `vmap` than a conditional loop).
    """
    whole = jnp.floor(reward)
    frac = reward - whole
    # step_key(key, t) = fold_in(key, t), hashed as straight-line code (`experiments.threefry`:
    # the same bits as `jax.random.fold_in`, without its per-call loop of small kernels)
    kd = threefry.fold_in(jax.random.key_data(key), t)
    hi, lo = threefry.threefry2x32(kd[0], kd[1], jnp.uint32(0), jnp.uint32(1))  # key_words(., 1)
    u = gamma.unit_interval(hi, lo, reward.dtype)
    return whole + ((frac > 0) & (u < frac))


class GaussianTSState(NamedTuple):
    stats: ArmStats


@dataclass(frozen=True)
class GaussianThompsonSampling(AgentBase):
    """Gaussian Thompson sampling: theta_i ~ N(s_i/(k_i+1), sigma^2/(k_i+1)) (Agrawal & Goyal
    2017, Alg. 2, sigma = 1)."""

    sigma: float = 1.0

    def __post_init__(self):
        check_float("sigma", self.sigma, 0.0, low_open=True)

    def randomness(self, spec: BanditSpec) -> dict[str, Draw]:
        return {"z": Draw(NORMAL, (spec.num_arms,))}

    def init(self, key, spec: BanditSpec) -> GaussianTSState:
        return GaussianTSState(arm_stats(spec.num_arms))

    def act(self, rng, state: GaussianTSState, t) -> jax.Array:
        stats = state.stats
        k1 = (stats.counts + 1).astype(stats.means.dtype)
        posterior_mean = stats.means * (k1 - 1) / k1  # s / (k + 1)
        theta = posterior_mean + self.sigma * jax.lax.rsqrt(k1) * rng["z"]
        return jnp.argmax(theta)

    def update(self, state: GaussianTSState, t, action, reward) -> GaussianTSState:
        return GaussianTSState(add_reward(state.stats, action, reward)[0])
