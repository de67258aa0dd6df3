"""Flower apps for the side-door test: the server sets each node's run config per message.

A hostile server controls the run config its nodes parse.  To try many run configs in one
simulation, the test's ServerApp sends each request with the run-config overrides it
wants the node to use, and the ClientApp hands them to fedkd's real :func:`client.app.serve`
as the run config.  Everything the node returns travels back through Flower's engine,
where an exception escaping ``serve`` would arrive as an error carrying its text.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from flwr.app import ConfigRecord, Context, Message, MessageType, RecordDict
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid, ServerApp

from client.app import serve
from fedkd.config import RunConfig, parse_run_config
from fedkd.flower_glue.messages import pack, unpack
from fedkd.flower_glue.simulation import SimulatedNodes

CASE_RECORD = "side-door-case"


def case_client_app(nodes: SimulatedNodes, base: Mapping[str, Any]) -> ClientApp:
    """fedkd's ClientApp whose run config is ``base`` plus the message's overrides."""
    app = ClientApp()

    @app.train()
    def train(msg: Message, context: Context) -> Message:
        overrides = json.loads(str(msg.content.config_records[CASE_RECORD]["overrides"]))

        def run_of(_: Context) -> RunConfig:
            return parse_run_config({**base, **overrides})

        return serve(msg, context, nodes, run_of, train=True)

    return app


def case_server_app(
    requests: list[tuple[dict[str, Any], bytes]], out: list[dict[int, dict[str, Any]]]
) -> ServerApp:
    """Sends every (overrides, request) to every node; appends what came back to ``out``."""
    app = ServerApp()

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        nodes: list[int] = []
        while len(nodes) < 2:
            nodes = sorted(grid.get_node_ids())
        for overrides, request in requests:
            messages = []
            for node_id in nodes:
                content = pack(request)
                content[CASE_RECORD] = ConfigRecord({"overrides": json.dumps(overrides)})
                messages.append(
                    Message(content, dst_node_id=node_id, message_type=MessageType.TRAIN)
                )
            got: dict[int, dict[str, Any]] = {}
            for reply in grid.send_and_receive(messages, timeout=300):
                pid = nodes.index(reply.metadata.src_node_id)
                got[pid] = _seen(reply)
            out.append(got)

    return app


def _seen(reply: Message) -> dict[str, Any]:
    """Everything of a reply that reaches the server's code: an error, or the payload."""
    if reply.has_error():
        return {"error": f"{reply.error.code}: {reply.error.reason}", "payload": None}
    content: RecordDict = reply.content
    return {"error": None, "payload": unpack(content)}
