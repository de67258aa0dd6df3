"""What the gateway refuses before the SuperLink sees a byte: replays, stale signatures,
oversize bodies (declared or chunked) and request floods; and what its access log keeps."""

from __future__ import annotations

import asyncio
import base64
import datetime
import logging
import re
import stat
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from flwr.common.constant import SYSTEM_TIME_TOLERANCE, TIMESTAMP_HEADER, TIMESTAMP_TOLERANCE
from flwr.supercore.constant import FLEET_HTTP_PUBLIC_KEY_HEADER, FLEET_HTTP_SIGNATURE_HEADER

from fedkd.deploy import replay_cache
from fedkd.deploy.gateway import fleet_gateway
from fedkd.deploy.gateway_limits import ENVELOPE_BYTES, GatewayLimits, body_limit_for
from fedkd.deploy.rate_limit import RateLimiter
from fedkd.deploy.replay_cache import CacheFull, NotSigned, ReplayCache, replay_key
from tests.deploy.signing import node_key, signed_headers
from tests.deploy.upstream import recording_upstream

LIMIT = 64 * 1024


def _exchange(
    upstream: str, requests: list[tuple[str, dict[str, str], object]], **limits: float
) -> list[httpx.Response]:
    """``requests`` ((path, headers, body)) sent in order through one gateway app."""

    async def go() -> list[httpx.Response]:
        app = fleet_gateway(
            upstream, ca_certificate=None, limits=GatewayLimits(max_body_bytes=LIMIT, **limits)
        )
        transport = httpx.ASGITransport(app=app, client=("127.0.0.9", 4000))
        answers = []
        async with httpx.AsyncClient(transport=transport, base_url="https://gateway") as c:
            for path, headers, body in requests:
                answers.append(await c.post(path, headers=headers, content=body))  # type: ignore[arg-type]
        return answers

    return asyncio.run(go())


def test_the_header_names_and_window_are_flowers() -> None:
    assert replay_cache.PUBLIC_KEY_HEADER == FLEET_HTTP_PUBLIC_KEY_HEADER
    assert replay_cache.SIGNATURE_HEADER == FLEET_HTTP_SIGNATURE_HEADER
    assert replay_cache.TIMESTAMP_HEADER == TIMESTAMP_HEADER
    assert replay_cache.ACCEPTED_PAST_S == TIMESTAMP_TOLERANCE + SYSTEM_TIME_TOLERANCE
    assert replay_cache.ACCEPTED_FUTURE_S == SYSTEM_TIME_TOLERANCE


def test_a_captured_header_set_replayed_on_another_path_and_body_is_refused() -> None:
    captured = signed_headers(node_key())
    with recording_upstream() as (upstream, seen):
        first, replayed, again = _exchange(
            upstream,
            [
                ("/v1/fleet/send-node-heartbeat", captured, b"honest"),
                ("/v1/fleet/push-messages", captured, b"attacker's body"),
                ("/v1/fleet/send-node-heartbeat", captured, b"honest"),
            ],
        )
    assert first.status_code == 200
    assert (replayed.status_code, again.status_code) == (401, 401)
    assert "used already" in replayed.text
    assert seen.requests == [("POST", "/v1/fleet/send-node-heartbeat", 6)]


def test_stale_future_and_missing_signatures_never_reach_the_superlink() -> None:
    key = node_key()
    now = datetime.datetime.now(datetime.UTC)
    stale = signed_headers(key, at=now - datetime.timedelta(seconds=306))
    ahead = signed_headers(key, at=now + datetime.timedelta(seconds=6))
    naive = signed_headers(key, at=now.replace(tzinfo=None))
    garbled = {**signed_headers(key), "flwr-public-key": "bm90IGEga2V5"}
    with recording_upstream() as (upstream, seen):
        answers = _exchange(
            upstream,
            [("/v1/fleet/pull-messages", h, b"{}") for h in (stale, ahead, naive, garbled, {})],
        )
    assert [a.status_code for a in answers] == [401] * 5
    assert seen.requests == []


def test_a_signature_the_superlink_refuses_does_not_use_up_the_timestamp() -> None:
    headers = signed_headers(node_key())
    with recording_upstream() as (upstream, seen):
        seen.status = 401
        answers = _exchange(upstream, [("/v1/fleet/pull-messages", headers, b"{}")] * 2)
    assert [a.status_code for a in answers] == [401, 401]
    assert len(seen.requests) == 2  # both checked by the SuperLink; neither held in the cache


def test_one_key_base64_two_ways_is_one_key() -> None:
    headers = signed_headers(node_key())
    pem = base64.b64decode(headers["flwr-public-key"])
    wrapped = base64.encodebytes(pem).decode().replace("\n", "")  # same bytes
    assert replay_key(wrapped, "t") == replay_key(headers["flwr-public-key"], "t")
    with pytest.raises(NotSigned, match="PEM key"):
        replay_key("!!", "t")


async def _chunks(total: int, size: int = 8192) -> AsyncIterator[bytes]:
    for start in range(0, total, size):
        yield b"\x00" * min(size, total - start)


def test_oversize_bodies_are_413_declared_or_chunked_and_bounded_upstream() -> None:
    key = node_key()
    with recording_upstream() as (upstream, seen):
        declared, chunked, fits = _exchange(
            upstream,
            [
                ("/v1/fleet/push-object", signed_headers(key), b"\x00" * (LIMIT + 1)),
                ("/v1/fleet/push-object", signed_headers(key), _chunks(4 * LIMIT)),
                ("/v1/fleet/push-object", signed_headers(key), _chunks(LIMIT)),
            ],
        )
    assert (declared.status_code, chunked.status_code, fits.status_code) == (413, 413, 200)
    assert declared.headers["connection"] == "close"
    # The declared one never left the gateway; the chunked one was cut off at the limit.
    assert all(received <= LIMIT for _, _, received in seen.requests)
    assert ("POST", "/v1/fleet/push-object", LIMIT) in seen.requests


def test_a_client_past_its_request_rate_gets_503_with_retry_after() -> None:
    key = node_key()
    with recording_upstream() as (upstream, seen):
        answers = _exchange(
            upstream,
            [("/v1/fleet/pull-messages", signed_headers(key), b"{}") for _ in range(5)],
            requests_per_second_per_client=0.5,
            request_burst_per_client=3,
        )
    assert [a.status_code for a in answers] == [200, 200, 200, 503, 503]
    assert answers[3].headers["retry-after"] == "2"
    assert len(seen.requests) == 3


def test_the_access_log_has_the_request_and_never_its_headers(
    caplog: pytest.LogCaptureFixture,
) -> None:
    headers = signed_headers(node_key())
    with recording_upstream() as (upstream, _), caplog.at_level(logging.INFO, "fedkd.gateway"):
        _exchange(upstream, [("/v1/fleet/pull-messages", headers, b"abc")])
    lines = [r.getMessage() for r in caplog.records if r.name == "fedkd.gateway.access"]
    assert lines == [lines[0]] and lines[0].startswith(
        "127.0.0.9 POST /v1/fleet/pull-messages 200 in=3 out=2 ms="
    )
    for secret in headers.values():
        assert secret not in caplog.text


def test_replay_cache_holds_each_key_for_flowers_window_then_forgets() -> None:
    now = [0.0]
    cache = ReplayCache(clock=lambda: now[0], max_entries=2)
    assert cache.claim((b"k", "t1")) and not cache.claim((b"k", "t1"))
    assert cache.claim((b"k", "t2"))
    with pytest.raises(CacheFull):
        cache.claim((b"k", "t3"))
    now[0] = replay_cache.ACCEPTED_PAST_S + replay_cache.ACCEPTED_FUTURE_S + 0.5
    assert not cache.claim((b"k", "t1"))  # still inside the window
    now[0] += 1
    assert cache.claim((b"k", "t1")) and len(cache) == 1  # Flower refuses it by now anyway
    cache.release((b"k", "t1"))
    assert len(cache) == 0


def test_rate_limiter_refills_at_its_rate_and_forgets_idle_clients() -> None:
    now = [0.0]
    limiter = RateLimiter(rate=2.0, burst=2, max_keys=2, clock=lambda: now[0])
    assert [limiter.admit("a") for _ in range(3)] == [0.0, 0.0, 0.5]
    now[0] = 0.5
    assert limiter.admit("a") == 0.0 and limiter.admit("a") == 0.5
    limiter.admit("b")
    now[0] = 10.0
    limiter.admit("c")  # "a" and "b" are full again: forgotten
    assert len(limiter) == 1
    assert limiter.retry_after_s(0.01) == 1 and limiter.retry_after_s(2.2) == 3


def test_limits_are_checked_and_the_body_limit_follows_the_payload_limit() -> None:
    assert body_limit_for(1000) == 1000 + ENVELOPE_BYTES
    with pytest.raises(ValueError, match="positive"):
        body_limit_for(0)
    with pytest.raises(ValueError, match="header_timeout_s"):
        GatewayLimits(header_timeout_s=0)
    with pytest.raises(ValueError, match="cannot exceed"):
        GatewayLimits(max_connections=4, max_connections_per_client=8)


def test_the_access_log_file_is_owner_only_with_utc_times(tmp_path: Path) -> None:
    from fedkd.deploy import gateway

    loggers = [
        logging.getLogger(n) for n in ("fedkd.gateway", "uvicorn.error", gateway.access_log.name)
    ]
    saved = [(lg.handlers[:], lg.level, lg.propagate) for lg in loggers]
    try:
        gateway._log_with_timestamps(tmp_path / "logs" / "access.log")
        gateway.access_log.info("%s %s %s %d", "10.1.2.3", "POST", "/v1/fleet/pull-messages", 200)
    finally:
        for lg, (handlers, level, propagate) in zip(loggers, saved, strict=True):
            for added in set(lg.handlers) - set(handlers):
                added.close()
            lg.handlers[:], lg.level, lg.propagate = handlers, level, propagate
    path = tmp_path / "logs" / "access.log"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    line = path.read_text().strip()
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z INFO fedkd\.gateway\.access "
        r"10\.1\.2\.3 POST /v1/fleet/pull-messages 200",
        line,
    ), line
