"""Each validation failure names the problem."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from fedkd.wire.errors import PayloadError
from fedkd.wire.types import KnowledgeReply, PrivacySpend, TransferSetRef, WireDType
from fedkd.wire.validate import ReplyExpectation, validate_reply

REF = TransferSetRef(digest="sha256:good", num_samples=100, num_classes=3)
EXPECT = ReplyExpectation(
    run_id="r", round=2, node_id=5, transfer_digest="sha256:good", num_anchors=4, num_classes=3
)


def _reply(**changes: object) -> KnowledgeReply:
    base = KnowledgeReply(
        run_id="r",
        round=2,
        node_id=5,
        transfer_set=REF,
        soft_labels=np.full((4, 3), 1 / 3, np.float32),
        num_examples=10,
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def test_valid_reply_passes() -> None:
    validate_reply(_reply(), EXPECT)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"run_id": "other"}, "run id 'other'"),
        ({"round": 1}, "round 1, expected 2"),
        ({"node_id": 6}, "claims node 6"),
        ({"transfer_set": TransferSetRef("sha256:bad", 100, 3)}, "transfer-set digest"),
        ({"soft_labels": np.full((4, 2), 0.5, np.float32)}, r"shape \(4, 2\), expected \(4, 3\)"),
        ({"soft_labels": np.full((4, 3), np.nan, np.float32)}, "12 non-finite"),
        ({"soft_labels": np.array([[2, -1, 0]] * 4, np.float32)}, "negative"),
        ({"soft_labels": np.full((4, 3), 0.5, np.float32)}, "do not sum to 1"),
        ({"soft_labels": None}, "carries none"),
    ],
)
def test_bad_replies_are_rejected_with_reason(changes: dict[str, object], message: str) -> None:
    with pytest.raises(PayloadError, match=message):
        validate_reply(_reply(**changes), EXPECT)


def test_dp_runs_require_a_privacy_spend() -> None:
    strict = dataclasses.replace(EXPECT, require_privacy=True)
    with pytest.raises(PayloadError, match="requires DP"):
        validate_reply(_reply(), strict)
    validate_reply(_reply(privacy=PrivacySpend("dp-sgd", 1.0, 1e-5)), strict)


def test_disallowed_dtype() -> None:
    only_fp32 = dataclasses.replace(EXPECT, allowed_dtypes=frozenset({WireDType.FLOAT32}))
    with pytest.raises(PayloadError, match=r"dtype int8, the run asked for \[.fp32.\]"):
        validate_reply(_reply(dtype=WireDType.INT8), only_fp32)
