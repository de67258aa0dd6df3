"""What the Fleet gateway allows one client, and all of them, before anyone is authenticated.

Flower's SuperLink reads a whole request body before it checks the SuperNode's signature,
so whatever reaches the gateway's port costs memory unless the gateway bounds it first:
the body (from the run's ``max-payload-bytes``), the connections (all and per address),
the request rate per address, the time to send headers and body, and how many requests
are in flight to the SuperLink at once.
"""

from __future__ import annotations

from dataclasses import dataclass

ENVELOPE_BYTES = 256 * 1024
"""Room for Flower's protobuf envelope around a payload (ids, metadata, object tree)."""


def body_limit_for(max_payload_bytes: int) -> int:
    """The largest Fleet request body a run with ``max-payload-bytes`` needs."""
    if max_payload_bytes <= 0:
        raise ValueError(f"max-payload-bytes must be positive, got {max_payload_bytes}")
    return max_payload_bytes + ENVELOPE_BYTES


@dataclass(frozen=True)
class GatewayLimits:
    """The gateway's bounds; the defaults suit a consortium of tens of hospitals."""

    max_body_bytes: int = body_limit_for(64 * 1024 * 1024)
    max_connections: int = 256
    max_connections_per_client: int = 16
    requests_per_second_per_client: float = 20.0
    request_burst_per_client: int = 60
    header_timeout_s: float = 10.0
    """From the connection (or the end of the last request) to the last header line."""
    body_timeout_s: float = 120.0
    """From the last header line to the last body byte."""
    max_upstream_in_flight: int = 32
    """Requests forwarded at once: the SuperLink buffers at most this many bodies."""
    upstream_timeout_s: float = 60.0

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if value <= 0:
                raise ValueError(f"gateway limit {name} must be positive, got {value}")
        if self.max_connections_per_client > self.max_connections:
            raise ValueError("max_connections_per_client cannot exceed max_connections")
