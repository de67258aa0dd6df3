"""Client sampling through Flower's simulation engine: m nodes a round, all at the end."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

import fedkd


@pytest.mark.integration
def test_each_training_round_asks_m_nodes_and_the_final_evaluation_asks_all(
    tmp_path: Path,
) -> None:
    result = fedkd.simulate(
        {
            "dataset": "digits", "num_clients": 5, "partitioner": "iid", "transfer_size": 200,
            "num_server_rounds": 3, "model": "mlp-s", "strategy": "knfu", "run_name": "sampled",
            "clients_per_round": 2,
        },
        output_dir=str(tmp_path),
    )  # fmt: skip
    rows = [json.loads(line) for line in (result.run_dir / "metrics.jsonl").open()]
    # Each asked node evaluates the model it holds, recorded under the round before the
    # request's: 2 nodes in each of the 3 training rounds, all 5 in the final evaluation.
    evaluated = Counter(row["round"] for row in rows if row["local_accuracy"] is not None)
    assert evaluated == {0: 2, 1: 2, 2: 2, 3: 5}
    trained = Counter(row["round"] for row in rows if row["status"] == "ok")
    assert trained == {1: 2, 2: 2, 3: 2}
    assert result.summary["alma_clients"] == 5  # ALMA covers every node, not the last sample
    # Every message round is timed at the server, fusion within it (none in the final one).
    rounds = result.summary["round_seconds"]
    fusion = result.summary["fusion_seconds"]
    assert sorted(rounds) == ["1", "2", "3", "4"] and all(t > 0 for t in rounds.values())
    assert all(0 < fusion[r] < rounds[r] for r in ("1", "2", "3")) and fusion["4"] == 0
