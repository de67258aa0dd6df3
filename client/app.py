"""fedkd ClientApp: unpack the request, let ``fedkd.node`` serve it, pack the reply.

Flower re-creates this app for every message, so the model lives in ``context.state``.
"""

from __future__ import annotations

import dataclasses

from flwr.app import Context, Message
from flwr.clientapp import ClientApp

from fedkd.config import parse_run_config
from fedkd.flower_glue.messages import STATE_KEY, pack, state_from_record, state_to_record, unpack
from fedkd.node import NodeIdentity, handle_request

app = ClientApp()


def _serve(msg: Message, context: Context, *, train: bool) -> Message:
    cfg = parse_run_config(context.run_config)
    # A real node keeps its ledger across runs where its operator says (--node-config
    # "ledger-dir='/var/lib/fedkd'"), not where the run config puts simulated ones.
    node_ledger = context.node_config.get("ledger-dir")
    if isinstance(node_ledger, str) and node_ledger:
        cfg = dataclasses.replace(cfg, ledger_dir=node_ledger)
    identity = NodeIdentity(
        node_id=int(context.node_id), partition_id=int(context.node_config["partition-id"])
    )
    record = context.state.array_records.get(STATE_KEY)
    state = state_from_record(record) if record is not None else None
    payload = unpack(msg.content) or b""
    reply, new_state = handle_request(cfg, identity, payload, state, train=train)
    if new_state is not None:
        context.state[STATE_KEY] = state_to_record(new_state)
    return Message(pack(reply), reply_to=msg)


@app.train()
def train(msg: Message, context: Context) -> Message:
    """One round: distil last round's targets, evaluate, train, release soft labels."""
    return _serve(msg, context, train=True)


@app.evaluate()
def evaluate(msg: Message, context: Context) -> Message:
    """Final message: distil the last targets and evaluate; nothing is released."""
    return _serve(msg, context, train=False)
