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


# --------------------------------------------------------------------------- environment variables
# The REGRETLAB_* variables the engine reads, each with what it allows (`check_environment`).
# The readers (experiments.rollout, .simulate, .batched_cond, .devices) keep their own names of
# these choices; tests/test_devices.py checks that they agree.
RNG_CHOICES = ("threefry", "threefry-partitionable")  # REGRETLAB_RNG (experiments.rollout)
LOOPS_CHOICES = ("cpu", "accelerator")  # REGRETLAB_LOOPS (experiments.simulate)
SHARD_SEEDS_CHOICES = ("0", "1")  # REGRETLAB_SHARD_SEEDS: 0 off, 1 (or unset) on
ENVIRONMENT = {  # name -> what it allows, as the error line says it
    "REGRETLAB_HOST_DEVICES": "auto or a positive integer (unset: auto, one device per core)",
    "REGRETLAB_SHARD_SEEDS": "0 (one device per job) or 1 (unset: 1, seeds split over devices)",
    "REGRETLAB_RNG": f"one of {', '.join(RNG_CHOICES)} (unset: {RNG_CHOICES[0]})",
    "REGRETLAB_LOOPS": f"one of {', '.join(LOOPS_CHOICES)} (unset: by the default backend)",
    "REGRETLAB_LANE_BLOCK": "a positive integer (unset: 1 on the CPU, 256 on an accelerator)",
    "REGRETLAB_SCAN_UNROLL": "a positive integer (unset: 1)",
}


def environment_error(name: str, raw: str) -> ConfigError:
    """The one-line error for the environment variable `name` set to `raw`."""
    return ConfigError(f"{name}: must be {ENVIRONMENT[name]} (got {raw!r})")


def env_positive_int(name: str, environ=None) -> int | None:
    """The environment variable `name` as an integer >= 1, None where unset or empty; a
    ConfigError (one line: the variable and what it allows) otherwise."""
    import os

    raw = (os.environ if environ is None else environ).get(name, "").strip()
    if not raw:
        return None
    if not raw.isdigit() or int(raw) < 1:  # isdigit: no sign, no spaces, no "1e3", no "2.0"
        raise environment_error(name, raw)
    return int(raw)


def check_environment(environ=None) -> list[str]:
    """One line per REGRETLAB_* variable of `environ` (default `os.environ`) set to a value its
    reader would refuse or silently misread: checked once, before anything reads them, by every
    command line (`experiments.devices.refuse_bad_environment`)."""
    import os

    environ = os.environ if environ is None else environ
    errors = []

    def raw(name: str) -> str:
        return environ.get(name, "").strip()

    host = raw("REGRETLAB_HOST_DEVICES").lower()
    if host not in ("", "auto") and (not host.isdigit() or int(host) < 1):
        errors.append(environment_error("REGRETLAB_HOST_DEVICES", raw("REGRETLAB_HOST_DEVICES")))
    # as each reader compares: REGRETLAB_SHARD_SEEDS and REGRETLAB_RNG as set (an empty
    # REGRETLAB_RNG is no generator), REGRETLAB_LOOPS stripped
    shard = environ.get("REGRETLAB_SHARD_SEEDS", "")
    if shard and shard not in SHARD_SEEDS_CHOICES:
        errors.append(environment_error("REGRETLAB_SHARD_SEEDS", shard))
    if "REGRETLAB_RNG" in environ and environ["REGRETLAB_RNG"] not in RNG_CHOICES:
        errors.append(environment_error("REGRETLAB_RNG", environ["REGRETLAB_RNG"]))
    loops = raw("REGRETLAB_LOOPS")
    if loops and loops not in LOOPS_CHOICES:
        errors.append(environment_error("REGRETLAB_LOOPS", loops))
    for name in ("REGRETLAB_LANE_BLOCK", "REGRETLAB_SCAN_UNROLL"):
        try:
            env_positive_int(name, environ)
        except ConfigError as e:
            errors.append(e)
    return [str(e) for e in errors]
