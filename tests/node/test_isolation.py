"""The node's isolation boundary: any failure is one fixed reply; the detail stays local."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fedkd.config import parse_run_config
from fedkd.coordinator import Coordinator
from fedkd.node import ClientNode
from fedkd.node.isolation import FAILED_REASON
from fedkd.wire.serde import knowledge_reply_from_bytes
from fedkd.wire.types import StatusCode
from tests.node_harness import federation, node_config

BASE: dict[str, Any] = {
    "dataset": "digits",
    "num-clients": 2,
    "partitioner": "iid",
    "transfer-size": 100,
    "num-server-rounds": 1,
    "model": "mlp-s",
    "strategy": "mean",
    "dp": True,
    "dp-noise-multiplier": 1.0,
    "dp-accountant": "rdp",
}


def test_a_failure_mid_training_is_the_fixed_reply_and_its_detail_stays_in_the_node_log() -> None:
    cfg = parse_run_config({**BASE, "run-name": "overflow", "lr": 1e308, "dp-lr": 1e308})
    coord = Coordinator(cfg, run_id="r", transfer=federation(cfg).transfer, num_classes=10)
    node_cfg = node_config(cfg, 0)
    node = ClientNode(node_cfg, cfg.protocol(), node_id=0)
    raw, state = node.handle(coord.requests(1, [0])[0], None)
    reply = knowledge_reply_from_bytes(raw, max_bytes=1 << 30)
    assert (reply.status.code, reply.status.reason) == (StatusCode.INTERNAL_ERROR, FAILED_REASON)
    assert (reply.run_id, reply.round, reply.node_name) == ("r", 1, node_cfg.name)
    assert reply.soft_labels is None and reply.eval is None and reply.num_examples == 0
    assert state is None
    log = node_cfg.log_path.read_text()
    assert "could not serve a request" in log and "overflow" in log  # the detail, locally
    lines = node_cfg.sent_log_path.read_text().splitlines()
    sent = [json.loads(line) for line in lines]
    assert sent[-1]["status"] == "internal-error" and sent[-1]["bytes"] == len(raw)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(garbage=st.binary(max_size=256))
def test_no_request_bytes_make_the_node_raise(garbage: bytes) -> None:
    cfg = parse_run_config({**BASE, "run-name": "fuzz"})
    raw, _ = ClientNode(node_config(cfg, 0), cfg.protocol(), node_id=3).handle(garbage, None)
    reply = knowledge_reply_from_bytes(raw, max_bytes=1 << 20)
    assert reply.status.code is not StatusCode.OK
