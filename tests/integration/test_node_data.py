"""Nodes bring their own data: hospitals' CSVs through the csv provider, through Flower.

* four Heart Disease hospitals reading their own CSVs (each with its lifetime budget, so
  under DP-SGD) run the same federation as the built-in partitioned heart run, and the
  ServerApp's process never opens a private source (that the CSVs hold exactly the
  built-in partitions' records: tests/data/test_heart_export.py);
* a hospital whose CSV is broken stands aside (the server learns only that it is absent,
  the node's own log says why) and the run goes on with the others.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from fedkd.api import RunResult
from fedkd.config import load_simulation_file, parse_run_config
from fedkd.data.heart_export import HeartExport, export_heart_hospitals
from fedkd.flower_glue.simulation import run_simulation
from fedkd.node.client_node import UNAVAILABLE_REASON

pytestmark = pytest.mark.integration

METRICS = ("local_accuracy", "local_loss", "global_accuracy", "global_loss", "train_loss")
HEART = {
    "dataset": "heart",
    "num-clients": 4,
    "partitioner": "natural",
    "num-server-rounds": 3,
    "local-epochs": 2,
    "distill-epochs": 2,
    "batch-size": 16,
    "lr": 0.02,
    "model": "mlp-s",
    "strategy": "knfu",
    "seed": 0,
    # Real hospitals declare lifetime budgets, which require DP-SGD.
    "dp": True,
    "dp-target-epsilon": 8.0,
    "dp-delta": 1e-5,
}
BUDGET = {"privacy-max-epsilon": 50.0, "privacy-max-delta": 1e-5}


class _FileAudit:
    """Every file this process opens, and every private-data load it makes, while on."""

    def __init__(self) -> None:
        self.opened: list[str] = []
        self.private_loads: list[tuple[Any, ...]] = []
        self.on = False
        sys.addaudithook(self._hook)  # hooks cannot be removed: `on` gates this one

    def _hook(self, event: str, args: tuple[Any, ...]) -> None:
        if not self.on:
            return
        if event == "open" and isinstance(args[0], str | bytes | Path):
            self.opened.append(str(Path(str(args[0])).resolve()))
        elif event == "fedkd.private_data.load":
            self.private_loads.append(args)


def _rows(run_dir: Path) -> dict[tuple[int, int], dict[str, Any]]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return {(r["round"], r["partition_id"]): r for r in rows if r["partition_id"] is not None}


def _csv_sim(exported: HeartExport, tmp_path: Path, **run: object) -> tuple[Any, Any]:
    cfg = parse_run_config(
        {**HEART, "public-data": str(exported.public), "output-dir": str(tmp_path / "runs"), **run}
    )
    nodes = {
        str(i): {
            "name": h.slug,
            "data": "csv",
            "data-path": str(h.csv),
            "data-schema": str(exported.schema),
            **BUDGET,
        }
        for i, h in enumerate(exported.hospitals)
    }
    return cfg, nodes


def test_csv_hospitals_run_the_built_in_federation_and_the_server_reads_no_private_bytes(
    tmp_path: Path,
) -> None:
    exported = export_heart_hospitals(tmp_path / "hospitals", seed=0)
    private_files = {str(p.resolve()) for h in exported.hospitals for p in (h.csv, h.node_config)}
    private_files.add(str(exported.schema.resolve()))
    cfg, nodes = _csv_sim(exported, tmp_path, **{"run-name": "csv"})
    audit = _FileAudit()
    audit.on = True
    try:
        csv_dir = run_simulation(cfg, node_sections=nodes)
    finally:
        audit.on = False
    # This process ran the ServerApp (nodes run in Ray workers): it read the public
    # bundle, never a hospital's file, and loaded no private data through any provider.
    assert str(exported.public.resolve()) in audit.opened
    assert not private_files & set(audit.opened)
    assert audit.private_loads == []

    built_in = parse_run_config({**HEART, "output-dir": str(tmp_path / "runs"), "run-name": "bi"})
    audit.on = True
    try:
        built_in_dir = run_simulation(built_in)
    finally:
        audit.on = False
    assert audit.private_loads == []  # the partition provider ran only in the nodes

    # DP noise is fresh in every run, so the two agree in what was done, not bit for bit.
    ours, theirs = _rows(csv_dir), _rows(built_in_dir)
    assert sorted(ours) == sorted(theirs) and len(ours) == 4 * 4  # rounds 0–3, 4 hospitals
    for key, row in ours.items():
        assert row["status"] == theirs[key]["status"] and row["status"] in ("", "ok"), key
        for metric in METRICS:  # what is redacted under DP is redacted in both
            assert (row[metric] is None) == (theirs[key][metric] is None), (key, metric)
    summaries = [json.loads((d / "summary.json").read_text()) for d in (csv_dir, built_in_dir)]
    for summary in summaries:
        spent = [n["epsilon"] for n in summary["privacy"]["nodes"].values()]
        assert len(spent) == 4 and all(0 < eps <= 8.0 for eps in spent)
    # Each hospital's store is under its own name, beside the run (not inside its folder).
    assert not (csv_dir / "nodes").exists()
    stores = RunResult.load(csv_dir).node_state_dirs[0]
    assert sorted(p.name for p in stores.glob("*.ledger.db")) == [
        "cleveland.ledger.db",
        "hungary.ledger.db",
        "switzerland.ledger.db",
        "va-long-beach.ledger.db",
    ]


def test_a_hospital_with_a_broken_csv_stands_aside_and_the_run_goes_on(tmp_path: Path) -> None:
    exported = export_heart_hospitals(tmp_path / "hospitals", seed=0)
    broken = exported.hospitals[2].csv  # Switzerland: drop its "chol" column
    with broken.open(newline="") as fh:
        table = list(csv.DictReader(fh))
    with broken.open("w", newline="") as fh:
        columns = [c for c in table[0] if c != "chol"]
        writer = csv.DictWriter(fh, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(table)
    cfg, nodes = _csv_sim(exported, tmp_path, **{"run-name": "broken", "num-server-rounds": 2})
    run_dir = run_simulation(cfg, node_sections=nodes)
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    absent = [r for r in rows if r["status"] == "unavailable"]
    assert len(absent) == 2  # both rounds, one node
    assert {r["reason"] for r in absent} == {f"client reports: {UNAVAILABLE_REASON}"}
    assert "chol" not in json.dumps(rows)  # nothing about the records reached the server
    finals = [r for r in rows if r["round"] == 2 and r["status"] == "ok"]
    assert len(finals) == 3  # the other hospitals trained and were evaluated
    assert all(r["global_accuracy"] is not None for r in finals)
    log = (RunResult.load(run_dir).node_state_dirs[0] / "switzerland.log").read_text()
    assert "missing column 'chol' (declared in the schema)" in log


def test_a_simulation_file_names_each_nodes_data_relative_to_itself(tmp_path: Path) -> None:
    exported = export_heart_hospitals(tmp_path / "hospitals", seed=0)
    (tmp_path / "hospitals" / "sim.toml").write_text(
        'dataset = "heart"\npublic-data = "public.npz"\nnum-clients = 4\n'
        '[node.1]\ndata = "csv"\ndata-path = "hungary.csv"\ndata-schema = "heart.schema.toml"\n'
    )
    cfg, sections = load_simulation_file(tmp_path / "hospitals" / "sim.toml")
    assert cfg.public_data == str(exported.public.resolve())
    assert sections["1"]["data-path"] == str(exported.hospitals[1].csv.resolve())
