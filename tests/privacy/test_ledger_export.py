"""A lost ledger comes back only from the node's own signed export: the same chain and
head, never an edited, truncated or foreign one, never over a ledger with releases."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sqlite3
import tempfile
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from fedkd.cli import app
from fedkd.deploy.certs import make_node_keys
from fedkd.deploy.keyring import load_sign_key
from fedkd.privacy.ledger import GENESIS, Ledger, LedgerError, Release
from fedkd.privacy.ledger_export import (
    DOMAIN,
    FORMAT,
    VERSION,
    LedgerExportError,
    restore_ledger,
    signed_export,
)

NOT_VERIFIED = "signature does not verify with the given public key"


@dataclasses.dataclass(frozen=True)
class Keys:
    sign: Path
    sign_pub: Path
    private: ed25519.Ed25519PrivateKey
    public: ed25519.Ed25519PublicKey


def node_keys(folder: Path, name: str) -> Keys:
    """The node's reply-signing pair, as ``fedkd certs node`` writes it."""
    _, signing = make_node_keys(folder, name)
    assert signing.public_key is not None
    private = serialization.load_pem_private_key(signing.private_key.read_bytes(), None)
    assert isinstance(private, ed25519.Ed25519PrivateKey)
    return Keys(signing.private_key, signing.public_key, private, load_sign_key(signing.public_key))


def release(round_: int, *, epsilon: float | None = None) -> Release:
    return Release(
        run_id="run-1",
        round=round_,
        node_id=2**64 - 5,  # Flower node ids are uint64
        dataset_digest="hmac-sha256:" + "cd" * 32,
        transfer_digest="transfer-x",
        mechanism="dp-sgd" if epsilon is not None else "none",
        accountant="prv",
        noise_multiplier=1.2,
        sample_rate=0.01,
        steps=94,
        epsilon=epsilon,
        delta=1e-5,
        payload_sha256="ab" * 32,
        fields_sent=("soft_labels", "privacy"),
        policy='{"max-epsilon":3.0}',
        randomness="os-entropy",
    )


def make_ledger(path: Path, epsilons: list[float | None]) -> Ledger:
    ledger = Ledger.open(path)
    for round_, epsilon in enumerate(epsilons, start=1):
        ledger.append(release(round_, epsilon=epsilon))
    return ledger


def delete_ledger(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def resign(document: dict[str, Any], key: ed25519.Ed25519PrivateKey) -> bytes:
    """``document`` with its body signed again by ``key``, as an attacker would."""
    canonical = json.dumps(
        document["body"], sort_keys=True, separators=(",", ":"), allow_nan=False
    ).encode()
    return json.dumps({**document, "signature": key.sign(DOMAIN + canonical).hex()}).encode()


def rechain(rows: list[dict[str, Any]]) -> str:
    """Recompute every row hash after an edit (the chain alone is not keyed); the head."""
    from fedkd.privacy.ledger import row_digest

    head = GENESIS
    release_fields = [f.name for f in dataclasses.fields(Release)]
    for row in rows:
        values = {name: row[name] for name in release_fields}
        edited = Release(**values | {"fields_sent": tuple(row["fields_sent"])})
        row["prev_hash"] = head
        row["row_hash"] = row_digest(head, edited, seq=row["seq"], created_at=row["created_at"])
        head = row["row_hash"]
    return head


@pytest.fixture
def cleveland(tmp_path: Path) -> tuple[Path, Keys]:
    """Cleveland's ledger with three releases (one without a guarantee) and its keys."""
    path = tmp_path / "state" / "cleveland.ledger.db"
    make_ledger(path, [0.3, None, 0.9])
    return path, node_keys(tmp_path / "keys", "cleveland")


def test_a_restored_ledger_has_the_same_rows_head_and_store(
    cleveland: tuple[Path, Keys], tmp_path: Path
) -> None:
    path, keys = cleveland
    original = Ledger.open(path)
    export = signed_export(path, node_name="cleveland", key=keys.private)
    document = json.loads(export)
    assert set(document) == {"body", "signature"} and len(document["signature"]) == 128
    body = document["body"]
    assert (body["format"], body["version"], body["node"]) == (FORMAT, VERSION, "cleveland")
    assert body["store_id"] == original.store_id
    assert body["head"] == original.head()
    assert [row["epsilon"] for row in body["rows"]] == [0.3, None, 0.9]
    assert body["rows"][0]["node_id"] == 2**64 - 5
    assert body["rows"][0]["fields_sent"] == ["soft_labels", "privacy"]
    # The node secret stays in the ledger: the backup is not key material.
    assert original._store()[1].hex() not in export.decode()

    target = tmp_path / "restored" / "cleveland.ledger.db"
    head = restore_ledger(export, public_key=keys.public, to_path=target)
    assert head == original.head() == body["head"]
    restored = Ledger.open(target, expected_head=head)
    assert restored.rows() == original.rows()
    assert [r.seq for r in restored.rows()] == [1, 2, 3]
    assert restored.store_id == original.store_id
    assert restored.history() == original.history()
    assert restored.unbounded_since() == 2
    # A fresh secret: rows already written keep their keyed digests, new ones differ.
    assert restored._store()[1] != original._store()[1]
    assert restored.keyed("sha256:abc") != original.keyed("sha256:abc")


def test_an_empty_ledger_round_trips_to_genesis(tmp_path: Path) -> None:
    keys = node_keys(tmp_path / "keys", "hungary")
    Ledger.open(tmp_path / "hungary.ledger.db")
    export = signed_export(tmp_path / "hungary.ledger.db", node_name="hungary", key=keys.private)
    assert json.loads(export)["body"]["rows"] == []
    target = tmp_path / "back" / "hungary.ledger.db"
    assert restore_ledger(export, public_key=keys.public, to_path=target) == GENESIS
    assert Ledger.open(target).rows() == []


@settings(max_examples=20, deadline=None)
@given(
    epsilons=st.lists(
        st.one_of(
            st.none(),
            st.floats(min_value=0.0, max_value=1e6, allow_nan=False, allow_subnormal=True),
        ),
        max_size=6,
    )
)
def test_any_ledger_round_trips_exactly(epsilons: list[float | None]) -> None:
    """Whatever the floats, the export re-encodes to the signed bytes and the chain holds."""
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        keys = node_keys(root / "keys", "bern")
        original = make_ledger(root / "bern.ledger.db", epsilons)
        export = signed_export(root / "bern.ledger.db", node_name="bern", key=keys.private)
        target = root / "restored.db"
        head = restore_ledger(export, public_key=keys.public, to_path=target)
        assert head == original.head()
        assert Ledger.open(target, expected_head=head).rows() == original.rows()


def test_a_lowered_epsilon_resigned_with_another_key_is_refused(
    cleveland: tuple[Path, Keys], tmp_path: Path
) -> None:
    path, keys = cleveland
    document = json.loads(signed_export(path, node_name="cleveland", key=keys.private))
    document["body"]["rows"][2]["epsilon"] = 0.01
    document["body"]["head"] = rechain(document["body"]["rows"])  # a consistent chain
    forged = resign(document, ed25519.Ed25519PrivateKey.generate())
    target = tmp_path / "cleveland.ledger.db"
    with pytest.raises(LedgerExportError, match=NOT_VERIFIED):
        restore_ledger(forged, public_key=keys.public, to_path=target)
    assert not target.exists()


def test_an_edited_row_under_the_kept_signature_is_refused(
    cleveland: tuple[Path, Keys], tmp_path: Path
) -> None:
    path, keys = cleveland
    document = json.loads(signed_export(path, node_name="cleveland", key=keys.private))
    document["body"]["rows"][0]["epsilon"] = 0.1
    target = tmp_path / "cleveland.ledger.db"
    with pytest.raises(LedgerExportError, match=NOT_VERIFIED):
        restore_ledger(json.dumps(document).encode(), public_key=keys.public, to_path=target)
    assert not target.exists()


def test_a_truncated_export_under_the_kept_signature_is_refused(
    cleveland: tuple[Path, Keys], tmp_path: Path
) -> None:
    path, keys = cleveland
    document = json.loads(signed_export(path, node_name="cleveland", key=keys.private))
    rows = document["body"]["rows"]
    document["body"]["rows"] = rows[:-1]
    document["body"]["head"] = rows[-2]["row_hash"]  # an older, valid chain
    target = tmp_path / "cleveland.ledger.db"
    with pytest.raises(LedgerExportError, match=NOT_VERIFIED):
        restore_ledger(json.dumps(document).encode(), public_key=keys.public, to_path=target)
    assert not target.exists()


def test_one_nodes_export_does_not_verify_with_another_nodes_key(
    cleveland: tuple[Path, Keys], tmp_path: Path
) -> None:
    path, keys = cleveland
    other = node_keys(tmp_path / "keys", "hungary")
    export = signed_export(path, node_name="cleveland", key=keys.private)
    with pytest.raises(LedgerExportError, match=NOT_VERIFIED):
        restore_ledger(export, public_key=other.public, to_path=tmp_path / "x.ledger.db")
    # The right key but another node's name or ledger file is a mix-up, refused too.
    with pytest.raises(
        LedgerExportError, match="the export is of node 'cleveland', not of 'hungary'"
    ):
        restore_ledger(
            export, public_key=keys.public, to_path=tmp_path / "a.db", node_name="hungary"
        )
    with pytest.raises(LedgerExportError, match=r"hungary\.ledger\.db is the ledger of 'hungary'"):
        restore_ledger(export, public_key=keys.public, to_path=tmp_path / "hungary.ledger.db")
    assert not (tmp_path / "a.db").exists() and not (tmp_path / "hungary.ledger.db").exists()


def test_a_broken_chain_is_refused_even_when_the_nodes_key_signed_it(
    cleveland: tuple[Path, Keys], tmp_path: Path
) -> None:
    """The signature says who wrote the export; the chain says the rows are a ledger."""
    path, keys = cleveland
    document = json.loads(signed_export(path, node_name="cleveland", key=keys.private))
    document["body"]["rows"][1]["steps"] = 1
    with pytest.raises(LedgerExportError, match="chain does not verify: ledger row 2 was altered"):
        restore_ledger(
            resign(document, keys.private), public_key=keys.public, to_path=tmp_path / "a"
        )
    document = json.loads(signed_export(path, node_name="cleveland", key=keys.private))
    del document["body"]["rows"][1]
    with pytest.raises(LedgerExportError, match="ledger row 2 is missing \\(found 3\\)"):
        restore_ledger(
            resign(document, keys.private), public_key=keys.public, to_path=tmp_path / "b"
        )
    document = json.loads(signed_export(path, node_name="cleveland", key=keys.private))
    document["body"]["head"] = document["body"]["rows"][0]["row_hash"]
    with pytest.raises(LedgerExportError, match="not at its stated head"):
        restore_ledger(
            resign(document, keys.private), public_key=keys.public, to_path=tmp_path / "c"
        )
    document = json.loads(signed_export(path, node_name="cleveland", key=keys.private))
    document["body"]["rows"][0]["steps"] = 94.0  # same number, other type: another hash
    with pytest.raises(LedgerExportError, match=r"row 1: steps = 94\.0 is not int"):
        restore_ledger(
            resign(document, keys.private), public_key=keys.public, to_path=tmp_path / "d"
        )
    assert not any((tmp_path / name).exists() for name in "abcd")


@pytest.mark.parametrize(
    ("export", "message"),
    [
        (b"\xff\xfe not json", "not a signed ledger export: not JSON"),
        (b'{"rows": []}', "not a signed ledger export: expected a body and a signature"),
        (b'{"body": {}, "signature": "zz"}', "signature is not hex"),
        (b'{"body": {}, "signature": "abcd"}', "signature is 2 bytes, not 64"),
        (b'{"body": {"e": NaN}, "signature": ""}', "NaN is not a JSON number"),
    ],
)
def test_what_is_not_a_signed_export_is_refused(
    export: bytes, message: str, tmp_path: Path
) -> None:
    keys = node_keys(tmp_path / "keys", "bern")
    with pytest.raises(LedgerExportError, match=message):
        restore_ledger(export, public_key=keys.public, to_path=tmp_path / "bern.ledger.db")


def test_a_ledger_with_releases_is_never_overwritten(
    cleveland: tuple[Path, Keys], tmp_path: Path
) -> None:
    path, keys = cleveland
    export = signed_export(path, node_name="cleveland", key=keys.private)
    # The node started again from zero (the server had no record) and released twice.
    existing = tmp_path / "other" / "cleveland.ledger.db"
    head_before = make_ledger(existing, [0.2, 0.4]).head()
    with pytest.raises(LedgerExportError, match=r"already holds a ledger with 2 releases"):
        restore_ledger(export, public_key=keys.public, to_path=existing)
    assert Ledger.open(existing, expected_head=head_before).head() == head_before
    assert [r.epsilon for r in Ledger.open(existing).rows()] == [0.2, 0.4]
    # Nor a file that is not a ledger at all.
    garbage = tmp_path / "patients.db"
    with sqlite3.connect(garbage) as db:
        db.execute("CREATE TABLE patients (id INTEGER)")
    before = hashlib.sha256(garbage.read_bytes()).hexdigest()
    with pytest.raises(LedgerExportError, match="is not a readable ledger; refusing to overwrite"):
        restore_ledger(export, public_key=keys.public, to_path=garbage)
    assert hashlib.sha256(garbage.read_bytes()).hexdigest() == before


def test_an_empty_ledger_is_replaced_by_the_restored_one(
    cleveland: tuple[Path, Keys], tmp_path: Path
) -> None:
    path, keys = cleveland
    empty = tmp_path / "fresh" / "cleveland.ledger.db"
    other_store = Ledger.open(empty).store_id
    export = signed_export(path, node_name="cleveland", key=keys.private)
    head = restore_ledger(export, public_key=keys.public, to_path=empty)
    restored = Ledger.open(empty, expected_head=head)
    assert restored.store_id == Ledger.open(path).store_id != other_store
    assert len(restored.rows()) == 3


def test_a_lost_ledger_is_refused_until_restored_and_then_continues(
    cleveland: tuple[Path, Keys], tmp_path: Path
) -> None:
    path, keys = cleveland
    backup = tmp_path / "backup.json"
    backup.write_bytes(signed_export(path, node_name="cleveland", key=keys.private))
    recorded = Ledger.open(path).head()  # what the server's registry holds
    delete_ledger(path)
    with pytest.raises(LedgerError, match="is missing but the server recorded spend"):
        Ledger.open(path, expected_head=recorded)
    assert not path.exists()  # the refusal does not create a fresh ledger

    assert restore_ledger(backup.read_bytes(), public_key=keys.public, to_path=path) == recorded
    ledger = Ledger.open(path, expected_head=recorded)
    after = ledger.append(release(4, epsilon=1.2))
    assert after.seq == 4 and after.prev_hash == recorded
    assert Ledger.open(path, expected_head=after.row_hash).head() == after.row_hash


def test_the_cli_backs_up_and_restores_a_ledger(
    cleveland: tuple[Path, Keys], tmp_path: Path
) -> None:
    path, keys = cleveland
    head = Ledger.open(path).head()
    runner = CliRunner()
    backup = tmp_path / "backup" / "cleveland.json"
    backup.parent.mkdir()
    export_args = ["ledger", "export", str(path), "--sign-key", str(keys.sign)]
    exported = runner.invoke(app, [*export_args, "--node", "cleveland", "--out", str(backup)])
    assert exported.exit_code == 0, exported.output
    assert "3 rows of cleveland signed and written to" in exported.output
    assert f"head {head}" in exported.output
    assert json.loads(backup.read_text())["body"]["head"] == head
    assert not backup.with_name("cleveland.json.partial").exists()
    to_stdout = runner.invoke(app, [*export_args, "--node", "cleveland", "--format", "signed"])
    assert to_stdout.exit_code == 0 and json.loads(to_stdout.output)["body"]["head"] == head

    delete_ledger(path)
    restore_args = ["ledger", "restore", str(backup), "--public-key", str(keys.sign_pub)]
    restored = runner.invoke(app, [*restore_args, "--to", str(path)])
    assert restored.exit_code == 0, restored.output
    assert "3 releases restored to" in restored.output
    assert f"head {head}" in restored.output
    assert Ledger.open(path, expected_head=head).head() == head

    again = runner.invoke(app, [*restore_args, "--to", str(path)])
    assert again.exit_code == 2
    assert "already holds a ledger with 3 releases" in " ".join(again.output.split())

    document = json.loads(backup.read_text())
    document["body"]["rows"][0]["epsilon"] = 0.01
    backup.write_text(json.dumps(document))
    tampered = runner.invoke(app, [*restore_args, "--to", str(tmp_path / "t.ledger.db")])
    assert tampered.exit_code == 2 and NOT_VERIFIED in " ".join(tampered.output.split())

    unsigned = runner.invoke(app, [*export_args, "--node", "cleveland", "--format", "json"])
    assert unsigned.exit_code == 2 and "--format json is not signed" in unsigned.output
    keyless = runner.invoke(app, ["ledger", "export", str(path), "--format", "signed"])
    assert keyless.exit_code == 2 and "needs --sign-key" in " ".join(keyless.output.split())
