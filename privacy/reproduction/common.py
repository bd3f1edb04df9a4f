"""Helpers shared by the items: resumable caches of computations that do not go through the
engine (exact oracles are recomputed; Monte Carlo sums and sweeps are cached), formatting."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np

from experiments.reproduce import Reproduction
from experiments.results import atomic_write


def cache_dir(r: Reproduction, item: str) -> Path:
    d = r.out_dir / "runs" / item
    d.mkdir(parents=True, exist_ok=True)
    return d


def cached_json(r: Reproduction, item: str, name: str, compute: Callable[[], object]):
    """`compute()` once per output directory: a finished result is read back (resume)."""
    path = cache_dir(r, item) / f"{name}.json"
    if path.is_file():
        return json.loads(path.read_text())
    value = compute()
    text = json.dumps(value)
    atomic_write(path, lambda p: p.write_text(text))
    return json.loads(text)


def cached_npz(
    r: Reproduction, item: str, name: str, compute: Callable[[], dict[str, np.ndarray]]
) -> dict[str, np.ndarray]:
    """Like `cached_json` for NumPy arrays (an .npz written atomically)."""
    path = cache_dir(r, item) / f"{name}.npz"
    if path.is_file():
        with np.load(path) as f:
            return {k: f[k] for k in f.files}
    value = compute()

    def write(p: Path) -> None:
        with open(p, "wb") as fh:
            np.savez(fh, **value)

    atomic_write(path, write)
    return value


def sig_unit(target: float, digits: int = 3) -> float:
    """One unit in the `digits`-th significant digit of `target`."""
    return 10.0 ** (math.floor(math.log10(abs(target))) - digits + 1)


def pow2(T: int) -> str:
    """``2^k`` for a power of two, else the number."""
    k = int(T).bit_length() - 1
    return f"2^{k}" if 1 << k == T else str(T)
