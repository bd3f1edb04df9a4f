"""Helpers shared by the items: resumable caches of computations that do not go through the
engine (exact oracles are recomputed; Monte Carlo sums and sweeps are cached), formatting.

A cached value is stored with the code revision that computed it
(`experiments.results.git_revision`: HEAD, ``-dirty`` when tracked files differ) and is reused
only by the same revision: a rerun after a code change recomputes it instead of reporting a
number that the current code would not give (e.g. a threshold calibration that changed)."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np

from experiments.reproduce import Reproduction
from experiments.results import atomic_write, git_revision


def cache_dir(r: Reproduction, item: str) -> Path:
    d = r.out_dir / "runs" / item
    d.mkdir(parents=True, exist_ok=True)
    return d


def cached_json(r: Reproduction, item: str, name: str, compute: Callable[[], object]):
    """`compute()` once per output directory and code revision: a result finished by this
    revision is read back (resume); one of another revision (or of an older format) is
    recomputed."""
    path = cache_dir(r, item) / f"{name}.json"
    revision = git_revision()
    if path.is_file():
        stored = json.loads(path.read_text())
        fresh = isinstance(stored, dict) and stored.keys() == {"git", "value"}
        if fresh and stored["git"] == revision:
            return stored["value"]
    text = json.dumps({"git": revision, "value": compute()})
    atomic_write(path, lambda p: p.write_text(text))
    return json.loads(text)["value"]


def cached_npz(
    r: Reproduction, item: str, name: str, compute: Callable[[], dict[str, np.ndarray]]
) -> dict[str, np.ndarray]:
    """Like `cached_json` for NumPy arrays (an .npz written atomically; the revision is stored
    as the array ``_git``)."""
    path = cache_dir(r, item) / f"{name}.npz"
    revision = str(git_revision())
    if path.is_file():
        with np.load(path) as f:
            if _GIT in f.files and str(f[_GIT]) == revision:
                return {k: f[k] for k in f.files if k != _GIT}
    value = compute()
    if _GIT in value:
        raise ValueError(f"cached_npz: {_GIT!r} is reserved for the code revision")

    def write(p: Path) -> None:
        with open(p, "wb") as fh:
            np.savez(fh, **value, **{_GIT: np.asarray(revision)})

    atomic_write(path, write)
    return value


_GIT = "_git"  # the code revision's entry in a cached .npz


def sig_unit(target: float, digits: int = 3) -> float:
    """One unit in the `digits`-th significant digit of `target`."""
    return 10.0 ** (math.floor(math.log10(abs(target))) - digits + 1)


def pow2(T: int) -> str:
    """``2^k`` for a power of two, else the number."""
    k = int(T).bit_length() - 1
    return f"2^{k}" if 1 << k == T else str(T)
