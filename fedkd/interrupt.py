"""Stopping a run on request (Ctrl-C, SIGTERM) without losing what it has.

The simulation driver owns the signal; the ServerApp's round loop only looks at a
:class:`threading.Event` between polls, so it stops within one poll interval and writes
what it has.  Nothing here touches process-wide state.
"""

from __future__ import annotations

import threading


class RunInterrupted(Exception):
    """The run was asked to stop (SIGINT) before it finished."""


class RunFailed(Exception):
    """A round failed as a whole; the run ended with what it had."""


class StopEvent(threading.Event):
    """A run's stop event that remembers why it was set: ``SIGINT``, ``SIGTERM``."""

    def __init__(self) -> None:
        super().__init__()
        self.reason = "SIGINT"

    def set_for(self, reason: str) -> None:
        self.reason = reason
        self.set()


def interrupted(stop: threading.Event | None) -> RunInterrupted:
    """The exception of a run stopped by ``stop``, naming why (SIGINT by default)."""
    return RunInterrupted(f"interrupted ({getattr(stop, 'reason', 'SIGINT')})")


def check(stop: threading.Event | None) -> None:
    """Raise :class:`RunInterrupted` if ``stop`` is set."""
    if stop is not None and stop.is_set():
        raise interrupted(stop)
