"""The node keeps a line for every run it took part in, written at the handshake."""

from __future__ import annotations

import json
from pathlib import Path

from fedkd.config import parse_run_config
from fedkd.coordinator import Coordinator
from tests.node_harness import federation, serve


def test_every_run_joined_is_one_line_in_the_nodes_own_log(tmp_path: Path) -> None:
    cfg = parse_run_config({"dataset": "digits", "num-clients": 2, "transfer-size": 50})
    data = federation(cfg)
    state = str(tmp_path / "state")
    for run_id in ("run-a", "run-b"):
        coord = Coordinator(cfg, run_id=run_id, transfer=data.transfer, num_classes=10)
        serve(cfg, 1, coord.requests(0, [1])[1], None, train=False, state_dir=state)
    lines = (Path(state) / "node-1.runs.jsonl").read_text().splitlines()
    runs = [json.loads(line) for line in lines]
    assert [r["run_id"] for r in runs] == ["run-a", "run-b"]
    assert runs[0]["rounds"] == cfg.num_server_rounds
    assert runs[0]["transfer_digest"] == data.transfer.digest
    # The strategy is the server's choice: a node neither needs nor records it.
    assert "strategy" not in runs[0]
