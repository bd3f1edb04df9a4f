"""The state of a continual counter agent: what every counter keeps, plus the strategy's and the
noise backend's own states."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax


class CounterState(NamedTuple):
    key: jax.Array  # the key `init` received; step t's keys are step_key(key, t, ...)
    t: jax.Array  # steps completed
    total: jax.Array  # (d,) exact prefix sum of the counted inputs (secure: snapped, grid units)
    strategy: Any  # the strategy's state (research: one step ahead, after step t + 1)
    noise: Any  # the noise backend's state (`ResearchState` or `SecureState`)
