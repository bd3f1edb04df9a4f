"""Shared test set-up.

- The worked examples of `examples/` are importable as top-level modules (as
  `PYTHONPATH=examples` makes them for the command line).
- JAX's global flags are restored after every test. `experiments.run.prepare` sets
  ``jax_enable_x64`` from the config (a streaming config turns it on), so an in-process CLI test
  would otherwise leave float64 on for whichever tests the same xdist worker runs next: their
  engine draws then become float64 uniforms and a NumPy reference built on them no longer
  matches a float32 run of the command line.
- Under pytest-xdist every worker keeps one JAX host device (``REGRETLAB_HOST_DEVICES=1``
  unless the caller set it): xdist already runs one worker process per core, and the default
  one device per core inside each would put 2 x 2 device threads on the 2 cores (the tier
  measured 7:20 against 6:50 wall on this machine). The split runs are tested by name in
  fresh processes (tests/test_devices.py, tests/test_launchers.py).
"""

import os
import sys
from pathlib import Path

import jax
import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
if str(EXAMPLES) not in sys.path:
    sys.path.insert(0, str(EXAMPLES))

if os.environ.get("PYTEST_XDIST_WORKER") and "REGRETLAB_HOST_DEVICES" not in os.environ:
    os.environ["REGRETLAB_HOST_DEVICES"] = "1"  # before any test module imports `experiments`

_GLOBAL_FLAGS = ("jax_enable_x64", "jax_threefry_partitionable")


@pytest.fixture(autouse=True)
def _restore_jax_flags():
    before = {name: getattr(jax.config, name) for name in _GLOBAL_FLAGS}
    yield
    for name, value in before.items():
        if getattr(jax.config, name) != value:
            jax.config.update(name, value)
