"""One JAX device per CPU core by default, so that the engine's seed sharding uses every core.

JAX's CPU backend is one device, and a vmapped step of small kernels mostly runs on one core.
Split into n host devices, the CPU backend runs n programs side by side, and the engine splits
the seed axis over them (`experiments.simulate.seed_sharding`); each device runs its own seeds'
lanes as a program of its own (``jax.shard_map``: reductions over the seeds inside a step, such
as a multi-round chunk's "any lane active" or a batched cond's "any lane", stay on the device,
no collectives), so the results equal a one-device run's bit for bit (tests/test_launchers.py).

`use_all_cores` sets JAX's ``jax_num_cpu_devices`` option (the process-local form of XLA's
``--xla_force_host_platform_device_count``) to the cores this process may run on, before JAX
initialises its backend. `experiments/__init__.py` calls it first, so every entry point that
imports the package (the command line, plot / tables / reproduce, launcher workers, benchmarks,
tests) gets it. It is a JAX option of this process, not an environment variable: a child process
(a launcher's worker, a SLURM job on a node with other cores) counts its own cores when it imports
the package. It only shapes the CPU platform: where a GPU is the default backend, the engine's
devices are the GPUs (`jax.local_devices()`), and the host devices stay idle.

``REGRETLAB_HOST_DEVICES``: unset, empty or ``auto``, one device per core of `available_cores`
(the default); ``=k``, k devices; ``=1``, one host device (JAX's own default: the opt-out).
Measured on 2 loaded cores (load 14-17; bench/results.md, bench/streaming_results.md,
2026-12-04), the CPU seconds of 2 devices against 1: UCB1 1.05x, Thompson sampling 0.93x,
streaming uniform 0.98x (with plain sharding, before the per-device programs: 1.6x), the
counters' R2 run 0.97x; on an idle 16-core host UCB1 ran 4-5x faster on 10 devices than on one.
Also left alone:
- ``REGRETLAB_SHARD_SEEDS=0`` (the seed axis is not sharded, so more devices would sit idle);
- a device count the user set: ``--xla_force_host_platform_device_count`` in ``XLA_FLAGS``, or
  ``JAX_NUM_CPU_DEVICES``, or ``jax.config.update("jax_num_cpu_devices", k)`` before the import;
- JAX's backend already initialised when the package is first imported (too late to change).

Every ``REGRETLAB_*`` variable the engine reads is checked here, when the package is first
imported and before any of them is read (`refuse_bad_environment`; the allowed values are in
`experiments.config.ENVIRONMENT`): a value its reader would refuse (``REGRETLAB_RNG=bogus``) or
silently misread (``REGRETLAB_SHARD_SEEDS=maybe``) stops a ``regretlab*`` command with one line
per variable, naming it and what it allows, and exit status 2; imported as a library, the
package raises `ConfigError` with that line.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

from experiments.config import ConfigError, check_environment, environment_error

HOST_DEVICES_ENV = "REGRETLAB_HOST_DEVICES"
XLA_FLAG = "--xla_force_host_platform_device_count"


def available_cores() -> int:
    """The CPU cores this process may run on: its affinity mask (``taskset``, cgroups cpusets,
    SLURM's ``--cpus-per-task``), else ``os.cpu_count()``."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def requested_host_devices(environ: Mapping[str, str] | None = None) -> int | None:
    """The host device count to set from `environ`, or None to leave JAX's default alone.

    Raises ConfigError (a ValueError) on a ``REGRETLAB_HOST_DEVICES`` that is not ``auto`` or a
    positive integer.
    """
    environ = os.environ if environ is None else environ
    raw = environ.get(HOST_DEVICES_ENV, "").strip().lower()
    if raw in ("", "auto"):  # the default: one device per core
        count = available_cores()
    elif raw.isdigit() and int(raw) >= 1:
        count = int(raw)
    else:
        raise environment_error(HOST_DEVICES_ENV, environ[HOST_DEVICES_ENV])
    if count < 2 or environ.get("REGRETLAB_SHARD_SEEDS") == "0":
        return None
    if XLA_FLAG.lstrip("-") in environ.get("XLA_FLAGS", "") or environ.get("JAX_NUM_CPU_DEVICES"):
        return None  # the user's own count wins
    return count


def use_all_cores(environ: Mapping[str, str] | None = None) -> int | None:
    """Split JAX's CPU backend into `requested_host_devices` devices; return the count set, or
    None where nothing was set (see the module docstring for when). With the process's own
    environment (`environ` None) its ``REGRETLAB_*`` variables are checked first
    (`refuse_bad_environment`)."""
    if environ is None:
        refuse_bad_environment()
    count = requested_host_devices(environ)
    if count is None:
        return None
    import jax  # importing JAX does not initialise a backend; the first array or device query does

    if jax.config.jax_num_cpu_devices >= 0:  # set in this process before the package's import
        return None
    try:
        jax.config.update("jax_num_cpu_devices", count)
    except RuntimeError:  # a backend is already initialised: its device count stays
        return None
    return count


COMMANDS = {  # module run with ``python -m`` -> the command it is
    "experiments.run": "regretlab",
    "experiments.plot": "regretlab-plot",
    "experiments.tables": "regretlab-table",
    "experiments.reproduce": "regretlab-reproduce",
}


def command_name() -> str | None:
    """The ``regretlab*`` command this process runs (its console script, or ``python -m`` of
    the module behind it), else None (the package imported as a library)."""
    name = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else ""
    if name in COMMANDS.values():
        return name
    orig = list(getattr(sys, "orig_argv", []))
    if "-m" in orig[:-1]:
        return COMMANDS.get(orig[orig.index("-m") + 1])
    return None


def refuse_bad_environment(environ: Mapping[str, str] | None = None) -> None:
    """Stop on ``REGRETLAB_*`` variables set to values their readers do not allow
    (`experiments.config.check_environment`): a ``regretlab*`` command prints one line per
    variable and exits with status 2 (this runs while the package is imported, before the
    command's own code, which could not catch it); a library import raises `ConfigError`."""
    errors = check_environment(environ)
    if not errors:
        return
    command = command_name()
    if command is None:
        raise ConfigError(errors[0])
    for line in errors:
        print(f"{command}: error: {line}", file=sys.stderr)
    sys.exit(2)
