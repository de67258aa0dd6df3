"""A node's privacy ledger, backed up as an export signed by the node and restored from it.

The server refuses a node whose ledger no longer contains the head it recorded, so a
hospital that loses its ledger file cannot answer again until it has the same chain
back.  The only way back is the node's own signed export::

    {"body": {"format": "fedkd-ledger-export", "version": 1, "node": "cleveland",
              "store_id": "…", "rows": [{every field of every row}, …], "head": "…"},
     "signature": "<Ed25519 over DOMAIN ‖ canonical JSON of body, hex>"}

Restore checks the signature with the node's *registered* public signing key before it
reads anything in the body, then recomputes the hash chain row by row, and writes the
rows verbatim (same seq, times and hashes) into a new file, so the restored head is the
head the server knows.  It never writes over a ledger that holds releases.

The store secret is not in the export.  It keys the dataset digests in new rows; the rows
already written carry their keyed digests, and those are restored verbatim and hashed
into the chain, so nothing that is restored needs the secret.  The restored store gets a
fresh secret: the same records digest differently in rows written after the restore,
which no check depends on (the budget is per store, whatever the digest), and the store
id and chain are kept.  Leaving the secret out keeps the project's rule that the secret
never leaves the node and exports list releases only, so a backup can be copied to
backup media like any other file rather than handled as key material.
"""

from __future__ import annotations

import json
import typing
from collections.abc import Mapping
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any, NoReturn

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ed25519

from fedkd.privacy.ledger import (
    GENESIS,
    Ledger,
    LedgerError,
    LedgerRow,
    ReadOnlyLedger,
    verify_rows,
)

FORMAT = "fedkd-ledger-export"
VERSION = 1
DOMAIN = b"fedkd/v1/LedgerExport\x00"
"""Signed before the body, so no signature made for a reply or anything else verifies."""

LEDGER_SUFFIX = ".ledger.db"
_ROW_FIELDS = [f.name for f in fields(LedgerRow)]
_ROW_TYPES = typing.get_type_hints(LedgerRow)
_BODY_KEYS = {"format", "version", "node", "store_id", "rows", "head"}
_SIGNATURE_BYTES = 64


class LedgerExportError(ValueError):
    """A signed export cannot be made, or cannot be restored; the message says why."""


def signed_export(
    ledger_path: Path | str, *, node_name: str, key: ed25519.Ed25519PrivateKey
) -> bytes:
    """Every verified row of the ledger at ``ledger_path``, signed by the node.

    Parameters
    ----------
    ledger_path
        The node's ledger; it is read only, never changed.
    node_name
        The node's registered name, signed into the export so that restore can refuse it
        for any other node.
    key
        The node's Ed25519 reply-signing key (``<name>.sign`` from ``fedkd certs node``).

    Returns
    -------
    bytes
        The export document (UTF-8 JSON).  It holds no secret: see the module docstring.

    Raises
    ------
    LedgerExportError
        An empty node name.
    LedgerError
        No ledger at ``ledger_path``, not a fedkd ledger, or a broken chain.
    """
    if not node_name.strip():
        raise LedgerExportError("a signed export needs the node's name")
    ledger = ReadOnlyLedger.read(ledger_path)
    rows = ledger.rows()
    body = {
        "format": FORMAT,
        "version": VERSION,
        "node": node_name,
        "store_id": ledger.store_id,
        "rows": [asdict(row) | {"fields_sent": list(row.fields_sent)} for row in rows],
        "head": rows[-1].row_hash if rows else GENESIS,
    }
    signature = key.sign(DOMAIN + _canonical(body))
    document = {"body": body, "signature": signature.hex()}
    return (json.dumps(document, indent=2, sort_keys=True, allow_nan=False) + "\n").encode()


def restore_ledger(
    export_bytes: bytes,
    *,
    public_key: ed25519.Ed25519PublicKey,
    to_path: Path | str,
    node_name: str | None = None,
) -> str:
    """Write the ledger in a signed export back to ``to_path``; returns its head.

    Parameters
    ----------
    export_bytes
        What :func:`signed_export` wrote.
    public_key
        The node's registered public signing key (``<name>.sign.pub``).
    to_path
        Where the ledger goes: no file, or a ledger without releases.  A path named
        ``<name>.ledger.db`` (the node's own layout) must be the export's node's.
    node_name
        When given, the export must be this node's.

    Returns
    -------
    str
        The restored ledger's head, which equals the export's; the file at ``to_path``
        has been opened with ``Ledger.open(to_path, expected_head=head)``.

    Raises
    ------
    LedgerExportError
        A document that is not a signed export, a signature that does not verify with
        ``public_key``, a row that does not chain, another node's export, or a
        ``to_path`` that holds releases (it is left as it was).
    """
    body = _verified_body(export_bytes, public_key)
    node, store_id, rows, head = _read_body(body)
    _check_node(node, to_path=Path(to_path), node_name=node_name)
    try:
        chain = verify_rows(rows)
    except LedgerError as exc:
        raise LedgerExportError(f"the export's chain does not verify: {exc}") from None
    if (chain[-1] if chain else GENESIS) != head:
        raise LedgerExportError(
            f"the export's rows end at {(chain[-1] if chain else GENESIS)[:12]}…, "
            f"not at its stated head {head[:12]}…"
        )
    _clear_empty(Path(to_path))
    try:
        restored = Ledger.restore(to_path, rows, store_id=store_id)
        ledger = Ledger.open(to_path, expected_head=head)
    except (LedgerError, OSError) as exc:
        raise LedgerExportError(f"cannot restore the ledger to {to_path}: {exc}") from exc
    if restored != head or ledger.head() != head or ledger.store_id != store_id:
        raise LedgerExportError(f"the ledger written to {to_path} is not the export's")
    return head


def _canonical(body: Mapping[str, Any]) -> bytes:
    # Python's JSON writes the same bytes for the same values (floats round-trip
    # exactly), so the verifier can re-encode what it parsed and check exactly what it
    # will use, whatever whitespace or key order the file has.
    return json.dumps(
        body, sort_keys=True, separators=(",", ":"), allow_nan=False, ensure_ascii=True
    ).encode()


def _reject_constant(name: str) -> NoReturn:
    raise LedgerExportError(f"not a signed ledger export: {name} is not a JSON number")


def _verified_body(export_bytes: bytes, public_key: ed25519.Ed25519PublicKey) -> dict[str, Any]:
    """The body, only once its signature verifies: nothing else is read before."""
    try:
        document = json.loads(export_bytes, parse_constant=_reject_constant)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise LedgerExportError(f"not a signed ledger export: not JSON ({exc})") from None
    if not isinstance(document, dict) or set(document) != {"body", "signature"}:
        raise LedgerExportError("not a signed ledger export: expected a body and a signature")
    body, signature = document["body"], document["signature"]
    if not isinstance(body, dict) or not isinstance(signature, str):
        raise LedgerExportError("not a signed ledger export: expected a body and a signature")
    try:
        raw = bytes.fromhex(signature)
    except ValueError:
        raise LedgerExportError("the export's signature is not hex") from None
    if len(raw) != _SIGNATURE_BYTES:
        raise LedgerExportError(f"the export's signature is {len(raw)} bytes, not 64")
    try:
        public_key.verify(raw, DOMAIN + _canonical(body))
    except InvalidSignature:
        raise LedgerExportError(
            "the export's signature does not verify with the given public key: it was "
            "altered after signing, or signed by another node's key"
        ) from None
    return body


def _read_body(body: Mapping[str, Any]) -> tuple[str, str, list[LedgerRow], str]:
    """``(node, store_id, rows, head)`` from a verified body, each of its type."""
    if set(body) != _BODY_KEYS:
        raise LedgerExportError(f"the export's body has {sorted(body)}, not {sorted(_BODY_KEYS)}")
    # The body is the node's own, but a key that signed a format this code does not
    # know is not a reason to guess at it.
    if body["format"] != FORMAT or body["version"] != VERSION:
        raise LedgerExportError(
            f"export format {body['format']!r} version {body['version']!r}; this fedkd "
            f"restores {FORMAT!r} version {VERSION}"
        )
    node, store_id, head, rows = body["node"], body["store_id"], body["head"], body["rows"]
    for name, value in (("node", node), ("store_id", store_id), ("head", head)):
        if not isinstance(value, str) or not value:
            raise LedgerExportError(f"the export's {name} is not a non-empty string")
    if not isinstance(rows, list):
        raise LedgerExportError("the export's rows are not a list")
    return node, store_id, [_row(number, row) for number, row in enumerate(rows, 1)], head


def _row(number: int, record: object) -> LedgerRow:
    """One exported row as a :class:`LedgerRow`, with every field of its declared type.

    Types are checked exactly (no 1 for 1.0): the row hash was computed over the values
    as the ledger read them, and a coerced value would hash differently anyway."""
    if not isinstance(record, dict) or set(record) != set(_ROW_FIELDS):
        raise LedgerExportError(f"the export's row {number} does not have the ledger's fields")
    for name in _ROW_FIELDS:
        hint = _ROW_TYPES[name]
        if not _of_type(record[name], hint):
            wanted = hint.__name__ if isinstance(hint, type) else str(hint)
            raise LedgerExportError(
                f"the export's row {number}: {name} = {record[name]!r} is not {wanted}"
            )
    return LedgerRow(**record | {"fields_sent": tuple(record["fields_sent"])})


def _of_type(value: object, hint: object) -> bool:
    if hint is int:
        return type(value) is int  # bool is an int to isinstance
    if hint is float:
        return type(value) is float
    if hint is str:
        return isinstance(value, str)
    if hint == float | None:
        return value is None or type(value) is float
    if hint == tuple[str, ...]:
        return isinstance(value, list) and all(isinstance(item, str) for item in value)
    raise TypeError(f"no reader for a ledger field of type {hint}")


def _check_node(node: str, *, to_path: Path, node_name: str | None) -> None:
    """The export must be the named node's; the node's own layout names its ledger
    ``<name>.ledger.db``, so a path named for another node is a mix-up."""
    if node_name is not None and node != node_name:
        raise LedgerExportError(f"the export is of node {node!r}, not of {node_name!r}")
    if to_path.name.endswith(LEDGER_SUFFIX):
        owner = to_path.name.removesuffix(LEDGER_SUFFIX)
        if owner != node:
            raise LedgerExportError(
                f"the export is of node {node!r}, but {to_path} is the ledger of {owner!r}"
            )


def _clear_empty(path: Path) -> None:
    """Remove a ledger at ``path`` that holds no release; refuse anything else there.

    An empty ledger holds only an unused random store id and secret (a digest is keyed
    only when its row is written), so nothing is lost; any release is, so it stays."""
    if not path.exists():
        return
    if path.stat().st_size > 0:
        try:
            rows = ReadOnlyLedger(path).rows()
        except LedgerError as exc:
            raise LedgerExportError(
                f"{path} is there and is not a readable ledger; refusing to overwrite it ({exc})"
            ) from None
        if rows:
            raise LedgerExportError(
                f"{path} already holds a ledger with {len(rows)} releases (head "
                f"{rows[-1].row_hash[:12]}…); refusing to overwrite it"
            )
    # The WAL and shared-memory files go too: a stale WAL would be replayed into the
    # restored file.
    for suffix in ("-wal", "-shm", ""):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
