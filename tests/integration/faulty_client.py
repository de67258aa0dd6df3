"""A ClientApp whose partitions 1-4 misbehave, for the fault-isolation integration test.

Partition 0 and partitions >= 5 are honest.  The faults act on the real reply bytes the
honest code path produced, so everything the server sees went through the real schema.
"""

from __future__ import annotations

import numpy as np
from flwr.app import Context, Message
from flwr.clientapp import ClientApp

from client.app import NodeConfigOf, RunConfigOf, serve
from fedkd.flower_glue.messages import pack, unpack
from fedkd.wire.serde import knowledge_reply_from_bytes, knowledge_reply_to_bytes
from fedkd.wire.types import TransferSetRef

FAULTS = {1: "nan", 2: "shape", 3: "digest", 4: "garbage"}


def _corrupt(payload: bytes, fault: str) -> bytes:
    if fault == "garbage":
        return b"\x08\x96\x01 this is not a KnowledgeReply \xff\xff"
    reply = knowledge_reply_from_bytes(payload, max_bytes=1 << 30)
    assert reply.soft_labels is not None
    labels = reply.soft_labels.copy()
    if fault == "nan":
        labels[0, 0] = np.nan
        reply = _replace(reply, soft_labels=labels)
    elif fault == "shape":
        reply = _replace(reply, soft_labels=labels[:, :-1])
    elif fault == "digest":
        ref = reply.transfer_set
        reply = _replace(
            reply, transfer_set=TransferSetRef("sha256:0000", ref.num_samples, ref.num_classes)
        )
    return knowledge_reply_to_bytes(reply)


def _replace(reply, **changes):  # type: ignore[no-untyped-def]
    import dataclasses

    return dataclasses.replace(reply, **changes)


def faulty_app(node_of: NodeConfigOf, run_of: RunConfigOf) -> ClientApp:
    """fedkd's ClientApp, except that partitions 1-4 corrupt their training replies."""
    app = ClientApp()

    @app.train()
    def train(msg: Message, context: Context) -> Message:
        honest = serve(msg, context, node_of(context), run_of(context), train=True)
        fault = FAULTS.get(int(context.node_config["partition-id"]))
        payload = unpack(honest.content)
        if fault is None or payload is None:
            return honest
        return Message(pack(_corrupt(payload, fault)), reply_to=msg)

    @app.query()
    def query(msg: Message, context: Context) -> Message:
        return serve(msg, context, node_of(context), run_of(context), train=False)

    @app.evaluate()
    def evaluate(msg: Message, context: Context) -> Message:
        return serve(msg, context, node_of(context), run_of(context), train=False)

    return app
