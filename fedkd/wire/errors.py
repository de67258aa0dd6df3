"""The one error type for anything wrong with a payload."""


class PayloadError(ValueError):
    """A payload could not be decoded or failed validation; ``reason`` says exactly why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
