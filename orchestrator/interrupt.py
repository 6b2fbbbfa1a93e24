"""Stopping on request. Ctrl-C (SIGINT) and SIGTERM (what ``kill``, Slurm and Kubernetes send)
both stop a run the same way: ``Interrupted`` is raised, the trackers mark the run KILLED, the
sweep marks the trial INTERRUPTED, and the same command resumes from the last checkpoint.

Python raises a signal's exception wherever the main thread happens to be, and two places make
that unsafe: inside a tracker's or a storage's write (a half-done SQLite transaction keeps the
database locked) and inside a weakref callback or ``__del__``, where the exception is printed and
dropped, so the run would go on training. Hence:
  * hook calls are ``shielded``: a first signal waits until the hook returns (a second one, the
    impatient user's, raises at once);
  * a stop once requested is raised again by ``check()`` at every batch and epoch, so a dropped
    one still ends the run;
  * a sweep's Optuna bookkeeping (ask, tell) is shielded too, and each trial's training
    ``exposed`` again.
"""

from __future__ import annotations

import contextlib
import signal
import sys
from typing import Iterator

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(KeyboardInterrupt):
    """A stop requested by a signal; reads "interrupted (SIGTERM)", exits with ``exit_code``."""

    def __init__(self, signum: int = signal.SIGINT):
        self.signum = signum
        self.signal_name = signal.Signals(signum).name
        super().__init__(f"interrupted ({self.signal_name})")

    @classmethod
    def of(cls, exc: KeyboardInterrupt) -> "Interrupted":
        """The stop a KeyboardInterrupt stands for (a plain one is Ctrl-C)."""
        return exc if isinstance(exc, Interrupted) else cls(signal.SIGINT)

    @property
    def exit_code(self) -> int:
        return 128 + self.signum  # the shell's convention: 130 for SIGINT, 143 for SIGTERM


_requested: int | None = None  # the first stop signal received
_depth = 0  # how many shielded sections the main thread is in
_pending = False  # a signal arrived inside a shielded section


def install() -> None:
    """Handle SIGINT and SIGTERM in this process (main thread), except a signal the process was
    started with ignored (``nohup``, a background job): that choice is the caller's."""
    for signum in SIGNALS:
        if signal.getsignal(signum) is not signal.SIG_IGN:
            signal.signal(signum, _on_signal)
    if sys.unraisablehook is not _unraisable:
        _unraisable.default = sys.unraisablehook
        sys.unraisablehook = _unraisable


def _unraisable(unraisable) -> None:
    """A stop dropped where Python cannot raise: say nothing, ``check()`` raises it again."""
    if not (isinstance(unraisable.exc_type, type) and issubclass(unraisable.exc_type, Interrupted)):
        _unraisable.default(unraisable)


def _on_signal(signum: int, frame) -> None:
    global _requested, _pending
    first = _requested is None
    if first:
        _requested = signum
    if _depth and first:
        _pending = True
        return
    raise Interrupted(signum)


def requested() -> int | None:
    """The signal that asked this process to stop, if any."""
    return _requested


def check() -> None:
    """Raise a stop that was requested, even if the first ``Interrupted`` was dropped."""
    if _requested is not None and not _depth:
        raise Interrupted(_requested)


@contextlib.contextmanager
def shielded() -> Iterator[None]:
    """Let the code inside finish before a first stop signal takes effect."""
    enter_shield()
    try:
        yield
    finally:
        leave_shield()


@contextlib.contextmanager
def exposed() -> Iterator[None]:
    """Inside a shielded section, let stop signals through again (a sweep trial's training); a
    stop that arrived while shielded is raised by the next ``check()`` in here."""
    global _depth, _pending
    saved, _depth, _pending = _depth, 0, False
    try:
        yield
    finally:
        _depth = saved


def enter_shield() -> None:
    global _depth
    _depth += 1


def leave_shield() -> None:
    """Leave a shielded section; raise the stop that arrived inside it."""
    global _depth, _pending
    _depth -= 1
    if not _depth and _pending:
        _pending = False
        raise Interrupted(_requested)


def reset() -> None:
    """Forget a handled stop (for a process that goes on after one, such as a test run)."""
    global _requested, _pending
    _requested, _pending = None, False
