"""A ClientApp whose partitions 1-4 misbehave, for the fault-isolation integration test.

Partition 0 and partitions >= 5 are honest.  The faults act on the real reply bytes the
honest code path produced, so everything the server sees went through the real schema.
"""

from __future__ import annotations

import functools

import numpy as np

from fedkd.wire.serde import knowledge_reply_from_bytes, knowledge_reply_to_bytes
from fedkd.wire.types import TransferSetRef
from tests.integration.hostile_client import hostile_app

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


faulty_app = functools.partial(
    hostile_app, {pid: functools.partial(_corrupt, fault=fault) for pid, fault in FAULTS.items()}
)
"""fedkd's ClientApp, except that partitions 1-4 corrupt their training replies."""
