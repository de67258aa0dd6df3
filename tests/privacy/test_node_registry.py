"""The server's cross-run record of node ledger heads."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from fedkd.privacy.node_registry import NodeRegistry, RegistryError


def test_heads_survive_reopening_and_observations_accumulate(tmp_path: Path) -> None:
    path = tmp_path / "server" / "registry.db"
    registry = NodeRegistry.open(path)
    registry.record("cleveland", run_id="r1", round_=1, ledger_head="a" * 64, epsilon=0.5)
    registry.record("hungary", run_id="r1", round_=1, ledger_head="b" * 64, epsilon=None)
    registry.record("cleveland", run_id="r1", round_=2, ledger_head="c" * 64, epsilon=0.8)
    # A later reply claiming no ε keeps the last claimed ε as the node's floor.
    registry.record("cleveland", run_id="r2", round_=1, ledger_head="d" * 64, epsilon=None)

    again = NodeRegistry.open(path)
    assert again.heads() == {"cleveland": "d" * 64, "hungary": "b" * 64}
    assert again.epsilons() == {"cleveland": 0.8}
    seen = again.observations("cleveland")
    assert [(o.run_id, o.round, o.ledger_head, o.epsilon) for o in seen] == [
        ("r1", 1, "a" * 64, 0.5),
        ("r1", 2, "c" * 64, 0.8),
        ("r2", 1, "d" * 64, None),
    ]
    assert again.observations("hungary")[0].epsilon is None
    assert len(again.observations()) == 4


def test_observations_are_append_only(tmp_path: Path) -> None:
    registry = NodeRegistry.open(tmp_path / "registry.db")
    registry.record("n", run_id="r", round_=1, ledger_head="a" * 64, epsilon=1.0)
    with sqlite3.connect(registry.path) as db, pytest.raises(sqlite3.DatabaseError):
        db.execute("DELETE FROM node_spends")
    with sqlite3.connect(registry.path) as db, pytest.raises(sqlite3.DatabaseError):
        db.execute("UPDATE node_spends SET epsilon = 0")
    assert registry.observations()[0].epsilon == 1.0


def test_an_unreadable_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "registry.db"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(RegistryError, match="unreadable"):
        NodeRegistry.open(path)


def test_cli_prints_the_registry(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from fedkd.cli import app

    registry = NodeRegistry.open(tmp_path / "registry.db")
    registry.record("node-3", run_id="run-a", round_=1, ledger_head="d" * 64, epsilon=0.25)
    registry.record("node-4", run_id="run-a", round_=1, ledger_head="e" * 64, epsilon=0.5)
    runner = CliRunner()
    shown = runner.invoke(app, ["ledger", "registry", str(registry.path), "--node", "node-4"])
    assert shown.exit_code == 0, shown.output
    assert "1 observations" in shown.output and "0.5000" in shown.output
    missing = runner.invoke(app, ["ledger", "registry", str(tmp_path / "absent.db")])
    assert missing.exit_code == 2 and "no registry" in missing.output
