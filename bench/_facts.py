"""Machine and code facts recorded by the benchmarks (bench/bandits.py, bench/privacy.py)."""

from __future__ import annotations

import platform
import subprocess
from pathlib import Path


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
