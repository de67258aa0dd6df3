"""A real Flower simulation in which four clients send broken payloads.

Each bad client must be excluded for the round with its specific reason, while the honest
clients finish every round with sensible accuracy.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fedkd.config import parse_run_config
from fedkd.flower_glue.simulation import run_simulation

EXPECTED_REASONS = {
    1: "non-finite",
    2: "shape (300, 9), expected (300, 10)",
    3: "transfer-set digest 'sha256:0000'",
    4: "not decodable protobuf",
}


@pytest.mark.integration
def test_bad_clients_are_excluded_and_the_rest_carry_on(tmp_path: Path) -> None:
    from tests.integration.faulty_client import faulty_app

    cfg = parse_run_config(
        {
            "run-name": "faulty",
            "output-dir": str(tmp_path),
            "dataset": "digits",
            "num-clients": 6,
            "partitioner": "iid",
            "transfer-size": 300,
            "num-server-rounds": 2,
            "local-epochs": 2,
            "strategy": "mean",
            "model": "mlp-s",
            "seed": 0,
        }
    )
    run_dir = run_simulation(cfg, client_app=faulty_app)
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    by_partition: dict[int, list[dict[str, object]]] = {}
    for row in rows:
        if row["partition_id"] is not None:
            by_partition.setdefault(int(row["partition_id"]), []).append(row)
    assert sorted(by_partition) == [0, 1, 2, 3, 4, 5]
    for pid, fragment in EXPECTED_REASONS.items():
        trained = [r for r in by_partition[pid] if r["round"] in (1, 2)]
        assert all(r["status"] == "invalid" for r in trained), trained
        assert all(fragment in str(r["reason"]) for r in trained), trained
    for pid in (0, 5):
        trained = [r for r in by_partition[pid] if r["round"] in (1, 2)]
        assert [r["status"] for r in trained] == ["ok", "ok"]
        final = next(r for r in by_partition[pid] if r["round"] == 2)
        # IID digits with an MLP: an honest client is far above chance (0.1).
        assert 0.6 <= float(final["local_accuracy"]) <= 1.0  # type: ignore[arg-type]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["excluded_client_rounds"] == {"invalid": 8}
    assert summary["alma_clients"] == 6
