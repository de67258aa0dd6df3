"""A stand-in SuperLink for the gateway's unit tests: it records what reaches it."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Recorded:
    requests: list[tuple[str, str, int]] = field(default_factory=list)
    """(method, path, body bytes received)."""
    status: int = 200


@contextmanager
def recording_upstream() -> Iterator[tuple[str, Recorded]]:
    """``http://127.0.0.1:port`` answering ``recorded.status`` to everything, chunked or not."""
    recorded = Recorded()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            received = 0
            if self.headers.get("transfer-encoding", "").lower() == "chunked":
                while True:
                    size = int(self.rfile.readline().split(b";")[0], 16)
                    if size == 0:
                        self.rfile.readline()
                        break
                    received += len(self.rfile.read(size + 2)) - 2
            else:
                received = len(self.rfile.read(int(self.headers.get("content-length", 0))))
            recorded.requests.append((self.command, self.path, received))
            body = b"ok"
            self.send_response(recorded.status)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", recorded
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
