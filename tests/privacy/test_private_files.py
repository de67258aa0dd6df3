"""What a node writes that holds its secret or derives from private records is 0600,
whatever the umask of the process that wrote it."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from fedkd.privacy.private_files import owner_only, write_owner_only


@pytest.fixture(params=[0o022, 0o000, 0o077])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    before = os.umask(request.param)
    yield int(request.param)
    os.umask(before)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_file_is_owner_only_under_any_umask(umask: int, tmp_path: Path) -> None:
    assert _mode(owner_only(tmp_path / "a")) == 0o600
    write_owner_only(tmp_path / "b", b"rows")
    assert _mode(tmp_path / "b") == 0o600 and (tmp_path / "b").read_bytes() == b"rows"


def test_an_existing_world_readable_file_is_made_owner_only_and_kept(tmp_path: Path) -> None:
    path = tmp_path / "old.log"
    path.write_text("kept\n")
    path.chmod(0o644)
    owner_only(path)
    assert _mode(path) == 0o600 and path.read_text() == "kept\n"


def test_the_ledger_its_wal_and_the_local_log_are_owner_only(umask: int, tmp_path: Path) -> None:
    from fedkd.node.local_log import NodeLog
    from fedkd.privacy.durable_sqlite import durable_connection

    ledger = tmp_path / "node.ledger.db"
    with durable_connection(ledger) as db:
        db.execute("CREATE TABLE t (x)")
        db.execute("INSERT INTO t VALUES (1)")
        wal = [p for p in tmp_path.iterdir() if p.name.endswith(("-wal", "-shm"))]
        assert wal and all(_mode(p) == 0o600 for p in wal)
    assert _mode(ledger) == 0o600
    logs = tmp_path / "logs"
    log = NodeLog(eval_path=logs / "node.eval.jsonl", log_path=logs / "node.log",
                  runs_path=logs / "node.runs.jsonl")  # fmt: skip
    log.note("a local line")
    log.joined(run_id="r", settings={"dp": True})
    written = sorted(p.name for p in logs.iterdir() if _mode(p) == 0o600)
    assert written == ["node.log", "node.runs.jsonl"]


def test_the_nodes_saved_model_is_owner_only(umask: int, tmp_path: Path) -> None:
    """A model trained on private records (without DP, their whole signal) stays the node's."""
    import numpy as np

    from fedkd.node.model import save_model

    path = save_model(tmp_path / "node.model.npz", "mlp-s", {"w": np.ones(3, np.float32)})
    assert _mode(path) == 0o600 and np.load(path)["architecture"] == "mlp-s"
