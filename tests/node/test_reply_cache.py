"""A round asked again gets the same reply: no second training, no second ledger row."""

from __future__ import annotations

from pathlib import Path

from fedkd.config import parse_run_config
from fedkd.coordinator import Coordinator
from fedkd.privacy.ledger import ReadOnlyLedger
from tests.node_harness import federation, serve


def test_a_repeated_round_is_answered_from_the_cache_without_spending(tmp_path: Path) -> None:
    cfg = parse_run_config(
        {"dataset": "digits", "num-clients": 3, "partitioner": "iid", "transfer-size": 50,
         "num-server-rounds": 2, "model": "mlp-s", "dp": True, "dp-target-epsilon": 4.0,
         "run-name": "cache"}
    )  # fmt: skip
    data = federation(cfg)
    coord = Coordinator(cfg, run_id="cached-run", transfer=data.transfer, num_classes=10)
    request = coord.requests(1, [0])[0]
    state = str(tmp_path / "state")
    first, model = serve(cfg, 0, request, None, state_dir=state)
    again, unchanged = serve(cfg, 0, request, model, state_dir=state)
    assert again == first and unchanged is model
    ledger = ReadOnlyLedger.read(Path(state) / "node-0.ledger.db").rows()
    assert [row.round for row in ledger] == [1]  # spent once
    # Round 2 is new work; another configuration of the same run id is another run.
    second, _ = serve(cfg, 0, coord.requests(2, [0])[0], model, state_dir=state)
    assert second != first
    other = parse_run_config({**cfg.to_flat(), "lr": 0.01})
    fresh, _ = serve(other, 0, request, None, state_dir=str(tmp_path / "other"))
    assert fresh != first
    log = (Path(state) / "node-0.log").read_text()
    assert "asked again; resent the reply already given" in log
