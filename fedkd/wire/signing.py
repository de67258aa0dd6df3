"""Signed replies: a node signs each serialised KnowledgeReply whole with its Ed25519 key;
the server verifies it against the key registered for the claimed node name before it
decodes or uses anything else.

The signature covers every byte of the reply — run, round, node name, payload, privacy
claim, status — behind a domain tag, so a signature made for anything else never
verifies here.  Replays of an earlier round or run carry a valid signature over the old
run id and round, and are refused by the reply's validation against this round.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ed25519
from google.protobuf.message import DecodeError

from fedkd.wire import SCHEMA_VERSION
from fedkd.wire.errors import PayloadError
from fedkd.wire.v1 import signed_pb2

DOMAIN = b"fedkd/v1/SignedReply\x00"
_RULE = "payload.signature"


def sign_reply(reply: bytes, *, node_name: str, key: ed25519.Ed25519PrivateKey) -> bytes:
    """The envelope a node sends instead of the bare reply."""
    message = signed_pb2.SignedReply(
        schema_version=SCHEMA_VERSION,
        reply=reply,
        signature=key.sign(DOMAIN + reply),
        node_name=node_name,
    )
    return bytes(message.SerializeToString())


@dataclass(frozen=True)
class Verified:
    reply: bytes
    node_name: str


def verify_reply(
    envelope: bytes, keys: Mapping[str, ed25519.Ed25519PublicKey], *, max_bytes: int
) -> Verified:
    """The reply bytes, if ``envelope`` is signed by the key registered for its name.

    Raises
    ------
    PayloadError
        Not a signed reply, unsigned, a name with no registered key, or a signature that
        does not verify — each with its own reason.
    """
    if len(envelope) > max_bytes:
        raise PayloadError(
            f"signed reply of {len(envelope)} bytes exceeds {max_bytes}", rule="payload.size"
        )
    message = signed_pb2.SignedReply()
    try:
        message.ParseFromString(envelope)
    except DecodeError as exc:
        raise PayloadError(f"not a signed reply: {exc}", rule=_RULE) from None
    if message.schema_version != SCHEMA_VERSION:
        raise PayloadError(
            f"signed reply schema version {message.schema_version}, expected {SCHEMA_VERSION}",
            rule=_RULE,
        )
    if not message.signature or not message.reply:
        raise PayloadError(
            "unsigned reply: this deployment accepts signed replies only", rule=_RULE
        )
    name = message.node_name
    key = keys.get(name)
    if key is None:
        raise PayloadError(f"no key is registered for {name[:80]!r}", rule=_RULE)
    try:
        key.verify(message.signature, DOMAIN + message.reply)
    except InvalidSignature:
        raise PayloadError(
            f"signature does not verify with the key registered for {name[:80]!r}", rule=_RULE
        ) from None
    return Verified(reply=bytes(message.reply), node_name=name)
