"""Stochastic K-armed bandit environments (Bernoulli and Gaussian rewards).

Pure functions of explicit state (gymnax style). An action is an arm index (one round) or a
`Pull(arm, n)`: n pulls of one arm in one step, whose reward sum is drawn in one go from its law,
so long horizons need not be simulated round by round:

* Bernoulli arms: Binomial(n, mu) by `bandits.streaming.sampling.binomial` (Hörmann's BTRS for
  n q >= 10, q = min(mu, 1 - mu), its acceptance test in Loader's saddle-point form; inversion
  below): exact in law up to floating-point rounding (the pre-drawn uniforms' grid, the
  arithmetic of the float type), provided the count n is representable: n <= 2^24 in float32.
  Without x64 a larger Pull is an illegal action (the engine stops with the step and lane);
  agents that pull up to T rounds at once refuse T > 2^24 at set-up (`check_exact_horizon`).
  (`jax.random.binomial`, used before, is not Binomial in float32 at
  n = 10^7: a randomized-PIT KS test against scipy rejects it at p ~ 1e-6 with 4e5 draws.)
* Gaussian arms: n mu + sigma sqrt(n) Z (exact in law; n as a float of the means' dtype).

Per-step metrics: ``regret`` (pseudo-regret increment, n (mu* - mu_a)) and ``realized_regret``
(n mu* - reward). Reference: Lattimore & Szepesvári, "Bandit Algorithms" (2020), §4.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from bandits.streaming import sampling
from experiments.config import ConfigError, check_choice, check_float, check_int
from experiments.protocol import NONNEGATIVE, NORMAL, UNIFORM, Draw, MetricInfo


class Pull(NamedTuple):
    """Pull `arm` `n` times in one step (n >= 1)."""

    arm: jax.Array
    n: jax.Array


class BanditSpec(NamedTuple):
    """What a bandit agent may know before it starts (`reward_range`: where one round's reward
    lies, e.g. (0, 1) for Bernoulli arms, None when the env does not say; agents for bounded
    rewards check it)."""

    num_arms: int
    horizon: int
    reward_range: tuple[float, float] | None = None


def check_unit_rewards(spec: BanditSpec, agent: str) -> None:
    """Refuse an env whose rewards may leave [0, 1], for agents whose algorithm needs them."""
    if spec.reward_range is None:
        return
    low, high = spec.reward_range
    if low < 0.0 or high > 1.0:
        raise ConfigError(
            f"needs rewards in [0, 1] ({agent}; this env's lie in [{low:g}, {high:g}]);"
            " for Gaussian rewards use gaussian_thompson, or ucb1 with its width scaled to the"
            " noise (agents.ucb1.c = 8 sigma^2; c = 2 assumes [0, 1]); moss assumes [0, 1]"
        )


class BanditParams(NamedTuple):
    means: jax.Array  # (K,)
    gaps: jax.Array  # (K,) mu* - mu_a
    best: jax.Array  # () mu*
    sigma: jax.Array  # () reward noise (Gaussian arms; unused for Bernoulli)


class BanditState(NamedTuple):
    t: jax.Array  # rounds completed


def make_means(
    K: int,
    generator: str = "linspace",
    low: float = 0.1,
    high: float = 0.9,
    gap: float = 0.1,
    instance_seed: int = 0,
) -> np.ndarray:
    """Arm means from a generator.

    ``linspace``: linspace(low, high, K); ``uniform``: K i.i.d. Uniform(low, high) draws
    (numpy, seeded by `instance_seed`); ``gap``: one best arm at `high`, the others at high - gap.
    """
    K = check_int("env.K", K, 2)
    check_choice("env.generator", generator, ("linspace", "uniform", "gap"))
    low, high = check_float("env.low", low), check_float("env.high", high)
    if low > high:
        raise ConfigError(f"env.low: must be <= env.high (got low={low}, high={high})")
    if generator == "linspace":
        return np.linspace(low, high, K)
    if generator == "uniform":
        return np.random.default_rng(check_int("env.instance_seed", instance_seed, 0)).uniform(
            low, high, K
        )
    gap = check_float("env.gap", gap, 0.0, low_open=True)
    return np.concatenate([np.full(K - 1, high - gap), [high]])


@dataclass(frozen=True)
class _KArmed:
    means: tuple[float, ...]
    reward_range: ClassVar[tuple[float, float]] = (-math.inf, math.inf)
    primary_metric: ClassVar[str] = "regret"
    x_label: ClassVar[str] = "round t"

    def metric_info(self) -> dict[str, MetricInfo]:
        """Pseudo-regret is >= 0 (bootstrap interval, median); realized regret is real."""
        return {
            "regret": MetricInfo(label="cumulative pseudo-regret", support=NONNEGATIVE),
            "realized_regret": MetricInfo(label="cumulative realized regret"),
        }

    @property
    def num_arms(self) -> int:
        return len(self.means)

    def _noise_sd(self) -> float:
        """`BanditParams.sigma` (a placeholder 1 for arms without Gaussian noise)."""
        return 1.0

    def default_params(self) -> BanditParams:
        m = jnp.asarray(self.means, jnp.result_type(float))
        return BanditParams(m, m.max() - m, m.max(), jnp.asarray(self._noise_sd(), m.dtype))

    def spec(self, params: BanditParams, horizon: int) -> BanditSpec:
        return BanditSpec(self.num_arms, int(horizon), self.reward_range)

    def init(self, key: jax.Array, params: BanditParams) -> BanditState:
        return BanditState(jnp.zeros((), jnp.result_type(int)))

    def observe(self, state: BanditState, params: BanditParams) -> jax.Array:
        return state.t

    def final_metrics(self, state, output, params) -> dict:
        return {}

    def _outcome(self, state, action, reward, n, params):
        arm = action.arm if isinstance(action, Pull) else action
        illegal = (arm < 0) | (arm >= self.num_arms) | (n < 1)
        metrics = {
            "regret": params.gaps[arm] * n,
            "realized_regret": params.best * n - reward,
            "illegal": illegal,
        }
        if isinstance(action, Pull):
            metrics["rounds"] = n
        return BanditState(state.t + n), reward, metrics


@dataclass(frozen=True)
class BernoulliBandit(_KArmed):
    """K arms with Bernoulli(mu_a) rewards. One round uses one uniform: r = 1[u < mu_a]; a
    `Pull(arm, n)` one Binomial(n, mu_a) sum (`bandits.streaming.sampling.binomial`, from the
    draws of `sampling.binomial_draws`; module docstring)."""

    reward_range: ClassVar[tuple[float, float]] = (0.0, 1.0)

    def __post_init__(self):
        _check_means(self.means, bernoulli=True)

    def randomness(self, params, action) -> dict[str, Draw]:
        return sampling.binomial_draws() if isinstance(action, Pull) else {"u": Draw(UNIFORM)}

    def step(self, rng, state, action, params):
        if not isinstance(action, Pull):
            n = jnp.ones((), state.t.dtype)
            reward = (rng["u"] < params.means[action]).astype(params.means.dtype)
            return self._outcome(state, action, reward, n, params)
        n, mu = action.n, params.means[action.arm]
        reward = sampling.binomial(rng["u"], rng["key"], n, mu)
        state, reward, metrics = self._outcome(state, action, reward, n, params)
        if params.means.dtype == jnp.float32:  # a count past 2^24 is not a float32 integer
            metrics["illegal"] = metrics["illegal"] | (n > EXACT_FLOAT32)
        return state, reward, metrics


@dataclass(frozen=True)
class GaussianBandit(_KArmed):
    """K arms with N(mu_a, sigma^2) rewards; n pulls sum to n mu + sigma sqrt(n) Z exactly."""

    sigma: float = 1.0

    def _noise_sd(self) -> float:
        return self.sigma

    def __post_init__(self):
        _check_means(self.means, bernoulli=False)
        check_float("env.sigma", self.sigma, 0.0, low_open=True)

    def randomness(self, params, action) -> dict[str, Draw]:
        return {"z": Draw(NORMAL)}

    def step(self, rng, state, action, params):
        arm = action.arm if isinstance(action, Pull) else action
        n = action.n if isinstance(action, Pull) else jnp.ones((), state.t.dtype)
        nf = n.astype(params.means.dtype)
        reward = nf * params.means[arm] + params.sigma * jnp.sqrt(nf) * rng["z"]
        return self._outcome(state, action, reward, n, params)


EXACT_FLOAT32 = 2**24  # float32 holds every integer up to this, and no odd one beyond


def check_exact_horizon(horizon: int) -> None:
    """Without x64, float32 reward sums (e.g. `bandits.linear_bai.PhaseStats`) and Binomial draws
    (BTRS rounds k = ⌊…⌋ in float32: past n q = 2^24 only even counts come out) are exact only
    while T <= 2^24: a larger T is refused in one line."""
    if horizon > EXACT_FLOAT32 and not jax.config.jax_enable_x64:
        raise ConfigError(
            f"horizon: T = {horizon} > 2^24 = {EXACT_FLOAT32}: float32 reward sums and Binomial"
            " draws are not exact there; use x64=true (without the CLI: JAX_ENABLE_X64=1)"
        )


def _check_means(means: Sequence[float], bernoulli: bool) -> None:
    if len(means) < 2:
        raise ConfigError(f"env.means: need at least 2 arms (got {len(means)})")
    for m in means:
        if bernoulli:
            check_float("env.means", m, 0.0, 1.0)
        else:
            check_float("env.means", m)


def _resolve_means(K, means, generator, low, high, gap, instance_seed) -> tuple[float, ...]:
    if means is not None:
        means = [
            float(m) if isinstance(m, int | float) and not isinstance(m, bool) else m for m in means
        ]
        if K is not None and len(means) != K:
            raise ConfigError(f"env.K: {K} does not match len(env.means) = {len(means)}")
        return tuple(means)
    return tuple(float(m) for m in make_means(K, generator, low, high, gap, instance_seed))


def bernoulli_bandit(
    K: int | None = 10,
    means: Sequence[float] | None = None,
    generator: str = "linspace",
    low: float = 0.1,
    high: float = 0.9,
    gap: float = 0.1,
    instance_seed: int = 0,
) -> BernoulliBandit:
    """A Bernoulli bandit from explicit `means` or from a generator (see `make_means`)."""
    if means is None and generator == "gap" and isinstance(gap, int | float) and gap > high:
        raise ConfigError(
            f"env.gap: must be <= env.high = {high} (the other arms' mean high - gap must be a"
            f" Bernoulli mean in [0, 1]; got gap={gap})"
        )
    return BernoulliBandit(_resolve_means(K, means, generator, low, high, gap, instance_seed))


def gaussian_bandit(
    K: int | None = 10,
    means: Sequence[float] | None = None,
    generator: str = "linspace",
    low: float = 0.1,
    high: float = 0.9,
    gap: float = 0.1,
    instance_seed: int = 0,
    sigma: float = 1.0,
) -> GaussianBandit:
    """A Gaussian bandit (noise `sigma`) from explicit `means` or from a generator."""
    return GaussianBandit(_resolve_means(K, means, generator, low, high, gap, instance_seed), sigma)
