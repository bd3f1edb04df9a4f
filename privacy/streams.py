"""Input streams for continual release: x_1, x_2, ... in [0, bound]^d, generated one at a time.

* `BernoulliStream`: x_t[j] ~ Bernoulli(p_j) i.i.d. (one uniform per coordinate and step).
* `FixedStream`: a sequence fixed in advance (non-adaptive), given explicitly.

A stream declares its `bound`; values outside it are a configuration error, never clipped here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from experiments.config import ConfigError, check_float, check_int
from experiments.protocol import UNIFORM, Draw


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
