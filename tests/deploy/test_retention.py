"""SuperLink retention on a real SuperLink database, built by Flower's own state classes
(``SqlLinkState`` + ``SqlObjectStore`` on one SQLite file, as ``flower-superlink
--database`` does) and filled through the same calls its servicers make: messages pushed
without content, their object trees preregistered and the objects uploaded.

Four runs: OLD finished 30 days ago, RECENT finished an hour ago, RUNNING and PENDING not
finished.  Every instruction carries one array shared by all runs (the same broadcast
model) and one of its own; every reply carries one of its own.
"""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from fedkd.cli import app
from fedkd.deploy.retention import PRUNED_TABLES, prune_superlink

ARRAY_BYTES = 64 * 1024  # one chunk per array (Flower chunks at 5 MiB)
ROUNDS = 2
KEEP = timedelta(days=7)
# Per run: each round's instruction is 7 objects (message, record dict, array record,
# shared array + chunk, own array + chunk), its reply 5; the shared array and its chunk
# recur in round 2, so 2 * 7 - 2 + 2 * 5 = 22 objects are registered for every run.
OBJECTS_PER_RUN = 22
SHARED_OBJECTS = 2
# Parent->child links of the OLD run's own objects: 5 per instruction, 4 per reply.
OLD_LINKS = ROUNDS * 5 + ROUNDS * 4


@dataclass
class Federation:
    """A SuperLink database and the live Flower state that wrote it."""

    path: Path
    state: Any  # flwr's SqlLinkState, still open: the "running SuperLink"
    node_id: int
    runs: dict[str, int]  # name -> Flower's run id


def _push(state: Any, message: Any, run_id: int) -> str:
    """Store a message as the SuperLink's servicers do: body-less message + object tree,
    then the objects the SuperLink asks for."""
    from flwr.app.message.message import remove_content_from_message
    from flwr.common.serde import message_from_proto, message_to_proto
    from flwr.supercore.inflatable.inflatable_object import (
        get_all_nested_objects,
        get_object_tree,
        no_object_id_recompute,
    )

    with no_object_id_recompute():
        message.metadata.__dict__["_message_id"] = message.object_id
        objects = get_all_nested_objects(message)
        tree = get_object_tree(message)
        bare = message_from_proto(message_to_proto(remove_content_from_message(message)))
        session_id = state.start_session(run_id)
        stored, missing = state.store_message_and_object_tree(bare, tree, session_id)
        assert stored
        for object_id in missing:
            assert state.store_object(run_id, session_id, object_id, objects[object_id].deflate())
    return str(message.metadata.message_id)


def _arrays(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The instruction's own array and the reply's array of one round (random bytes)."""
    rng = np.random.default_rng(seed)
    return (
        rng.integers(0, 256, ARRAY_BYTES, dtype=np.uint8),
        rng.integers(0, 256, ARRAY_BYTES, dtype=np.uint8),
    )


def _round(state: Any, run_id: int, node_id: int, group: str, seed: int) -> tuple[str, str]:
    """One instruction to the node and its reply; returns their message ids."""
    from flwr.app import Array, ArrayRecord, Message, RecordDict
    from flwr.app.metadata import Metadata
    from flwr.common.constant import SUPERLINK_NODE_ID

    shared = np.arange(ARRAY_BYTES, dtype=np.uint8)  # the same "global model" everywhere
    own, answer = _arrays(seed)
    content = RecordDict({"arrays": ArrayRecord({"global": Array(shared), "own": Array(own)})})
    metadata = Metadata(
        run_id, "", SUPERLINK_NODE_ID, node_id, "", group, time.time(), 3600.0, "train"
    )
    _push(state, Message(metadata=metadata, content=content), run_id)
    (instruction,) = state.get_message_ins(node_id, None)
    reply_to = instruction.metadata.message_id
    metadata = Metadata(
        run_id, "", node_id, SUPERLINK_NODE_ID, reply_to, group, time.time(), 600.0, "train"
    )
    reply = RecordDict({"arrays": ArrayRecord({"logits": Array(answer)})})
    return reply_to, _push(state, Message(metadata=metadata, content=reply), run_id)


def _build(path: Path, monkeypatch: pytest.MonkeyPatch) -> Federation:
    from flwr.common.constant import SubStatus
    from flwr.server.superlink.linkstate.sql_linkstate import SqlLinkState
    from flwr.supercore.constant import NOOP_FEDERATION_ID, TaskType
    from flwr.supercore.corestate import sql_corestate
    from flwr.supercore.object_store.sql_object_store import SqlObjectStore
    from flwr.superlink.federation.noop_federation_manager import NoOpFederationManager

    store = SqlObjectStore(str(path))
    store.initialize()
    state = SqlLinkState(str(path), NoOpFederationManager(), store)
    state.initialize()
    node_id = state.create_node("aid", "owner", b"cleveland-public-key", 30.0)
    assert state.activate_node(node_id, 30.0)

    def new_run(*, start: bool) -> tuple[int, int]:
        run_id = state.create_run(
            None, None, "fab", {}, NOOP_FEDERATION_ID, None, "<id:none>", TaskType.SERVER_APP
        )
        task_id = state.get_run_info(run_ids=[run_id])[0].primary_task_id
        if start:
            assert state.claim_task(task_id) and state.activate_task(task_id)
        return run_id, task_id

    real_now = sql_corestate.now

    def month_ago() -> datetime:
        return real_now() - timedelta(days=30)

    runs: dict[str, int] = {}
    for index, name in enumerate(("old", "recent", "running")):
        run_id, task_id = new_run(start=True)
        runs[name] = run_id
        for rnd in range(ROUNDS):
            _round(state, run_id, node_id, str(rnd), seed=10 * index + rnd)
        if name == "old":  # Flower stamps finished_at with its own clock: 30 days back
            with monkeypatch.context() as patch:
                patch.setattr(sql_corestate, "now", month_ago)
                assert state.finish_task(task_id, SubStatus.COMPLETED, "")
        elif name == "recent":
            assert state.finish_task(task_id, SubStatus.COMPLETED, "")
    runs["pending"] = new_run(start=False)[0]
    statuses = {n: state.get_run_status({r})[r].status for n, r in runs.items()}
    assert statuses == {
        "old": "finished",
        "recent": "finished",
        "running": "running",
        "pending": "pending",
    }
    return Federation(path, state, node_id, runs)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A SuperLink database built once; tests prune copies of it."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        path = tmp_path_factory.mktemp("superlink") / "state.db"
        federation = _build(path, monkeypatch)
        assert set(federation.runs) == {"old", "recent", "running", "pending"}
        _copy(path, path.with_name("template.db"))
        yield path.with_name("template.db")


def _copy(source: Path, target: Path) -> None:
    """A consistent copy (WAL included) that keeps WAL mode, like the SuperLink's file."""
    with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
        src.backup(dst)
        dst.execute("PRAGMA journal_mode=WAL")
    src.close()
    dst.close()


@pytest.fixture
def database(template: Path, tmp_path: Path) -> Path:
    path = tmp_path / "state.db"
    shutil.copyfile(template, path)
    return path


def _counts(path: Path) -> dict[str, dict[int, int]]:
    """Rows per table per stored run id, for the run-scoped tables."""
    with sqlite3.connect(path) as connection:
        return {
            table: dict(connection.execute(f"SELECT run_id, count(*) FROM {table} GROUP BY run_id"))
            for table in ("message_ins", "message_res", "run_objects")
        }


def _stored(run_id: int) -> int:
    """Flower's run id as SQLite stores it (the int64 with the same bits)."""
    return run_id - (1 << 64) if run_id >= 1 << 63 else run_id


def _unsigned(run_id: int) -> int:
    return run_id + (1 << 64) if run_id < 0 else run_id


def _run_ids(path: Path) -> dict[str, int]:
    """The four runs' ids by name, told apart by their primary tasks."""
    with sqlite3.connect(path) as connection:
        rows = connection.execute(
            "SELECT run.run_id, task.running_at, task.finished_at FROM run "
            "JOIN task ON task.task_id = run.primary_task_id ORDER BY task.finished_at"
        ).fetchall()
    names: dict[str, int] = {}
    for run_id, running_at, finished_at in rows:
        if finished_at is None:
            names["running" if running_at else "pending"] = run_id
        else:
            names["recent" if "old" in names else "old"] = run_id
    return names


def _digest(path: Path) -> str:
    wal = path.with_name(path.name + "-wal")
    data = path.read_bytes() + (wal.read_bytes() if wal.exists() else b"")
    return hashlib.sha256(data).hexdigest()


def _expected_rows() -> dict[str, int]:
    expected = dict.fromkeys(PRUNED_TABLES, 0)
    expected |= {
        "message_ins": ROUNDS,
        "message_res": ROUNDS,
        "run_objects": OBJECTS_PER_RUN,
        "objects": OBJECTS_PER_RUN - SHARED_OBJECTS,
        "object_children": OLD_LINKS,
        "series_context": 1,
    }
    return expected


def test_prunes_only_the_run_that_finished_long_ago(database: Path) -> None:
    runs = _run_ids(database)
    before = _counts(database)
    for name in ("old", "recent", "running"):
        assert before["message_ins"][runs[name]] == ROUNDS
        assert before["message_res"][runs[name]] == ROUNDS
        assert before["run_objects"][runs[name]] == OBJECTS_PER_RUN
    assert runs["pending"] not in before["message_ins"]

    report = prune_superlink(database, keep=KEEP)

    assert report.dry_run is False and report.vacuumed and report.checkpointed
    assert report.runs_pruned == (_unsigned(runs["old"]),)
    assert (report.runs_expired, report.runs_recent, report.runs_unfinished) == (1, 1, 2)
    assert dict(report.rows_removed) == _expected_rows()
    after = _counts(database)
    for table in ("message_ins", "message_res", "run_objects"):
        assert runs["old"] not in after[table]
        for name in ("recent", "running"):
            assert after[table][runs[name]] == before[table][runs[name]], (table, name)
    with sqlite3.connect(database) as connection:
        # Everything left is registered for a kept run, and only 2 * 22 - 2 objects are.
        (objects,) = connection.execute("SELECT count(*) FROM objects").fetchone()
        assert objects == 2 * OBJECTS_PER_RUN - SHARED_OBJECTS
        (dangling,) = connection.execute(
            "SELECT count(*) FROM object_children WHERE parent_id NOT IN "
            "(SELECT object_id FROM objects) OR child_id NOT IN (SELECT object_id FROM objects)"
        ).fetchone()
        assert dangling == 0
        # The old run's record stays (flwr ls still lists it): 4 runs, 4 tasks.
        assert connection.execute("SELECT count(*) FROM run").fetchone() == (4,)
        assert connection.execute("SELECT count(*) FROM task").fetchone() == (4,)


def _found(raw: bytes, array: bytes) -> int:
    """How many of an array's 32 probes (64 bytes every 2 KiB) the file holds.  SQLite
    splits a 64 KiB blob over overflow pages, so the array is not one contiguous run;
    a probe straddling two pages is the only one a stored array can miss."""
    return sum(array[at : at + 64] in raw for at in range(0, ARRAY_BYTES, 2048))


def test_the_old_payload_bytes_leave_the_file(database: Path) -> None:
    # The old run (index 0) used seeds 0 and 1, the recent one 10 and 11.
    old_arrays = [array.tobytes() for rnd in range(ROUNDS) for array in _arrays(rnd)]
    kept_arrays = [array.tobytes() for rnd in range(ROUNDS) for array in _arrays(10 + rnd)]
    raw = database.read_bytes()
    assert all(_found(raw, array) >= 28 for array in old_arrays + kept_arrays)

    report = prune_superlink(database, keep=KEEP)

    raw = database.read_bytes()
    wal = database.with_name(database.name + "-wal")
    assert not wal.exists() or wal.stat().st_size == 0
    assert [_found(raw, array) for array in old_arrays] == [0] * len(old_arrays)
    assert all(_found(raw, array) >= 28 for array in kept_arrays)
    own = 2 * ROUNDS * ARRAY_BYTES
    # The payload removed is the old run's four own arrays plus a little framing.
    assert own <= report.payload_bytes_removed < own + 4096
    assert report.bytes_before - report.bytes_after >= own
    assert report.bytes_after == database.stat().st_size


def test_dry_run_reports_the_same_and_changes_nothing(database: Path) -> None:
    digest = _digest(database)
    report = prune_superlink(database, keep=KEEP, dry_run=True)
    assert _digest(database) == digest
    assert report.dry_run and not report.vacuumed
    assert dict(report.rows_removed) == _expected_rows()
    assert report.bytes_after == report.bytes_before
    assert len(report.runs_pruned) == 1

    real = prune_superlink(database, keep=KEEP)
    assert real.rows_removed == report.rows_removed
    assert real.payload_bytes_removed == report.payload_bytes_removed
    assert real.runs_pruned == report.runs_pruned
    # A second pass finds nothing left to remove.
    again = prune_superlink(database, keep=KEEP)
    assert again.rows_total == 0 and again.runs_pruned == () and again.runs_expired == 1


def test_unfinished_runs_are_never_touched(database: Path) -> None:
    runs = _run_ids(database)
    before = _counts(database)
    # Keep nothing, a year from now: both finished runs go, the other two stay whole.
    future = datetime.now(UTC) + timedelta(days=365)
    report = prune_superlink(database, keep=timedelta(0), now=future)
    assert (report.runs_expired, report.runs_recent, report.runs_unfinished) == (2, 0, 2)
    after = _counts(database)
    for table in ("message_ins", "message_res", "run_objects"):
        assert after[table] == {runs["running"]: before[table][runs["running"]]}
    with sqlite3.connect(database) as connection:
        (objects,) = connection.execute("SELECT count(*) FROM objects").fetchone()
    assert objects == OBJECTS_PER_RUN
    assert report.rows_removed["objects"] == 2 * (OBJECTS_PER_RUN - SHARED_OBJECTS)
    assert report.rows_removed["series_context"] == 2


def test_a_live_superlink_goes_on_after_a_prune(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The SuperLink's own state, opened before the prune, keeps serving its running run
    afterwards (a new round stored and answered, objects re-used), and still serves the
    recent run's objects byte for byte."""
    from flwr.common.constant import SubStatus

    federation = _build(tmp_path / "state.db", monkeypatch)
    state, runs = federation.state, federation.runs
    recent = _stored(runs["recent"])
    with sqlite3.connect(federation.path) as connection:
        recent_objects = dict(
            connection.execute(
                "SELECT object_id, content FROM objects JOIN run_objects USING (object_id) "
                "WHERE run_id = ?",
                (recent,),
            )
        )
    assert len(recent_objects) == OBJECTS_PER_RUN

    report = prune_superlink(federation.path, keep=KEEP)
    assert report.rows_removed["objects"] == OBJECTS_PER_RUN - SHARED_OBJECTS

    instruction_id, reply_id = _round(state, runs["running"], federation.node_id, "9", seed=99)
    (reply,) = state.get_message_res({instruction_id}, runs["running"])
    assert reply.metadata.message_id == reply_id and not reply.has_error()
    tree = state.object_store.get_object_tree(reply_id)
    assert tree.object_id == reply_id
    for object_id, content in recent_objects.items():
        assert state.object_store.get(object_id) == content
    task_id = state.get_run_info(run_ids=[runs["running"]])[0].primary_task_id
    assert state.finish_task(task_id, SubStatus.COMPLETED, "")
    assert state.get_run_status({runs["running"]})[runs["running"]].status == "finished"


def test_waits_for_the_superlinks_write_lock(database: Path) -> None:
    """A SuperLink write in progress: the prune gives up with an error when it outlasts
    the busy timeout (changing nothing), and otherwise waits for it instead of failing."""
    holder = sqlite3.connect(database, check_same_thread=False, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    holder.execute("UPDATE run SET bytes_sent = bytes_sent + 1")
    with pytest.raises(TimeoutError, match=r"write lock for over 0.2 s .*nothing was changed"):
        prune_superlink(database, keep=KEEP, busy_timeout=0.2)
    release = threading.Timer(0.5, lambda: holder.execute("COMMIT"))
    release.start()
    started = time.monotonic()
    report = prune_superlink(database, keep=KEEP, busy_timeout=10.0)
    waited = time.monotonic() - started
    release.join()
    holder.close()
    assert waited >= 0.4
    # All of it was still there: the refused attempt removed nothing.
    assert dict(report.rows_removed) == _expected_rows()


def test_a_busy_vacuum_is_postponed_not_failed(database: Path) -> None:
    """Deletions committed, then the SuperLink writes: VACUUM waits its busy timeout and
    gives up; the next prune vacuums because the file has free pages, even with no run
    to prune."""
    from fedkd.deploy.retention import _vacuum

    holder = sqlite3.connect(database, isolation_level=None)
    holder.execute(  # freed pages, as a committed prune leaves them
        "DELETE FROM objects WHERE object_id IN "
        "(SELECT object_id FROM objects ORDER BY length(content) DESC LIMIT 2)"
    )
    assert holder.execute("PRAGMA freelist_count").fetchone()[0] > 0
    holder.execute("BEGIN IMMEDIATE")
    pruner = sqlite3.connect(database, timeout=0.1, isolation_level=None)
    assert _vacuum(pruner) is False
    holder.execute("COMMIT")
    holder.close()
    pruner.close()

    report = prune_superlink(database, keep=timedelta(days=3650))
    assert report.rows_total == 0 and report.runs_expired == 0
    assert report.vacuumed and report.bytes_after < report.bytes_before
    with sqlite3.connect(database) as connection:
        assert connection.execute("PRAGMA freelist_count").fetchone() == (0,)


def test_refuses_what_is_not_a_superlink_database(tmp_path: Path) -> None:
    other = tmp_path / "ledger.db"
    with sqlite3.connect(other) as connection:
        connection.execute("CREATE TABLE releases (id INTEGER PRIMARY KEY, epsilon REAL)")
        connection.execute("CREATE TABLE run (run_id INTEGER)")
    connection.close()
    digest = _digest(other)
    with pytest.raises(ValueError, match=r"not a Flower SuperLink database: missing table"):
        prune_superlink(other, keep=KEEP)
    assert _digest(other) == digest

    text = tmp_path / "notes.txt"
    text.write_text("not a database at all, " * 100)
    with pytest.raises(ValueError, match="not a SQLite database"):
        prune_superlink(text, keep=KEEP)

    missing = tmp_path / "absent.db"
    with pytest.raises(FileNotFoundError):
        prune_superlink(missing, keep=KEEP)
    assert not missing.exists()
    with pytest.raises(ValueError, match="negative"):
        prune_superlink(other, keep=timedelta(hours=-1))
    with pytest.raises(ValueError, match="timezone"):
        prune_superlink(other, keep=KEEP, now=datetime(2026, 1, 1))


def test_the_cli_prunes_and_reports(database: Path) -> None:
    runner = CliRunner()
    command = ["deploy", "prune", "--database", str(database), "--keep-hours", "168"]
    digest = _digest(database)
    dry = runner.invoke(app, [*command, "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert _digest(database) == digest
    assert "would remove" in dry.output and "1 run" in dry.output

    done = runner.invoke(app, command)
    assert done.exit_code == 0, done.output
    assert "removed" in done.output and "objects 20" in done.output
    assert prune_superlink(database, keep=KEEP).rows_total == 0

    absent = str(database.parent / "absent.db")
    refused = runner.invoke(app, ["deploy", "prune", "--database", absent, "--keep-hours", "1"])
    assert refused.exit_code == 2
    assert "absent.db" in refused.output


def test_prune_works_under_its_units_sandbox(database: Path) -> None:
    """The one unit the deployment tests do not start: its command under its own filter."""
    from tests.deploy.cluster import SANDBOX, UNITS

    done = subprocess.run(
        [sys.executable, str(SANDBOX), str(UNITS / "fedkd-superlink-prune.service"), "--",
         sys.executable, "-m", "fedkd.cli", "deploy", "prune", "--database", str(database),
         "--keep-hours", "168", "--dry-run"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "would remove the payloads of 1 run(s)" in done.stdout, done.stdout
