"""Flower's SuperNode, made to exit when one of its threads dies.

Flower 1.41's SuperNode sends heartbeats from a background thread; an exception it does
not expect (a status other than 401/502/503/504, a SuperLink that no longer knows the
node) ends that thread silently while the process lives on: the node shows offline for
good and its unit's ``Restart=`` never fires.  Run through :func:`run_supernode`, any
thread ending in an uncaught exception ends the process with :data:`THREAD_DIED`, so the
service manager restarts it and the node reconnects.
"""

from __future__ import annotations

import logging
import os
import sys
import threading

THREAD_DIED = 75
"""The exit status when a thread died (``EX_TEMPFAIL``: worth a restart)."""
log = logging.getLogger("fedkd.supernode")


def exit_when_a_thread_dies() -> None:
    """Install the process-wide hook: an uncaught exception in any thread ends the process."""

    def hook(args: threading.ExceptHookArgs) -> None:
        if args.exc_type is SystemExit:
            return
        name = args.thread.name if args.thread is not None else "?"
        print(
            f"fedkd: the SuperNode's thread {name} died ({args.exc_type.__name__}: "
            f"{args.exc_value}); exiting {THREAD_DIED} so the service restarts it",
            file=sys.stderr,
            flush=True,
        )
        os._exit(THREAD_DIED)  # the main thread may be blocked in a retry loop for good

    threading.excepthook = hook


def run_supernode(argv: list[str]) -> int:
    """``flower-supernode`` with ``argv``, under :func:`exit_when_a_thread_dies`."""
    from flwr.supernode.cli import flower_supernode

    exit_when_a_thread_dies()
    sys.argv = ["flower-supernode", *argv]
    flower_supernode()  # returns when stopped; exits by SystemExit otherwise
    return 0
