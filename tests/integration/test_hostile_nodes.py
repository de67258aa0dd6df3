"""Hostile nodes in a real simulation (Flower's engine): the run completes, every attacker
is excluded by name under the rule it broke, and the honest nodes end where they end in
clean runs.

A DP federation averaging weights (``fedavg``, the strategy the attacks hurt most) of ten
digits nodes: nodes 0-2 honest, one hostile node per attack.  The clean runs are the same
federation with the hostile nodes silent, over three seeds; an honest node's final global
accuracy in the attacked run must be at least the clean mean − 2 sd.  (The soft-label
version of the huge-shape reply goes through Flower in
``tests/integration/test_hostile_replies_through_flower.py``.)

DP-SGD keeps the batch and step of training without DP (``dp-batch-size``, ``dp-lr``):
with the recipe's long steps on 150-record nodes, three rounds leave honest models so
spread that a zero model is no farther from the median than they are.
"""

from __future__ import annotations

import functools
import json
import statistics
from pathlib import Path
from typing import Any

import pytest

from fedkd.config import parse_run_config
from fedkd.flower_glue.simulation import run_simulation
from tests.integration import hostile_nodes as attack
from tests.integration.hostile_nodes import SILENT, Attack, hostile_nodes_app

ROUNDS = 3
HONEST = (0, 1, 2)
CLEAN_SEEDS = (0, 1, 2)
ATTACKS: dict[int, tuple[Attack, str]] = {
    3: (attack.zero_model_grab, "fusion.outlier"),
    4: (attack.huge_weights, "weights.values"),
    5: (attack.under_claim, "claim.composition"),
    6: (attack.nan_claim, "claim.parameters"),
    7: (attack.wrong_partition, "eval.partition"),
    8: (attack.huge_weight_shape, "tensor.shape"),
    9: (attack.name_squat, ""),  # contested, not excluded: see below
}


def _run(tmp: Path, name: str, attacks: dict[int, Any], seed: int) -> Path:
    cfg = parse_run_config(
        {"dataset": "digits", "partitioner": "iid", "transfer-size": 100,
         "num-server-rounds": ROUNDS, "model": "mlp-s", "strategy": "fedavg", "dp": True,
         "dp-target-epsilon": 8.0, "dp-batch-size": 32, "dp-lr": 0.05,
         "num-clients": 10, "seed": seed, "run-name": name,
         "output-dir": str(tmp)}
    )  # fmt: skip
    return run_simulation(cfg, client_app=functools.partial(hostile_nodes_app, attacks))


def _summary(run_dir: Path) -> dict[str, Any]:
    summary: dict[str, Any] = json.loads((run_dir / "summary.json").read_text())
    return summary


def _rows_by_name(run_dir: Path) -> dict[str, dict[int, dict[str, Any]]]:
    nodes = _summary(run_dir)["privacy"]["nodes"]
    name_of = {int(k): v["name"] for k, v in nodes.items()}
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    out: dict[str, dict[int, dict[str, Any]]] = {}
    for row in rows:
        out.setdefault(name_of.get(row["node_id"], str(row["node_id"])), {})[row["round"]] = row
    return out


@pytest.mark.integration
def test_hostile_nodes_under_dp_fedavg_are_excluded_and_move_nothing(tmp_path: Path) -> None:
    attacked = _run(tmp_path, "attacked", {pid: a for pid, (a, _) in ATTACKS.items()}, seed=0)
    summary = _summary(attacked)
    assert summary["status"] == "complete"
    rows = _rows_by_name(attacked)
    for pid, (_, rule) in ATTACKS.items():
        if rule:
            for round_ in range(1, ROUNDS + 1):
                row = rows[f"node-{pid}"][round_]
                assert (row["status"], row["rule"]) == ("invalid", rule), (pid, row["reason"])
    # The squatter and its victim both gave "node-0": neither holds the name (no ledger
    # head or ε is kept under it); both take part under their Flower ids.
    privacy = summary["privacy"]
    assert list(privacy["contested_names"]) == ["node-0"]
    contested = privacy["contested_names"]["node-0"]
    assert len(contested) == 2
    assert all(not privacy["nodes"][str(i)]["trusted_name"] for i in contested)
    assert "node-0" not in {v["name"] for v in privacy["nodes"].values()}
    honest = [f"node-{n}" for n in HONEST[1:]] + [f"flower-node-{i}" for i in contested]
    for name in honest:
        assert all(rows[name][r]["status"] == "ok" for r in range(1, ROUNDS + 1)), name

    finals = []
    for seed in CLEAN_SEEDS:
        # The same honest participants as the attacked run: the squatter (node 9) sends
        # honest replies there, under a contested name.
        clean = _run(tmp_path, f"clean-{seed}", {**dict.fromkeys(ATTACKS, SILENT), 9: None}, seed)
        clean_rows = _rows_by_name(clean)
        for n in HONEST:  # no honest node is excluded in a clean run either
            assert all(clean_rows[f"node-{n}"][r]["status"] == "ok" for r in range(1, ROUNDS + 1))
        finals += [clean_rows[f"node-{n}"][ROUNDS]["global_accuracy"] for n in HONEST]
    # Three DP rounds leave the global model near 0.2 with fresh DP noise in every run,
    # and three clean seeds estimate its spread crudely, so the band is at least 0.05
    # wide (clean runs with the same participants: 0.185–0.229, attacked 0.197; against
    # clean runs without node 9 an attacked run once fell to 0.182).  An accepted
    # zero-model or huge-weight reply moves the average far more than that, and every
    # exclusion by its rule is asserted above in any case.
    band = statistics.mean(finals) - max(2 * statistics.stdev(finals), 0.05)
    got = {name: rows[name][ROUNDS]["global_accuracy"] for name in honest}
    print(f"\nclean finals {sorted(finals)} → mean − 2 sd {band:.3f}; attacked {got}")
    assert all(value >= band for value in got.values()), got
