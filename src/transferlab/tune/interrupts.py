"""Ctrl-C and SIGTERM during a study: the running trial stops between two batches, never at an
arbitrary point inside TensorFlow, and an interrupt Python had to drop is not lost."""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Iterator

_STOP_SIGNALS: list[int] = []  # signals received while a trial trains (see stop_at_safe_points)
_SWALLOWED_INTERRUPTS: list[BaseException] = []  # interrupts Python dropped (see interrupts_not_lost)


@contextlib.contextmanager
def stop_at_safe_points() -> Iterator[None]:
    """While a trial trains, Ctrl-C / SIGTERM stop it at the end of the current batch.

    A KeyboardInterrupt raised at an arbitrary point inside TensorFlow (e.g. while it traces
    a graph) leaves its graph stack corrupted and every later trial of the process failing,
    or is dropped by Python when it lands in a garbage-collection callback. So the signal
    is only recorded here: the pruning callback raises KeyboardInterrupt between two
    batches, and the study loop before the next trial (a trial that finished meanwhile is
    kept). A second signal stops at once.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):  # noqa: ARG001 - signal handler signature
        if _STOP_SIGNALS:
            raise KeyboardInterrupt(f"received signal {signum} again")
        _STOP_SIGNALS.append(signum)
        print("tune: interrupted: stopping after this batch (send it again to stop at once)", file=sys.stderr,
              flush=True)

    handled = [s for s in (signal.SIGINT, signal.SIGTERM) if signal.getsignal(s) not in (signal.SIG_IGN, None)]
    previous = {s: signal.signal(s, handler) for s in handled}
    try:
        yield
    finally:
        for s, old in previous.items():
            signal.signal(s, old)


@contextlib.contextmanager
def interrupts_not_lost() -> Iterator[None]:
    """Keep a Ctrl-C/SIGTERM that Python had to drop.

    The KeyboardInterrupt that a signal handler raises is only printed ("Exception ignored
    in ...") when the signal lands in a garbage-collection callback, which TensorFlow runs
    often; the study would then go on. Such interrupts are kept here and raised again at the
    next trial (:func:`raise_lost_interrupt`).
    """
    previous = sys.unraisablehook

    def hook(unraisable):
        if isinstance(unraisable.exc_value, KeyboardInterrupt):
            _SWALLOWED_INTERRUPTS.append(unraisable.exc_value)
        previous(unraisable)

    _SWALLOWED_INTERRUPTS.clear()
    _STOP_SIGNALS.clear()
    sys.unraisablehook = hook
    try:
        yield
    finally:
        sys.unraisablehook = previous
        _SWALLOWED_INTERRUPTS.clear()
        _STOP_SIGNALS.clear()


def raise_lost_interrupt() -> None:
    """Stop here if a signal asked to (recorded while training, or dropped by Python)."""
    if _STOP_SIGNALS:
        raise KeyboardInterrupt(f"received signal {_STOP_SIGNALS[0]}")
    if _SWALLOWED_INTERRUPTS:
        exc = _SWALLOWED_INTERRUPTS[0]
        _SWALLOWED_INTERRUPTS.clear()
        raise KeyboardInterrupt(*exc.args)

