"""Shared test set-up: the worked examples of `examples/` are importable as top-level modules
(as `PYTHONPATH=examples` makes them for the command line)."""

import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
if str(EXAMPLES) not in sys.path:
    sys.path.insert(0, str(EXAMPLES))
