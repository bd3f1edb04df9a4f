"""Input streams for continual release: x_1, x_2, ... in [0, bound]^d, generated one at a time.

* `BernoulliStream`: x_t[j] ~ Bernoulli(p_j) i.i.d. (one uniform per coordinate and step).
* `FixedStream`: a sequence fixed in advance (non-adaptive), given explicitly.

A stream declares its `bound`; values outside it are a configuration error, never clipped here.

Every stream also declares which dyadic grids 2^-k its values lie on (`InputGrid`, from
``grid(horizon)``), so that a mechanism which quantises its input (the secure counters,
`privacy.counters.secure`) can refuse a value it would round before anything is compiled: by
construction for a random law (its support: {0, 1} for the Bernoulli and MaxSum streams), value
by value for an explicit sequence. A mechanism never reads the values from it: it is a check of
the configuration, made at load time.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from experiments.config import ConfigError, check_float, check_int
from experiments.dyadic import grid_exponent
from experiments.protocol import UNIFORM, Draw

FLOAT32_EXACT_SUM = 2**24  # float32 holds every integer up to 2^24 = 16 777 216, not 2^24 + 1


def check_exact_sums(horizon: int, bound: float) -> None:
    """The envs keep S_t in the run's float dtype: without x64 (float32) a sum of up to T·bound
    stops being exact beyond 2^24 (S + 1 == S), and the scored error with it; refuse that."""
    if not jax.config.jax_enable_x64 and horizon * bound > FLOAT32_EXACT_SUM:
        raise ConfigError(
            f"horizon: sums up to T·bound = {horizon * bound:g} exceed 2^24, where float32"
            " running sums stop being exact; use x64=true or T·bound <= 16777216"
        )


# --------------------------------------------------------------------------- input grids
def snap_to_grid(x: np.ndarray, k: int, grid_bound: int) -> np.ndarray:
    """The secure counters' input map in value units: min(max(round(x 2^k), 0), Δ_g) 2^-k
    (round half to even, as `jnp.round`; `privacy.counters.secure.Secure.snap`), in float64."""
    n = np.minimum(np.clip(np.round(np.asarray(x, np.float64) * 2.0**k), 0, None), grid_bound)
    return n * 2.0**-k


class OffGrid(NamedTuple):
    """What snapping a stream to the grid 2^-k changes (`InputGrid.off_grid`)."""

    count: int | None  # values the snap changes; None: unknown (a random law off the grid)
    total: int | None  # values in the run (T d); None for a random law
    largest_change: float  # max |snapped - value| (nan when unknown)
    first: tuple[int, float] | None  # (1-based step, value) of the first changed value
    exponent: int  # smallest k that holds every value of the stream exactly
    hardest: float  # a value that needs 2^-exponent


@dataclass(frozen=True)
class InputGrid:
    """The distinct values of a stream's first T steps (all coordinates), as the run's float
    dtype holds them, for grid checks at load time (module docstring).

    `counts` and `first` (1-based step of each value's first occurrence) are None for a random
    law, whose `values` are then its support and `law` describes it.
    """

    values: tuple[float, ...]  # distinct values as written (float64)
    held: tuple[float, ...]  # the same values in the run's float dtype
    counts: tuple[int, ...] | None = None
    first: tuple[int, ...] | None = None
    law: str = ""

    def off_grid(self, k: int, grid_bound: int, clip_to: float | None = None) -> OffGrid:
        """The values that `snap_to_grid` (after clipping to `clip_to`, if given) changes."""
        v = np.asarray(self.values, np.float64)
        held = np.asarray(self.held, np.float64)
        if clip_to is not None:
            v, held = np.minimum(v, clip_to), np.minimum(held, clip_to)
        change = np.abs(snap_to_grid(held, k, grid_bound) - v)
        off = change > 0
        exponents = [grid_exponent(float(x)) for x in v]
        i = int(np.argmax(exponents)) if exponents else 0
        exponent, hardest = (exponents[i], float(v[i])) if exponents else (0, 0.0)
        if self.counts is None:  # a random law: decided by its support
            if not off.any():
                return OffGrid(0, None, 0.0, None, exponent, hardest)
            return OffGrid(None, None, float("nan"), None, exponent, hardest)
        counts = np.asarray(self.counts, np.int64)
        first = None
        if off.any():
            i = int(np.argmin(np.where(off, np.asarray(self.first), np.iinfo(np.int64).max)))
            first = (int(self.first[i]), float(self.values[i]))
        return OffGrid(
            int(counts[off].sum()),
            int(counts.sum()),
            float(change.max(initial=0.0)),
            first,
            exponent,
            hardest,
        )


BITS = "values in {0, 1}"  # the law of the Bernoulli and MaxSum streams


@functools.cache
def _bits_grid() -> InputGrid:
    return InputGrid(values=(0.0, 1.0), held=(0.0, 1.0), law=BITS)


@functools.lru_cache(maxsize=32)
def _sequence_grid(values: tuple, horizon: int, dtype: str) -> InputGrid:
    x = np.asarray(values[:horizon], np.float64).reshape(-1)
    d = len(values[0])
    distinct, index, counts = np.unique(x, return_index=True, return_counts=True)
    return InputGrid(
        values=tuple(float(v) for v in distinct),
        held=tuple(float(v) for v in distinct.astype(dtype).astype(np.float64)),
        counts=tuple(int(c) for c in counts),
        first=tuple(int(i) // d + 1 for i in index),
    )


@dataclass(frozen=True)
class BernoulliStream:
    """x_t[j] = 1[u_t[j] < p_j], u uniform; bound 1."""

    p: tuple[float, ...]

    def __post_init__(self):
        if len(self.p) < 1:
            raise ConfigError("env.d: must be an integer >= 1 (got 0)")
        for q in self.p:
            check_float("env.p", q, 0.0, 1.0)

    @property
    def d(self) -> int:
        return len(self.p)

    @property
    def bound(self) -> float:
        return 1.0

    def params(self) -> jax.Array:
        return jnp.asarray(self.p, jnp.result_type(float))

    def check_horizon(self, horizon: int) -> None:
        return None

    def grid(self, horizon: int) -> InputGrid:
        """By construction: values in {0, 1}, on every grid."""
        return _bits_grid()

    def randomness(self) -> dict[str, Draw]:
        return {"u": Draw(UNIFORM, (self.d,))}

    def first(self, key: jax.Array, params: jax.Array) -> jax.Array:
        return (jax.random.uniform(key, (self.d,)) < params).astype(params.dtype)

    def next(self, rng, t: jax.Array, params: jax.Array) -> jax.Array:
        """x_{t+1} given the step's draws (t = rounds completed so far)."""
        return (rng["u"] < params).astype(params.dtype)


@dataclass(frozen=True)
class FixedStream:
    """A sequence fixed in advance: `values` has one row (d values) per step."""

    values: tuple[tuple[float, ...], ...]
    bound: float = 1.0

    def __post_init__(self):
        check_float("env.bound", self.bound, 0.0, low_open=True)
        if len(self.values) < 1:
            raise ConfigError("env.sequence: must hold at least one value")
        d = len(self.values[0])
        if d < 1:
            raise ConfigError("env.d: must be an integer >= 1 (got 0)")
        for t, row in enumerate(self.values):
            if len(row) != d:
                raise ConfigError(f"env.sequence: row {t} has {len(row)} values, expected {d}")
            for v in row:
                ok = isinstance(v, int | float) and not isinstance(v, bool)
                if not ok or not 0.0 <= float(v) <= self.bound:
                    raise ConfigError(
                        f"env.sequence: values must lie in [0, {self.bound:g}]"
                        f" (got {v!r} at step {t + 1})"
                    )

    @property
    def d(self) -> int:
        return len(self.values[0])

    def params(self) -> jax.Array:
        return jnp.asarray(np.asarray(self.values, float), jnp.result_type(float))

    def check_horizon(self, horizon: int) -> None:
        if horizon > len(self.values):
            raise ConfigError(
                f"horizon: {horizon} exceeds the fixed sequence's length {len(self.values)}"
            )

    def grid(self, horizon: int) -> InputGrid:
        """Value by value: the distinct values of the first `horizon` rows, as the run's float
        dtype (float32 unless x64) holds them."""
        return _sequence_grid(self.values, int(horizon), np.dtype(jnp.result_type(float)).name)

    def randomness(self) -> dict[str, Draw]:
        return {}  # a fixed stream needs no randomness

    def first(self, key: jax.Array, params: jax.Array) -> jax.Array:
        return params[0]

    def next(self, rng, t: jax.Array, params: jax.Array) -> jax.Array:
        return params[jnp.minimum(t + 1, params.shape[0] - 1)]


def bernoulli_stream(p: float | Sequence[float] = 0.5, d: int = 1) -> BernoulliStream:
    """d coordinates with success probability `p` (a number, or one per coordinate)."""
    d = check_int("env.d", d, 1)
    if isinstance(p, int | float) and not isinstance(p, bool):
        return BernoulliStream((float(p),) * d)
    probs = tuple(p)
    if len(probs) != d:
        raise ConfigError(f"env.p: {len(probs)} probabilities for d = {d} coordinates")
    return BernoulliStream(tuple(float(q) if isinstance(q, int) else q for q in probs))


def fixed_stream(sequence: Sequence, bound: float = 1.0) -> FixedStream:
    """A fixed stream from a list of numbers (d = 1) or of rows (d values each)."""
    if sequence is None or len(sequence) == 0:
        raise ConfigError("env.sequence: must hold at least one value")
    rows = tuple(tuple(r) if isinstance(r, list | tuple | np.ndarray) else (r,) for r in sequence)
    return FixedStream(rows, bound)


# --------------------------------------------------------------------------- MaxSum streams
# Streams of binary records x_t in {0, 1}^d for continual MaxSum / SumSelect (Jain,
# Raskhodnikova, Sivakumar & Smith, ICML 2023; our reproduction item R5, docs/privacy.md).
# `index` is the 0-based position of the record being generated (x_{index+1}).


def _check_probs(p_lead: float, p_base: float) -> None:
    check_float("env.p_lead", p_lead, 0.0, 1.0)
    check_float("env.p_base", p_base, 0.0, 1.0)


@dataclass(frozen=True)
class LeaderStream:
    """x_t[j] ~ Bernoulli(p_lead) for the leader j = ℓ(t), Bernoulli(p_base) elsewhere (R5 a, b).

    ``period = 0``: coordinate 0 leads throughout (R5 stream a). ``period = P > 0`` (R5 stream b,
    "leader switching"): leadership alternates between coordinates 0 and 1 with a half-period
    offset, ℓ(t) = ⌊(t + ⌊P/2⌋) / P⌋ mod 2 (t = 0-based index). Coordinate 0 leads the first
    P - ⌊P/2⌋ steps, coordinate 1 catches up by t ≈ P and leads by ≈ (p_lead - p_base) P/2 at
    t ≈ 3P/2, and so on: in expectation the arg-max changes at every multiple of P, and the gap
    between the two contenders is a triangle wave of amplitude (p_lead - p_base) P/2, so a stale
    SumSelect answer costs up to that much. The other d - 2 coordinates are background. Our
    construction (not from the paper, which has no experiments): R5 asks for an arg-max that
    changes every T^{2/3} steps.
    """

    d: int
    p_lead: float = 0.55
    p_base: float = 0.5
    period: int = 0
    adaptive: ClassVar[bool] = False
    bound: ClassVar[float] = 1.0

    def __post_init__(self):
        check_int("env.d", self.d, 1)
        _check_probs(self.p_lead, self.p_base)
        check_int("env.period", self.period, 0)

    def params(self) -> jax.Array:
        return jnp.asarray([self.p_lead, self.p_base], jnp.result_type(float))

    def check_horizon(self, horizon: int) -> None:
        return None

    def grid(self, horizon: int) -> InputGrid:
        """By construction: records in {0, 1}^d, on every grid."""
        return _bits_grid()

    def randomness(self) -> dict[str, Draw]:
        return {"u": Draw(UNIFORM, (self.d,))}

    def leader(self, index: jax.Array) -> jax.Array:
        """ℓ(index): 0 without switching, else the alternating contender."""
        if self.period == 0 or self.d == 1:
            return jnp.zeros_like(index)
        return ((index + self.period // 2) // self.period) % 2

    def _record(self, u: jax.Array, index: jax.Array, params: jax.Array) -> jax.Array:
        probs = jnp.where(jnp.arange(self.d) == self.leader(index), params[0], params[1])
        return (u < probs).astype(params.dtype)

    def first(self, key: jax.Array, params: jax.Array) -> jax.Array:
        return self._record(jax.random.uniform(key, (self.d,)), jnp.zeros((), jnp.int32), params)

    def next(self, rng, t: jax.Array, params: jax.Array) -> jax.Array:
        """The record of 0-based index t + 1 (t = steps completed before this step)."""
        return self._record(rng["u"], t + 1, params)


@dataclass(frozen=True)
class AdaptiveStream:
    """An adversary that reads the mechanism's last release and picks the next record (R5 c).

    This is the adaptive model of Jain, Raskhodnikova, Sivakumar & Smith (ICML 2023,
    arXiv:2112.00828, abstract): the stream is chosen online as a function of the outputs so far. In
    the protocol the environment receives the action (the release) in `step` and generates x_{t+1}
    from it; the adversary also knows the true sums S_t (it generated them). Greedy rule (ours, not
    from the paper): assume the release stays put and make the next error as large as possible.

    * SumSelect (integer release ĵ): the strongest rival r = argmax_{j ≠ ĵ} S_t[j] gets
      Bernoulli(p_lead), ĵ gets 0, the rest Bernoulli(p_base) (the rival overtakes ĵ).
    * MaxSum (float release m̂): if m̂ < max_j S_t[j], the leader argmax_j S_t[j] gets
      Bernoulli(p_lead) and the rest Bernoulli(p_base) (widen the underestimate); otherwise the
      record is all zeros (the sums stall under an overestimate).

    x_1 has coordinate 0 at p_lead, the rest at p_base.
    """

    d: int
    p_lead: float = 0.9
    p_base: float = 0.5
    adaptive: ClassVar[bool] = True
    bound: ClassVar[float] = 1.0

    def __post_init__(self):
        check_int("env.d", self.d, 1)
        _check_probs(self.p_lead, self.p_base)

    def params(self) -> jax.Array:
        return jnp.asarray([self.p_lead, self.p_base], jnp.result_type(float))

    def check_horizon(self, horizon: int) -> None:
        return None

    def grid(self, horizon: int) -> InputGrid:
        """By construction: records in {0, 1}^d, on every grid."""
        return _bits_grid()

    def randomness(self) -> dict[str, Draw]:
        return {"u": Draw(UNIFORM, (self.d,))}

    def first(self, key: jax.Array, params: jax.Array) -> jax.Array:
        probs = jnp.where(jnp.arange(self.d) == 0, params[0], params[1])
        return (jax.random.uniform(key, (self.d,)) < probs).astype(params.dtype)

    def probabilities(self, release: jax.Array, totals: jax.Array, params) -> jax.Array:
        """Per-coordinate success probabilities of the next record (the greedy rule)."""
        j = jnp.arange(self.d)
        if jnp.issubdtype(jnp.result_type(release), jnp.integer):
            rival = jnp.argmax(jnp.where(j == release, -jnp.inf, totals))
            probs = jnp.where(j == release, 0.0, params[1])
            return jnp.where(j == rival, params[0], probs)
        lead = jnp.where(j == jnp.argmax(totals), params[0], params[1])
        return jnp.where(release < jnp.max(totals), lead, jnp.zeros_like(lead))

    def next(self, rng, t, params, release, totals) -> jax.Array:
        """The record of 0-based index t + 1, from this step's release and the sums it answered."""
        return (rng["u"] < self.probabilities(release, totals, params)).astype(params.dtype)


def leader_stream(
    d: int = 16,
    p_lead: float = 0.55,
    p_base: float = 0.5,
    period: int = 0,
    switch_horizon: int | None = None,
) -> LeaderStream:
    """A leader stream; with `switch_horizon` = T the period is round(T^{2/3}) (R5 stream b)."""
    if switch_horizon is not None:
        T = check_int("env.switch_horizon", switch_horizon, 1)
        period = max(1, round(T ** (2 / 3)))
    return LeaderStream(d, p_lead, p_base, period)
