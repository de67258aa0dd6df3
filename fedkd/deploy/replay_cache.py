"""Each signed Fleet request is accepted once: a cache of (node key, signed timestamp).

Flower 1.41's SuperNode signs only the ``flwr-timestamp`` header (its ISO time, to the
microsecond) with the node's key; the SuperLink accepts the signature while the
timestamp is between 5 s in the future and 305 s in the past, whatever the path and the
body.  A captured set of headers can therefore be replayed on another call for about five
minutes.  The gateway closes that window: a (public key, timestamp) pair is admitted
once while Flower would still accept it.

The key is the node's public key in canonical form and the exact signed timestamp, never
the signature: ECDSA signatures are malleable (``(r, s)`` and ``(r, n - s)`` both verify),
so keying on them would let an attacker replay with the other form.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import time
from collections import OrderedDict
from collections.abc import Callable

from cryptography.hazmat.primitives import serialization

PUBLIC_KEY_HEADER = "flwr-public-key"
SIGNATURE_HEADER = "flwr-signature"
TIMESTAMP_HEADER = "flwr-timestamp"
"""Flower 1.41's node-authentication headers over HTTP (checked against Flower's own)."""
ACCEPTED_PAST_S = 300 + 5
ACCEPTED_FUTURE_S = 5
"""Flower's ``TIMESTAMP_TOLERANCE`` plus its ``SYSTEM_TIME_TOLERANCE``, and the drift."""


class NotSigned(ValueError):
    """The request carries no usable node-authentication headers."""


def replay_key(public_key_b64: str, timestamp: str) -> tuple[bytes, str]:
    """(canonical DER of the node's public key, the signed timestamp as sent)."""
    try:
        pem = base64.b64decode(public_key_b64, validate=True)
        key = serialization.load_pem_public_key(pem)
    except (binascii.Error, ValueError, TypeError) as exc:
        raise NotSigned("the node's public key header is not a PEM key in base64") from exc
    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return der, timestamp


def timestamp_age_s(timestamp: str, *, now: datetime.datetime | None = None) -> float:
    """Seconds since the signed timestamp (negative: in the future)."""
    try:
        signed_at = datetime.datetime.fromisoformat(timestamp)
    except ValueError as exc:
        raise NotSigned(f"the signed timestamp is not an ISO time: {timestamp[:40]!r}") from exc
    if signed_at.tzinfo is None:
        raise NotSigned("the signed timestamp has no time zone")
    now = now or datetime.datetime.now(datetime.UTC)
    return (now - signed_at).total_seconds()


def within_flower_window(age_s: float) -> bool:
    return -ACCEPTED_FUTURE_S < age_s < ACCEPTED_PAST_S


class ReplayCache:
    """Remembers each admitted key until Flower would refuse its timestamp anyway.

    :meth:`claim` admits a key once; :meth:`release` forgets a claim the SuperLink refused
    (a forged signature is no use of the key, and must not fill the cache).  Holding more
    than ``max_entries`` live keys fails closed: :meth:`claim` raises :class:`CacheFull`.
    """

    def __init__(
        self,
        *,
        hold_s: float = ACCEPTED_PAST_S + ACCEPTED_FUTURE_S + 1,
        max_entries: int = 1_000_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._hold_s, self._max_entries, self._clock = hold_s, max_entries, clock
        self._seen: OrderedDict[tuple[bytes, str], float] = OrderedDict()

    def claim(self, key: tuple[bytes, str]) -> bool:
        """True the first time ``key`` is seen within the hold; False for a replay."""
        now = self._clock()
        while self._seen:
            oldest, at = next(iter(self._seen.items()))
            if now - at < self._hold_s:
                break
            del self._seen[oldest]
        if key in self._seen:
            return False
        if len(self._seen) >= self._max_entries:
            raise CacheFull(f"{len(self._seen)} signed requests held; refusing more")
        self._seen[key] = now
        return True

    def release(self, key: tuple[bytes, str]) -> None:
        self._seen.pop(key, None)

    def __len__(self) -> int:
        return len(self._seen)


class CacheFull(RuntimeError):
    """More live signed requests than the cache holds: refuse (retryably) rather than forget."""
