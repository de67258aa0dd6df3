"""Versions: a node refuses a server it does not support and the server refuses such a
node, each with one line naming both versions."""

from __future__ import annotations

import dataclasses

from fedkd import __version__
from fedkd.config import parse_run_config
from fedkd.coordinator import Coordinator, Delivery
from fedkd.version_check import incompatibility
from fedkd.wire.serde import (
    knowledge_reply_from_bytes,
    knowledge_reply_to_bytes,
    knowledge_request_from_bytes,
    knowledge_request_to_bytes,
)
from fedkd.wire.types import StatusCode
from tests.node_harness import federation, serve

CAP = 1 << 30
CFG = parse_run_config({"dataset": "digits", "num-clients": 2, "transfer-size": 50,
                        "model": "mlp-s", "strategy": "mean"})  # fmt: skip


def test_the_series_rule() -> None:
    major, minor, *_ = __version__.split(".")
    assert incompatibility(f"{major}.{minor}.99", who="server") == ""
    assert "runs fedkd 9.9.0" in incompatibility("9.9.0", who="server")
    assert "does not state" in incompatibility("", who="node")


def test_a_node_refuses_a_server_it_does_not_support() -> None:
    data = federation(CFG)
    coord = Coordinator(CFG, run_id="v", transfer=data.transfer, num_classes=10)
    request = knowledge_request_from_bytes(coord.requests(1, [0])[0], max_bytes=CAP)
    future = knowledge_request_to_bytes(dataclasses.replace(request, software_version="9.0.0"))
    raw, state = serve(CFG, 0, future, None)
    reply = knowledge_reply_from_bytes(raw, max_bytes=CAP)
    assert reply.status.code is StatusCode.POLICY_REFUSED and state is None
    assert "the server runs fedkd 9.0.0" in reply.status.reason
    # …and the server reads the node's reason as its exclusion.
    outcome = coord.ingest(1, [Delivery(0, raw)], {})
    assert "the server runs fedkd 9.0.0" in outcome.excluded[0]


def test_the_server_refuses_a_node_it_does_not_support() -> None:
    data = federation(CFG)
    coord = Coordinator(CFG, run_id="v", transfer=data.transfer, num_classes=10)
    raw, _ = serve(CFG, 1, coord.requests(1, [1])[1], None)
    old = dataclasses.replace(
        knowledge_reply_from_bytes(raw, max_bytes=CAP), software_version="0.0.1"
    )
    outcome = coord.ingest(1, [Delivery(1, knowledge_reply_to_bytes(old))], {})
    assert "the node runs fedkd 0.0.1" in outcome.excluded[1]


def test_the_package_states_the_version_pyproject_releases() -> None:
    import tomllib
    from pathlib import Path

    pyproject = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    assert pyproject["project"]["version"] == __version__
