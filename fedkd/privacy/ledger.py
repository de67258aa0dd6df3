"""The node's privacy ledger: append-only SQLite, one hash-chained row per release.

A row is written *before* its payload leaves the node, so a crash between the two loses a
release that was never sent, never a spend that was.  Rows are chained::

    row_hash_i = SHA-256(row_hash_{i-1} ‖ canonical JSON of row i)      row_hash_0 = 0…0

so rewriting, reordering or dropping a row changes the head; the server remembers each
node's last head and cumulative ε and refuses a node whose ledger no longer leads there.
Triggers make UPDATE and DELETE fail inside SQLite as well.

A ledger is one *store*'s: a random store id and a node secret are created with it (the
secret never leaves the node: exports list releases only).  One budget per store for
life: every release composes, whatever dataset digest, run, seed or partition it came
from — conservatively, as if each release spent on every record in the store.  A digest
of private data never enters a row in the clear: it is keyed (HMAC-SHA-256) with the
node secret, so nothing the server receives is a deterministic function of the records.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import json
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, closing, contextmanager
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from pathlib import Path

from fedkd.privacy import entropy
from fedkd.privacy.accounting import DPSteps, History, compose
from fedkd.privacy.durable_sqlite import append_only_triggers, durable_connection

GENESIS = "0" * 64

_SCHEMA = (
    """
CREATE TABLE IF NOT EXISTS releases (
    seq              INTEGER PRIMARY KEY,
    run_id           TEXT    NOT NULL,
    round            INTEGER NOT NULL,
    node_id          TEXT    NOT NULL,  -- Flower node ids are uint64: beyond INTEGER
    dataset_digest   TEXT    NOT NULL,
    transfer_digest  TEXT    NOT NULL,
    mechanism        TEXT    NOT NULL,
    accountant       TEXT    NOT NULL,
    noise_multiplier REAL    NOT NULL,
    sample_rate      REAL    NOT NULL,
    steps            INTEGER NOT NULL,
    epsilon          REAL,
    delta            REAL    NOT NULL,
    payload_sha256   TEXT    NOT NULL,
    fields_sent      TEXT    NOT NULL,
    policy           TEXT    NOT NULL DEFAULT '',  -- the node's privacy policy, canonical JSON
    randomness       TEXT    NOT NULL DEFAULT '',  -- where the mechanism's randomness came from
    created_at       TEXT    NOT NULL,
    prev_hash        TEXT    NOT NULL,
    row_hash         TEXT    NOT NULL UNIQUE
);
CREATE TABLE IF NOT EXISTS store (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    store_id TEXT NOT NULL,          -- random, created with the ledger
    secret   BLOB NOT NULL           -- the node secret that keys data digests; never sent
);
"""
    + append_only_triggers("releases", "the privacy ledger is append-only")
    + append_only_triggers("store", "the store identity never changes")
)
GUARANTEED_MECHANISMS = ("dp-sgd",)
"""Mechanisms with a formal (ε, δ); any other release makes the store's ε unbounded."""


class LedgerError(RuntimeError):
    """The ledger is missing, corrupted or does not match what the server recorded."""


@dataclass(frozen=True)
class Release:
    """What one release spent and sent.  ``steps``/σ/q are this release's new DP steps;
    ``epsilon`` is the cumulative ε on ``dataset_digest`` after it (None: no guarantee)."""

    run_id: str
    round: int
    node_id: int
    dataset_digest: str
    transfer_digest: str
    mechanism: str
    accountant: str
    noise_multiplier: float
    sample_rate: float
    steps: int
    epsilon: float | None
    delta: float
    payload_sha256: str
    fields_sent: tuple[str, ...]
    policy: str = ""
    randomness: str = ""


@dataclass(frozen=True, kw_only=True)
class LedgerRow(Release):
    seq: int
    created_at: str
    prev_hash: str
    row_hash: str


def row_digest(prev_hash: str, release: Release, *, seq: int, created_at: str) -> str:
    body = {**asdict(release), "fields_sent": list(release.fields_sent)}
    for later in _LATER_FIELDS:
        if not body[later]:
            # Rows written before the field existed were hashed without it.
            del body[later]
    body.update(seq=seq, created_at=created_at)
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256((prev_hash + canonical).encode()).hexdigest()


_RELEASE_COLUMNS = [f.name for f in fields(Release)]
_ROW_COLUMNS = [*_RELEASE_COLUMNS, "seq", "created_at", "prev_hash", "row_hash"]


class Ledger:
    """A node's append-only release ledger in one SQLite file (WAL mode)."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        # Rows as last read by this instance: one message verifies the chain, composes the
        # history and looks up δ and the unbounded row from one read, not four.
        self._rows: list[LedgerRow] | None = None

    @classmethod
    def open(cls, path: Path | str, *, expected_head: str = GENESIS) -> Ledger:
        """Open (or, when nothing was ever recorded, create) and verify the ledger.

        ``expected_head`` is the chain head the server last saw from this node; a missing
        file with a non-genesis expectation, a broken chain, or another head raises
        :class:`LedgerError` — the node must refuse to release rather than start from zero.
        """
        ledger = cls(path)
        if not ledger.path.exists() and expected_head != GENESIS:
            raise LedgerError(
                f"privacy ledger {ledger.path} is missing but the server recorded spend "
                f"up to head {expected_head[:12]}…; refusing to start from zero"
            )
        ledger.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with ledger._connect() as db:
                db.executescript(_SCHEMA)
                _add_later_columns(db)
                _create_store(db)
        except sqlite3.DatabaseError as exc:
            raise LedgerError(f"privacy ledger {ledger.path} is unreadable: {exc}") from exc
        chain = ledger.verify_chain()
        # The server's record may lag (a reply lost after its row was written), so the
        # ledger must *contain* the recorded head; a lost or rewritten one does not.
        if expected_head not in (GENESIS, *chain):
            head = chain[-1] if chain else GENESIS
            raise LedgerError(
                f"privacy ledger head {head[:12]}… does not match the server's record "
                f"{expected_head[:12]}…; the ledger was lost or rewritten"
            )
        return ledger

    def _connect(self) -> AbstractContextManager[sqlite3.Connection]:
        return durable_connection(self.path)

    def rows(self) -> list[LedgerRow]:
        if self._rows is None:
            self._rows = self._read_rows()
        return list(self._rows)

    def _read_rows(self) -> list[LedgerRow]:
        try:
            with self._connect() as db:
                present = {row[1] for row in db.execute("PRAGMA table_info(releases)")}
                if not present:
                    raise LedgerError(f"{self.path} is not a fedkd ledger (no releases table)")
                missing = [c for c in _ROW_COLUMNS if c not in present]
                if set(missing) - set(_LATER_FIELDS):
                    raise LedgerError(f"{self.path} is not a fedkd ledger (lacks {missing})")
                columns = [c for c in _ROW_COLUMNS if c in present]
                cursor = db.execute(f"SELECT {', '.join(columns)} FROM releases ORDER BY seq")
                raw = cursor.fetchall()
        except sqlite3.DatabaseError as exc:
            raise LedgerError(f"privacy ledger {self.path} is unreadable: {exc}") from exc
        out = []
        for values in raw:
            # Fields added after a ledger was written read as empty, as they were hashed.
            record = dict.fromkeys(missing, "") | dict(zip(columns, values, strict=True))
            try:
                record["fields_sent"] = tuple(json.loads(record["fields_sent"]))
                record["node_id"] = int(record["node_id"])
            except (TypeError, ValueError) as exc:
                raise LedgerError(f"ledger row {record['seq']}: unreadable fields") from exc
            out.append(LedgerRow(**record))
        return out

    def verify(self) -> str:
        """Walk the chain; returns the head or raises :class:`LedgerError`."""
        chain = self.verify_chain()
        return chain[-1] if chain else GENESIS

    def verify_chain(self) -> list[str]:
        """Every row hash in order, after checking each link; raises :class:`LedgerError`."""
        return verify_rows(self.rows())

    def head(self) -> str:
        return self.verify()

    def append(self, release: Release) -> LedgerRow:
        """Record ``release`` (call before sending its payload); returns the stored row."""
        created_at = datetime.now(UTC).isoformat(timespec="microseconds")
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                last = db.execute(
                    "SELECT seq, row_hash FROM releases ORDER BY seq DESC LIMIT 1"
                ).fetchone()
                seq, prev = (last[0] + 1, last[1]) if last else (1, GENESIS)
                row = LedgerRow(
                    **asdict(release) | {"fields_sent": release.fields_sent},
                    seq=seq,
                    created_at=created_at,
                    prev_hash=prev,
                    row_hash=row_digest(prev, release, seq=seq, created_at=created_at),
                )
                _insert_row(db, row)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        self._rows = None
        return row

    @classmethod
    def restore(cls, path: Path | str, rows: Sequence[LedgerRow], *, store_id: str) -> str:
        """Write ``rows`` verbatim (same seq, times and hashes) as a new ledger of the store
        ``store_id`` at ``path``, with a fresh node secret; returns the head.

        For :mod:`fedkd.privacy.ledger_export`, which verifies the rows' signature first.
        The chain is checked again here, and the store and rows go in one transaction, so
        a crash leaves no half-restored ledger.

        Raises
        ------
        LedgerError
            ``path`` exists (a ledger is never overwritten) or the rows do not chain.
        """
        ledger = cls(path)
        chain = verify_rows(rows)
        if ledger.path.exists():
            raise LedgerError(f"{ledger.path} exists; refusing to overwrite it")
        ledger.path.parent.mkdir(parents=True, exist_ok=True)
        with ledger._connect() as db:
            db.executescript(_SCHEMA)
            db.execute("BEGIN IMMEDIATE")
            try:
                # Another process may have created the file since the check above.
                taken = db.execute(
                    "SELECT (SELECT count(*) FROM releases) + (SELECT count(*) FROM store)"
                ).fetchone()[0]
                if taken:
                    raise LedgerError(f"{ledger.path} holds a ledger; refusing to overwrite it")
                _create_store(db, store_id=store_id)
                for row in rows:
                    _insert_row(db, row)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        return chain[-1] if chain else GENESIS

    def _store(self) -> tuple[str, bytes]:
        with self._connect() as db:
            row = db.execute("SELECT store_id, secret FROM store WHERE id = 1").fetchone()
        if row is None:
            raise LedgerError(f"privacy ledger {self.path} has no store identity")
        return str(row[0]), bytes(row[1])

    @property
    def store_id(self) -> str:
        """The store's random identity (what the ledger is, independent of any data)."""
        return self._store()[0]

    def keyed(self, digest: str) -> str:
        """``digest`` keyed with the node secret: stable for the node, opaque to others."""
        tag = hmac.new(self._store()[1], digest.encode(), hashlib.sha256).hexdigest()
        return f"hmac-sha256:{tag}"

    def history(self) -> History:
        """Every DP step the store ever recorded, in order, ready to account."""
        history: History = ()
        for row in self.rows():
            if row.steps > 0:
                entry = DPSteps(row.noise_multiplier, row.sample_rate, row.steps)
                history = compose(history, entry)
        return history

    def unbounded_since(self) -> int | None:
        """The first row released without a formal guarantee (the store's ε is unbounded
        from then on), or None."""
        for row in self.rows():
            if row.mechanism not in GUARANTEED_MECHANISMS:
                return row.seq
        return None

    def fixed_delta(self) -> tuple[float, int] | None:
        """``(δ, row)`` of the store's first DP release: δ is fixed from then on."""
        for row in self.rows():
            if row.mechanism in GUARANTEED_MECHANISMS and row.delta > 0:
                return row.delta, row.seq
        return None


class ReadOnlyLedger(Ledger):
    """A ledger opened for reading only (``fedkd ledger show|export``): nothing is created,
    migrated or switched to WAL, and a file that is not a fedkd ledger is refused."""

    @classmethod
    def read(cls, path: Path | str) -> ReadOnlyLedger:
        """Open ``path`` read-only and verify its chain.

        Raises
        ------
        LedgerError
            No such file, not a fedkd ledger, or a broken chain.
        """
        ledger = cls(path)
        if not ledger.path.is_file():
            raise LedgerError(f"no ledger at {ledger.path}")
        ledger.verify_chain()
        return ledger

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        uri = f"{self.path.resolve().as_uri()}?mode=ro"
        with closing(sqlite3.connect(uri, uri=True)) as db:
            yield db


def _create_store(db: sqlite3.Connection, *, store_id: str | None = None) -> None:
    """Give a new ledger (or one from before stores existed) its id and secret, once.

    ``store_id`` keeps a restored store's identity; the secret is always fresh."""
    if db.execute("SELECT 1 FROM store WHERE id = 1").fetchone() is None:
        db.execute(
            "INSERT INTO store (id, store_id, secret) VALUES (1, ?, ?)",
            (store_id or entropy.fresh_bytes(16).hex(), entropy.fresh_bytes(32)),
        )


def _insert_row(db: sqlite3.Connection, row: LedgerRow) -> None:
    values = asdict(row) | {
        "fields_sent": json.dumps(list(row.fields_sent)),
        "node_id": str(row.node_id),
    }
    db.execute(
        f"INSERT INTO releases ({', '.join(_ROW_COLUMNS)}) "
        f"VALUES ({', '.join('?' for _ in _ROW_COLUMNS)})",
        [values[c] for c in _ROW_COLUMNS],
    )


def verify_rows(rows: Sequence[LedgerRow]) -> list[str]:
    """Every row hash in order, after checking each link and recomputing each row's
    digest; raises :class:`LedgerError` at the first row that does not chain."""
    chain: list[str] = []
    head = GENESIS
    for expected_seq, row in enumerate(rows, start=1):
        if row.seq != expected_seq:
            raise LedgerError(f"ledger row {expected_seq} is missing (found {row.seq})")
        if row.prev_hash != head:
            raise LedgerError(f"ledger row {row.seq} does not follow row {row.seq - 1}")
        release = Release(**{name: getattr(row, name) for name in _RELEASE_COLUMNS})
        if row_digest(head, release, seq=row.seq, created_at=row.created_at) != row.row_hash:
            raise LedgerError(f"ledger row {row.seq} was altered (hash mismatch)")
        head = row.row_hash
        chain.append(head)
    return chain


_LATER_FIELDS = ("policy", "randomness")


def _add_later_columns(db: sqlite3.Connection) -> None:
    """Ledgers created before a field existed get its column (empty on old rows)."""
    columns = {row[1] for row in db.execute("PRAGMA table_info(releases)")}
    for name in _LATER_FIELDS:
        if name not in columns:
            db.execute(f"ALTER TABLE releases ADD COLUMN {name} TEXT NOT NULL DEFAULT ''")


def rows_to_csv(rows: Sequence[LedgerRow]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=_ROW_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow(asdict(row) | {"fields_sent": ";".join(row.fields_sent)})
    return buffer.getvalue()


def rows_to_json(rows: Sequence[LedgerRow]) -> str:
    return json.dumps(
        [asdict(row) | {"fields_sent": list(row.fields_sent)} for row in rows], indent=2
    )
