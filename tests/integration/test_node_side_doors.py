"""Nothing private leaves a node through its failures (a curious server's side door).

A server sets run-config values that make its nodes fail and compares what comes back
from two hospitals whose data differ by one record (D and D − 1, the same published
nominal count).  Through Flower's simulation engine, where a ClientApp's exception text
would be forwarded to the server, every byte of every reply must be the same: the node's
isolation boundary turns any failure into one fixed reply.  Each node's Flower node id
(assigned by Flower, not the node's data) is the only field set to a common value
before the bytes are compared.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fedkd.config import parse_run_config
from fedkd.coordinator import Coordinator
from fedkd.flower_glue.simulation import SimulatedNodes
from fedkd.node.isolation import FAILED_REASON
from fedkd.wire.serde import knowledge_reply_from_bytes, knowledge_reply_to_bytes
from fedkd.wire.types import StatusCode
from tests.node_harness import federation

BASE: dict[str, Any] = {
    "dataset": "digits",
    "num-clients": 2,
    "partitioner": "iid",
    "transfer-size": 200,
    "num-server-rounds": 1,
    "local-epochs": 1,
    "model": "mlp-s",
    "strategy": "mean",
    "dp": True,
    "dp-noise-multiplier": 1.0,
    "dp-accountant": "rdp",
    "batch-size": 32,
}

FAILING = [
    {"dp-noise-multiplier": 1e-320},  # σ² underflows: the accountant divides by zero
    {"dp-noise-multiplier": 0.0, "dp-target-epsilon": 1e-6},  # no σ reaches that ε
    {"dp-lr": 1e308},  # the DP-SGD step overflows float32
    {"dp-batch-size": -1},
    {"batch-size": 0},  # the run config itself is refused when the node parses it
    {"dp-physical-batch-size": 0},
    {"local-epochs": -1},
    {"dp-max-grad-norm": 0.0},
    {"dp-grad-sample-mode": "per-record"},
    {"dp-accountant": "gdp"},
    {"distill-temperature": 0.0},
    {"swing-scorer": "oracle"},
    {"dp-delta": 0.5},  # refused by the node's policy
    {"max-payload-bytes": 10},  # the request is over the node's cap
]
SERVED = [  # they failed with a message naming the record count; now they train
    {"dp-grad-sample-mode": "ew", "batch-size": 2},
    {"dp-grad-sample-mode": "functorch", "batch-size": 2},
]


def _hospitals(tmp_path: Path) -> SimulatedNodes:
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(121, 1, 8, 8)).astype(np.float32)
    y = rng.integers(0, 10, size=121)
    split = np.array(["train"] * 101 + ["test"] * 20)
    flats = []
    for name, keep in (("D", slice(None)), ("D-1", np.arange(121) != 5)):
        path = tmp_path / f"{name}.npz"
        np.savez(path, x=x[keep], y=y[keep], split=split[keep])
        flats.append(
            {
                "name": "hospital",
                "data": "arrays",
                "data-path": str(path),
                "state-dir": str(tmp_path / name),
                "privacy-nominal-records": 100,
                "privacy-max-epsilon": 50.0,
                "privacy-max-delta": 1e-5,
            }
        )
    return SimulatedNodes(tuple(flats))


def _normalised(payload: bytes) -> bytes:
    return knowledge_reply_to_bytes(
        replace(knowledge_reply_from_bytes(payload, max_bytes=1 << 30), node_id=0)
    )


@pytest.mark.integration
def test_failing_run_configs_send_identical_bytes_for_neighbouring_datasets(
    tmp_path: Path,
) -> None:
    from flwr.simulation import run_simulation

    from tests.integration.side_door_apps import case_client_app, case_server_app

    cfg = parse_run_config({**BASE, "run-name": "side-doors"})
    coord = Coordinator(
        cfg, run_id="side-doors", transfer=federation(cfg).transfer,
        num_classes=10,
    )  # fmt: skip
    request = coord.requests(1, [0])[0]
    cases = [*FAILING, *SERVED]
    seen: list[dict[int, dict[str, Any]]] = []
    run_simulation(
        server_app=case_server_app([(case, request) for case in cases], seen),
        client_app=case_client_app(_hospitals(tmp_path), BASE),
        num_supernodes=2,
        backend_config={
            "client_resources": {"num_cpus": 1, "num_gpus": 0.0},
            "init_args": {"logging_level": "ERROR", "log_to_driver": True},
        },
    )
    assert len(seen) == len(cases)
    for case, got in zip(cases, seen, strict=True):
        d, d_minus = got[0], got[1]
        assert d["error"] is None and d_minus["error"] is None, case  # no exception text
        reply = knowledge_reply_from_bytes(d["payload"], max_bytes=1 << 30)
        if case in SERVED:
            assert reply.status.code is StatusCode.OK, (case, reply.status)
            continue
        assert reply.status.code is not StatusCode.OK, case  # the node did fail
        assert _normalised(d["payload"]) == _normalised(d_minus["payload"]), case
        if reply.status.code is StatusCode.INTERNAL_ERROR:
            assert reply.status.reason == FAILED_REASON
    failed = [
        knowledge_reply_from_bytes(got[0]["payload"], max_bytes=1 << 30).status.code
        for got in seen[: len(FAILING)]
    ]
    assert failed.count(StatusCode.INTERNAL_ERROR) >= 10
