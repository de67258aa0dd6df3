"""Checks every decoded reply must pass before the server uses it.

Each failure raises :class:`PayloadError` with a reason specific enough to act on
("soft labels shape (64, 9), expected (64, 10)"), which the server logs and records as the
client's exclusion from that round.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fedkd.wire.errors import PayloadError
from fedkd.wire.types import KnowledgeReply, StatusCode, WireDType

# int8 codes carry ~0.4% of the peak per entry, so rows of a quantised distribution may
# miss 1 by a few percent; fp32/fp16 rows must sum to 1 much more tightly.
_ROW_SUM_TOLERANCE = {WireDType.FLOAT32: 1e-3, WireDType.FLOAT16: 1e-2, WireDType.INT8: 5e-2}


@dataclass(frozen=True)
class ReplyExpectation:
    """What the server asked for in a round."""

    run_id: str
    round: int
    node_id: int
    transfer_digest: str
    num_anchors: int
    num_classes: int
    allowed_dtypes: frozenset[WireDType] = frozenset(WireDType)
    require_privacy: bool = False
    expect_soft_labels: bool = True


def validate_reply(reply: KnowledgeReply, expected: ReplyExpectation) -> None:
    """Raise :class:`PayloadError` unless ``reply`` answers exactly what was asked."""
    if reply.run_id != expected.run_id:
        raise PayloadError(f"run id {reply.run_id!r}, expected {expected.run_id!r}")
    if reply.round != expected.round:
        raise PayloadError(f"round {reply.round}, expected {expected.round}")
    if reply.node_id != expected.node_id:
        raise PayloadError(f"claims node {reply.node_id}, sent by node {expected.node_id}")
    if reply.transfer_set.digest != expected.transfer_digest:
        raise PayloadError(
            f"transfer-set digest {reply.transfer_set.digest!r}, "
            f"expected {expected.transfer_digest!r}"
        )
    unbounded = reply.privacy.unbounded_since_row > 0  # honest: no ε can be claimed
    if expected.require_privacy and reply.privacy.mechanism == "none" and not unbounded:
        raise PayloadError("run requires DP but the reply claims no privacy spend")
    if reply.status.code is not StatusCode.OK:
        return
    _validate_soft_labels(reply, expected)


def _validate_soft_labels(reply: KnowledgeReply, expected: ReplyExpectation) -> None:
    labels = reply.soft_labels
    if labels is None:
        if expected.expect_soft_labels:
            raise PayloadError("status OK but no soft labels")
        return
    if reply.dtype not in expected.allowed_dtypes:
        raise PayloadError(f"dtype {reply.dtype.value} not allowed in this run")
    want = (expected.num_anchors, expected.num_classes)
    if labels.shape != want:
        raise PayloadError(f"soft labels shape {labels.shape}, expected {want}")
    if not np.all(np.isfinite(labels)):
        bad = int(np.size(labels) - np.count_nonzero(np.isfinite(labels)))
        raise PayloadError(f"soft labels contain {bad} non-finite values (NaN or inf)")
    if np.any(labels < 0):
        raise PayloadError(f"soft labels contain negative values (min {float(labels.min()):.3g})")
    row_error = float(np.max(np.abs(labels.sum(axis=1) - 1.0))) if len(labels) else 0.0
    if row_error > _ROW_SUM_TOLERANCE[reply.dtype]:
        raise PayloadError(f"soft-label rows do not sum to 1 (max deviation {row_error:.3g})")
