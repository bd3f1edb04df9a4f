"""Single-pass streaming multi-armed bandit (Wang, ICML 2023, arXiv:2306.02208, §1 model).

K arms arrive one after another; the learner holds at most M arms in memory slots and can pull
only arms it holds; an arm that is discarded (dropped or overwritten) is gone; T pulls in total.
One step = one `StreamAction`, applied in the order: drop a slot, read the next stream arm into a
slot (overwriting discards what was there), pull a slot n times (n = 0: no pull). The reward sum of
the n pulls is sampled in one draw (`sampling`: exact BTRS/inversion from pre-drawn uniforms), so
T = 1000 K^3 = 1.25e17 runs exactly.

Rules enforced (an action that breaks one sets the reserved metric ``illegal``; the engine raises):
slots within [0, M); no read past the end of the stream; pulls only from occupied slots; n >= 0;
no pull beyond T in total; no drop of an empty slot.

Per-step metrics: ``rounds`` (= n; reads and drops use 0 rounds), ``regret`` (pseudo-regret
n (mu* - mu_pulled); in ``faithful`` mode the authors' accounting n (mu* - mu_charged), where the
agent names the charged slot: their tower routines charge a comparison pull at the king's
mean), and in faithful mode also ``true_regret``.
Final metrics: ``peak_memory`` (most arms held at once, counted after each step's drop and read),
``arms_read``, ``chosen_gap`` (mu* minus the mean of the arm the agent outputs, a stream position).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from bandits.streaming import instances as inst_mod
from bandits.streaming.instances import InstanceConfig, InstanceState
from bandits.streaming.sampling import bernoulli_sum, binomial_draws, gaussian_sum
from experiments.config import ConfigError, check_choice, check_float, check_int
from experiments.protocol import FINAL, NONNEGATIVE, NORMAL, Draw, MetricInfo

MODES = ("corrected", "faithful")
REWARDS = ("bernoulli", "gaussian")


class StreamAction(NamedTuple):
    """One step: drop slot `drop`, read the next arm into slot `read`, pull slot `pull` n times.

    -1 means "none" for drop/read/pull. `charge` is the slot whose gap the authors' code charges
    (used only by a faithful-mode environment; corrected mode charges the pulled arm).
    """

    drop: jax.Array
    read: jax.Array
    pull: jax.Array
    n: jax.Array
    charge: jax.Array


class StreamObs(NamedTuple):
    rounds: jax.Array  # pulls so far
    arms_read: jax.Array  # stream arms read so far
    oracle_gap: jax.Array  # mu* - second-best mean (read only by faithful Game-of-Arms)


class StreamSpec(NamedTuple):
    """What a streaming agent may know before it starts."""

    num_arms: int
    horizon: int
    memory: int


class StreamParams(NamedTuple):
    means: jax.Array  # explicit means (K,), or (0,) for generated instances


class StreamState(NamedTuple):
    inst: InstanceState
    rounds: jax.Array  # pulls so far
    next_arm: jax.Array  # stream position of the next arm to read
    slot_pos: jax.Array  # (M,) stream position held by each slot, -1 when empty
    slot_mean: jax.Array  # (M,) its mean (cached at read time)
    peak: jax.Array  # most slots occupied at once


@dataclass(frozen=True)
class StreamingBandit:
    """Single-pass streaming bandit with M memory slots and horizon T (see module docstring)."""

    instance: InstanceConfig
    memory: int
    means: tuple[float, ...] | None = None
    reward: str = "bernoulli"
    sigma: float = 1.0
    mode: str = "corrected"
    primary_metric: ClassVar[str] = "regret"
    x_label: ClassVar[str] = "round t"

    def metric_info(self) -> dict[str, MetricInfo]:
        """All metrics are >= 0: bootstrap intervals and medians."""
        return {
            "regret": MetricInfo(label="cumulative regret", support=NONNEGATIVE),
            "true_regret": MetricInfo(label="cumulative pseudo-regret", support=NONNEGATIVE),
            "peak_memory": MetricInfo(label="peak memory (arms)", kind=FINAL, support=NONNEGATIVE),
            "arms_read": MetricInfo(label="arms read", kind=FINAL, support=NONNEGATIVE),
            "chosen_gap": MetricInfo(
                label="gap of the output arm", kind=FINAL, support=NONNEGATIVE
            ),
        }

    @property
    def num_arms(self) -> int:
        return self.instance.K

    @property
    def horizon(self) -> int:
        return self.instance.horizon

    def default_params(self) -> StreamParams:
        m = self.means if self.means is not None else ()
        return StreamParams(jnp.asarray(m, jnp.result_type(float)))

    def spec(self, params: StreamParams, horizon: int) -> StreamSpec:
        if int(horizon) != self.horizon:
            raise ConfigError(f"horizon: must equal env.horizon = {self.horizon} (got {horizon})")
        return StreamSpec(self.num_arms, self.horizon, self.memory)

    def randomness(self, params, action) -> dict[str, Draw]:
        if self.reward == "gaussian":
            return {"z": Draw(NORMAL)}
        out = binomial_draws()
        if self.mode == "faithful":
            out["z"] = Draw(NORMAL)
        return out

    def init(self, key: jax.Array, params: StreamParams) -> StreamState:
        inst = inst_mod.init_instance(self.instance, key, params.means)
        int_t = jnp.result_type(int)
        M = self.memory
        return StreamState(
            inst,
            jnp.zeros((), int_t),
            jnp.zeros((), int_t),
            jnp.full((M,), -1, int_t),
            jnp.zeros((M,), jnp.result_type(float)),
            jnp.zeros((), int_t),
        )

    def observe(self, state: StreamState, params) -> StreamObs:
        return StreamObs(state.rounds, state.next_arm, state.inst.best - state.inst.second)

    def step(self, rng, state: StreamState, action: StreamAction, params: StreamParams):
        M, K, T = self.memory, self.num_arms, self.horizon
        int_t = state.rounds.dtype
        n = action.n.astype(int_t)
        slot_ok = lambda s: (s >= 0) & (s < M)
        occupied = state.slot_pos >= 0
        drop_on = action.drop >= 0
        bad_drop = drop_on & ~(slot_ok(action.drop) & occupied[jnp.clip(action.drop, 0, M - 1)])
        pos = jnp.where(drop_on & (jnp.arange(M) == action.drop), -1, state.slot_pos)
        read_on = action.read >= 0
        bad_read = read_on & (~slot_ok(action.read) | (state.next_arm >= K))
        new_mean = inst_mod.mean_at(
            self.instance, state.inst, params.means, jnp.clip(state.next_arm, 0, K - 1)
        )
        hit = read_on & ~bad_read & (jnp.arange(M) == action.read)
        pos = jnp.where(hit, state.next_arm, pos)
        slot_mean = jnp.where(hit, new_mean, state.slot_mean)
        next_arm = state.next_arm + (read_on & ~bad_read).astype(int_t)
        pull_slot = jnp.clip(action.pull, 0, M - 1)
        pulling = n > 0
        bad_pull = (n < 0) | (
            pulling & (~slot_ok(action.pull) | (pos[pull_slot] < 0) | (state.rounds + n > T))
        )
        illegal = bad_drop | bad_read | bad_pull
        mu = slot_mean[pull_slot]
        n_ok = jnp.where(pulling & ~illegal, n, 0)
        if self.reward == "gaussian":
            reward = gaussian_sum(rng["z"], n_ok, mu, self.sigma)
        else:
            reward = bernoulli_sum(rng, n_ok, mu, self.mode == "faithful")
        nf = n_ok.astype(mu.dtype)
        true_regret = nf * (state.inst.best - mu)
        metrics = {
            "regret": true_regret,
            "rounds": n_ok,
            "illegal": illegal,
        }
        if self.mode == "faithful":
            charge = jnp.where(action.charge >= 0, action.charge, action.pull)
            mu_c = slot_mean[jnp.clip(charge, 0, M - 1)]
            metrics["regret"] = nf * (state.inst.best - mu_c)
            metrics["true_regret"] = true_regret
        peak = jnp.maximum(state.peak, jnp.sum(pos >= 0).astype(int_t))
        new_state = StreamState(state.inst, state.rounds + n_ok, next_arm, pos, slot_mean, peak)
        return new_state, reward, metrics

    def final_metrics(self, state: StreamState, output, params: StreamParams) -> dict:
        dtype = state.inst.best.dtype
        no_answer = isinstance(output, tuple) and not output
        pos = jnp.asarray(-1 if no_answer else output).astype(jnp.int32)
        mu = inst_mod.mean_at(self.instance, state.inst, params.means, jnp.clip(pos, 0))
        gap = jnp.where(pos >= 0, state.inst.best - mu, jnp.nan).astype(dtype)
        return {
            "peak_memory": state.peak.astype(dtype),
            "arms_read": state.next_arm.astype(dtype),
            "chosen_gap": gap,
        }

    def all_means(self, key: jax.Array, params: StreamParams | None = None) -> jax.Array:
        """The K means in stream order of the seed whose env key is `key` (tests, analysis)."""
        params = self.default_params() if params is None else params
        inst = inst_mod.init_instance(self.instance, key, params.means)
        return inst_mod.all_means(self.instance, inst, params.means)


def streaming_bandit(
    K: int | None = 1000,
    horizon: int = 1_000_000_000,
    memory: int = 64,
    instance: str = "clear_cut",
    order: str | None = None,
    means: Sequence[float] | None = None,
    permutation: Sequence[int] | None = None,
    alpha: float | None = None,
    beta: float | None = None,
    reward: str = "bernoulli",
    sigma: float = 1.0,
    mode: str = "corrected",
    best_mean: float = 0.82,
    lb_c: float = 1.0,
    lb_p_special: float = 0.5,
    lb_tail_low: float = 0.0,
    lb_tail_high: float = 1.0,
) -> StreamingBandit:
    """Build and validate a streaming bandit; bad values raise ConfigError naming the field.

    `instance`: clear_cut | mix_in | lower_bound | explicit (needs `means`). `order`: random
    (default; seeded per run) | given (the order of `means`, optionally reordered by
    `permutation`; the lower-bound family's own order) | best_last (adversarial) | best_first.
    `alpha`, `beta`: when given, `horizon` must equal round(alpha K^beta).
    """
    check_choice("env.instance", instance, inst_mod.KINDS)
    if means is not None:
        if instance != "explicit":
            raise ConfigError(f"env.means: only with env.instance=explicit (got {instance})")
        means = [float(m) for m in means]
        if K is not None and len(means) != K:
            raise ConfigError(f"env.K: {K} does not match len(env.means) = {len(means)}")
        K = len(means)
    elif instance == "explicit":
        raise ConfigError("env.means: env.instance=explicit needs a list of means")
    K = check_int("env.K", K, 2)
    horizon = check_int("env.horizon", horizon, 1)
    if horizon < K:
        raise ConfigError(f"env.horizon: must be >= env.K = {K} (got {horizon})")
    check_int("env.memory", memory, 1, 2**31 - 1)  # slot indices are int32
    if alpha is not None or beta is not None:
        if alpha is None or beta is None:
            raise ConfigError("env.alpha: alpha and beta must be given together (T = alpha K^beta)")
        alpha = check_float("env.alpha", alpha, 0.0, low_open=True)
        beta = check_float("env.beta", beta, 0.0)
        want = round(alpha * float(K) ** beta)
        if want != horizon:
            raise ConfigError(
                f"horizon: must equal env.alpha * env.K^env.beta = {want} (got {horizon})"
            )
    default_order = "given" if instance == "lower_bound" else "random"
    order = check_choice("env.order", default_order if order is None else order, inst_mod.ORDERS)
    if instance == "lower_bound" and order != "given":
        raise ConfigError(f"env.order: the lower_bound family fixes its own order (got {order})")
    if order == "given" and instance in ("clear_cut", "mix_in"):
        raise ConfigError(f"env.order: 'given' needs explicit means (instance is {instance})")
    if permutation is not None:
        if instance != "explicit" or order != "given":
            raise ConfigError("env.permutation: only with env.instance=explicit, env.order=given")
        perm = list(permutation)
        if sorted(perm) != list(range(K)) or any(isinstance(p, bool) for p in perm):
            raise ConfigError(f"env.permutation: must be a permutation of 0..{K - 1} (got {perm})")
        means = [means[p] for p in perm]
    check_choice("env.reward", reward, REWARDS)
    check_float("env.sigma", sigma, 0.0, low_open=True)
    check_choice("env.mode", mode, MODES)
    if means is not None:
        for m in means:
            check_float("env.means", m, 0.0, 1.0) if reward == "bernoulli" else check_float(
                "env.means", m
            )
    check_float("env.best_mean", best_mean, 0.0, 1.0)
    check_float("env.lb_c", lb_c, 0.0, low_open=True)
    check_float("env.lb_p_special", lb_p_special, 0.0, 1.0)
    check_float("env.lb_tail_low", lb_tail_low, 0.0, 1.0)
    check_float("env.lb_tail_high", lb_tail_high, 0.0, 1.0)
    cfg = InstanceConfig(
        instance,
        K,
        horizon,
        order,
        best_mean=best_mean,
        lb_c=lb_c,
        lb_p_special=lb_p_special,
        lb_tail_low=lb_tail_low,
        lb_tail_high=lb_tail_high,
    )
    if instance == "lower_bound" and 0.5 + inst_mod.lower_bound_eps(cfg) > 1.0:
        raise ConfigError("env.lb_c: 1/2 + lb_c (K/T)^{1/3} must be <= 1")
    return StreamingBandit(
        cfg, memory, None if means is None else tuple(means), reward, sigma, mode
    )


def horizon_of(K: int, alpha: float, beta: float) -> int:
    """T = round(alpha K^beta), the authors' horizon (`trial_mult_factor`, `trial_exp_factor`)."""
    return int(np.round(alpha * float(K) ** beta))
