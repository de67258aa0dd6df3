"""Round trips through the protobuf schema, and the errors bad bytes must raise."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from fedkd.wire.errors import PayloadError
from fedkd.wire.serde import (
    knowledge_reply_from_bytes,
    knowledge_reply_to_bytes,
    knowledge_request_from_bytes,
    knowledge_request_to_bytes,
    tensor_from_proto,
    tensor_to_proto,
)
from fedkd.wire.types import (
    EvalReport,
    FusedKnowledge,
    KnowledgeReply,
    KnowledgeRequest,
    PrivacySpend,
    Status,
    StatusCode,
    TransferSetRef,
    WireDType,
)

REF = TransferSetRef(digest="sha256:ab", num_samples=50, num_classes=10, name="t")
CAP = 1 << 20


def _probs(rows: int, cols: int, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).random((rows, cols)).astype(np.float32)
    return x / x.sum(axis=1, keepdims=True)


@pytest.mark.parametrize(
    ("dtype", "atol"), [(WireDType.FLOAT32, 0.0), (WireDType.FLOAT16, 5e-4), (WireDType.INT8, 0)]
)
def test_tensor_round_trip_within_stated_error(dtype: WireDType, atol: float) -> None:
    x = _probs(32, 10)
    back, got = tensor_from_proto(tensor_to_proto(x, dtype))
    assert got is dtype and back.shape == x.shape and back.dtype == np.float32
    if dtype is WireDType.INT8:
        # Half a quantisation step: scale / 2 = max|x| / 254.
        assert np.max(np.abs(back - x)) <= float(x.max()) / 254 + 1e-7
    else:
        np.testing.assert_allclose(back, x, atol=atol)


def test_payload_size_tracks_raw_tensor_size() -> None:
    x = _probs(500, 10)
    for dtype in WireDType:
        reply = KnowledgeReply(
            run_id="run-1",
            round=3,
            node_id=7,
            transfer_set=REF,
            soft_labels=x,
            num_examples=120,
            dtype=dtype,
        )
        raw = x.size * dtype.itemsize
        assert raw <= len(knowledge_reply_to_bytes(reply)) <= raw * 1.05 + 512


def test_request_round_trip() -> None:
    fused = FusedKnowledge(
        run_id="r",
        round=2,
        transfer_set=REF,
        anchor_indices=np.array([1, 4, 9], np.uint32),
        targets=_probs(3, 10),
        strategy="knfu",
    )
    weights = {"w": np.arange(6, dtype=np.float32).reshape(2, 3)}
    req = KnowledgeRequest(
        run_id="r",
        round=3,
        transfer_set=REF,
        anchor_indices=np.arange(5, dtype=np.uint32),
        fused=fused,
        reply_dtype=WireDType.INT8,
        global_weights=weights,
        ledger_head="ab" * 32,
    )
    back = knowledge_request_from_bytes(knowledge_request_to_bytes(req), max_bytes=CAP)
    assert (back.run_id, back.round, back.transfer_set, back.reply_dtype, back.ledger_head) == (
        "r",
        3,
        REF,
        WireDType.INT8,
        "ab" * 32,
    )
    np.testing.assert_array_equal(back.anchor_indices, req.anchor_indices)
    assert back.fused is not None
    np.testing.assert_array_equal(back.fused.anchor_indices, fused.anchor_indices)
    np.testing.assert_allclose(back.fused.targets, fused.targets)
    assert back.global_weights is not None
    np.testing.assert_array_equal(back.global_weights["w"], weights["w"])


def test_reply_round_trip() -> None:
    report = EvalReport(
        evaluated_round=2,
        partition_id=4,
        local_accuracy=0.9,
        local_loss=0.3,
        local_test_examples=120,
        global_accuracy=0.8,
        global_loss=0.5,
        train_loss=0.25,
        distill_loss=0.5,
        phase_seconds={"train": 1.5},
        model="mlp-s",
    )
    reply = KnowledgeReply(
        run_id="r",
        round=3,
        node_id=11,
        transfer_set=REF,
        soft_labels=_probs(4, 10),
        num_examples=99,
        privacy=PrivacySpend("dp-sgd", 1.5, 1e-5, "prv", 1.1, 0.01, 300, "cd" * 32),
        status=Status(StatusCode.BUDGET_EXHAUSTED, "eps 3.1 > 3.0"),
        eval=report,
    )
    back = knowledge_reply_from_bytes(knowledge_reply_to_bytes(reply), max_bytes=CAP)
    assert back.privacy == reply.privacy and back.status == reply.status
    refused = dataclasses.replace(reply, status=Status(StatusCode.LEDGER_REFUSED, "lost"))
    again = knowledge_reply_from_bytes(knowledge_reply_to_bytes(refused), max_bytes=CAP)
    assert again.status == Status(StatusCode.LEDGER_REFUSED, "lost")
    assert back.eval == report
    assert back.soft_labels is not None
    np.testing.assert_allclose(back.soft_labels, reply.soft_labels)  # type: ignore[arg-type]


def test_undecodable_and_oversize_bytes_raise_payload_error() -> None:
    with pytest.raises(PayloadError, match="not decodable"):
        knowledge_reply_from_bytes(b"\xff\xff\xff garbage", max_bytes=CAP)
    with pytest.raises(PayloadError, match="over the 10-byte cap"):
        knowledge_reply_from_bytes(b"x" * 11, max_bytes=10)


def test_truncated_tensor_bytes_are_rejected() -> None:
    message = tensor_to_proto(_probs(4, 10), WireDType.FLOAT32)
    message.data = message.data[:-4]
    with pytest.raises(PayloadError, match="needs 160 bytes, got 156"):
        tensor_from_proto(message)


def test_wrong_schema_version_is_rejected() -> None:
    from fedkd.wire.serde import knowledge_reply_to_proto

    message = knowledge_reply_to_proto(
        KnowledgeReply(
            run_id="r", round=1, node_id=1, transfer_set=REF, soft_labels=None, num_examples=0
        )
    )
    message.schema_version = 9
    with pytest.raises(PayloadError, match="schema version 9"):
        knowledge_reply_from_bytes(message.SerializeToString(), max_bytes=CAP)


def test_whole_transfer_set_travels_as_a_flag() -> None:
    every = np.arange(REF.num_samples, dtype=np.uint32)
    subset = np.array([3, 1, 4], np.uint32)
    sizes = {}
    for name, idx in (("all", every), ("subset", subset)):
        req = KnowledgeRequest(run_id="r", round=1, transfer_set=REF, anchor_indices=idx)
        data = knowledge_request_to_bytes(req)
        back = knowledge_request_from_bytes(data, max_bytes=CAP)
        np.testing.assert_array_equal(back.anchor_indices, idx)
        sizes[name] = len(data)
    assert sizes["all"] < sizes["subset"] + 10  # 50 indices cost nothing when all are sent


def test_down_payload_tracks_raw_tensor_size() -> None:
    ref = TransferSetRef(digest="sha256:" + "ab" * 32, num_samples=1000, num_classes=10)
    for dtype in WireDType:
        for idx in (np.arange(1000, dtype=np.uint32), np.arange(0, 1000, 2, dtype=np.uint32)):
            fused = FusedKnowledge(
                run_id="r" * 19,
                round=4,
                transfer_set=ref,
                anchor_indices=idx,
                targets=_probs(len(idx), 10),
                strategy="knfu",
                dtype=dtype,
            )
            req = KnowledgeRequest(
                run_id="r" * 19,
                round=5,
                transfer_set=ref,
                anchor_indices=idx,
                fused=fused,
                reply_dtype=dtype,
            )
            # Raw: the targets in the dtype sent, and each index list as uint32.
            raw = len(idx) * 10 * dtype.itemsize + (0 if len(idx) == 1000 else 2 * 4 * len(idx))
            assert len(knowledge_request_to_bytes(req)) <= raw * 1.05 + 512, (dtype, len(idx))
