"""Configuration errors and the small checks every domain uses to validate its parameters.

A bad value fails before anything is compiled, with one line that names the field and what is
allowed, e.g. ``env.K: must be an integer >= 2 (got 0)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any


class ConfigError(ValueError):
    """A configuration value is out of its allowed range or inconsistent with another."""


def check_int(name: str, value: Any, low: int | None = None, high: int | None = None) -> int:
    """`value` as an int within [low, high], or ConfigError naming `name`."""
    ok = isinstance(value, int) and not isinstance(value, bool)
    if ok and (low is None or value >= low) and (high is None or value <= high):
        return value
    raise ConfigError(f"{name}: must be an integer {_range(low, high)} (got {value!r})")


def check_float(
    name: str,
    value: Any,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """`value` as a finite float in the interval given, or ConfigError naming `name`."""
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if ok:
        v = float(value)
        if low is not None and (v < low or (low_open and v == low)):
            ok = False
        if high is not None and (v > high or (high_open and v == high)):
            ok = False
    if ok:
        return float(value)
    lo = "" if low is None else ("(" if low_open else "[") + f"{low:g}"
    hi = "" if high is None else f"{high:g}" + (")" if high_open else "]")
    interval = f"in {lo or '(-inf'}, {hi or 'inf)'}"
    raise ConfigError(f"{name}: must be a finite number {interval} (got {value!r})")


def one_line(e: BaseException) -> str:
    """An exception's message on one line (OmegaConf's ``full_key: ...`` trailer dropped)."""
    return " ".join(str(e).split()).split(" full_key:")[0] or type(e).__name__


def check_choice(name: str, value: Any, allowed: Sequence[str]) -> str:
    if value in allowed:
        return value
    raise ConfigError(f"{name}: must be one of {', '.join(allowed)} (got {value!r})")


def _range(low, high) -> str:
    if low is not None and high is not None:
        return f"in [{low}, {high}]"
    if low is not None:
        return f">= {low}"
    if high is not None:
        return f"<= {high}"
    return ""
