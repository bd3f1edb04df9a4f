"""A Ctrl-C that is not lost.

Python raises `KeyboardInterrupt` at the next bytecode of the main thread. While a compiled
program runs, every SIGINT waits for it to return, and the one raise may then land in a
finalizer (a device array's ``__del__``), which prints "Exception ignored" and swallows it:
the run would go on to the end as if never interrupted. `install` keeps a flag beside the raise,
and `check` (called by the engine between chunks, and before a run is written as finished)
raises again while the flag is set. The swallowed raise is not reported either: a
`sys.unraisablehook` drops a `KeyboardInterrupt` that a finalizer or a garbage-collector
callback could not propagate while the flag is set, so the user sees one line, not a traceback.
"""

import contextlib
import signal
import sys

_pending = False
_previous_hook = sys.unraisablehook


def _drop_swallowed_interrupt(unraisable) -> None:
    """Report unraisable exceptions as before, except the Ctrl-C that `check` will raise again."""
    if _pending and issubclass(unraisable.exc_type, KeyboardInterrupt):
        return
    _previous_hook(unraisable)


def _on_sigint(signum, frame) -> None:
    global _pending
    _pending = True
    raise KeyboardInterrupt


def install() -> None:
    """Handle SIGINT with the sticky flag (main thread only; a launcher's worker keeps its own)."""
    global _pending, _previous_hook
    _pending = False
    with contextlib.suppress(ValueError):  # not the main thread
        signal.signal(signal.SIGINT, _on_sigint)
        if sys.unraisablehook is not _drop_swallowed_interrupt:
            _previous_hook = sys.unraisablehook
            sys.unraisablehook = _drop_swallowed_interrupt


def check() -> None:
    """Raise `KeyboardInterrupt` if a SIGINT arrived since `install`, even one swallowed."""
    if _pending:
        raise KeyboardInterrupt
