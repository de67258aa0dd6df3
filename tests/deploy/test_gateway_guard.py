"""The gateway's connection guard on a real socket: caps in all and per address, and
deadlines for headers and body, each answered with a status the SuperNode retries."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from fedkd.deploy.gateway import fleet_gateway, gateway_server
from fedkd.deploy.gateway_limits import GatewayLimits
from tests.deploy.cluster import free_port
from tests.deploy.signing import node_key, signed_headers
from tests.deploy.upstream import recording_upstream

LIMITS = GatewayLimits(
    max_connections=4, max_connections_per_client=2, header_timeout_s=0.5, body_timeout_s=0.5
)


@pytest.fixture
def gateway() -> Iterator[tuple[str, int]]:
    with recording_upstream() as (upstream, _):
        port = free_port()
        server = gateway_server(
            fleet_gateway(upstream, ca_certificate=None, limits=LIMITS),
            LIMITS, host="127.0.0.2", port=port, tls=None,
        )  # fmt: skip
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 10
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        yield "127.0.0.2", port
        server.should_exit = True
        thread.join(timeout=10)


def _connect(gateway: tuple[str, int], source: str) -> socket.socket:
    sock = socket.socket()
    sock.settimeout(5)
    sock.bind((source, 0))
    sock.connect(gateway)
    return sock


def _answer(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(4096):
        data += chunk
    return data


def test_past_the_per_address_cap_a_connection_gets_503_and_others_still_get_in(
    gateway: tuple[str, int],
) -> None:
    held = [_connect(gateway, "127.0.0.3") for _ in range(2)]
    time.sleep(0.1)
    third = _connect(gateway, "127.0.0.3")
    refused = _answer(third)
    assert refused.startswith(b"HTTP/1.1 503 ") and b"Retry-After: 5" in refused
    other = _connect(gateway, "127.0.0.4")  # another address still has room
    other.sendall(b"GET /v1/control/x HTTP/1.1\r\nHost: g\r\n\r\n")
    assert _answer(other).startswith(b"HTTP/1.1 404 ")
    for sock in (*held, third, other):
        sock.close()


def test_past_the_total_cap_every_address_gets_503(gateway: tuple[str, int]) -> None:
    held = [_connect(gateway, f"127.0.0.{3 + i // 2}") for i in range(4)]
    time.sleep(0.1)
    late = _connect(gateway, "127.0.0.9")
    assert _answer(late).startswith(b"HTTP/1.1 503 ")
    for sock in (*held, late):
        sock.close()


def test_slow_headers_and_slow_bodies_are_cut_off_and_free_their_slot(
    gateway: tuple[str, int],
) -> None:
    slow_headers = _connect(gateway, "127.0.0.5")
    slow_headers.sendall(b"POST /v1/fleet/pull-messages HTTP/1.1\r\nHost: g\r\n")
    slow_body = _connect(gateway, "127.0.0.5")
    signed = "".join(f"{k}: {v}\r\n" for k, v in signed_headers(node_key()).items())
    slow_body.sendall(
        b"POST /v1/fleet/push-object HTTP/1.1\r\nHost: g\r\nContent-Length: 100\r\n"
        + signed.encode() + b"\r\n" + b"x" * 10
    )  # fmt: skip
    started = time.monotonic()
    assert _answer(slow_headers).startswith(b"HTTP/1.1 408 ")
    assert _answer(slow_body) == b""  # cut off mid-body: nothing to answer
    assert time.monotonic() - started < 3
    time.sleep(0.1)
    fresh = _connect(gateway, "127.0.0.5")  # both slots are free again
    fresh.sendall(b"GET /v1/control/x HTTP/1.1\r\nHost: g\r\n\r\n")
    assert _answer(fresh).startswith(b"HTTP/1.1 404 ")
    for sock in (slow_headers, slow_body, fresh):
        sock.close()
