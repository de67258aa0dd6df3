"""Signed replies: only the registered key of the claimed name verifies, over every byte."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from fedkd.wire.errors import PayloadError
from fedkd.wire.signing import DOMAIN, sign_reply, verify_reply
from fedkd.wire.v1 import signed_pb2

CAP = 1 << 20
ALICE, BOB = ed25519.Ed25519PrivateKey.generate(), ed25519.Ed25519PrivateKey.generate()
KEYS = {"alice": ALICE.public_key(), "bob": BOB.public_key()}


def test_a_signed_reply_verifies_and_gives_back_the_reply() -> None:
    envelope = sign_reply(b"reply bytes", node_name="alice", key=ALICE)
    verified = verify_reply(envelope, KEYS, max_bytes=CAP)
    assert verified.reply == b"reply bytes" and verified.node_name == "alice"


UNSIGNED = signed_pb2.SignedReply(schema_version=1, reply=b"x", node_name="alice")


@pytest.mark.parametrize(
    ("envelope", "reason"),
    [
        (b"\xff\xff not protobuf", "not a signed reply"),
        (UNSIGNED.SerializeToString(), "unsigned reply"),
        (sign_reply(b"x", node_name="mallory", key=ALICE), "no key is registered for 'mallory'"),
        # Bob's key, Alice's name: another node claiming to be Alice.
        (sign_reply(b"x", node_name="alice", key=BOB), "does not verify with the key .* 'alice'"),
    ],
    # Fixed ids: the signed envelopes hold fresh keys' signatures, so ids made of their
    # bytes would differ between the processes that collect the tests.
    ids=["garbage", "unsigned", "unregistered-name", "another-nodes-key"],
)
def test_bad_envelopes_are_refused_with_their_reason(envelope: bytes, reason: str) -> None:
    with pytest.raises(PayloadError, match=reason):
        verify_reply(envelope, KEYS, max_bytes=CAP)


def test_any_flipped_byte_of_the_reply_breaks_the_signature() -> None:
    envelope = signed_pb2.SignedReply()
    envelope.ParseFromString(sign_reply(b"run r1 round 2 payload", node_name="alice", key=ALICE))
    for i in range(len(envelope.reply)):
        tampered = bytearray(envelope.reply)
        tampered[i] ^= 0x01
        forged = signed_pb2.SignedReply()
        forged.CopyFrom(envelope)
        forged.reply = bytes(tampered)
        with pytest.raises(PayloadError, match="does not verify"):
            verify_reply(forged.SerializeToString(), KEYS, max_bytes=CAP)


def test_a_signature_made_for_something_else_never_verifies() -> None:
    raw = ALICE.sign(b"x")  # no domain tag
    message = signed_pb2.SignedReply(schema_version=1, reply=b"x", signature=raw, node_name="alice")
    with pytest.raises(PayloadError, match="does not verify"):
        verify_reply(message.SerializeToString(), KEYS, max_bytes=CAP)
    assert DOMAIN.endswith(b"\x00")


def test_oversize_envelopes_are_refused_before_parsing() -> None:
    with pytest.raises(PayloadError, match="exceeds"):
        verify_reply(b"\x00" * 100, KEYS, max_bytes=99)
