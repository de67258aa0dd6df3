"""SQLite settings shared by the node's ledger and the server's registry.

Both are append-only records of privacy spend: WAL so readers (``fedkd ledger show``)
never block a writer, ``synchronous=FULL`` so a committed row survives a power cut, and
triggers that make SQLite itself refuse UPDATE and DELETE on the append-only table.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

from fedkd.privacy.private_files import owner_only


@contextmanager
def durable_connection(path: Path) -> Iterator[sqlite3.Connection]:
    """An autocommit connection in WAL mode with full fsync, closed on exit; the file is
    owner-only (:mod:`fedkd.privacy.private_files`)."""
    owner_only(path)
    with closing(sqlite3.connect(path, isolation_level=None)) as db:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        yield db


def append_only_triggers(table: str, message: str) -> str:
    """SQL creating triggers that abort any UPDATE or DELETE on ``table``."""
    return "".join(
        f"CREATE TRIGGER IF NOT EXISTS {table}_no_{verb.lower()} BEFORE {verb} ON {table}\n"
        f"BEGIN SELECT RAISE(ABORT, '{message}'); END;\n"
        for verb in ("UPDATE", "DELETE")
    )
