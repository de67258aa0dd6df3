"""The hospitals' door to the SuperLink: the Fleet API and nothing else.

Flower 1.41 serves its Fleet API (SuperNodes), Control API (registering nodes,
submitting and stopping runs) and Runtime API on one HTTP(S) port, and without an
account-auth plugin the Control API accepts anyone who reaches it.  So the SuperLink
listens only on the coordinating site's own interface, and this gateway listens on the
hospital-facing one: it terminates TLS with the SuperLink's certificate and forwards
requests under ``/v1/fleet/`` to the SuperLink (over TLS, checked against the site's
CA), headers and body untouched (the SuperNode's authentication headers travel as sent;
Flower 1.41 signs only their timestamp, not the path or the body).  Every other path is
answered 404 without reaching the SuperLink; while the SuperLink is down or restarting,
503 with ``Retry-After`` (502 when it breaks off an exchange), which SuperNodes retry.

Built on uvicorn, Starlette and httpx (all already Flower's dependencies); a site that
runs its own reverse proxy applies the same rule there: forward ``/v1/fleet/`` only.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

FLEET_PREFIX = "/v1/fleet/"
_HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
     "trailers", "transfer-encoding", "upgrade", "host", "content-length"}
)  # fmt: skip
METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]


def fleet_gateway(upstream: str, *, ca_certificate: Path | None) -> Starlette:
    """An ASGI app forwarding ``/v1/fleet/…`` to ``upstream`` (``https://host:port``)."""
    verify: str | bool = str(ca_certificate) if ca_certificate else True
    client = httpx.AsyncClient(base_url=upstream, verify=verify, timeout=None)

    async def forward(request: Request) -> Response:
        path = request.url.path
        if not path.startswith(FLEET_PREFIX) or ".." in path:
            return PlainTextResponse("not found", status_code=404)
        headers = [(k, v) for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP]
        try:
            answer = await client.request(
                request.method,
                path,
                params=request.query_params,
                headers=headers,
                content=await request.body(),
            )
        except httpx.TransportError as exc:
            return _upstream_failed(exc)
        kept = {k: v for k, v in answer.headers.items() if k.lower() not in _HOP_BY_HOP}
        kept.pop("content-encoding", None)  # httpx has already decoded the body
        return Response(answer.content, status_code=answer.status_code, headers=kept)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await client.aclose()

    return Starlette(routes=[Route("/{path:path}", forward, methods=METHODS)], lifespan=lifespan)


RETRY_AFTER_S = 5
"""What a refused request is told to wait: a SuperLink restarts in seconds."""
log = logging.getLogger("fedkd.gateway")


def _upstream_failed(exc: httpx.TransportError) -> Response:
    """503 when the SuperLink cannot be reached (down, restarting), 502 when it broke off
    an exchange; both with ``Retry-After``.  Never 500: Flower 1.41's SuperNode retries
    only 502, 503 and 504, and gives up its connection (or its heartbeat) on any other."""
    unreachable = isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)
    status = 503 if unreachable else 502
    log.warning("the SuperLink %s: %s", "is unreachable" if unreachable else "failed", exc)
    return PlainTextResponse(
        "the SuperLink is unreachable; retry" if unreachable else "the SuperLink failed; retry",
        status_code=status,
        headers={"Retry-After": str(RETRY_AFTER_S)},
    )


def serve_gateway(
    *,
    listen_host: str,
    listen_port: int,
    upstream: str,
    certfile: Path,
    keyfile: Path,
    ca_certificate: Path | None,
) -> None:
    """Serve :func:`fleet_gateway` with TLS until stopped (SIGTERM or Ctrl-C)."""
    import uvicorn

    app = fleet_gateway(upstream, ca_certificate=ca_certificate)
    uvicorn.run(
        app,
        host=listen_host,
        port=listen_port,
        ssl_certfile=str(certfile),
        ssl_keyfile=str(keyfile),
        log_level="warning",
        server_header=False,
    )
