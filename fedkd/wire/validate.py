"""Checks every decoded reply must pass before the server uses it.

Each failure raises :class:`PayloadError` with a reason specific enough to act on
("soft labels shape (64, 9), expected (64, 10)"), which the server logs and records as the
client's exclusion from that round.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from fedkd.wire.errors import PayloadError
from fedkd.wire.tolerance import row_sum_tolerance
from fedkd.wire.types import EvalReport, KnowledgeReply, StatusCode, WireDType

MAX_REPORTED_RECORDS = 10**9
"""A node reporting more private records than this is not believed."""


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
    if not 0 <= reply.num_examples <= MAX_REPORTED_RECORDS:
        raise PayloadError(f"reports {reply.num_examples} records (at most {MAX_REPORTED_RECORDS})")
    if reply.eval is not None:
        _validate_eval(reply.eval)
    # Whatever the status says, anything the reply carries is checked before it is used.
    _validate_soft_labels(reply, expected)
    _validate_weights(reply)


def _validate_eval(report: EvalReport) -> None:
    """Client-reported metrics: accuracies in [0, 1], losses ≥ 0 (NaN: not reported)."""
    for name in ("local_accuracy", "global_accuracy"):
        value = getattr(report, name)
        if not math.isnan(value) and not 0.0 <= value <= 1.0:
            raise PayloadError(f"eval {name} {value!r} outside [0, 1]")
    for name in ("local_loss", "global_loss", "train_loss", "distill_loss"):
        value = getattr(report, name)
        if not math.isnan(value) and not (math.isfinite(value) and value >= 0):
            raise PayloadError(f"eval {name} {value!r} is not a finite nonnegative loss")
    if not 0 <= report.local_test_examples <= MAX_REPORTED_RECORDS:
        raise PayloadError(f"eval local_test_examples {report.local_test_examples} implausible")
    if any(not math.isfinite(v) or v < 0 for v in report.phase_seconds.values()):
        raise PayloadError("eval phase_seconds must be finite and nonnegative")


def _validate_weights(reply: KnowledgeReply) -> None:
    for name, array in (reply.weights or {}).items():
        if not np.all(np.isfinite(array)):
            raise PayloadError(f"weights tensor {name!r} contains non-finite values")


def normalised_soft_labels(reply: KnowledgeReply) -> np.ndarray | None:
    """The validated soft labels with every row renormalised to sum to 1 exactly."""
    labels = reply.soft_labels
    if labels is None:
        return None
    sums = labels.sum(axis=1, keepdims=True)
    out: np.ndarray = (labels / sums).astype(np.float32)
    return out


def _validate_soft_labels(reply: KnowledgeReply, expected: ReplyExpectation) -> None:
    labels = reply.soft_labels
    if labels is None:
        if expected.expect_soft_labels and reply.status.code is StatusCode.OK:
            raise PayloadError("status OK but no soft labels")
        return
    if reply.dtype not in expected.allowed_dtypes:
        allowed = sorted(d.value for d in expected.allowed_dtypes)
        raise PayloadError(f"dtype {reply.dtype.value}, the run asked for {allowed}")
    want = (expected.num_anchors, expected.num_classes)
    if labels.shape != want:
        raise PayloadError(f"soft labels shape {labels.shape}, expected {want}")
    if not np.all(np.isfinite(labels)):
        bad = int(np.size(labels) - np.count_nonzero(np.isfinite(labels)))
        raise PayloadError(f"soft labels contain {bad} non-finite values (NaN or inf)")
    if np.any(labels < 0):
        raise PayloadError(f"soft labels contain negative values (min {float(labels.min()):.3g})")
    row_error = float(np.max(np.abs(labels.sum(axis=1) - 1.0))) if len(labels) else 0.0
    tolerance = row_sum_tolerance(reply.dtype, expected.num_classes)
    if row_error > tolerance:
        raise PayloadError(
            f"soft-label rows do not sum to 1 (max deviation {row_error:.3g}, "
            f"{reply.dtype.value} allows {tolerance:.3g})"
        )
