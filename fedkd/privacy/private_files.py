"""Files that hold a node's secrets or what it derived from private records: owner-only.

The ledger (it holds the node's secret), the node's local logs (local metrics never sent),
its saved model, round progress and reply cache, and a ledger's backup export are readable
by the node's own user alone, 0600, set by the
code itself: a process started by hand under the usual umask 022 would otherwise leave
them world-readable.  SQLite gives a database's ``-wal`` and ``-shm`` files the database
file's own permissions.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

OWNER_ONLY = 0o600


def owner_only(path: Path) -> Path:
    """``path`` created if missing (empty) and made 0600, whatever the umask; an existing
    file readable by others is made owner-only too."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, OWNER_ONLY)
    try:
        if stat.S_IMODE(os.fstat(fd).st_mode) != OWNER_ONLY:
            os.fchmod(fd, OWNER_ONLY)
    finally:
        os.close(fd)
    return path


def write_owner_only(path: Path, data: bytes) -> None:
    """``data`` written to ``path`` (replaced), the file 0600 before any byte is in it."""
    owner_only(path)
    with path.open("r+b") as fh:
        fh.truncate(0)
        fh.write(data)
