"""Fuzzing the server's decode → validate → fuse path with hypothesis.

Node 2's honest round-1 reply is mutated field by field (or replaced by arbitrary bytes);
the coordinator must never raise, must accept exactly the mutants an independent
predicate written here accepts (not the validator), and must fuse what it accepts.
Honest replies are always accepted.  The share of mutants that reached fusion is kept
in ``REACHED`` and printed (``pytest -s``).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fedkd.config import parse_run_config
from fedkd.coordinator import Coordinator, Delivery
from fedkd.wire.serde import knowledge_reply_from_bytes, knowledge_reply_to_bytes
from fedkd.wire.signing import sign_reply
from fedkd.wire.types import KnowledgeReply, Status, StatusCode, WireDType
from fedkd.wire.v1 import signed_pb2
from tests.node_harness import federation, serve

CAP = 1 << 30
CFG = parse_run_config(
    {
        "dataset": "digits",
        "num-clients": 3,
        "partitioner": "iid",
        "transfer-size": 40,
        "num-server-rounds": 2,
        "model": "mlp-s",
        "strategy": "mean",
        "run-name": "fuzz",
    }
)
T, C = 40, 10
REACHED: list[bool] = []


@pytest.fixture(scope="module")
def honest() -> dict[int, bytes]:
    data = federation(CFG)
    coord = Coordinator(CFG, run_id="fuzz", transfer=data.transfer, num_classes=C)
    return {n: serve(CFG, n, coord.requests(1, [n])[n], None)[0] for n in range(3)}


def _coordinator() -> Coordinator:
    data = federation(CFG)
    coord = Coordinator(CFG, run_id="fuzz", transfer=data.transfer, num_classes=C)
    for n in range(3):
        coord.requests(1, [n])[n]
    return coord


def acceptable(reply: KnowledgeReply) -> bool:
    """The spec, written independently of fedkd.wire.validate."""
    if reply.status.code not in (StatusCode.OK, StatusCode.SKIPPED):
        return False
    if (reply.run_id, reply.round, reply.node_id) != ("fuzz", 1, 2):
        return False
    if not 0 <= reply.num_examples <= 10**9:
        return False
    if reply.eval is not None:
        for value in (reply.eval.local_accuracy, reply.eval.global_accuracy):
            if not (math.isnan(value) or 0 <= value <= 1):
                return False
    labels = reply.soft_labels
    if labels is None:
        return reply.status.code is not StatusCode.OK
    if reply.dtype is not WireDType.FLOAT32 or labels.shape != (T, C):
        return False
    if not np.all(np.isfinite(labels)) or np.any(labels < 0):
        return False
    return bool(np.max(np.abs(labels.sum(axis=1) - 1)) <= C * 2.0**-24 + 1e-3)


finite_or_not = st.floats(allow_nan=True, allow_infinity=True, width=32)
# About two draws in three are mutations a faithful sender could produce (they must be
# fused), the rest hostile (most must be excluded): mutants that reach fusion exercise it.
plausible = st.one_of(
    st.just(("none",)),
    st.tuples(st.just("scale"), st.floats(0.9999, 1.0001)),
    st.tuples(st.just("count"), st.integers(0, 10**6)),
    st.tuples(st.just("accuracy"), st.floats(0, 1)),
)
hostile = st.one_of(
    st.tuples(st.just("scale"), finite_or_not),
    st.tuples(st.just("entry"), st.integers(0, T - 1), st.integers(0, C - 1), finite_or_not),
    st.tuples(st.just("status"), st.sampled_from(list(StatusCode))),
    st.tuples(st.just("dtype"), st.sampled_from(list(WireDType))),
    st.tuples(st.just("count"), st.integers(0, 2**64 - 1)),
    st.tuples(st.just("accuracy"), finite_or_not),
    st.tuples(st.just("round"), st.integers(0, 3)),
    st.tuples(st.just("drop-labels")),
    st.tuples(st.just("transpose")),
)
mutations = st.integers(0, 2).flatmap(lambda k: plausible if k else hostile)


def mutate(reply: KnowledgeReply, mutation: tuple[Any, ...]) -> KnowledgeReply:
    kind, *args = mutation
    labels = reply.soft_labels
    assert labels is not None and reply.eval is not None
    if kind == "scale":
        return dataclasses.replace(reply, soft_labels=(labels * np.float32(args[0])))
    if kind == "entry":
        changed = labels.copy()
        changed[args[0], args[1]] = args[2]
        return dataclasses.replace(reply, soft_labels=changed)
    if kind == "status":
        return dataclasses.replace(reply, status=Status(args[0], "fuzzed"))
    if kind == "dtype":
        return dataclasses.replace(reply, dtype=args[0])
    if kind == "count":
        return dataclasses.replace(reply, num_examples=args[0])
    if kind == "accuracy":
        return dataclasses.replace(
            reply, eval=dataclasses.replace(reply.eval, local_accuracy=args[0])
        )
    if kind == "round":
        return dataclasses.replace(reply, round=args[0])
    if kind == "drop-labels":
        return dataclasses.replace(reply, soft_labels=None)
    if kind == "transpose":
        return dataclasses.replace(reply, soft_labels=np.ascontiguousarray(labels[:C, :].T))
    return reply


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(mutation=mutations)
def test_mutated_replies_never_raise_and_are_judged_by_the_spec(
    honest: dict[int, bytes], mutation: tuple[Any, ...]
) -> None:
    original = knowledge_reply_from_bytes(honest[2], max_bytes=CAP)
    try:
        payload = knowledge_reply_to_bytes(mutate(original, mutation))
    except (ValueError, OverflowError):
        return  # not encodable: nothing to send
    # What the server will actually see is what survives the wire.
    seen = knowledge_reply_from_bytes(payload, max_bytes=CAP)
    coord = _coordinator()
    outcome = coord.ingest(1, [Delivery(n, honest[n] if n < 2 else payload) for n in range(3)], {})
    accepted = outcome.nodes[2].status == "ok"
    assert accepted == acceptable(seen), (mutation, outcome.nodes[2].reason)
    assert outcome.nodes[0].status == outcome.nodes[1].status == "ok"
    fused = seen.status.code is StatusCode.OK and accepted
    REACHED.append(fused)
    if mutation == ("none",):
        assert fused


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(blob=st.binary(max_size=4096))
def test_arbitrary_bytes_never_raise(honest: dict[int, bytes], blob: bytes) -> None:
    coord = _coordinator()
    outcome = coord.ingest(
        1, [Delivery(0, honest[0]), Delivery(1, honest[1]), Delivery(2, blob)], {}
    )
    assert outcome.nodes[2].status != "ok" and outcome.accepted == [0, 1]


def test_at_least_half_of_the_mutants_reached_fusion() -> None:
    if not REACHED:
        pytest.skip("run with the mutation test")
    share = sum(REACHED) / len(REACHED)
    print(f"\nfuzz: {len(REACHED)} mutants, {share:.0%} reached fusion")
    assert share >= 0.5


# --- signed replies (a deployment) ----------------------------------------------------------

SIGNERS = {f"node-{n}": ed25519.Ed25519PrivateKey.generate() for n in range(3)}
REGISTERED = {name: key.public_key() for name, key in SIGNERS.items()}


def _signed(payload: bytes, node: int) -> bytes:
    return sign_reply(payload, node_name=f"node-{node}", key=SIGNERS[f"node-{node}"])


def _signed_coordinator() -> Coordinator:
    data = federation(CFG)
    coord = Coordinator(
        CFG, run_id="fuzz", transfer=data.transfer, num_classes=C, signing_keys=REGISTERED
    )
    for n in range(3):
        coord.requests(1, [n])[n]
    return coord


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(mutation=mutations, resign=st.booleans())
def test_resigned_mutants_reach_validation_and_are_never_accepted_when_invalid(
    honest: dict[int, bytes], mutation: tuple[Any, ...], resign: bool
) -> None:
    """A valid signature gets a reply read, never accepted: re-signed mutants are judged
    by the same predicate as unsigned ones; mutants under the original signature never
    verify (unless the mutation changed nothing)."""
    original = knowledge_reply_from_bytes(honest[2], max_bytes=CAP)
    try:
        payload = knowledge_reply_to_bytes(mutate(original, mutation))
    except (ValueError, OverflowError):
        return
    seen = knowledge_reply_from_bytes(payload, max_bytes=CAP)
    if resign:
        envelope = _signed(payload, 2)
    else:  # the honest reply's signature, the mutant's bytes
        message = signed_pb2.SignedReply()
        message.ParseFromString(_signed(honest[2], 2))
        message.reply = payload
        envelope = message.SerializeToString()
    deliveries = [Delivery(n, _signed(honest[n], n)) for n in range(2)]
    outcome = _signed_coordinator().ingest(1, [*deliveries, Delivery(2, envelope)], {})
    accepted = outcome.nodes[2].status == "ok"
    unchanged = payload == honest[2]
    expected = acceptable(seen) and seen.node_name == "node-2" and (resign or unchanged)
    assert accepted == expected, (mutation, resign, outcome.nodes[2].reason)
    assert outcome.nodes[0].status == outcome.nodes[1].status == "ok"
    if not resign and not unchanged:
        assert "does not verify" in outcome.nodes[2].reason
