"""DP-SGD through Flower's simulation engine: ε reported, budget kept, ALMA from node logs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fedkd.api import RunResult
from fedkd.config import parse_run_config
from fedkd.flower_glue.simulation import run_simulation
from fedkd.privacy.ledger import Ledger

# The four heart hospitals, one DP round at a fixed σ: small enough to run twice in a test.
HEART_DP_ONE_ROUND: dict[str, object] = {
    "dataset": "heart",
    "partitioner": "natural",
    "num-clients": 4,
    "num-server-rounds": 1,
    "model": "mlp-s",
    "strategy": "mean",
    "batch-size": 16,
    "dp": True,
    "dp-noise-multiplier": 1.0,
}


@pytest.mark.integration
def test_dp_run_reports_epsilon_and_keeps_local_metrics_off_the_wire(tmp_path: Path) -> None:
    cfg = parse_run_config(
        {
            "run-name": "dp",
            "dataset": "heart",
            "partitioner": "natural",
            "num-clients": 4,
            "num-server-rounds": 2,
            "model": "mlp-s",
            "strategy": "mean",
            "batch-size": 16,
            "dp": True,
            "dp-target-epsilon": 8.0,
            "output-dir": str(tmp_path),
        }
    )
    run_dir = run_simulation(cfg)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["epsilon_max"] is not None and 4.0 < summary["epsilon_max"] <= 8.0
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    trained = [r for r in rows if 1 <= r["round"] <= 2]
    assert len(trained) == 8 and all(r["status"] == "ok" for r in trained)
    by_node: dict[int, list[float]] = {}
    for r in sorted(trained, key=lambda r: r["round"]):
        by_node.setdefault(r["node_id"], []).append(r["epsilon"])
    assert all(e[0] < e[1] for e in by_node.values())  # ε composes over rounds
    # ALMA comes from the nodes' own logs (simulation only), never from the wire.
    assert summary["alma"] is not None and 0.4 < summary["alma"] <= 1.0
    assert (run_dir / "epsilon.png").stat().st_size > 0
    ledgers = sorted(RunResult.load(run_dir).node_state_dirs[0].glob("node-*.ledger.db"))
    assert len(ledgers) == 4
    rows_0 = Ledger.open(ledgers[0]).rows()
    assert [r.round for r in rows_0] == [1, 2, 3]
    assert rows_0[1].epsilon == pytest.approx(max(by_node[rows_0[1].node_id]))


@pytest.mark.integration
def test_the_server_registry_spans_runs_of_nodes_that_keep_their_ledgers(
    tmp_path: Path,
) -> None:
    from fedkd.privacy.node_registry import NodeRegistry

    settings: dict[str, object] = {
        **HEART_DP_ONE_ROUND,
        "output-dir": str(tmp_path),
        "privacy-registry": str(tmp_path / "server" / "registry.db"),
    }
    with pytest.raises(ValueError, match="state-dir"):
        run_simulation(parse_run_config({**settings, "run-name": "no-state-dir"}))

    node_sections = {"state-dir": str(tmp_path / "node-ledgers")}
    for name in ("first", "second"):
        run_simulation(
            parse_run_config({**settings, "run-name": name}), node_sections=node_sections
        )
    registry = NodeRegistry.open(tmp_path / "server" / "registry.db")
    seen = registry.observations()
    # Both runs' rounds 1 and the final evaluation, four nodes each.
    assert len(seen) == 2 * 2 * 4
    assert len({o.run_id for o in seen}) == 2
    # Every node's ledger continued across the runs: two training releases on it.
    for pid in range(4):
        rows = Ledger.open(tmp_path / "node-ledgers" / f"node-{pid}.ledger.db").rows()
        assert len({r.run_id for r in rows}) == 2
        assert sum(r.steps > 0 for r in rows) == 2


@pytest.mark.integration
def test_with_default_settings_a_node_that_lost_its_ledger_is_refused(tmp_path: Path) -> None:
    """No registry configured: the server's default one (``<output-dir>/privacy-registry.db``)
    remembers each node by name, and the handshake hands its head back on the next run."""
    settings: dict[str, object] = {**HEART_DP_ONE_ROUND, "output-dir": str(tmp_path)}
    nodes = {"state-dir": str(tmp_path / "hospitals")}
    run_simulation(parse_run_config({**settings, "run-name": "first"}), node_sections=nodes)
    lost = tmp_path / "hospitals" / "node-1.ledger.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{lost}{suffix}").unlink(missing_ok=True)
    run_dir = run_simulation(
        parse_run_config({**settings, "run-name": "second"}), node_sections=nodes
    )
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    refused = [r for r in rows if r["status"] == "ledger-refused"]
    assert len(refused) == 1 and refused[0]["partition_id"] in (None, 1)
    assert "does not match the server's record" in refused[0]["reason"]
    assert sum(r["status"] == "ok" for r in rows if r["round"] == 1) == 3
    assert (tmp_path / "privacy-registry.db").exists()
