"""Every crafted reply of tests/test_hostile_replies.py, sent by a real ClientApp through
Flower's simulation engine: the ServerApp survives them all, excludes each with its
reason, and (DP off, same seeds) the honest nodes' results equal those of the same run
in which the hostile nodes' replies are dropped before fusion."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import pytest

from fedkd.config import parse_run_config
from fedkd.flower_glue.simulation import run_simulation
from tests.integration.hostile_client import DROP, hostile_app
from tests.test_hostile_replies import SOFT_LABEL_ATTACKS, WEIGHT_ATTACKS

HONEST_METRICS = ("local_accuracy", "global_accuracy", "train_loss", "distill_loss", "status")


def _run(tmp_path: Path, name: str, attacks: dict[int, str], **settings: Any) -> Path:
    cfg = parse_run_config(
        {
            "run-name": name,
            "output-dir": str(tmp_path),
            "dataset": "digits",
            "partitioner": "iid",
            "transfer-size": 100,
            "num-server-rounds": 2,
            "model": "mlp-s",
            "seed": 3,
            **settings,
        }
    )
    return run_simulation(cfg, client_app=functools.partial(hostile_app, attacks))


def _rows(run_dir: Path) -> dict[tuple[int, int], dict[str, Any]]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    rows = [json.loads(line) for line in lines]
    pid = {r["node_id"]: r["partition_id"] for r in rows if r["partition_id"] is not None}
    return {(pid[r["node_id"]], r["round"]): r for r in rows if r["node_id"] in pid}


def _survives(tmp_path: Path, attacks: dict[str, tuple[Any, str]], **settings: Any) -> None:
    names = sorted(attacks)
    hostile = {pid: name for pid, name in enumerate(names, start=1)}
    honest = [0, len(names) + 1]
    clients = len(names) + 2
    attacked = _run(tmp_path, "attacked", hostile, **{"num-clients": clients, **settings})
    dropped = _run(
        tmp_path, "dropped", dict.fromkeys(hostile, DROP), **{"num-clients": clients, **settings}
    )
    summary = json.loads((attacked / "summary.json").read_text())
    assert summary["status"] == "complete"
    rows = _rows(attacked)
    for pid, name in hostile.items():
        reason = attacks[name][1]
        for round_ in (1, 2):
            row = rows[(pid, round_)]
            assert row["status"] == "invalid", (name, row)
            assert any(r in row["reason"] for r in reason.split("|")), (name, row["reason"])
    baseline = _rows(dropped)
    for pid in honest:
        for round_ in (0, 1, 2):
            got, want = rows[(pid, round_)], baseline[(pid, round_)]
            for metric in HONEST_METRICS:
                assert got[metric] == want[metric], (pid, round_, metric)
    # A hostile node's self-reported accuracy never reaches the headline figures.
    assert summary["clients_taking_part"] == 2


@pytest.mark.integration
def test_every_crafted_soft_label_reply_is_excluded_through_flower(tmp_path: Path) -> None:
    _survives(tmp_path, SOFT_LABEL_ATTACKS, strategy="mean", **{"mean-weighted": True})


@pytest.mark.integration
def test_every_crafted_fedavg_reply_is_excluded_through_flower(tmp_path: Path) -> None:
    _survives(tmp_path, WEIGHT_ATTACKS, strategy="fedavg")
