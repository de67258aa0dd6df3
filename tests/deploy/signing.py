"""Flower 1.41's SuperNode authentication headers, made as its SuperNode makes them."""

from __future__ import annotations

import base64
import datetime

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec


def node_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP384R1())


def signed_headers(
    key: ec.EllipticCurvePrivateKey, *, at: datetime.datetime | None = None
) -> dict[str, str]:
    """The three headers Flower's ``NodeAuthHttpInterceptor`` adds to a Fleet request."""
    timestamp = (at or datetime.datetime.now(datetime.UTC)).isoformat()
    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    signature = key.sign(timestamp.encode("ascii"), ec.ECDSA(hashes.SHA256()))
    return {
        "flwr-public-key": base64.b64encode(pem).decode("ascii"),
        "flwr-timestamp": timestamp,
        "flwr-signature": base64.b64encode(signature).decode("ascii"),
    }
