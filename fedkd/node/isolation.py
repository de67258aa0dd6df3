"""The node's per-request isolation boundary: whatever fails, the server learns one fixed line.

Flower forwards a ClientApp's exception text to the server, and an exception raised while
training can name what the node holds (a record count, a shape, a file).  Everything a
node does for a request runs inside this boundary: any exception is logged where only the
node's operator reads it, and the reply is the same fixed refusal for every cause and
every dataset.  The request's own public fields (run, round, transfer set) are echoed so
the server can match the reply; nothing else in it is computed by the node.
"""

from __future__ import annotations

import logging

from fedkd.wire.errors import PayloadError
from fedkd.wire.serde import knowledge_reply_to_bytes, knowledge_request_from_bytes
from fedkd.wire.types import (
    KnowledgeReply,
    KnowledgeRequest,
    Status,
    StatusCode,
    TransferSetRef,
    WireDType,
)

FAILED_REASON = "the node could not serve this request (see its local log)"
"""The only reason a failed request ever gives, whatever the cause."""

LOG = logging.getLogger("fedkd.node")

_NO_SET = TransferSetRef(digest="", num_samples=0, num_classes=0)


def failure_reply(
    request_bytes: bytes, *, node_id: int, node_name: str = "", max_bytes: int
) -> KnowledgeReply:
    """The fixed ``internal-error`` reply to ``request_bytes`` (decoded only to be echoed)."""
    request = _decoded(request_bytes, max_bytes)
    return KnowledgeReply(
        run_id=request.run_id if request else "",
        round=request.round if request else 0,
        node_id=node_id,
        transfer_set=request.transfer_set if request else _NO_SET,
        soft_labels=None,
        num_examples=0,
        status=Status(StatusCode.INTERNAL_ERROR, FAILED_REASON),
        dtype=request.reply_dtype if request else WireDType.FLOAT32,
        node_name=node_name,
    )


def failure_reply_bytes(request_bytes: bytes, *, node_id: int, max_bytes: int) -> bytes:
    """:func:`failure_reply` serialised, for a failure before the node itself exists."""
    return knowledge_reply_to_bytes(
        failure_reply(request_bytes, node_id=node_id, max_bytes=max_bytes)
    )


def _decoded(request_bytes: bytes, max_bytes: int) -> KnowledgeRequest | None:
    try:
        return knowledge_request_from_bytes(request_bytes, max_bytes=max_bytes)
    except (PayloadError, ValueError, TypeError, OverflowError, MemoryError):
        return None
