"""One JAX host device per core by default (`experiments.devices`) and the seed axis split over
the largest device count that divides it (`experiments.simulate.seed_devices`).

That the split runs give the one-device numbers bit for bit is checked in
tests/test_launchers.py (processes that compile: slow tier); here are the rules and the entry
points: importing any of them first gives the device count before JAX starts its backend.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import jax
import pytest

from experiments import devices
from experiments.config import LOOPS_CHOICES, RNG_CHOICES, ConfigError, check_environment
from experiments.devices import HOST_DEVICES_ENV, requested_host_devices, use_all_cores
from experiments.simulate import seed_devices, seed_sharding

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def cores(monkeypatch):
    """`available_cores` set by the test."""

    def set_cores(n: int) -> None:
        monkeypatch.setattr(devices, "available_cores", lambda: n)

    return set_cores


def test_default_and_auto_are_one_device_per_core(cores):
    cores(16)
    assert requested_host_devices({}) == 16  # the default: one host device per core
    assert requested_host_devices({HOST_DEVICES_ENV: ""}) == 16
    assert requested_host_devices({HOST_DEVICES_ENV: "auto"}) == 16
    assert requested_host_devices({HOST_DEVICES_ENV: " AUTO "}) == 16
    cores(1)
    assert requested_host_devices({}) is None  # one core: JAX's one host device
    assert requested_host_devices({HOST_DEVICES_ENV: "auto"}) is None


def test_opt_out_and_forced_counts(cores):
    cores(16)
    assert requested_host_devices({HOST_DEVICES_ENV: "1"}) is None
    assert requested_host_devices({HOST_DEVICES_ENV: "4"}) == 4
    assert requested_host_devices({HOST_DEVICES_ENV: "32"}) == 32  # more than cores: as asked
    auto = {HOST_DEVICES_ENV: "auto"}
    assert requested_host_devices({**auto, "REGRETLAB_SHARD_SEEDS": "0"}) is None  # would idle


def test_the_users_device_count_wins(cores):
    cores(16)
    flags = "--xla_cpu_use_thunk_runtime=false --xla_force_host_platform_device_count=3"
    auto = {HOST_DEVICES_ENV: "auto"}
    assert requested_host_devices({**auto, "XLA_FLAGS": flags}) is None
    assert requested_host_devices({**auto, "XLA_FLAGS": "--xla_cpu_use_thunk_runtime=false"}) == 16
    assert requested_host_devices({**auto, "JAX_NUM_CPU_DEVICES": "3"}) is None


@pytest.mark.parametrize("value", ["0", "-2", "two", "1.5"])
def test_a_bad_setting_is_one_clear_error(value):
    with pytest.raises(
        ValueError, match=f"^{HOST_DEVICES_ENV}: must be auto or a positive integer"
    ):
        requested_host_devices({HOST_DEVICES_ENV: value})


GOOD = {
    "REGRETLAB_HOST_DEVICES": " Auto ",
    "REGRETLAB_SHARD_SEEDS": "0",
    "REGRETLAB_RNG": "threefry-partitionable",
    "REGRETLAB_LOOPS": "accelerator",
    "REGRETLAB_LANE_BLOCK": "256",
    "REGRETLAB_SCAN_UNROLL": "8",
}
BAD = [  # (variable, value) that its reader would refuse with a traceback, or misread
    ("REGRETLAB_HOST_DEVICES", "abc"),
    ("REGRETLAB_HOST_DEVICES", "0"),
    ("REGRETLAB_SHARD_SEEDS", "maybe"),  # read as "not 0": on
    ("REGRETLAB_SHARD_SEEDS", "false"),  # likewise: it would not turn sharding off
    ("REGRETLAB_RNG", "bogus"),
    ("REGRETLAB_RNG", ""),  # set but empty: no generator of that name
    ("REGRETLAB_LOOPS", "gpu"),
    ("REGRETLAB_LANE_BLOCK", "-1"),
    ("REGRETLAB_LANE_BLOCK", "0"),
    ("REGRETLAB_SCAN_UNROLL", "x"),
    ("REGRETLAB_SCAN_UNROLL", "2.0"),
]


def test_good_environment_variables_pass():
    assert check_environment(GOOD) == []
    assert check_environment({}) == []
    assert check_environment({"REGRETLAB_SHARD_SEEDS": "", "REGRETLAB_LOOPS": " "}) == []


@pytest.mark.parametrize(("name", "value"), BAD)
def test_each_bad_environment_variable_is_one_line_naming_it(name, value):
    """One line: the variable, what it allows, what it got (`config.check_environment`)."""
    (line,) = check_environment({**GOOD, name: value})
    assert line.startswith(f"{name}: must be ") and line.endswith(f"(got {value.strip()!r})")


def test_the_checked_choices_are_the_readers_choices():
    from experiments.rollout import GENERATORS
    from experiments.simulate import LOOPS

    assert RNG_CHOICES == GENERATORS and LOOPS_CHOICES == LOOPS


def test_lane_block_names_the_variable(monkeypatch):
    from experiments.batched_cond import LANE_BLOCK_ENV, lane_block

    monkeypatch.setenv(LANE_BLOCK_ENV, "-1")
    with pytest.raises(ConfigError, match=rf"^{LANE_BLOCK_ENV}: must be a positive integer"):
        lane_block()
    monkeypatch.setenv(LANE_BLOCK_ENV, "3")
    assert lane_block() == 3


def test_a_library_import_raises_and_a_command_exits_with_one_line():
    """A fresh interpreter importing the package with a bad variable: a ConfigError naming it;
    the same import under a `regretlab*` command (`python -m experiments.tables`): one line,
    exit 2, before the command's own code runs."""
    env = {**os.environ, "REGRETLAB_SHARD_SEEDS": "maybe"}
    lib = subprocess.run([sys.executable, "-c", "import experiments"], capture_output=True,
                         text=True, env=env, cwd=ROOT, timeout=300)  # fmt: skip
    assert lib.returncode == 1
    assert (
        lib.stderr.strip()
        .splitlines()[-1]
        .startswith("experiments.config.ConfigError: REGRETLAB_SHARD_SEEDS: must be 0")
    )
    cmd = subprocess.run([sys.executable, "-m", "experiments.tables", "."], capture_output=True,
                         text=True, env=env, cwd=ROOT, timeout=300)  # fmt: skip
    assert cmd.returncode == 2
    assert cmd.stderr.splitlines() == [
        "regretlab-table: error: REGRETLAB_SHARD_SEEDS: must be 0 (one device per job) or 1"
        " (unset: 1, seeds split over devices) (got 'maybe')"
    ]


def test_too_late_leaves_the_backend_alone(cores):
    """Once JAX's backend runs (as in this test process), nothing is changed and nothing raised."""
    cores(5)
    before = len(jax.local_devices())
    assert use_all_cores({}) is None
    assert len(jax.local_devices()) == before


@pytest.mark.parametrize(
    ("seeds", "devices", "expected"),
    [
        (1000, 8, 8),  # a multiple: every device
        (100, 16, 10),  # the largest divisor <= 16
        (1000, 16, 10),
        (6, 4, 3),
        (4, 2, 2),
        (3, 2, 1),
        (97, 16, 1),  # a prime above the device count: one device
        (10, 16, 5),  # fewer seeds than devices: two seeds per device
        (4, 4, 2),  # at least two seeds per device (a one-lane batch compiles differently)
        (2, 16, 1),
        (1, 16, 1),
        (12, 1, 1),
    ],
)
def test_seed_devices_is_the_largest_divisor(seeds, devices, expected):
    """The largest n <= devices dividing the seeds with at least two seeds per device."""
    assert seed_devices(seeds, devices) == expected


def test_shard_seeds_off_means_one_device(monkeypatch):
    monkeypatch.setenv("REGRETLAB_SHARD_SEEDS", "0")
    assert seed_devices(1000, 8) == 1
    assert seed_sharding(1000) is None


def test_seed_sharding_uses_the_first_devices():
    n = len(jax.local_devices())
    sharding = seed_sharding(n * 6)
    if n == 1:
        assert sharding is None
    else:
        assert list(sharding.mesh.devices) == jax.local_devices()
        assert sharding.mesh.axis_names == ("seed_devices",)


ENTRY_POINTS = [
    "experiments.run",  # the `regretlab` command, launcher workers (`python -m experiments.run`)
    "experiments.plot",
    "experiments.tables",
    "experiments.reproduce",
    "bench._common",  # imported first by the benchmarks
]


@pytest.mark.parametrize("module", ENTRY_POINTS)
def test_entry_points_split_the_host_before_jax_starts(module):
    """A fresh process importing `module` (then asking JAX for its devices) has the set count."""
    env = {**os.environ, HOST_DEVICES_ENV: "3"}
    for name in ("XLA_FLAGS", "JAX_NUM_CPU_DEVICES", "REGRETLAB_SHARD_SEEDS", "JAX_PLATFORMS"):
        env.pop(name, None)
    env["JAX_PLATFORMS"] = "cpu"
    code = f"import {module}, jax; print(len(jax.local_devices()))"
    r = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT, timeout=300
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.split()[-1] == "3"
