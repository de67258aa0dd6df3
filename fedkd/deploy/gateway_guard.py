"""The gateway's connections, bounded before a request reaches the application.

uvicorn's HTTP/1.1 protocol, with what an internet-facing port needs and uvicorn does not
do by itself: a cap on connections in all and per client address (beyond it the client
is answered 503 with ``Retry-After`` and the connection closed, never 429: Flower 1.41's
SuperNode retries only 502, 503 and 504), a deadline for the request headers and one for
the body (a client that trickles bytes is cut off, so slow connections do not hold the
cap).  TLS handshakes are bounded by asyncio's own 60 s timeout.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from fedkd.deploy.gateway_limits import GatewayLimits

log = logging.getLogger("fedkd.gateway")


@dataclass
class ConnectionCount:
    """Open connections, in all and per client address (shared by every connection)."""

    limits: GatewayLimits
    per_client: Counter[str] = field(default_factory=Counter)
    total: int = 0
    refused: int = 0

    def admit(self, client: str) -> bool:
        if (
            self.total >= self.limits.max_connections
            or self.per_client[client] >= self.limits.max_connections_per_client
        ):
            self.refused += 1
            return False
        self.total += 1
        self.per_client[client] += 1
        return True

    def leave(self, client: str) -> None:
        self.total -= 1
        self.per_client[client] -= 1
        if self.per_client[client] <= 0:
            del self.per_client[client]


def refusal(status: int, reason: str, *, retry_after_s: int) -> bytes:
    """A whole HTTP/1.1 response that closes the connection."""
    body = f"{reason}; retry\n".encode()
    return (
        f"HTTP/1.1 {status} {reason}\r\nRetry-After: {retry_after_s}\r\n"
        f"Content-Type: text/plain; charset=utf-8\r\nContent-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    ).encode() + body


def guarded_protocol(count: ConnectionCount, *, retry_after_s: int) -> type[H11Protocol]:
    """An :class:`H11Protocol` class that keeps ``count``'s limits (uvicorn's ``http=``)."""
    limits = count.limits

    class GuardedH11Protocol(H11Protocol):
        _admitted_as: str | None = None
        _deadline: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            client = self.client[0] if self.client else "?"
            if not count.admit(client):
                log.warning("connection from %s refused: connection limit", client)
                transport.write(refusal(503, "Service Unavailable", retry_after_s=retry_after_s))
                transport.close()
                return
            self._admitted_as = client
            self._arm(limits.header_timeout_s, "headers")

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            if self._admitted_as is not None:
                count.leave(self._admitted_as)
                self._admitted_as = None
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            if self._admitted_as is None:
                return  # refused: its bytes are not read
            before = self.conn.their_state
            if before is h11.IDLE and self._deadline is None:
                self._arm(limits.header_timeout_s, "headers")
            super().data_received(data)
            self._follow(before)

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if self.conn.their_state is h11.IDLE:
                self._disarm()  # idle between requests: uvicorn's keep-alive timeout

        def _follow(self, before: Any) -> None:
            now = self.conn.their_state
            if now is before:
                return
            if now is h11.SEND_BODY:
                self._arm(limits.body_timeout_s, "body")
            elif now is not h11.IDLE:
                self._disarm()

        def _arm(self, seconds: float, what: str) -> None:
            self._disarm()
            self._deadline = self.loop.call_later(seconds, self._too_slow, what)

        def _disarm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def _too_slow(self, what: str) -> None:
            self._deadline = None
            client = self._admitted_as or "?"
            log.warning("connection from %s closed: its request %s came too slowly", client, what)
            if not self.transport.is_closing():
                if self.cycle is None or self.cycle.response_complete:
                    self.transport.write(
                        refusal(408, "Request Timeout", retry_after_s=retry_after_s)
                    )
                self.transport.close()

    return GuardedH11Protocol
