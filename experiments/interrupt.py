"""A Ctrl-C (or a SIGTERM, e.g. a SLURM job's time limit) that is not lost.

Python raises `KeyboardInterrupt` at the next bytecode of the main thread. While a compiled
program runs, every SIGINT waits for it to return, and the one raise may then land in a
finalizer (a device array's ``__del__``), which prints "Exception ignored" and swallows it:
the run would go on to the end as if never interrupted. `install` keeps a flag beside the raise,
and `check` (called by the engine between chunks, and before a run is written as finished)
raises again while the flag is set. The swallowed raise is not reported either: a
`sys.unraisablehook` drops a `KeyboardInterrupt` that a finalizer or a garbage-collector
callback could not propagate while the flag is set, so the user sees one line, not a traceback.

SIGTERM (what ``kill`` sends by default, and what SLURM sends when a job reaches its time limit,
before SIGKILL) is handled the same way: the run stops at the same points, nothing half-written
is taken for finished, and `exit_status` is 143 (128 + 15) instead of 130 (128 + 2).
"""

import contextlib
import signal
import sys

SIGNALS = (signal.SIGINT, signal.SIGTERM)
_pending = False
_signum = signal.SIGINT  # the signal that set `_pending`
_previous_hook = sys.unraisablehook


def _drop_swallowed_interrupt(unraisable) -> None:
    """Report unraisable exceptions as before, except the Ctrl-C that `check` will raise again."""
    if _pending and issubclass(unraisable.exc_type, KeyboardInterrupt):
        return
    _previous_hook(unraisable)


def _on_signal(signum, frame) -> None:
    global _pending, _signum
    _pending = True
    _signum = signum
    raise KeyboardInterrupt


def install() -> None:
    """Handle SIGINT and SIGTERM with the sticky flag (main thread only; a launcher's worker
    keeps its own)."""
    global _pending, _signum, _previous_hook
    _pending = False
    _signum = signal.SIGINT
    with contextlib.suppress(ValueError):  # not the main thread
        for s in SIGNALS:
            signal.signal(s, _on_signal)
        if sys.unraisablehook is not _drop_swallowed_interrupt:
            _previous_hook = sys.unraisablehook
            sys.unraisablehook = _drop_swallowed_interrupt


def check() -> None:
    """Raise `KeyboardInterrupt` if a SIGINT or SIGTERM arrived since `install`, even one
    swallowed."""
    if _pending:
        raise KeyboardInterrupt


def received() -> str:
    """How to name what stopped the run: ``interrupted`` (SIGINT, or a `KeyboardInterrupt`
    raised otherwise) or ``terminated (SIGTERM)``."""
    return "terminated (SIGTERM)" if _pending and _signum == signal.SIGTERM else "interrupted"


def exit_status() -> int:
    """128 + the signal's number: 143 after a SIGTERM, else 130 (SIGINT, as a shell reports)."""
    return 128 + int(_signum) if _pending else 128 + int(signal.SIGINT)


def ignore_further() -> None:
    """Once stopped, a second signal during the exit (Hydra's unwinding, JAX's threads shutting
    down) must not kill the process by the signal instead of the exit status chosen."""
    with contextlib.suppress(ValueError):  # not the main thread (a launcher's worker)
        for s in SIGNALS:
            signal.signal(s, signal.SIG_IGN)
