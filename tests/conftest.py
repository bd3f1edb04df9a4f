"""Shared test set-up.

- The worked examples of `examples/` are importable as top-level modules (as
  `PYTHONPATH=examples` makes them for the command line).
- JAX's global flags are restored after every test. `experiments.run.prepare` sets
  ``jax_enable_x64`` from the config (a streaming config turns it on), so an in-process CLI test
  would otherwise leave float64 on for whichever tests the same xdist worker runs next: their
  engine draws then become float64 uniforms and a NumPy reference built on them no longer
  matches a float32 run of the command line.
"""

import sys
from pathlib import Path

import jax
import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
if str(EXAMPLES) not in sys.path:
    sys.path.insert(0, str(EXAMPLES))

_GLOBAL_FLAGS = ("jax_enable_x64", "jax_threefry_partitionable")


@pytest.fixture(autouse=True)
def _restore_jax_flags():
    before = {name: getattr(jax.config, name) for name in _GLOBAL_FLAGS}
    yield
    for name, value in before.items():
        if getattr(jax.config, name) != value:
            jax.config.update(name, value)
