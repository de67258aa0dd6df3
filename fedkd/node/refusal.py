"""A node's refusal of a request: the status it answers with and the reason it gives."""

from __future__ import annotations

from fedkd.wire.types import StatusCode


class Refused(Exception):
    """The node will not serve this request; ``reason`` is what the server may read."""

    def __init__(self, code: StatusCode, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason
