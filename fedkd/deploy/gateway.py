"""The hospitals' door to the SuperLink: the Fleet API and nothing else, within bounds.

Flower 1.41 serves its Fleet API (SuperNodes), Control API (registering nodes,
submitting and stopping runs) and Runtime API on one HTTP(S) port, and without an
account-auth plugin the Control API accepts anyone who reaches it.  So the SuperLink
listens only on the coordinating site's own interface, and this gateway listens on the
hospital-facing one with its own certificate: it forwards requests under ``/v1/fleet/``
to the SuperLink (over TLS, checked against the site's CA), headers and body untouched,
and answers every other path 404 without reaching the SuperLink.

Anyone who reaches the port gets no further than these bounds, all checked before the
SuperLink sees a byte (see :mod:`fedkd.deploy.gateway_limits`):

- connections in all and per address, and header and body deadlines
  (:mod:`fedkd.deploy.gateway_guard`);
- requests per second per address (503 with ``Retry-After`` beyond it);
- a signed timestamp inside Flower's acceptance window, used once
  (:mod:`fedkd.deploy.replay_cache`; 401 otherwise): Flower signs only the timestamp,
  not the path or the body, so without this a captured request's headers could be
  replayed on another call for five minutes;
- the body, streamed through and cut off at the limit (413; never buffered whole);
- at most ``max_upstream_in_flight`` requests forwarded at once.

While the SuperLink is down or restarting the answer is 503 with ``Retry-After`` (502
when it breaks off an exchange, 504 when it does not answer in time), which SuperNodes
retry; never 500 or 429, which Flower 1.41's SuperNode does not retry.

Each request is written to the access log (time, client address, method, path, status,
bytes in and out, milliseconds), never its headers.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from fedkd.deploy.gateway_limits import GatewayLimits
from fedkd.deploy.rate_limit import RateLimiter
from fedkd.deploy.replay_cache import (
    PUBLIC_KEY_HEADER,
    TIMESTAMP_HEADER,
    CacheFull,
    NotSigned,
    ReplayCache,
    replay_key,
    timestamp_age_s,
    within_flower_window,
)

FLEET_PREFIX = "/v1/fleet/"
_HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
     "trailers", "transfer-encoding", "upgrade", "host", "content-length"}
)  # fmt: skip
METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]
RETRY_AFTER_S = 5
"""What a refused request is told to wait: a SuperLink restarts in seconds."""
log = logging.getLogger("fedkd.gateway")
access_log = logging.getLogger("fedkd.gateway.access")


class BodyTooLarge(Exception):
    """The body went past the gateway's limit while streaming through."""


def fleet_gateway(
    upstream: str, *, ca_certificate: Path | None, limits: GatewayLimits | None = None
) -> Starlette:
    """An ASGI app forwarding ``/v1/fleet/…`` to ``upstream`` (``https://host:port``)."""
    limits = limits or GatewayLimits()
    verify: str | bool = str(ca_certificate) if ca_certificate else True
    client = httpx.AsyncClient(
        base_url=upstream,
        verify=verify,
        timeout=httpx.Timeout(limits.upstream_timeout_s, pool=limits.upstream_timeout_s / 2),
        limits=httpx.Limits(max_connections=limits.max_upstream_in_flight),
    )
    rate = RateLimiter(
        rate=limits.requests_per_second_per_client, burst=limits.request_burst_per_client
    )
    replays = ReplayCache()

    async def forward(request: Request) -> Response:
        started = time.monotonic()
        counted = _Counted()
        answer = await _answer(request, counted)
        access_log.info(
            "%s %s %s %d in=%d out=%d ms=%d",
            request.client.host if request.client else "?", request.method,
            request.url.path[:200], answer.status_code, counted.bytes_in,
            len(answer.body), (time.monotonic() - started) * 1000,
        )  # fmt: skip
        return answer

    async def _answer(request: Request, counted: _Counted) -> Response:
        path = request.url.path
        if not path.startswith(FLEET_PREFIX) or ".." in path:
            return _plain(404, "not found")
        who = request.client.host if request.client else "?"
        wait = rate.admit(who)
        if wait:
            return _plain(503, "too many requests; retry", retry_after=rate.retry_after_s(wait))
        declared = request.headers.get("content-length")
        if declared is not None and (
            not declared.isdigit() or int(declared) > limits.max_body_bytes
        ):
            return _plain(413, f"the body is over {limits.max_body_bytes} bytes")
        try:
            key = _signed_once(request, replays)
        except NotSigned as exc:
            return _plain(401, str(exc))
        except CacheFull:
            return _plain(503, "too many signed requests held; retry", retry_after=RETRY_AFTER_S)
        headers = [(k, v) for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP]
        if declared is not None:
            headers.append(("content-length", declared))
        try:
            answer = await client.request(
                request.method,
                path,
                params=request.query_params,
                headers=headers,
                content=_within(request, limits.max_body_bytes, counted),
            )
        except BodyTooLarge:
            replays.release(key)
            return _plain(413, f"the body is over {limits.max_body_bytes} bytes")
        except ClientDisconnect:
            replays.release(key)
            return _plain(400, "the client went away")
        except httpx.TransportError as exc:
            replays.release(key)  # it never reached the SuperLink's check: the node may retry
            return _upstream_failed(exc)
        if answer.status_code == 401:
            replays.release(key)  # a refused signature is no use of the key
        kept = {k: v for k, v in answer.headers.items() if k.lower() not in _HOP_BY_HOP}
        kept.pop("content-encoding", None)  # httpx has already decoded the body
        return Response(answer.content, status_code=answer.status_code, headers=kept)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await client.aclose()

    return Starlette(routes=[Route("/{path:path}", forward, methods=METHODS)], lifespan=lifespan)


class _Counted:
    bytes_in = 0


async def _within(request: Request, limit: int, counted: _Counted) -> AsyncIterator[bytes]:
    """The body as it arrives, raising :class:`BodyTooLarge` at the first byte past ``limit``."""
    async for chunk in request.stream():
        counted.bytes_in += len(chunk)
        if counted.bytes_in > limit:
            raise BodyTooLarge
        yield chunk


def _signed_once(request: Request, replays: ReplayCache) -> tuple[bytes, str]:
    """The request's (node key, timestamp), claimed in ``replays``; raises :class:`NotSigned`
    when the headers are missing, out of Flower's window, or used before."""
    public_key = request.headers.get(PUBLIC_KEY_HEADER)
    timestamp = request.headers.get(TIMESTAMP_HEADER)
    if not public_key or not timestamp:
        raise NotSigned("no SuperNode authentication headers")
    if not within_flower_window(timestamp_age_s(timestamp)):
        raise NotSigned("the signed timestamp is outside the accepted window")
    key = replay_key(public_key, timestamp)
    if not replays.claim(key):
        log.warning("a replayed signed timestamp from %s refused", request.client)
        raise NotSigned("this signed timestamp has been used already")
    return key


def _plain(status: int, text: str, *, retry_after: int | None = None) -> Response:
    """The gateway's own answer; it closes the connection, as the rest of an unread body is
    not worth reading."""
    headers = {"Connection": "close"}
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    return PlainTextResponse(text, status_code=status, headers=headers)


def _upstream_failed(exc: httpx.TransportError) -> Response:
    """503 when the SuperLink cannot be reached (down, restarting, all forwarding slots
    busy), 504 when it does not answer in time, 502 when it broke off an exchange; all
    with ``Retry-After``.  Never 500: Flower 1.41's SuperNode retries only 502, 503 and
    504, and gives up its connection (or its heartbeat) on any other."""
    unreachable = isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)
    status = 503 if unreachable else 504 if isinstance(exc, httpx.TimeoutException) else 502
    log.warning("the SuperLink %s: %s", "is unreachable" if unreachable else "failed", exc)
    return _plain(
        status,
        "the SuperLink is unreachable; retry" if unreachable else "the SuperLink failed; retry",
        retry_after=RETRY_AFTER_S,
    )


def serve_gateway(
    *,
    listen_host: str,
    listen_port: int,
    upstream: str,
    certfile: Path,
    keyfile: Path,
    ca_certificate: Path | None,
    limits: GatewayLimits | None = None,
    access_log_file: Path | None = None,
) -> None:
    """Serve :func:`fleet_gateway` with TLS until stopped (SIGTERM or Ctrl-C)."""
    limits = limits or GatewayLimits()
    _log_with_timestamps(access_log_file)
    app = fleet_gateway(upstream, ca_certificate=ca_certificate, limits=limits)
    gateway_server(app, limits, host=listen_host, port=listen_port, tls=(certfile, keyfile)).run()


def gateway_server(
    app: Starlette, limits: GatewayLimits, *, host: str, port: int, tls: tuple[Path, Path] | None
) -> uvicorn.Server:
    """uvicorn serving ``app`` on ``host:port`` with the connection guard's limits."""
    from fedkd.deploy.gateway_guard import ConnectionCount, guarded_protocol

    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        ssl_certfile=str(tls[0]) if tls else None,
        ssl_keyfile=str(tls[1]) if tls else None,
        http=guarded_protocol(ConnectionCount(limits), retry_after_s=RETRY_AFTER_S),
        log_config=None,
        access_log=False,
        server_header=False,
        timeout_keep_alive=max(5, int(limits.header_timeout_s)),
    )
    return uvicorn.Server(config)


def _log_with_timestamps(access_log_file: Path | None) -> None:
    """The gateway's log on stderr and its access log (to ``access_log_file`` too), each
    line with its UTC time: both are read when something went wrong."""
    formatter = logging.Formatter(
        "%(asctime)s.%(msecs)03dZ %(levelname)s %(name)s %(message)s", datefmt="%Y-%m-%dT%H:%M:%S"
    )
    formatter.converter = time.gmtime
    stderr = logging.StreamHandler()
    stderr.setFormatter(formatter)
    for name in ("fedkd.gateway", "uvicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [stderr]
        logger.setLevel(logging.INFO)
        logger.propagate = False
    if access_log_file is not None:
        from fedkd.privacy.private_files import owner_only

        access_log_file.parent.mkdir(parents=True, exist_ok=True)
        to_file = logging.FileHandler(owner_only(access_log_file))
        to_file.setFormatter(formatter)
        access_log.addHandler(to_file)
