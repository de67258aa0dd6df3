"""A small hospital's local accuracy is its own: the four shipped heart-disease hospitals,
one of them shrunk below 30 records, through Flower.

Its local test set holds its own held-out records only (never topped up from the public
test set), and the run's summary gives its accuracy with n and its Clopper–Pearson 95 %
interval, flagged as too few for min-local-test; ALMA says how it counts it.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from scipy.stats import binomtest

from fedkd.config import parse_run_config
from fedkd.flower_glue.simulation import run_simulation

pytestmark = pytest.mark.integration

SHIPPED = Path(__file__).resolve().parents[2] / "simulations" / "heart-hospitals"
HOSPITALS = ("cleveland", "hungary", "switzerland", "va-long-beach")
SMALL = "hungary"
KEEP_TRAIN, KEEP_TEST = 20, 8  # 28 records: the schema's min-records is 20 training rows
MINIMUM = 30


def _shrink(path: Path) -> None:
    with path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    train = [r for r in rows if r["split"] == "train"][:KEEP_TRAIN]
    # As many of each class among the kept test rows (file order), so that the accuracy
    # is rarely all or nothing.
    held = [r for r in rows if r["split"] == "test"]
    classes = sorted({r["diagnosis"] for r in held})
    test = []
    for label in classes:
        test += [r for r in held if r["diagnosis"] == label][: KEEP_TEST // len(classes)]
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(train + test)


def _own_test_rows(path: Path) -> int:
    with path.open(newline="") as fh:
        return sum(r["split"] == "test" for r in csv.DictReader(fh))


def test_a_hospital_below_30_records_is_scored_on_its_own_records_with_its_interval(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "hospitals"
    shutil.copytree(SHIPPED, folder)
    _shrink(folder / f"{SMALL}.csv")
    own = {h: _own_test_rows(folder / f"{h}.csv") for h in HOSPITALS}
    assert own[SMALL] == KEEP_TEST
    cfg = parse_run_config(
        {
            "dataset": "heart",
            "public-data": str(folder / "public.npz"),
            "num-clients": 4,
            "partitioner": "natural",
            "num-server-rounds": 1,
            "local-epochs": 1,
            "distill-epochs": 1,
            "batch-size": 16,
            "lr": 0.02,
            "model": "mlp-s",
            "seed": 0,
            "min-local-test": MINIMUM,
            # Nodes on real data declare lifetime budgets, which require DP-SGD: their
            # local metrics stay in their own logs and the simulation merges them.
            "dp": True,
            "dp-target-epsilon": 8.0,
            "dp-delta": 1e-5,
            "output-dir": str(tmp_path / "runs"),
            "run-name": "small-hospital",
        }
    )
    nodes = {
        str(i): {
            "name": name,
            "data": "csv",
            "data-path": str(folder / f"{name}.csv"),
            "data-schema": str(folder / "heart.schema.toml"),
            "privacy-max-epsilon": 50.0,
            "privacy-max-delta": 1e-5,
        }
        for i, name in enumerate(HOSPITALS)
    }
    run_dir = run_simulation(cfg, node_sections=nodes)

    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    final: dict[int, dict[str, Any]] = {
        r["partition_id"]: r for r in rows if r["round"] == 1 and r["partition_id"] is not None
    }
    assert sorted(final) == [0, 1, 2, 3]
    # Every hospital is scored on exactly its own held-out rows: none topped up.
    for index, name in enumerate(HOSPITALS):
        assert final[index]["local_test_examples"] == own[name], name
    small = final[HOSPITALS.index(SMALL)]

    summary = json.loads((run_dir / "summary.json").read_text())
    entry = summary["local_accuracy_per_node"][str(small["node_id"])]
    n, accuracy = entry["n"], entry["accuracy"]
    assert n == KEEP_TEST < MINIMUM and entry["too_few"] is True
    correct = round(accuracy * n)
    assert accuracy == pytest.approx(correct / n, abs=1e-6)  # a count over its own n rows
    assert entry["correct"] == correct
    reference = binomtest(correct, n).proportion_ci(confidence_level=0.95, method="exact")
    assert entry["ci95"] == pytest.approx([reference.low, reference.high], abs=1e-9)
    print(f"{SMALL}: n={n} correct={correct} accuracy={accuracy:.4f} ci95={entry['ci95']}")

    # ALMA counts every hospital once as measured; alma_at_min only those with >= 30.
    accuracies = {i: final[i]["local_accuracy"] for i in final}
    assert summary["alma"] == pytest.approx(sum(accuracies.values()) / 4)
    enough = [accuracies[i] for i, name in enumerate(HOSPITALS) if own[name] >= MINIMUM]
    assert summary["alma_at_min_clients"] == len(enough) >= 1
    assert summary["alma_at_min"] == pytest.approx(sum(enough) / len(enough))
    too_few = {str(final[i]["node_id"]) for i, h in enumerate(HOSPITALS) if own[h] < MINIMUM}
    assert set(summary["alma_too_few_clients"]) == too_few
    assert f"min-local-test = {MINIMUM}" in summary["alma_rule"]
