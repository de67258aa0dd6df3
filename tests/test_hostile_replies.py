"""One client's crafted replies never sink a round, and never move the honest results.

Three digits nodes, round 1; node 2's reply is replaced by a crafted one.  The server
must exclude it with a reason, and the honest nodes' fused targets must equal those of the
same round with node 2's reply simply dropped.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from fedkd.config import RunConfig, parse_run_config
from fedkd.coordinator import Coordinator, Delivery
from fedkd.wire.serde import (
    knowledge_reply_from_bytes,
    knowledge_reply_to_bytes,
    knowledge_reply_to_proto,
    knowledge_request_from_bytes,
)
from fedkd.wire.types import KnowledgeReply, Status, StatusCode, WireDType
from tests.node_harness import federation, serve

CAP = 1 << 30
BASE: dict[str, Any] = {
    "dataset": "digits",
    "num-clients": 3,
    "partitioner": "iid",
    "transfer-size": 100,
    "num-server-rounds": 2,
    "model": "mlp-s",
    "batch-size": 32,
}


def _replies(cfg: RunConfig) -> tuple[Coordinator, dict[int, bytes], dict[int, tuple[int, int]]]:
    data = federation(cfg)
    coord = Coordinator(cfg, run_id="r", transfer=data.transfer, num_classes=10)
    replies, down = {}, {}
    for n in range(3):
        request = coord.requests(1, [n])[n]
        down[n] = (len(request), 0)
        replies[n], _ = serve(cfg, n, request, None)
    return coord, replies, down


def _fused_for_honest(coord: Coordinator) -> list[np.ndarray | None]:
    out = []
    for n in (0, 1):
        request = knowledge_request_from_bytes(coord.requests(2, [n])[n], max_bytes=CAP)
        if request.fused is not None:
            out.append(request.fused.targets)
        elif request.global_weights is not None:
            out.append(
                np.concatenate([v.ravel() for _, v in sorted(request.global_weights.items())])
            )
        else:
            out.append(None)
    return out


def _labels(reply: KnowledgeReply) -> np.ndarray:
    assert reply.soft_labels is not None
    return reply.soft_labels


def _raw_overflow(reply: KnowledgeReply) -> bytes:
    message = knowledge_reply_to_proto(reply)
    del message.soft_labels.shape[:]
    message.soft_labels.shape.extend([2**32 - 1, 2**32 - 1, 2**32 - 1])  # overflows int64
    return bytes(message.SerializeToString())


def _with_negative(labels: np.ndarray) -> np.ndarray:
    """Rows still sum to 1, but one entry is below 0."""
    out = labels.copy()
    out[0, 0] -= 0.5
    out[0, 1] += 0.5
    return out


Attack = Callable[[KnowledgeReply], KnowledgeReply | bytes]


def _excluded_and_harmless(cfg: RunConfig, craft: Attack, reason: str) -> None:
    """Node 2's crafted reply is excluded with ``reason``, and the honest nodes receive
    exactly what they would with node 2's reply dropped."""
    coord, replies, down = _replies(cfg)
    crafted = craft(knowledge_reply_from_bytes(replies[2], max_bytes=CAP))
    replies[2] = crafted if isinstance(crafted, bytes) else knowledge_reply_to_bytes(crafted)
    outcome = coord.ingest(1, [Delivery(n, replies[n]) for n in range(3)], down)
    assert outcome.accepted == [0, 1]
    assert any(r in outcome.excluded[2] for r in reason.split("|")), outcome.excluded[2]
    clean, honest, clean_down = _replies(cfg)
    clean.ingest(1, [Delivery(0, honest[0]), Delivery(1, honest[1]), Delivery(2, None)], clean_down)
    for got, want in zip(_fused_for_honest(coord), _fused_for_honest(clean), strict=True):
        assert got is not None and want is not None
        np.testing.assert_array_equal(got, want)


SOFT_LABEL_ATTACKS: dict[str, tuple[Attack, str]] = {
    "skipped-with-nan": (
        lambda r: dataclasses.replace(
            r, status=Status(StatusCode.SKIPPED), soft_labels=_labels(r) * np.nan
        ),
        "non-finite",
    ),
    "skipped-wrong-shape": (
        lambda r: dataclasses.replace(
            r, status=Status(StatusCode.SKIPPED), soft_labels=np.full((100, 11), 1 / 11, np.float32)
        ),
        "shape (100, 11), expected (100, 10)",
    ),
    "negative": (
        lambda r: dataclasses.replace(r, soft_labels=_with_negative(_labels(r))),
        "negative",
    ),
    "rows-off": (
        lambda r: dataclasses.replace(r, soft_labels=_labels(r) * 1.2),
        "do not sum to 1",
    ),
    "other-dtype": (lambda r: dataclasses.replace(r, dtype=WireDType.FLOAT16), "dtype fp16"),
    "overflowing-shape": (_raw_overflow, "expected (100, 10)"),
    "huge-count": (lambda r: dataclasses.replace(r, num_examples=2**64 - 1), "records"),
    "perfect-accuracy-inf": (
        lambda r: dataclasses.replace(
            r, eval=dataclasses.replace(r.eval, local_accuracy=float("inf"))
        ),
        "outside [0, 1]",
    ),
}


@pytest.mark.parametrize("attack", sorted(SOFT_LABEL_ATTACKS))
def test_a_crafted_soft_label_reply_is_excluded_and_moves_nothing(attack: str) -> None:
    craft, reason = SOFT_LABEL_ATTACKS[attack]
    _excluded_and_harmless(
        parse_run_config({**BASE, "strategy": "mean", "mean-weighted": True}), craft, reason
    )


WEIGHT_ATTACKS: dict[str, tuple[Attack, str]] = {
    "nan-weights": (
        lambda r: dataclasses.replace(
            r, weights={k: v * np.nan for k, v in (r.weights or {}).items()}
        ),
        "non-finite",
    ),
    "missing-key": (
        lambda r: dataclasses.replace(r, weights=dict(list((r.weights or {}).items())[1:])),
        "missing",
    ),
    "other-shape": (
        lambda r: dataclasses.replace(
            r, weights={k: np.zeros(3, np.float32) for k in (r.weights or {})}
        ),
        "other shapes|shape (3,), expected",  # round 1: against the others; later: the model
    ),
}


@pytest.mark.parametrize("attack", sorted(WEIGHT_ATTACKS))
def test_a_crafted_fedavg_reply_is_excluded_and_moves_nothing(attack: str) -> None:
    craft, reason = WEIGHT_ATTACKS[attack]
    _excluded_and_harmless(parse_run_config({**BASE, "strategy": "fedavg"}), craft, reason)


@pytest.mark.parametrize("dtype", ["int8", "fp16"])
def test_honest_quantised_replies_are_accepted_and_fused_as_exact_rows(dtype: str) -> None:
    cfg = parse_run_config({**BASE, "strategy": "knfu", "payload-dtype": dtype})
    coord, replies, down = _replies(cfg)
    outcome = coord.ingest(1, [Delivery(n, replies[n]) for n in range(3)], down)
    assert outcome.accepted == [0, 1, 2]
    for targets in _fused_for_honest(coord):
        assert targets is not None
        np.testing.assert_allclose(targets.sum(axis=1), 1.0, atol=2e-2 if dtype == "int8" else 2e-3)


def test_a_reply_naming_an_unknown_mechanism_is_excluded_and_a_control_claims_no_epsilon() -> None:
    """Only "none", "dp-sgd" and the audit's control are mechanisms; a control is recorded
    as such, with no ε, whatever number it carries."""
    from fedkd.privacy.guard import CONTROL_MECHANISM

    cfg = parse_run_config({**BASE, "strategy": "mean", "dp": True, "dp-noise-multiplier": 1.0})
    coord, replies, down = _replies(cfg)

    def stated(raw: bytes, mechanism: str, epsilon: float) -> bytes:
        reply = knowledge_reply_from_bytes(raw, max_bytes=1 << 30)
        spend = dataclasses.replace(reply.privacy, mechanism=mechanism, epsilon=epsilon)
        return knowledge_reply_to_bytes(dataclasses.replace(reply, privacy=spend))

    crafted = {
        0: replies[0],
        1: stated(replies[1], "lol", 0.0),
        2: stated(replies[2], CONTROL_MECHANISM, 0.001),
    }
    outcome = coord.ingest(1, [Delivery(n, crafted[n]) for n in range(3)], down)
    assert outcome.nodes[1].status == "invalid"
    assert "unknown privacy mechanism 'lol'" in outcome.nodes[1].reason
    assert outcome.nodes[0].privacy_epsilon is not None
    assert outcome.nodes[2].privacy_epsilon is None and 2 in coord.controls
    assert 2 not in coord.epsilon_recorded
