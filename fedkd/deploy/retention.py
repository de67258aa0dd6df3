"""Retention for the SuperLink's SQLite database (``flower-superlink --database PATH``).

Flower 1.41 keeps a run's payloads in the same SQLite file as its run records:

- ``objects`` holds the bytes of every message body (RecordDicts, ArrayRecords and their
  array chunks), content-addressed and shared between runs when identical;
  ``object_children`` links parents to children and ``run_objects`` registers each object
  for the run(s) that pushed it;
- ``message_ins`` / ``message_res`` hold instructions and replies (in deployment their
  ``content`` is an empty RecordDict, the bytes being in ``objects``; an error reply keeps
  its error there); ``task_message`` holds task-to-task messages with their content;
- ``object_push_sessions`` (+ ``_roots``, ``_pending``) is the bookkeeping of uploads;
- ``series_context`` holds the ServerApp's final Context (its ``state`` may carry arrays)
  per run series.

A run's status is its primary task's (``run.primary_task_id`` -> ``task``): finished once
``task.finished_at`` is set, pending/starting/running before.  Flower removes a finished
run's messages and objects itself only when something asks about that run again (a
SuperNode's request for it, ``flwr ls``, ``flwr log``); a run nobody asks about keeps its
payloads forever.  :func:`prune_superlink` removes them once the run finished more than
``keep`` ago, and keeps the run's record (``run``, ``task``, ``task_event``,
``task_logs``, traffic and usage, the ``message`` delivery metadata, nodes, FABs), so
``flwr ls`` still lists it.

Concurrency, checked by ``tests/deploy/test_retention.py`` against Flower's own state
classes: the SuperLink opens the file in WAL mode with a 5 s busy timeout.  The prune
takes the write lock up front (``BEGIN IMMEDIATE``, waiting up to ``busy_timeout``
seconds for a SuperLink write to finish), computes and deletes in that one transaction,
so a SuperLink write never sees half of it; a live ``SqlLinkState`` opened before the
prune goes on storing and reading messages of its running run afterwards.  While the
prune (and then ``VACUUM``) holds the lock, SuperLink writes wait; one that waits longer
than its 5 s fails, so schedule the timer at a quiet hour.  ``VACUUM`` needs free disk
(and temporary space, ``SQLITE_TMPDIR``) about the size of the file.
"""

from __future__ import annotations

import errno
import logging
import sqlite3
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

logger = logging.getLogger(__name__)

# The tables (and the columns of them this module reads or matches on) that make a file a
# Flower SuperLink database.  A file without them is refused, not "pruned".
REQUIRED_SCHEMA: Mapping[str, frozenset[str]] = {
    "run": frozenset({"run_id", "primary_task_id", "series_id"}),
    "task": frozenset({"task_id", "run_id", "finished_at"}),
    "message_ins": frozenset({"message_id", "run_id", "content", "error"}),
    "message_res": frozenset({"message_id", "run_id", "reply_to_message_id", "content", "error"}),
    "task_message": frozenset({"message_id", "run_id", "content", "error"}),
    "objects": frozenset({"object_id", "content", "ref_count"}),
    "object_children": frozenset({"parent_id", "child_id"}),
    "run_objects": frozenset({"run_id", "object_id"}),
    "object_push_sessions": frozenset({"session_id", "run_id"}),
    "object_push_session_roots": frozenset({"session_id", "root_object_id"}),
    "object_push_session_pending": frozenset({"session_id", "object_id"}),
    "series_runs": frozenset({"series_id", "run_id"}),
    "series_context": frozenset({"series_id", "context"}),
}

# Deletion order: bookkeeping before what it points at, links before objects.
PRUNED_TABLES: tuple[str, ...] = (
    "object_push_session_pending",
    "object_push_session_roots",
    "object_push_sessions",
    "message_res",
    "message_ins",
    "task_message",
    "object_children",
    "run_objects",
    "objects",
    "series_context",
)

# Which rows of each table go, given the temporary tables ``prune_runs`` (the expired
# runs' stored ids) and ``doomed_objects``; with the byte-carrying columns counted.
_WHERE: Mapping[str, str] = {
    "object_push_session_pending": "session_id IN (SELECT session_id FROM "
    "object_push_sessions WHERE run_id IN (SELECT run_id FROM prune_runs))",
    "object_push_session_roots": "session_id IN (SELECT session_id FROM "
    "object_push_sessions WHERE run_id IN (SELECT run_id FROM prune_runs))",
    "object_push_sessions": "run_id IN (SELECT run_id FROM prune_runs)",
    "message_res": "run_id IN (SELECT run_id FROM prune_runs) OR reply_to_message_id IN "
    "(SELECT message_id FROM message_ins WHERE run_id IN (SELECT run_id FROM prune_runs))",
    "message_ins": "run_id IN (SELECT run_id FROM prune_runs)",
    "task_message": "run_id IN (SELECT run_id FROM prune_runs)",
    "object_children": "parent_id IN (SELECT object_id FROM doomed_objects)",
    "run_objects": "run_id IN (SELECT run_id FROM prune_runs)",
    "objects": "object_id IN (SELECT object_id FROM doomed_objects)",
    # A series' context goes once every run of the series has expired.
    "series_context": "series_id IN (SELECT series_id FROM series_runs WHERE run_id IN "
    "(SELECT run_id FROM prune_runs)) AND NOT EXISTS (SELECT 1 FROM series_runs AS other "
    "WHERE other.series_id = series_context.series_id "
    "AND other.run_id NOT IN (SELECT run_id FROM prune_runs))",
}
_PAYLOAD_BYTES: Mapping[str, str] = {
    "message_ins": "COALESCE(length(content), 0) + COALESCE(length(error), 0)",
    "message_res": "COALESCE(length(content), 0) + COALESCE(length(error), 0)",
    "task_message": "COALESCE(length(content), 0) + COALESCE(length(error), 0)",
    "objects": "COALESCE(length(content), 0)",
    "series_context": "COALESCE(length(context), 0)",
}
# Tables whose rows belong to one run: a run with a row in one of them has payloads left.
_RUN_SCOPED = ("message_ins", "message_res", "task_message", "run_objects", "object_push_sessions")
# Objects registered only for expired runs and not reachable from any object kept.
_DOOMED_OBJECTS = """
CREATE TEMP TABLE doomed_objects AS
WITH RECURSIVE
  candidates(object_id) AS (
    SELECT object_id FROM run_objects WHERE run_id IN (SELECT run_id FROM prune_runs)
    EXCEPT
    SELECT object_id FROM run_objects WHERE run_id NOT IN (SELECT run_id FROM prune_runs)
  ),
  protected(object_id) AS (
    SELECT object_id FROM objects WHERE object_id NOT IN (SELECT object_id FROM candidates)
    UNION
    SELECT object_children.child_id FROM object_children
    JOIN protected ON object_children.parent_id = protected.object_id
  )
SELECT object_id FROM candidates
WHERE object_id NOT IN (SELECT object_id FROM protected)
"""
# A kept object loses one reference per doomed parent (Flower's ref_count = parents).
_RELEASE_CHILDREN = """
UPDATE objects SET ref_count = max(0, ref_count - (
    SELECT count(*) FROM object_children
    WHERE object_children.child_id = objects.object_id
      AND object_children.parent_id IN (SELECT object_id FROM doomed_objects)))
WHERE object_id IN (
    SELECT child_id FROM object_children
    WHERE parent_id IN (SELECT object_id FROM doomed_objects))
  AND object_id NOT IN (SELECT object_id FROM doomed_objects)
"""
_LINK_TABLES = (
    "object_children",
    "run_objects",
    "object_push_session_roots",
    "object_push_session_pending",
)


@dataclass(frozen=True)
class PruneReport:
    """What :func:`prune_superlink` removed (or, on a dry run, would remove).

    Attributes
    ----------
    database
        The SuperLink database file.
    cutoff
        Runs that finished before this instant (UTC) are pruned.
    dry_run
        True when nothing was changed.
    runs_pruned
        Flower's run ids (unsigned, as ``flwr ls`` shows them) of the expired runs that
        still had payload rows, in ascending order.
    runs_expired
        Every run that finished before ``cutoff`` (including those pruned earlier).
    runs_unfinished
        Runs pending, starting or running: never touched.
    runs_recent
        Runs that finished at or after ``cutoff``: kept.
    rows_removed
        Rows removed per table (every table of :data:`PRUNED_TABLES`, zeros included).
    payload_bytes_removed
        Bytes of message content, errors, object content and contexts in those rows.
    bytes_before, bytes_after
        Size of the database file plus its write-ahead log before and after (after
        ``VACUUM`` and a checkpoint; equal on a dry run).
    vacuumed
        Whether ``VACUUM`` ran (False on a dry run, when there was nothing to reclaim,
        or when the SuperLink kept the file busy: the next prune vacuums then).
    checkpointed
        Whether the write-ahead log was fully checkpointed and truncated (False while a
        SuperLink reader holds an old snapshot; the log is folded in at its next
        checkpoint).
    seconds
        Wall time of the whole call.
    """

    database: Path
    cutoff: datetime
    dry_run: bool
    runs_pruned: tuple[int, ...]
    runs_expired: int
    runs_unfinished: int
    runs_recent: int
    rows_removed: Mapping[str, int] = field(default_factory=dict)
    payload_bytes_removed: int = 0
    bytes_before: int = 0
    bytes_after: int = 0
    vacuumed: bool = False
    checkpointed: bool = False
    seconds: float = 0.0

    @property
    def rows_total(self) -> int:
        """All rows removed, over every table."""
        return sum(self.rows_removed.values())


def prune_superlink(
    database: Path,
    *,
    keep: timedelta,
    now: datetime | None = None,
    dry_run: bool = False,
    busy_timeout: float = 30.0,
) -> PruneReport:
    """Delete the payloads of runs that finished more than ``keep`` ago, then VACUUM.

    Parameters
    ----------
    database
        The SuperLink's ``--database`` file (SQLite).  It must exist and carry Flower's
        SuperLink schema (:data:`REQUIRED_SCHEMA`); anything else is refused.
    keep
        How long after a run finished its payloads stay (zero or more).
    now
        The present instant (timezone-aware); the current time when omitted.
    dry_run
        Count what would go, in a read transaction, and change nothing (no VACUUM).
    busy_timeout
        Seconds to wait for the SuperLink to release the write lock.

    Returns
    -------
    PruneReport
        Runs pruned, rows removed per table, payload bytes, file size before and after.

    Raises
    ------
    FileNotFoundError
        When ``database`` does not exist (it is never created).
    ValueError
        When ``keep`` is negative, ``now`` is naive, or the file is not a SuperLink
        database (not SQLite, or missing tables or columns).
    TimeoutError
        When the SuperLink holds the write lock for longer than ``busy_timeout``
        (nothing is changed then).
    """
    started = time.monotonic()
    if keep < timedelta(0):
        raise ValueError(f"keep must not be negative, got {keep}")
    if now is None:
        now = datetime.now(UTC)
    elif now.tzinfo is None:
        raise ValueError("now must be timezone-aware (e.g. datetime.now(UTC))")
    cutoff = (now - keep).astimezone(UTC)
    database = Path(database)
    if not database.is_file():
        raise FileNotFoundError(errno.ENOENT, "no SuperLink database at this path", str(database))
    bytes_before = _disk_bytes(database)

    connection = sqlite3.connect(
        f"{database.resolve().as_uri()}?mode=rw",
        uri=True,
        timeout=busy_timeout,
        isolation_level=None,  # transactions are explicit below
    )
    try:
        _check_schema(connection, database)
        # VACUUM follows and rewrites the file without the freed pages: zeroing them first
        # (some builds' default) would only write every deleted byte once more to the log.
        connection.execute("PRAGMA secure_delete = OFF")
        try:
            connection.execute("BEGIN" if dry_run else "BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise TimeoutError(
                f"{database}: the SuperLink kept the write lock for over {busy_timeout:g} s "
                f"({exc}); nothing was changed"
            ) from exc
        try:
            runs = _classify_runs(connection, cutoff)
            rows, payload, pruned = _prune_rows(connection, runs.expired, dry_run=dry_run)
        except BaseException:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise
        connection.execute("ROLLBACK" if dry_run else "COMMIT")

        vacuumed = checkpointed = False
        if not dry_run:
            free_pages = int(connection.execute("PRAGMA freelist_count").fetchone()[0])
            if sum(rows.values()) > 0 or free_pages > 0:
                vacuumed = _vacuum(connection)
            checkpointed = _checkpoint(connection, deadline=time.monotonic() + busy_timeout)
    finally:
        connection.close()

    report = PruneReport(
        database=database,
        cutoff=cutoff,
        dry_run=dry_run,
        runs_pruned=tuple(sorted(_unsigned(run_id) for run_id in pruned)),
        runs_expired=len(runs.expired),
        runs_unfinished=runs.unfinished,
        runs_recent=runs.recent,
        rows_removed=rows,
        payload_bytes_removed=payload,
        bytes_before=bytes_before,
        bytes_after=bytes_before if dry_run else _disk_bytes(database),
        vacuumed=vacuumed,
        checkpointed=checkpointed,
        seconds=time.monotonic() - started,
    )
    logger.debug(
        "%s %d run(s) finished before %s: %d rows, %d payload bytes; file %d -> %d bytes",
        "would prune" if dry_run else "pruned",
        len(report.runs_pruned),
        cutoff.isoformat(timespec="seconds"),
        report.rows_total,
        payload,
        report.bytes_before,
        report.bytes_after,
    )
    return report


@dataclass(frozen=True)
class _Runs:
    expired: tuple[int, ...]  # stored (signed) run ids
    unfinished: int
    recent: int


def _classify_runs(connection: sqlite3.Connection, cutoff: datetime) -> _Runs:
    """Sort every run by its primary task: unfinished, finished recently, or expired.

    A run counts as finished only when its primary task and every other task of the run
    are finished (Flower finishes them together; a straggler keeps the run).
    """
    rows = connection.execute(
        """
        SELECT run.run_id, primary_task.finished_at,
               EXISTS (SELECT 1 FROM task AS other WHERE other.run_id = run.run_id
                       AND other.finished_at IS NULL)
        FROM run LEFT JOIN task AS primary_task
          ON primary_task.task_id = run.primary_task_id
        """
    ).fetchall()
    expired: list[int] = []
    unfinished = recent = 0
    for run_id, finished_at, has_unfinished_task in rows:
        finished = _parse_timestamp(finished_at)
        if finished is None or has_unfinished_task:
            unfinished += 1
        elif finished < cutoff:
            expired.append(int(run_id))
        else:
            recent += 1
    return _Runs(expired=tuple(expired), unfinished=unfinished, recent=recent)


def _prune_rows(
    connection: sqlite3.Connection, expired: tuple[int, ...], *, dry_run: bool
) -> tuple[dict[str, int], int, list[int]]:
    """Count (and unless ``dry_run`` delete) the expired runs' payload rows, inside the
    caller's transaction.  Returns rows per table, payload bytes, the runs with rows."""
    connection.execute("CREATE TEMP TABLE prune_runs (run_id INTEGER PRIMARY KEY)")
    connection.executemany("INSERT INTO prune_runs VALUES (?)", [(r,) for r in expired])
    pruned = sorted(
        {
            int(run_id)
            for table in _RUN_SCOPED
            for (run_id,) in connection.execute(
                f"SELECT DISTINCT run_id FROM {table} "
                "WHERE run_id IN (SELECT run_id FROM prune_runs)"
            )
        }
    )
    connection.execute(_DOOMED_OBJECTS)

    rows: dict[str, int] = {}
    payload = 0
    for table in PRUNED_TABLES:
        where = _WHERE[table]
        size = _PAYLOAD_BYTES.get(table, "0")
        count, nbytes = connection.execute(
            f"SELECT count(*), COALESCE(sum({size}), 0) FROM {table} WHERE {where}"
        ).fetchone()
        rows[table] = int(count)
        payload += int(nbytes)
    if dry_run:
        return rows, payload, pruned

    violations_before = _link_violations(connection)
    connection.execute(_RELEASE_CHILDREN)
    for table in PRUNED_TABLES:
        deleted = connection.execute(f"DELETE FROM {table} WHERE {_WHERE[table]}").rowcount
        if deleted != rows[table]:
            raise RuntimeError(f"{table}: counted {rows[table]} rows but deleted {deleted}")
    if _link_violations(connection) > violations_before:
        raise RuntimeError("pruning would leave links to missing objects; nothing changed")
    return rows, payload, pruned


def _vacuum(connection: sqlite3.Connection) -> bool:
    """Rewrite the file without its free pages.  If the SuperLink keeps it busy past the
    busy timeout, the deletions stay committed and the next prune vacuums (it does
    whenever the file has free pages)."""
    try:
        connection.execute("VACUUM")
    except sqlite3.OperationalError as exc:
        if "locked" not in str(exc) and "busy" not in str(exc):
            raise
        logger.warning("VACUUM postponed, the database is busy: %s", exc)
        return False
    return True


def _checkpoint(connection: sqlite3.Connection, *, deadline: float) -> bool:
    """Fold the write-ahead log into the file and truncate it (VACUUM wrote the whole new
    file there).  A SuperLink transaction in progress makes a try report busy: retry
    until ``deadline``; if it never clears, the SuperLink's own checkpoints fold it in."""
    while True:
        busy, _, _ = connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        if busy == 0:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)


def _link_violations(connection: sqlite3.Connection) -> int:
    """Foreign-key violations in the object link tables (Flower's own, if any, included)."""
    return sum(
        len(connection.execute(f"PRAGMA foreign_key_check({table})").fetchall())
        for table in _LINK_TABLES
    )


def _check_schema(connection: sqlite3.Connection, database: Path) -> None:
    try:
        tables = {
            name
            for (name,) in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        }
    except sqlite3.DatabaseError as exc:
        raise ValueError(f"{database} is not a SQLite database ({exc})") from None
    missing = sorted(set(REQUIRED_SCHEMA) - tables)
    if missing:
        raise ValueError(
            f"{database} is not a Flower SuperLink database: missing table(s) {', '.join(missing)}"
        )
    for table, columns in REQUIRED_SCHEMA.items():
        have = {row[1] for row in connection.execute(f"PRAGMA table_info({table})")}
        if not columns <= have:
            absent = ", ".join(sorted(columns - have))
            raise ValueError(
                f"{database} is not a SuperLink database this fedkd knows: "
                f"table {table} lacks {absent}"
            )


def _parse_timestamp(value: object) -> datetime | None:
    """Flower's UTCDateTime as SQLite stores it ('2026-11-29 10:09:27.805622+00:00')."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError:
        logger.warning("unreadable finished_at %r: the run is kept", value)
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _unsigned(run_id: int) -> int:
    """Flower stores uint64 ids as the signed int64 with the same bits."""
    return run_id + (1 << 64) if run_id < 0 else run_id


def _disk_bytes(database: Path) -> int:
    wal = database.with_name(database.name + "-wal")
    return database.stat().st_size + (wal.stat().st_size if wal.exists() else 0)
