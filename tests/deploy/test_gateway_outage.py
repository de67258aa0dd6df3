"""The gateway while the SuperLink is down or breaks off: a status the SuperNode retries.

Flower 1.41's SuperNode retries only 502, 503 and 504; a 500 has left nodes offline for
good after a SuperLink restart.  So an unreachable SuperLink is a 503 and a broken
exchange a 502, both with ``Retry-After``, and nothing else is ever forwarded.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator

import httpx
import pytest

from fedkd.deploy.gateway import RETRY_AFTER_S, fleet_gateway
from tests.deploy.signing import node_key, signed_headers


def _ask(upstream: str, method: str, path: str, body: bytes = b"") -> httpx.Response:
    """One signed request to the gateway app in process (its upstream reached for real)."""

    async def go() -> httpx.Response:
        app = fleet_gateway(upstream, ca_certificate=None)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="https://gateway") as c:
            return await c.request(method, path, content=body, headers=signed_headers(node_key()))

    return asyncio.run(go())


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])  # nothing listens once it is closed


@pytest.fixture
def hangs_up() -> Iterator[int]:
    """A port whose listener accepts each connection and closes it without answering."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            conn.recv(65536)
            conn.close()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield int(server.getsockname()[1])
    stop.set()
    thread.join(timeout=5)
    server.close()


def test_an_unreachable_superlink_is_a_503_with_retry_after() -> None:
    upstream = f"http://127.0.0.1:{_closed_port()}"
    answer = _ask(upstream, "POST", "/v1/fleet/send-node-heartbeat", b"\x00" * 64)
    assert answer.status_code == 503
    assert answer.headers["retry-after"] == str(RETRY_AFTER_S)
    assert _ask(upstream, "GET", "/v1/control/list-runs").status_code == 404  # never forwarded


def test_a_superlink_that_hangs_up_is_a_502_with_retry_after(hangs_up: int) -> None:
    answer = _ask(f"http://127.0.0.1:{hangs_up}", "POST", "/v1/fleet/pull-messages", b"{}")
    assert answer.status_code == 502
    assert answer.headers["retry-after"] == str(RETRY_AFTER_S)
