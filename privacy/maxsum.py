"""Continual MaxSum and SumSelect (Jain, Raskhodnikova, Sivakumar & Smith, "The Price of
Differential Privacy under Continual Observation", ICML 2023, arXiv:2112.00828).

Labels: "recalled" = recalled from the paper, not checked against its text; "reconstructed" = our
construction, not stated in the paper (constants and calibration ours).

A stream of records x_1, ..., x_T in {0, 1}^d (values in [0, 1] are accepted) arrives one per
step; S_t = x_1 + ... + x_t in Z^d. After each record the mechanism releases

* MaxSum: m_t ≈ max_j S_t[j];        error_t = |m_t - max_j S_t[j]|;
* SumSelect: an index j_t;           error_t = max_j S_t[j] - S_t[j_t].

Per-step metric ``error`` (summed by the engine, so cumulative / T is the mean error); final
``max_error`` = max_t error_t, the worst-case error the paper's bounds are about. Problem
statements and error definitions are recalled (Jain et al., ICML 2023; event-level neighbours).

Privacy (every continual mechanism here): event level, neighbouring streams differ in one record
x_t (any change within {0,1}^d, so every coordinate of S_s, s >= t, moves by at most 1), for
streams fixed in advance and for adaptively chosen ones (`privacy.streams.AdaptiveStream`).

* `CounterMaxSum`: ρ-zCDP (d parallel continual counters, the paper's sqrt(d) regime);
* `SparseVectorMaxSum`: ρ-zCDP by default (the paper's T^{1/3} regime), or pure ε-DP (basic
  composition over the k epochs: its error grows as sqrt(T / ε) instead);
* `min_combination`: ρ-zCDP (whichever of the two has the smaller error bound);
* `BatchMaxSum`: each single release is ε-DP, the *sequence* is not private at level ε (a
  batch baseline run independently at every t, for reference only; R5).

All noise is research-mode float noise from `jax.random` (keyed per step), recorded by the
agents' ``noise: research`` field; exact discrete noise is in `privacy.noise`. No agent here
quantises its input, so no input grid applies (records are counted as they are); the env still
declares its records' grid (`MaxSumSpec.inputs`, {0, 1} by construction for the leader and
adaptive streams, value by value for a fixed one) and `CounterMaxSum` passes it to its counters,
whose secure mode refuses values off its grid (`privacy.counters.agent`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import ClassVar, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from scipy import optimize

from experiments.config import ConfigError, check_choice, check_float, check_int
from experiments.protocol import (
    FINAL,
    NONNEGATIVE,
    UNIFORM,
    AgentBase,
    Draw,
    MetricInfo,
    step_key,
)
from privacy.accounting import zcdp_to_dp_cks
from privacy.continual import ContinualSpec
from privacy.counters import COUNTERS
from privacy.streams import (
    AdaptiveStream,
    BernoulliStream,
    FixedStream,
    InputGrid,
    LeaderStream,
    check_exact_sums,
    leader_stream,
)

PROBLEMS = ("maxsum", "sumselect")


# --------------------------------------------------------------------------- environment
class MaxSumSpec(NamedTuple):
    """What a mechanism knows before it starts (static, hashable)."""

    horizon: int
    d: int
    problem: str  # "maxsum" | "sumselect"
    # which grids the records lie on (`privacy.streams.InputGrid`), passed on to the counters
    # of `CounterMaxSum`, whose secure mode would check it at load time; None: not declared
    inputs: InputGrid | None = None


class MaxSumState(NamedTuple):
    t: jax.Array  # steps completed
    x: jax.Array  # (d,) the record shown now
    total: jax.Array  # (d,) exact S_t
    max_error: jax.Array  # () worst error so far


@dataclass(frozen=True)
class ContinualMaxSum:
    """The continual MaxSum / SumSelect environment (observation x_t, action = the release)."""

    stream: LeaderStream | AdaptiveStream | BernoulliStream | FixedStream
    problem: str = "maxsum"
    primary_metric: ClassVar[str] = "error"
    x_label: ClassVar[str] = "step t"

    def metric_info(self) -> dict[str, MetricInfo]:
        """Errors are >= 0: bootstrap intervals and medians."""
        return {
            "error": MetricInfo(label="cumulative error", support=NONNEGATIVE),
            "max_error": MetricInfo(label="max error", kind=FINAL, support=NONNEGATIVE),
        }

    def __post_init__(self):
        check_choice("env.problem", self.problem, PROBLEMS)
        if float(self.stream.bound) > 1.0:
            raise ConfigError(
                f"env.bound: MaxSum records lie in [0, 1]^d (got bound {self.stream.bound:g})"
            )

    def default_params(self) -> jax.Array:
        return self.stream.params()

    def spec(self, params, horizon: int) -> MaxSumSpec:
        self.stream.check_horizon(int(horizon))
        T = int(horizon)
        check_exact_sums(T, 1.0)  # records in {0, 1}^d
        return MaxSumSpec(T, int(self.stream.d), self.problem, self.stream.grid(T))

    def randomness(self, params, action) -> dict:
        return self.stream.randomness()

    def init(self, key: jax.Array, params) -> MaxSumState:
        x = self.stream.first(key, params)
        zero = jnp.zeros((), x.dtype)
        return MaxSumState(jnp.zeros((), jnp.int32), x, jnp.zeros_like(x), zero)

    def observe(self, state: MaxSumState, params) -> jax.Array:
        return state.x

    def error(self, action: jax.Array, total: jax.Array) -> tuple[jax.Array, jax.Array]:
        """(error_t, illegal) of `action` against the sums S_t."""
        top = jnp.max(total)
        if self.problem == "maxsum":
            a = jnp.asarray(action, total.dtype)
            return jnp.abs(a - top), ~jnp.isfinite(a)
        if not jnp.issubdtype(jnp.result_type(action), jnp.integer):
            raise TypeError(f"SumSelect releases an index; got an action of dtype {action.dtype}")
        d = total.shape[0]
        bad = (action < 0) | (action >= d)
        return top - total[jnp.clip(action, 0, d - 1)], bad

    def step(self, rng, state: MaxSumState, action, params):
        total = state.total + state.x
        err, bad = self.error(action, total)
        if getattr(
            self.stream, "adaptive", False
        ):  # the adversary reads the release (adaptive model, Jain et al.)
            nxt = self.stream.next(rng, state.t, params, action, total)
        else:
            nxt = self.stream.next(rng, state.t, params)
        new = MaxSumState(state.t + 1, nxt, total, jnp.maximum(state.max_error, err))
        return new, (), {"error": err, "illegal": bad}

    def final_metrics(self, state: MaxSumState, output, params) -> dict:
        return {"max_error": state.max_error}


def maxsum_leader(
    problem: str = "maxsum",
    d: int = 16,
    p_lead: float = 0.55,
    p_base: float = 0.5,
    period: int = 0,
    switch_horizon: int | None = None,
) -> ContinualMaxSum:
    """Leader stream (R5 a), or leader switching every round(T^{2/3}) steps (R5 b)."""
    return ContinualMaxSum(leader_stream(d, p_lead, p_base, period, switch_horizon), problem)


def maxsum_adaptive(
    problem: str = "maxsum", d: int = 16, p_lead: float = 0.9, p_base: float = 0.5
) -> ContinualMaxSum:
    """Greedy adaptive adversary (R5 c)."""
    return ContinualMaxSum(AdaptiveStream(d, p_lead, p_base), problem)


# --------------------------------------------------------------------------- shared agent bits
def _check_problem(agent_problem: str, spec: MaxSumSpec) -> None:
    if agent_problem != spec.problem:
        raise ConfigError(
            f"problem: the agent is built for {agent_problem!r}, the environment poses"
            f" {spec.problem!r} (set problem: ${{env.problem}})"
        )


def _answer(problem: str, estimate: jax.Array) -> jax.Array:
    """max (MaxSum) or argmax (SumSelect) of per-coordinate estimates (post-processing)."""
    if problem == "maxsum":
        return jnp.max(estimate)
    return jnp.argmax(estimate).astype(jnp.int32)


@dataclass(frozen=True)
class _Agent(AgentBase):
    problem: str = "maxsum"
    noise: str = "research"

    def __post_init__(self):
        check_choice("problem", self.problem, PROBLEMS)
        if self.noise != "research":
            raise ConfigError(
                f"noise: these agents sample float noise, 'research' only (got {self.noise!r})"
            )


# --------------------------------------------------------------------------- (a) counters
def counter_bound(
    counter: str, rho: float, horizon: int, d: int, problem: str, beta: float
) -> float:
    """High-probability (1 - β) bound on the max error of `CounterMaxSum` (reconstructed).

    Every coordinate's error at t is N(0, v_t) with v_t <= max_t Var_t (the counter's exact
    variance oracle); a union bound over d T Gaussians gives |err| <= sqrt(2 v ln(2 d T / β)).
    MaxSum's error is at most that; SumSelect's at most twice that.
    """
    spec = ContinualSpec(horizon, d, 1.0)
    v = float(np.max(COUNTERS[counter](rho=rho).variance(spec)))
    one = math.sqrt(2 * v * math.log(2 * d * horizon / beta))
    return one if problem == "maxsum" else 2 * one


@dataclass(frozen=True)
class CounterMaxSum(_Agent):
    """d parallel continual counters + max / argmax (Jain et al.'s sqrt(d) regime; reconstructed).

    One `privacy.counters` counter of kind `counter` runs on the d-dimensional stream; a record
    changes every coordinate by at most 1, so the joint ℓ2-sensitivity² of C x is d sens²(C) and
    the counter's per-node σ = sqrt(d sens²(C) / (2ρ)) makes all d counters together ρ-zCDP
    (event level, fixed or adaptive streams). The release max_j Ŝ_t[j] (MaxSum) or
    argmax_j Ŝ_t[j] (SumSelect) is post-processing. Binary tree: error Õ(sqrt(d) log^{1.5} T / ε).
    """

    counter: str = "binary"
    rho: float = 0.5

    def __post_init__(self):
        super().__post_init__()
        check_choice("counter", self.counter, tuple(COUNTERS))
        check_float("rho", self.rho, 0.0, low_open=True)

    @cached_property
    def _counter(self):
        return COUNTERS[self.counter](rho=self.rho)

    def init(self, key: jax.Array, spec: MaxSumSpec):
        _check_problem(self.problem, spec)
        return self._counter.init(key, ContinualSpec(spec.horizon, spec.d, 1.0, spec.inputs))

    def act(self, rng, state, obs):
        return _answer(self.problem, self._counter.act({}, state, obs))

    def update(self, state, obs, action, feedback):
        return self._counter.update(state, obs, action, feedback)


# --------------------------------------------------------------------------- (b) sparse vector
class SVTCalibration(NamedTuple):
    """Static parameters of `SparseVectorMaxSum` for one (T, d, problem)."""

    threshold: float  # τ
    epochs: int  # cap k on the number of releases
    eps0: float  # pure-DP budget per epoch: ε1 = ε2 = ε0 / 2
    sensitivity: float  # Δ of the AboveThreshold query (1 MaxSum, 2 SumSelect)
    bound: float  # high-probability error bound τ + B(k)


def _epoch_budget(k: int, rho: float, epsilon: float | None) -> float:
    """ε0 per epoch (an epoch = two ε0/2-DP mechanisms, the release and one AboveThreshold).

    Pure: k ε0 = ε (basic composition). zCDP: an ε0/2-DP mechanism is (ε0/2)²/2-zCDP (Bun &
    Steinke, TCC 2016, Prop. 1.4) and zCDP adds up (their Lemma 2.3), so an epoch is ε0²/4-zCDP
    and k ε0²/4 = ρ gives ε0 = 2 sqrt(ρ/k). (Charging an epoch as one ε0-DP mechanism, ε0²/2,
    would be private too but put sqrt(2) more noise on every release.)
    """
    return epsilon / k if epsilon is not None else 2 * math.sqrt(rho / k)


def _noise_bound(eps0: float, sens: float, problem: str, horizon: int, d: int, beta: float):
    """B: whp bound on |threshold noise| + |query noise| + the release's error (reconstructed).

    Laplace(b) exceeds b ln(1/β') with probability β'; with ε1 = ε2 = ε0/2 the scales are
    2Δ/ε1 + 4Δ/ε1 = 12Δ/ε0, plus 2/ε0 (MaxSum release) or 2 · 2 · 2/ε0 (report-noisy-max gap);
    union bound over 3 T events (3 T d for SumSelect, whose release has d noisy scores).
    """
    release = 2.0 / eps0 if problem == "maxsum" else 8.0 / eps0
    events = 3 * horizon * (1 if problem == "maxsum" else d)
    return (12 * sens / eps0 + release) * math.log(events / beta)


def _fixed_point(two_b, horizon: float) -> float:
    """The auto threshold: the root of f(τ) = τ - 2B(k(τ)) in (0, T], or T if f(T) < 0.

    B(k(τ)) is a step function of τ (k(τ) = ⌈2T/τ⌉ + 1 is an integer), so f jumps up where k
    drops and may have no root: brentq then returns a point just left of a jump, where
    τ < 2B. There τ ← 2B(k(τ)) instead; B is non-increasing in τ (k non-increasing, ε0
    decreasing in k), so the new τ' >= τ has 2B(k(τ')) <= 2B(k(τ)) = τ': the premise τ >= 2B of
    `svt_calibration` (an epoch lasts >= τ/2 steps; our calibration of the sparse-vector
    mechanism of Jain et al., ICML 2023) holds at the returned τ.
    """
    f = lambda tau: tau - two_b(tau)
    if f(horizon) < 0:
        return horizon
    tau = optimize.brentq(f, 1e-9, horizon, xtol=1e-6)
    return min(two_b(tau), horizon) if f(tau) < 0 else tau


def svt_calibration(
    rho: float,
    epsilon: float | None,
    horizon: int,
    d: int,
    problem: str,
    threshold: float | None = None,
    beta: float = 0.1,
) -> SVTCalibration:
    """τ, k and ε0 for `SparseVectorMaxSum` (reconstructed calibration).

    max_j S_t[j] moves by at most 1 per step, so once the release error restarts below B an epoch
    lasts at least τ - B >= τ/2 steps when τ >= 2B: k = ⌈2T/τ⌉ + 1 epochs suffice. With `threshold`
    None, τ solves τ = 2 B(k(τ)) (Brent's method; B decreases in τ), or, where that step function
    has no root, τ = 2 B(k(τ)) just past the jump (`_fixed_point`), so τ >= 2B always, giving
    error <= τ + B <= 1.5 τ ≈ c T^{1/3} log^{2/3}(T d/β) / ρ^{1/3} under zCDP, the T^{1/3} rate
    (Jain et al., ICML 2023, abstract).
    """
    sens = 1.0 if problem == "maxsum" else 2.0

    def k_of(tau: float) -> int:
        return min(horizon, math.ceil(2 * horizon / tau) + 1)

    def b_of(tau: float) -> float:
        return _noise_bound(_epoch_budget(k_of(tau), rho, epsilon), sens, problem, horizon, d, beta)

    if threshold is None:
        tau = _fixed_point(lambda tau: 2 * b_of(tau), float(horizon))
    else:
        tau = check_float("threshold", threshold, 0.0, low_open=True)
    k = k_of(tau)
    eps0 = _epoch_budget(k, rho, epsilon)
    return SVTCalibration(tau, k, eps0, sens, min(tau + b_of(tau), float(horizon)))


class SVTState(NamedTuple):
    key: jax.Array
    t: jax.Array  # steps completed
    total: jax.Array  # (d,) exact S_t
    release: jax.Array  # m̂ (MaxSum, float) or ĵ (SumSelect, int32)
    noisy_threshold: jax.Array  # τ + Lap(2Δ/ε1) of the current epoch
    epochs: jax.Array  # releases so far (<= k)
    scales: jax.Array  # (4,) τ, query scale 4Δ/ε1, threshold scale 2Δ/ε1, release scale
    cap: jax.Array  # k


@dataclass(frozen=True)
class SparseVectorMaxSum(_Agent):
    """Sparse-vector-triggered re-release (Jain et al.'s T^{1/3} regime under zCDP: structure
    recalled, details reconstructed).

    Epoch e (e = 1..k) = one release plus one AboveThreshold instance (Dwork & Roth 2014,
    Alg. 1, Thm 3.23), each with budget ε0/2:

    * release: MaxSum m̂ = max_j S_t[j] + Lap(1/ε2); SumSelect ĵ = argmax_j (S_t[j] + Lap(2/ε2))
      (report noisy max; coordinates move in both directions, hence 2/ε2);
    * AboveThreshold on q_t = |max_j S_t[j] - m̂| (Δ = 1) or max_j S_t[j] - S_t[ĵ] (Δ = 2; both
      with m̂, ĵ previous outputs): noisy threshold τ + Lap(2Δ/ε1), refreshed every epoch; a new
      epoch starts when q_t + Lap(4Δ/ε1) >= noisy threshold and fewer than k epochs have run;
      after k epochs the last release is held (the cap that makes the composition finite).

    Privacy: each epoch is two ε0/2-DP mechanisms, so k epochs are k ε0 = ε pure DP (`epsilon`
    set), or, by ε-DP ⇒ ε²/2-zCDP and additive composition, 2 k (ε0/2)²/2 = k ε0²/4 = ρ-zCDP
    (`epsilon` None; `_epoch_budget`). Under pure DP ε0 = ε/k ∝ τ/T, so τ = 2B solves τ² ∝ T/ε:
    the error grows as sqrt(T/ε), not T^{1/3} (that rate needs the zCDP / approximate-DP
    composition, sqrt(k) instead of k). Adaptive composition
    covers adaptively chosen streams (the claim of Jain et al., ICML 2023, abstract; tested in
    tests/test_privacy_audit.py). Error <= τ + B whp (`svt_calibration`).
    """

    rho: float = 0.5
    epsilon: float | None = None
    threshold: float | None = None
    beta: float = 0.1

    def __post_init__(self):
        super().__post_init__()
        check_float("rho", self.rho, 0.0, low_open=True)
        if self.epsilon is not None:
            check_float("epsilon", self.epsilon, 0.0, low_open=True)
        if self.threshold is not None:
            check_float("threshold", self.threshold, 0.0, low_open=True)
        check_float("beta", self.beta, 0.0, 1.0, low_open=True, high_open=True)

    def calibration(self, spec: MaxSumSpec) -> SVTCalibration:
        return svt_calibration(
            self.rho, self.epsilon, spec.horizon, spec.d, spec.problem, self.threshold, self.beta
        )

    def init(self, key: jax.Array, spec: MaxSumSpec) -> SVTState:
        _check_problem(self.problem, spec)
        c = self.calibration(spec)
        dt = jnp.result_type(float)
        e1 = e2 = c.eps0 / 2
        rel_scale = 1 / e2 if self.problem == "maxsum" else 2 / e2
        scales = jnp.asarray(
            [c.threshold, 4 * c.sensitivity / e1, 2 * c.sensitivity / e1, rel_scale], dt
        )
        release = jnp.zeros((), dt if self.problem == "maxsum" else jnp.int32)
        zero_i = jnp.zeros((), jnp.int32)
        return SVTState(
            key=key,
            t=zero_i,
            total=jnp.zeros((spec.d,), dt),
            release=release,
            noisy_threshold=jnp.zeros((), dt),
            epochs=zero_i,
            scales=scales,
            cap=jnp.asarray(c.epochs, jnp.int32),
        )

    def _advance(self, state: SVTState, obs: jax.Array) -> SVTState:
        """The state after step t = state.t + 1 (its release in `.release`)."""
        d = state.total.shape[0]
        lap = jax.random.laplace(step_key(state.key, state.t + 1), (2 + d,))
        tau, q_scale, thr_scale, rel_scale = state.scales
        total = state.total + obs
        top = jnp.max(total)
        if self.problem == "maxsum":
            query = jnp.abs(top - state.release)
            fresh = (top + rel_scale * lap[2]).astype(state.release.dtype)
        else:
            query = top - total[state.release]
            fresh = jnp.argmax(total + rel_scale * lap[2:]).astype(jnp.int32)
        above = query + q_scale * lap[0] >= state.noisy_threshold
        start = (state.epochs == 0) | (above & (state.epochs < state.cap))
        return state._replace(
            t=state.t + 1,
            total=total,
            release=jnp.where(start, fresh, state.release),
            noisy_threshold=jnp.where(start, tau + thr_scale * lap[1], state.noisy_threshold),
            epochs=state.epochs + start.astype(jnp.int32),
        )

    def act(self, rng, state: SVTState, obs):
        return self._advance(state, obs).release

    def update(self, state: SVTState, obs, action, feedback) -> SVTState:
        return self._advance(state, obs)


# --------------------------------------------------------------------------- min-combination
@dataclass(frozen=True)
class MinCombination(_Agent):
    """Run (a) or (b), whichever has the smaller error bound for (T, d, ρ) (Jain et al.'s final
    mechanism, recalled; trivial error T aside). The choice uses public parameters only, so privacy
    is that of the chosen mechanism: ρ-zCDP. `horizon` and `d` must be those of the run (the config
    interpolates ``${horizon}`` and ``${env.d}``); `init` checks them.
    """

    rho: float = 0.5
    horizon: int = 1024
    d: int = 16
    counter: str = "binary"
    beta: float = 0.1

    def __post_init__(self):
        super().__post_init__()
        check_int("horizon", self.horizon, 1)
        check_int("d", self.d, 1)

    @cached_property
    def bounds(self) -> dict[str, float]:
        svt = svt_calibration(self.rho, None, self.horizon, self.d, self.problem, None, self.beta)
        cnt = counter_bound(self.counter, self.rho, self.horizon, self.d, self.problem, self.beta)
        return {"counters": cnt, "svt": svt.bound}

    @cached_property
    def chosen(self) -> CounterMaxSum | SparseVectorMaxSum:
        if self.bounds["counters"] <= self.bounds["svt"]:
            return CounterMaxSum(self.problem, self.noise, self.counter, self.rho)
        return SparseVectorMaxSum(self.problem, self.noise, self.rho, None, None, self.beta)

    def init(self, key, spec: MaxSumSpec):
        if (spec.horizon, spec.d) != (self.horizon, self.d):
            raise ConfigError(
                f"horizon, d: the combination was chosen for (T, d) = ({self.horizon}, {self.d}),"
                f" the run has ({spec.horizon}, {spec.d})"
            )
        return self.chosen.init(key, spec)

    def act(self, rng, state, obs):
        return self.chosen.act(rng, state, obs)

    def update(self, state, obs, action, feedback):
        return self.chosen.update(state, obs, action, feedback)


def min_combination(
    problem: str = "maxsum",
    rho: float = 0.5,
    horizon: int = 1024,
    d: int = 16,
    counter: str = "binary",
    beta: float = 0.1,
    noise: str = "research",
) -> MinCombination:
    return MinCombination(problem, noise, rho, horizon, d, counter, beta)


# --------------------------------------------------------------------------- batch baseline
@dataclass(frozen=True)
class BatchMaxSum(_Agent):
    """Batch baselines run independently at every t (standard; for reference only).

    MaxSum: max_j S_t[j] + Lap(1/ε) (sensitivity 1, Laplace mechanism, Dwork et al. 2006);
    SumSelect: argmax_j (S_t[j] + Lap(2/ε)) (report noisy max). Each release alone is ε-DP
    (event level); the sequence of T releases is only Tε-DP: NOT a continual-release mechanism.
    Expected error: O(1/ε) and O(log d / ε).
    """

    epsilon: float = 1.0

    def __post_init__(self):
        super().__post_init__()
        check_float("epsilon", self.epsilon, 0.0, low_open=True)

    def randomness(self, spec: MaxSumSpec) -> dict[str, Draw]:
        return {"u": Draw(UNIFORM, (spec.d,))}

    def init(self, key, spec: MaxSumSpec):
        _check_problem(self.problem, spec)
        return jnp.zeros((spec.d,), jnp.result_type(float))

    def act(self, rng, state, obs):
        u = jnp.clip(rng["u"], 1e-7, 1 - 1e-7) - 0.5  # Laplace by inverse CDF (research mode)
        lap = -jnp.sign(u) * jnp.log1p(-2 * jnp.abs(u))
        total = state + obs
        if self.problem == "maxsum":
            return jnp.max(total) + lap[0] / self.epsilon
        return jnp.argmax(total + 2 * lap / self.epsilon).astype(jnp.int32)

    def update(self, state, obs, action, feedback):
        return state + obs


# --------------------------------------------------------------------------- rollouts
def rollout(env, params, agent, horizon: int, seeds: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Final metrics per seed of `seeds` runs of one (env, agent): `jit(vmap over seeds(...))` of
    the engine's one-seed rollout, `experiments.rollout.rollout`.

    A lean stand-in for `experiments.simulate.simulate` for sweeps of many short runs (one small
    program per shape; no chunking or recording). Seed s uses the engine's run key
    ``split(key(seed), seeds)[s]`` and the engine's draws, so every number equals
    ``simulate(env, params, agent, horizon, seeds, seed=seed)``'s final value for that seed.
    Returns the exact sums of the per-step metrics, ``illegal`` (bool per seed) and the
    environment's final metrics; raises if any run took an illegal action.
    """
    from experiments.rollout import rollout as one_seed

    def one(key):
        r = one_seed(env, params, agent, key, horizon)
        out = {k: v for k, v in r.totals.items() if k not in ("rounds", "illegal")}
        out["illegal"] = r.illegal > 0
        out.update(env.final_metrics(r.env_state, agent.output(r.agent_state), params))
        return out

    keys = jax.random.split(jax.random.key(seed), seeds)
    res = {k: np.asarray(v) for k, v in jax.jit(jax.vmap(one))(keys).items()}
    if res["illegal"].any():
        raise RuntimeError("illegal action in a rollout")
    return res


# --------------------------------------------------------------------------- calibration helper
def rho_for(epsilon: float, delta: float) -> float:
    """The largest ρ whose zCDP ⇒ (ε, δ) conversion (CKS20 Cor. 13) gives at most `epsilon`
    (the root to ~1e-12, backed off until its ε is not above `epsilon`)."""
    check_float("epsilon", epsilon, 0.0, low_open=True)

    def excess(r: float) -> float:
        return zcdp_to_dp_cks(r, delta) - epsilon

    lo = 1e-8
    while excess(lo) >= 0:  # tiny ε: ρ ≈ ε² / (4 ln(1/δ)) lies below the usual bracket
        lo /= 16
    rho = optimize.brentq(excess, lo, 10 * epsilon, xtol=1e-15, rtol=1e-12)
    step = 1e-12
    while excess(rho) > 0:  # brentq may stop a hair past the root: back off geometrically
        rho *= 1 - step
        step *= 2
    return rho
