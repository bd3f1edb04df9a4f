"""Shared by the benchmarks (bench/bandits.py, bench/privacy.py): machine and code facts,
and a CPU clock for the engine's chunks.

Importing it imports `experiments` (which splits JAX's CPU backend into one device per core,
`experiments.devices`), so a benchmark that imports this module first measures the engine as a
user's run uses it, even where its own code touches JAX before it imports the engine.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import subprocess
import time
from pathlib import Path

import experiments  # noqa: F401  (first: one JAX host device per core, before any backend)


def cpu_name() -> str:
    """The CPU model from /proc/cpuinfo (else what `platform` knows)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def git_state(root: Path, *paths: str) -> str:
    """The short commit hash, plus the uncommitted files under `paths` if there are any."""
    git = subprocess.run(
        ["git", "-C", str(root), "log", "-1", "--format=%h"], capture_output=True, text=True
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "-C", str(root), "status", "--porcelain", *paths],
        capture_output=True,
        text=True,
    ).stdout.split()
    return git + (" (+ uncommitted: " + " ".join(dirty[1::2]) + ")" if dirty else "")


def machine_facts(root: Path, *paths: str, **extra) -> dict:
    """Date, CPU, cores, Python / JAX / NumPy versions, JAX backend, device kind and count (and
    the ``REGRETLAB_HOST_DEVICES`` setting), x64, the git state of `paths`, and `extra`."""
    import jax
    import numpy as np

    return {
        "date": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "jax": jax.__version__,
        "numpy": np.__version__,
        "backend": jax.default_backend(),
        "device": jax.devices()[0].device_kind,
        "devices": len(jax.local_devices()),
        "host_devices_env": os.environ.get("REGRETLAB_HOST_DEVICES", "auto"),
        "x64": bool(jax.config.jax_enable_x64),
        "git": git_state(root, *paths),
        **extra,
    }


class ChunkClock:
    """`progress` callback of `simulate`: process CPU time and rounds at the end of each chunk
    (the first chunk, which may include compilation and warm-up, is the baseline)."""

    def __init__(self) -> None:
        self.marks: list[tuple[float, int]] = []
        self.rounds = 0

    def __call__(self, n: int | None) -> None:
        if n is not None:
            self.rounds += n
            self.marks.append((time.process_time(), self.rounds))

    def cpu_rate(self, seeds: int) -> float | None:
        """Agent-steps per CPU second from the end of the first chunk to the end of the last."""
        if len(self.marks) < 2:
            return None
        (c0, r0), (c1, r1) = self.marks[0], self.marks[-1]
        return seeds * (r1 - r0) / max(c1 - c0, 1e-12)

    def cpu_seconds(self, horizon: int) -> float | None:
        """Run CPU seconds, extrapolated from the end of the first chunk to the end of the last."""
        if len(self.marks) < 2:
            return None
        (c0, r0), (c1, r1) = self.marks[0], self.marks[-1]
        return (c1 - c0) * horizon / max(r1 - r0, 1)
