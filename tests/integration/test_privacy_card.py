"""Privacy model cards: the coordinating site's, and a node's own from its state dir."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import fedkd
from fedkd.cli import app
from fedkd.privacy.ledger import ReadOnlyLedger


@pytest.mark.integration
def test_run_and_node_cards_agree_with_the_ledgers_and_the_traffic(tmp_path: Path) -> None:
    run = fedkd.simulate(
        {"dataset": "digits", "num_clients": 3, "partitioner": "iid", "num_server_rounds": 2,
         "model": "mlp-s", "dp": True, "dp_target_epsilon": 4.0, "run_name": "card"},
        output_dir=str(tmp_path),
    )  # fmt: skip
    runner = CliRunner()
    shown = runner.invoke(app, ["report", str(run.run_dir)])
    assert shown.exit_code == 0, shown.output
    card = json.loads((run.run_dir / "privacy-report.json").read_text())
    assert card["unit_of_privacy"].startswith("one record")
    assert card["public_data"]["transfer_digest"].startswith("sha256:")
    assert card["mechanisms"]["dp_sgd"]["enabled"] is True
    (state_dir,) = run.node_state_dirs
    for name, client in card["clients"].items():
        rows = ReadOnlyLedger.read(state_dir / f"{name}.ledger.db").rows()
        assert client["chain"] == "verified"
        assert client["epsilon"] == pytest.approx(rows[-1].epsilon)
        assert client["epsilon"] == pytest.approx(client["epsilon_recorded_by_server"])
        assert 0 < client["epsilon"] <= 4.0 and "soft_labels" in client["fields_sent"]
    # The node's own report needs nothing but its state dir, and sees the same bytes the
    # server received (its handshake replies aside, which carry no data).
    mine = runner.invoke(app, ["report", "--node", str(state_dir), "--out", str(tmp_path / "n")])
    assert mine.exit_code == 0, mine.output
    node_card = json.loads((tmp_path / "n" / "privacy-report.json").read_text())
    assert node_card["source"].endswith("nothing from the server")
    for name, node in node_card["nodes"].items():
        assert node["epsilon"] == pytest.approx(card["clients"][name]["epsilon"])
        (spend,) = node["runs"].values()
        sent = [
            json.loads(line) for line in (state_dir / f"{name}.sent.jsonl").read_text().splitlines()
        ]
        after_handshake = sum(line["bytes"] for line in sent if line["round"] >= 1)
        assert after_handshake == card["clients"][name]["bytes_sent"]
        assert spend["bytes_sent"] == sum(line["bytes"] for line in sent)
        assert spend["releases"] == len(ReadOnlyLedger.read(state_dir / f"{name}.ledger.db").rows())
