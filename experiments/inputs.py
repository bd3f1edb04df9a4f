"""Host-side exogenous inputs that stay out of memory: ``.npy`` files read and written by rows.

The engine streams an env's exogenous inputs (`experiments.protocol.Exogenous`) chunk by chunk;
its ``data`` may be anything with NumPy-style row slicing. An ``np.memmap`` works, but every page
it has touched stays mapped into the process (and counts in its resident memory) until it is
closed. `NpyRows` reads the rows each chunk asks for with positioned reads instead, so a trace of
10^7 or 10^9 requests costs the process one chunk of memory; `NpyWriter` writes rows at any
position (a host preparation pass running backwards over a trace writes its results the same way).

    rows = NpyRows("trace.npy")           # shape (T,) or (seeds, T, ...); nothing read yet
    rows[1000:2000]                       # one chunk, read from the file
    with NpyWriter(path, (T,), np.int64) as out:
        out.write(start, values)          # rows [start, start + len(values))
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

CHUNK_ROWS = 1 << 18  # rows per step of a host pass (a few MB of memory)


class NpyRows:
    """A read-only ``.npy`` array (C order) whose row slices are read from the file on demand.

    Supports ``rows[a:b]`` (first axis) and ``rows[:, a:b]`` (second axis, e.g. per-seed inputs
    shaped (seeds, T)), ``shape``, ``dtype``, ``len`` and ``np.asarray`` (reads everything).
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        with open(self.path, "rb") as f:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
            elif version == (2, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
            else:
                raise ValueError(f"{path}: .npy format version {version} is not supported")
            self.offset = f.tell()
        if fortran:
            raise ValueError(f"{self.path}: Fortran-ordered arrays are not supported")
        self.shape, self.dtype = tuple(shape), np.dtype(dtype)
        self.ndim = len(self.shape)
        self._row = int(np.prod(self.shape[1:], dtype=np.int64)) * self.dtype.itemsize

    def __len__(self) -> int:
        return self.shape[0]

    def __array__(self, dtype=None, copy=None):
        out = self[0 : len(self)]
        return out if dtype is None else out.astype(dtype)

    def _read(self, first: int, count: int, byte_offset: int, row_bytes: int, shape) -> np.ndarray:
        with open(self.path, "rb") as f:
            f.seek(byte_offset + first * row_bytes)
            return np.fromfile(f, self.dtype, count * row_bytes // self.dtype.itemsize).reshape(
                count, *shape
            )

    def __getitem__(self, key):
        if isinstance(key, slice):
            a, b, step = key.indices(self.shape[0])
            if step != 1:
                raise IndexError("NpyRows: only contiguous row slices")
            return self._read(a, max(b - a, 0), self.offset, self._row, self.shape[1:])
        if (
            isinstance(key, tuple)
            and len(key) == 2
            and key[0] == slice(None)
            and isinstance(key[1], slice)
        ):
            a, b, step = key[1].indices(self.shape[1])
            if step != 1:
                raise IndexError("NpyRows: only contiguous row slices")
            inner = self.shape[2:]
            row = int(np.prod(inner, dtype=np.int64)) * self.dtype.itemsize
            return np.stack(
                [
                    self._read(a, max(b - a, 0), self.offset + s * self._row, row, inner)
                    for s in range(self.shape[0])
                ]
            )
        if isinstance(key, int | np.integer):
            return self[int(key) : int(key) + 1][0]
        raise IndexError(f"NpyRows: unsupported index {key!r}")


class NpyWriter:
    """Write a ``.npy`` file of a given shape and dtype by row ranges, in any order."""

    def __init__(self, path: str | os.PathLike, shape: tuple[int, ...], dtype):
        self.path, self.shape, self.dtype = Path(path), tuple(shape), np.dtype(dtype)
        header = {"descr": np.lib.format.dtype_to_descr(self.dtype), "fortran_order": False}
        with open(self.path, "wb") as f:
            np.lib.format.write_array_header_1_0(f, {**header, "shape": self.shape})
            self.offset = f.tell()
            f.truncate(self.offset + int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize)
        self._row = int(np.prod(self.shape[1:], dtype=np.int64)) * self.dtype.itemsize
        self._f = open(self.path, "r+b")  # noqa: SIM115 (closed by close / the context manager)

    def write(self, first: int, rows: np.ndarray) -> None:
        rows = np.ascontiguousarray(rows, self.dtype)
        if first < 0 or first + len(rows) > self.shape[0]:
            raise IndexError(f"NpyWriter: rows [{first}, {first + len(rows)}) out of range")
        self._f.seek(self.offset + first * self._row)
        self._f.write(rows.tobytes())

    def close(self) -> NpyRows:
        self._f.close()
        return NpyRows(self.path)

    def __enter__(self) -> NpyWriter:
        return self

    def __exit__(self, *exc) -> None:
        self._f.close()


_SCRATCH: list[str] = []


def scratch_path(name: str) -> Path:
    """A path in this process's scratch directory (removed when the process exits)."""
    if not _SCRATCH:
        _SCRATCH.append(tempfile.mkdtemp(prefix="regretlab-inputs-"))
        atexit.register(shutil.rmtree, _SCRATCH[0], True)
    return Path(_SCRATCH[0]) / name
