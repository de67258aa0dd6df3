"""The ledger is append-only, chained, survives reopening, and refuses to be forgotten."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from pathlib import Path

import pytest

from fedkd.privacy.accounting import DPSteps
from fedkd.privacy.ledger import (
    GENESIS,
    Ledger,
    LedgerError,
    Release,
    rows_to_csv,
    rows_to_json,
)


def release(round_: int, *, digest: str = "data-a", steps: int = 94) -> Release:
    return Release(
        run_id="run-1",
        round=round_,
        node_id=2**64 - 5,  # Flower node ids are uint64
        dataset_digest=digest,
        transfer_digest="transfer-x",
        mechanism="dp-sgd",
        accountant="prv",
        noise_multiplier=1.2,
        sample_rate=0.01,
        steps=steps,
        epsilon=0.3 * round_,
        delta=1e-5,
        payload_sha256="ab" * 32,
        fields_sent=("soft_labels", "privacy"),
    )


def test_rows_chain_and_reopen_with_the_recorded_head(tmp_path: Path) -> None:
    ledger = Ledger.open(tmp_path / "node.db")
    rows = [ledger.append(release(r)) for r in (1, 2, 3)]
    assert rows[0].prev_hash == GENESIS
    assert [r.prev_hash for r in rows[1:]] == [r.row_hash for r in rows[:-1]]
    reopened = Ledger.open(tmp_path / "node.db", expected_head=rows[-1].row_hash)
    assert [r.seq for r in reopened.rows()] == [1, 2, 3]
    assert reopened.history() == (DPSteps(1.2, 0.01, 3 * 94),)


def test_one_budget_per_store_whatever_the_dataset(tmp_path: Path) -> None:
    """Every release from the store composes, whatever records it was computed on."""
    ledger = Ledger.open(tmp_path / "node.db")
    ledger.append(release(1, digest="data-a", steps=10))
    ledger.append(release(1, digest="data-b", steps=20))
    ledger.append(release(2, digest="data-a", steps=5))
    assert ledger.history() == (DPSteps(1.2, 0.01, 35),)
    assert ledger.unbounded_since() is None and ledger.fixed_delta() == (1e-5, 1)
    ledger.append(dataclasses.replace(release(3), mechanism="none", steps=0, epsilon=None))
    ledger.append(release(4, steps=5))
    assert ledger.unbounded_since() == 4  # the release without a guarantee, for good


def test_the_store_has_a_random_id_and_keys_digests_with_a_secret(tmp_path: Path) -> None:
    import hashlib

    a, b = Ledger.open(tmp_path / "a.db"), Ledger.open(tmp_path / "b.db")
    assert len(a.store_id) == 32 and a.store_id != b.store_id
    assert Ledger.open(tmp_path / "a.db").store_id == a.store_id  # kept with the ledger
    keyed = a.keyed("sha256:abc")
    assert keyed.startswith("hmac-sha256:") and keyed == a.keyed("sha256:abc")
    assert keyed != b.keyed("sha256:abc")  # another store, another secret
    assert hashlib.sha256(b"sha256:abc").hexdigest() not in keyed
    # The secret is not in what a ledger exports.
    a.append(release(1))
    secret = a._store()[1]
    assert secret.hex() not in rows_to_json(a.rows()) and secret.hex() not in rows_to_csv(a.rows())


def test_sqlite_refuses_update_and_delete(tmp_path: Path) -> None:
    ledger = Ledger.open(tmp_path / "node.db")
    ledger.append(release(1))
    db = sqlite3.connect(tmp_path / "node.db")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        db.execute("UPDATE releases SET epsilon = 0")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        db.execute("DELETE FROM releases")


def test_a_rewritten_row_is_detected(tmp_path: Path) -> None:
    ledger = Ledger.open(tmp_path / "node.db")
    head = [ledger.append(release(r)) for r in (1, 2)][-1].row_hash
    db = sqlite3.connect(tmp_path / "node.db")
    db.execute("DROP TRIGGER releases_no_update")
    db.execute("UPDATE releases SET epsilon = 0 WHERE seq = 1")
    db.commit()
    with pytest.raises(LedgerError, match="row 1 was altered"):
        Ledger.open(tmp_path / "node.db", expected_head=head)


def test_a_deleted_ledger_is_refused_not_restarted(tmp_path: Path) -> None:
    ledger = Ledger.open(tmp_path / "node.db")
    head = ledger.append(release(1)).row_hash
    for suffix in ("", "-wal", "-shm"):
        (tmp_path / f"node.db{suffix}").unlink(missing_ok=True)
    with pytest.raises(LedgerError, match="missing"):
        Ledger.open(tmp_path / "node.db", expected_head=head)


def test_a_truncated_ledger_does_not_reach_the_servers_head(tmp_path: Path) -> None:
    ledger = Ledger.open(tmp_path / "node.db")
    ledger.append(release(1))
    head = ledger.append(release(2)).row_hash
    # A copy taken after round 1, restored later: a valid chain, but an older head.
    other = Ledger.open(tmp_path / "old.db")
    other.append(release(1))
    with pytest.raises(LedgerError, match="does not match"):
        Ledger.open(tmp_path / "old.db", expected_head=head)


def test_garbage_file_is_a_ledger_error(tmp_path: Path) -> None:
    (tmp_path / "node.db").write_bytes(b"not a database at all" * 100)
    with pytest.raises(LedgerError, match="unreadable"):
        Ledger.open(tmp_path / "node.db")


def test_exports_carry_every_row(tmp_path: Path) -> None:
    ledger = Ledger.open(tmp_path / "node.db")
    for r in (1, 2):
        ledger.append(release(r))
    rows = ledger.rows()
    lines = rows_to_csv(rows).splitlines()
    assert len(lines) == 3 and lines[0].startswith("run_id,round,node_id")
    exported = json.loads(rows_to_json(rows))
    assert [e["round"] for e in exported] == [1, 2]
    assert exported[1]["fields_sent"] == ["soft_labels", "privacy"]
    assert exported[1]["prev_hash"] == exported[0]["row_hash"]


def test_a_server_record_that_lags_behind_is_accepted(tmp_path: Path) -> None:
    """A reply lost after its row was written leaves the server one row behind."""
    ledger = Ledger.open(tmp_path / "node.db")
    recorded = ledger.append(release(1)).row_hash
    ledger.append(release(2))  # written, but the reply never reached the server
    assert len(Ledger.open(tmp_path / "node.db", expected_head=recorded).rows()) == 2


def test_cli_shows_and_exports_a_verified_ledger(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from fedkd.cli import app

    ledger = Ledger.open(tmp_path / "node.db")
    for r in (1, 2):
        ledger.append(release(r))
    runner = CliRunner()
    shown = runner.invoke(app, ["ledger", "show", str(tmp_path / "node.db")])
    assert shown.exit_code == 0 and "2 releases, chain verified" in shown.output
    exported = runner.invoke(
        app, ["ledger", "export", str(tmp_path / "node.db"), "--format", "json"]
    )
    assert exported.exit_code == 0
    assert [r["epsilon"] for r in json.loads(exported.output)] == [0.3, 0.6]
    csv_out = tmp_path / "ledger.csv"
    runner.invoke(app, ["ledger", "export", str(tmp_path / "node.db"), "--out", str(csv_out)])
    assert len(csv_out.read_text().splitlines()) == 3
    missing = runner.invoke(app, ["ledger", "show", str(tmp_path / "absent.db")])
    assert missing.exit_code == 2 and "no ledger" in missing.output


def test_cli_refuses_a_tampered_ledger(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from fedkd.cli import app

    ledger = Ledger.open(tmp_path / "node.db")
    ledger.append(release(1))
    db = sqlite3.connect(tmp_path / "node.db")
    db.execute("DROP TRIGGER releases_no_update")
    db.execute("UPDATE releases SET epsilon = 0.0001")
    db.commit()
    result = CliRunner().invoke(app, ["ledger", "show", str(tmp_path / "node.db")])
    assert result.exit_code == 1 and "altered" in result.output


def test_cli_reads_a_ledger_without_changing_it_and_refuses_other_files(tmp_path: Path) -> None:
    import hashlib

    from typer.testing import CliRunner

    from fedkd.cli import app

    ledger = Ledger.open(tmp_path / "node.db")
    ledger.append(release(1))
    runner = CliRunner()
    before = hashlib.sha256((tmp_path / "node.db").read_bytes()).digest()
    shown = runner.invoke(app, ["ledger", "show", str(tmp_path / "node.db")])
    assert shown.exit_code == 0 and "1 releases, chain verified" in shown.output
    assert hashlib.sha256((tmp_path / "node.db").read_bytes()).digest() == before

    (tmp_path / "empty.db").write_bytes(b"")
    with sqlite3.connect(tmp_path / "other.db") as db:
        db.execute("CREATE TABLE patients (id INTEGER)")
    other_bytes = (tmp_path / "other.db").read_bytes()
    for name in ("empty.db", "other.db"):
        refused = runner.invoke(app, ["ledger", "show", str(tmp_path / name)])
        assert refused.exit_code == 1
        assert "is not a fedkd ledger" in " ".join(refused.output.split())
    assert (tmp_path / "empty.db").read_bytes() == b""
    assert (tmp_path / "other.db").read_bytes() == other_bytes
