"""Hyperparameters as arguments: the numbers of an env or agent object, lifted out of its program.

Environments and agents are small frozen objects whose fields are their hyperparameters (UCB1's
`c`, a bandit's `means`, a counter's `rho`). Closed over as Python numbers they become constants
of the compiled program, so every value of a sweep compiles again. `lift` splits an object into

* its *numbers*: the float attributes (and tuples of floats) of the object and of the objects it
  holds, passed to the compiled program as arguments (traced, weakly typed like Python floats),
* a hashable *static key*: everything else (ints, strings, bools, shapes; the object's type),
  which decides the program, and
* `rebuild(numbers)`: a shallow copy of the object with the numbers replaced (no `__init__` runs,
  so no validation sees a tracer).

A component that uses a float to make a shape or to branch in Python cannot take it traced; the
engine then compiles that component with its numbers as constants (`Lifted.static`), as before.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

_LEAF = "<number>"


class Lifted(NamedTuple):
    """An object split into its numbers and the rest (see the module docstring)."""

    key: Any  # hashable: type and every non-float attribute, recursively
    numbers: tuple[float, ...]
    rebuild: Callable[[tuple], Any]

    @staticmethod
    def static(obj: Any) -> Lifted:
        """No lifting: the object with all its numbers as constants (keyed by the object itself
        where it is hashable, else by a key that matches nothing else)."""
        try:
            key = ("constants", type(obj), obj)
            hash(key)
        except TypeError:
            key = ("constants", type(obj), object())
        return Lifted(key, (), lambda numbers: obj)

    @property
    def mode(self) -> str:
        """``arguments`` (numbers traced), ``constants`` (fallback) or ``none`` (no numbers)."""
        if self.key[0] == "constants":
            return "constants"
        return "arguments" if self.numbers else "none"


def _is_float(x: Any) -> bool:
    return isinstance(x, float | np.floating) and not isinstance(x, bool)


def freeze(x: Any, depth: int = 0) -> Any:
    """A hashable stand-in for a static attribute, or raise TypeError."""
    if depth > 8:
        raise TypeError("too deep")
    if x is None or isinstance(x, bool | int | str | bytes | type | np.integer | np.bool_):
        return x
    if isinstance(x, np.ndarray):
        return ("ndarray", x.shape, x.dtype.str, x.tobytes())
    if isinstance(x, tuple | list):
        return (type(x).__name__, tuple(freeze(v, depth + 1) for v in x))
    if isinstance(x, dict):
        return ("dict", tuple(sorted((k, freeze(v, depth + 1)) for k, v in x.items())))
    if isinstance(x, frozenset | set):
        return ("set", frozenset(freeze(v, depth + 1) for v in x))
    if hasattr(x, "__dict__") and not callable(x):
        return (type(x), tuple(sorted((k, freeze(v, depth + 1)) for k, v in vars(x).items())))
    hash(x)
    return ("opaque", x)


def _float_fields(obj: Any) -> set[str]:
    """Dataclass fields annotated as plain floats (``float``, ``float | None``)."""
    if not dataclasses.is_dataclass(obj):
        return set()
    plain = {"float", "float | None", "None | float", "Optional[float]"}
    return {
        f.name for f in dataclasses.fields(obj) if str(f.type).strip() in plain or f.type is float
    }


def _slots(obj: Any) -> list[str]:
    return sorted(vars(obj)) if hasattr(obj, "__dict__") else []


def lift(obj: Any) -> Lifted:
    """Split `obj` into (static key, numbers, rebuild). Falls back to `Lifted.static` when an
    attribute cannot be keyed (the object then compiles as before)."""
    try:
        return _lift(obj, 0)
    except TypeError:
        return Lifted.static(obj)


def _lift(obj: Any, depth: int) -> Lifted:
    if depth > 4:
        raise TypeError("too deep")
    keys, numbers, parts = [], [], []  # parts: (name, kind, count or sub-rebuild)
    floats = _float_fields(obj)
    for name in _slots(obj):
        value = vars(obj)[name]
        if name in floats and isinstance(value, int | np.integer) and not isinstance(value, bool):
            value = float(value)  # `agents.ucb1.c=1` from the command line: a float field's 1.0
        if _is_float(value):
            keys.append((name, _LEAF))
            numbers.append(float(value))
            parts.append((name, "float", 1))
        elif isinstance(value, tuple) and value and all(_is_float(v) for v in value):
            keys.append((name, _LEAF, len(value)))
            numbers.extend(float(v) for v in value)
            parts.append((name, "tuple", len(value)))
        elif dataclasses.is_dataclass(value) and not isinstance(value, type):
            sub = _lift(value, depth + 1)
            keys.append((name, sub.key))
            numbers.extend(sub.numbers)
            parts.append((name, "object", (len(sub.numbers), sub.rebuild)))
        else:
            keys.append((name, freeze(value)))
    key = (type(obj), tuple(keys))
    hash(key)

    def rebuild(values: tuple) -> Any:
        new = copy.copy(obj)
        i = 0
        for name, kind, info in parts:
            if kind == "float":
                value, i = values[i], i + 1
            elif kind == "tuple":
                value, i = tuple(values[i : i + info]), i + info
            else:
                count, sub_rebuild = info
                value, i = sub_rebuild(tuple(values[i : i + count])), i + count
            object.__setattr__(new, name, value)
        return new

    return Lifted(key, tuple(numbers), rebuild)
