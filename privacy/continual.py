"""The continual-release environment (continual observation: Dwork, Naor, Pitassi &
Rothblum, STOC 2010; Chan, Shi & Song, TISSEC 2011).

A stream x_1, ..., x_T in [0, bound]^d arrives one element per step; the observation at step t
is x_t, the action is the released estimate of the prefix sum S_t = x_1 + ... + x_t, and the
error e_t = release_t - S_t is scored. Per-step metrics (increments, summed by the engine):

* ``sq_error``: ‖e_t‖² (summed over coordinates), so the cumulative value / T is the MSE;
* ``abs_error``: max_j |e_t[j]|.

Final metric ``max_abs_error`` = max_t max_j |e_t[j]| (the ℓ∞ error of continual counting),
tracked in the environment state. A non-finite release is illegal.

Exact oracle (`oracle`): for a counter that declares its per-step error variance (`variance`,
the exact oracles of `privacy.factorization` times the node variance) and the values it counts
(`counted_values`: clipped or snapped to its grid), E[sq_error_t] = d Var_t + ‖b_t‖², where
b_t = Σ_{s<=t} (counted x_s - x_s) is the bias of the counted values: zero for an unclipped
stream on the counter's grid, exact for a fixed stream; for a random stream that the counter
would change, no oracle is declared. The engine prints the run's per-step figures beside it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from experiments.protocol import FINAL, NONNEGATIVE, MetricInfo
from privacy.streams import (
    BernoulliStream,
    FixedStream,
    InputGrid,
    bernoulli_stream,
    check_exact_sums,
    fixed_stream,
)


class ContinualSpec(NamedTuple):
    """What a continual-release mechanism knows before it starts (static, hashable)."""

    horizon: int
    d: int
    bound: float  # declared bound on every stream value: x_t[j] in [0, bound]
    # which grids the stream's values lie on (`privacy.streams.InputGrid`): checked at load time
    # by mechanisms that quantise their input, never used in a release; None: not declared
    inputs: InputGrid | None = None


class ContinualState(NamedTuple):
    t: jax.Array  # steps completed
    x: jax.Array  # (d,) the element shown now, x_{t+1}
    total: jax.Array  # (d,) exact S_t
    max_abs: jax.Array  # () max error so far


@dataclass(frozen=True)
class ContinualCounting:
    """Continual counting of a stream (Dwork, Naor, Pitassi & Rothblum, STOC 2010)."""

    stream: BernoulliStream | FixedStream
    primary_metric: ClassVar[str] = "sq_error"  # headline of tables and figures
    x_label: ClassVar[str] = "step t"

    def metric_info(self) -> dict[str, MetricInfo]:
        """Errors are >= 0 and heavy-tailed: bootstrap intervals and medians."""
        return {
            "sq_error": MetricInfo(label="cumulative squared error", support=NONNEGATIVE),
            "abs_error": MetricInfo(label="cumulative max-abs error", support=NONNEGATIVE),
            "max_abs_error": MetricInfo(label="max abs error", kind=FINAL, support=NONNEGATIVE),
        }

    def default_params(self) -> jax.Array:
        return self.stream.params()

    def spec(self, params, horizon: int) -> ContinualSpec:
        self.stream.check_horizon(int(horizon))
        T = int(horizon)
        check_exact_sums(T, float(self.stream.bound))
        return ContinualSpec(T, self.stream.d, float(self.stream.bound), self.stream.grid(T))

    def randomness(self, params, action) -> dict:
        return self.stream.randomness()

    def init(self, key: jax.Array, params) -> ContinualState:
        x = self.stream.first(key, params)
        zero = jnp.zeros((), x.dtype)
        return ContinualState(jnp.zeros((), jnp.result_type(int)), x, jnp.zeros_like(x), zero)

    def observe(self, state: ContinualState, params) -> jax.Array:
        return state.x

    def step(self, rng, state: ContinualState, action, params):
        total = state.total + state.x
        err = jnp.asarray(action, total.dtype) - total
        sq = jnp.sum(err**2)
        ab = jnp.max(jnp.abs(err))
        nxt = self.stream.next(rng, state.t, params)
        new = ContinualState(state.t + 1, nxt, total, jnp.maximum(state.max_abs, ab))
        metrics = {
            "sq_error": sq,
            "abs_error": ab,
            "illegal": ~jnp.all(jnp.isfinite(err)),
        }
        return new, (), metrics

    def final_metrics(self, state: ContinualState, output, params) -> dict:
        return {"max_abs_error": state.max_abs}

    def oracle(self, params, agent, horizon: int) -> dict[str, np.ndarray]:
        """Exact E[sq_error_t], t = 1..T, for `agent` (module docstring); {} where unknown."""
        variance = getattr(agent, "variance", None)
        counted = getattr(agent, "counted_values", None)
        if variance is None or counted is None:
            return {}
        spec = self.spec(params, horizon)
        var = np.asarray(variance(spec), np.float64) * spec.d
        if isinstance(self.stream, FixedStream):
            dtype = np.dtype(jnp.result_type(float))
            x = np.asarray(self.stream.values[:horizon], dtype).astype(np.float64)
            bias = np.cumsum(counted(x, spec) - x, axis=0)
            return {"sq_error": var + np.sum(bias**2, axis=1)}
        support = np.asarray(spec.inputs.held if spec.inputs else (), np.float64)
        if np.any(counted(support, spec) != support):  # a random bias: no exact oracle here
            return {}
        return {"sq_error": var}


def continual_bernoulli(p: float | Sequence[float] = 0.5, d: int = 1) -> ContinualCounting:
    """Counting an i.i.d. Bernoulli(p) stream of d bits per step."""
    return ContinualCounting(bernoulli_stream(p, d))


def continual_fixed(sequence: Sequence, bound: float = 1.0) -> ContinualCounting:
    """Counting a stream fixed in advance (values in [0, bound])."""
    return ContinualCounting(fixed_stream(sequence, bound))
