"""The server's record of each node's privacy ledger, kept across runs in SQLite.

A node's ledger lives on the node.  What stops a node from silently starting again from
zero is that the server remembers the last chain head each node reported and sends it
back with every request (``KnowledgeRequest.ledger_head``); a node whose ledger does not
contain that head refuses to release (``ledger-refused``).  Within a run the coordinator
holds the heads in memory; the registry file (``privacy-registry``, on by default) makes
the record outlive the run.  Nodes are known by their *name* (the node's own, stable
across runs and restarts), never by Flower's per-run node id.

Two tables: ``nodes`` holds each node's latest head and claimed ε (what the next request
needs); ``observations`` is append-only (SQLite triggers refuse UPDATE and DELETE) and
lists every spend a node claimed — run, round, head, ε — which is what an auditor reads.
The ε a node claims is cumulative over its store, so it never falls: not within a run,
not between runs (the coordinator checks both), and the head must always continue the
chain.
"""

from __future__ import annotations

import sqlite3
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from fedkd.privacy.durable_sqlite import append_only_triggers, durable_connection

_SCHEMA = """
CREATE TABLE IF NOT EXISTS node_heads (
    node         TEXT PRIMARY KEY,  -- the node's name
    ledger_head  TEXT NOT NULL,
    epsilon      REAL,
    run_id       TEXT NOT NULL,
    round        INTEGER NOT NULL,
    updated_at   TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS node_spends (
    seq          INTEGER PRIMARY KEY,
    node         TEXT NOT NULL,
    run_id       TEXT NOT NULL,
    round        INTEGER NOT NULL,
    ledger_head  TEXT NOT NULL,
    epsilon      REAL,
    recorded_at  TEXT NOT NULL
);
""" + append_only_triggers("node_spends", "registry observations are append-only")


class RegistryError(RuntimeError):
    """The registry file cannot be opened or read."""


@dataclass(frozen=True)
class Observation:
    """One spend a node claimed: its ledger head after the release, and its ε (None: no
    formal guarantee was claimed)."""

    node: str
    run_id: str
    round: int
    ledger_head: str
    epsilon: float | None
    recorded_at: str


class NodeRegistry:
    """Each node's last ledger head and claimed ε, in one SQLite file (WAL mode)."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path).expanduser()

    @classmethod
    def open(cls, path: Path | str) -> NodeRegistry:
        """Open the registry, creating it (and its directory) on first use."""
        registry = cls(path)
        registry.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with registry._connect() as db:
                db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise RegistryError(f"node registry {registry.path} is unreadable: {exc}") from exc
        return registry

    def _connect(self) -> AbstractContextManager[sqlite3.Connection]:
        return durable_connection(self.path)

    def _query(self, sql: str, *params: object) -> list[tuple[object, ...]]:
        try:
            with self._connect() as db:
                return db.execute(sql, params).fetchall()
        except sqlite3.DatabaseError as exc:
            raise RegistryError(f"node registry {self.path} is unreadable: {exc}") from exc

    def heads(self) -> dict[str, str]:
        """The last ledger head recorded for every node (by name) the registry knows."""
        rows = self._query("SELECT node, ledger_head FROM node_heads")
        return {str(node): str(head) for node, head in rows}

    def epsilons(self) -> dict[str, float]:
        """The last ε each node claimed (nodes that never claimed one are absent)."""
        rows = self._query("SELECT node, epsilon FROM node_heads WHERE epsilon IS NOT NULL")
        return {str(node): float(str(eps)) for node, eps in rows}

    def record(
        self, node: str, *, run_id: str, round_: int, ledger_head: str, epsilon: float | None
    ) -> None:
        """Store a node's new head and claimed ε, and append the observation.

        A claim of no ε (``None``) keeps the last claimed ε as the node's floor.
        """
        now = datetime.now(UTC).isoformat(timespec="microseconds")
        values = (node, run_id, round_, ledger_head, epsilon)
        try:
            with self._connect() as db:
                db.execute("BEGIN IMMEDIATE")
                try:
                    db.execute(
                        "INSERT INTO node_spends "
                        "(node, run_id, round, ledger_head, epsilon, recorded_at) "
                        "VALUES (?, ?, ?, ?, ?, ?)",
                        (*values, now),
                    )
                    db.execute(
                        "INSERT INTO node_heads "
                        "(node, run_id, round, ledger_head, epsilon, updated_at) "
                        "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(node) DO UPDATE SET "
                        "run_id = excluded.run_id, round = excluded.round, "
                        "ledger_head = excluded.ledger_head, "
                        "epsilon = COALESCE(excluded.epsilon, node_heads.epsilon), "
                        "updated_at = excluded.updated_at",
                        (*values, now),
                    )
                    db.execute("COMMIT")
                except BaseException:
                    db.execute("ROLLBACK")
                    raise
        except sqlite3.DatabaseError as exc:
            raise RegistryError(f"node registry {self.path}: cannot record: {exc}") from exc

    def observations(self, node: str | None = None) -> list[Observation]:
        """Every recorded spend, oldest first (of one node, when ``node`` is given)."""
        columns = "node, run_id, round, ledger_head, epsilon, recorded_at"
        if node is None:
            rows = self._query(f"SELECT {columns} FROM node_spends ORDER BY seq")
        else:
            rows = self._query(
                f"SELECT {columns} FROM node_spends WHERE node = ? ORDER BY seq", node
            )
        return [
            Observation(
                node=str(name),
                run_id=str(run),
                round=int(str(round_)),
                ledger_head=str(head),
                epsilon=None if eps is None else float(str(eps)),
                recorded_at=str(at),
            )
            for name, run, round_, head, eps, at in rows
        ]
