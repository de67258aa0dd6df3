"""The one error type for anything wrong with a payload."""


class PayloadError(ValueError):
    """A payload could not be decoded or failed validation; ``reason`` says exactly why.

    ``rule`` names the row of the server's declared reply rules
    (:data:`fedkd.wire.validate.REPLY_RULES`) that refused it, so exclusions can be
    counted per rule; payloads a node refuses carry the generic ``"payload.decode"``.
    """

    def __init__(self, reason: str, *, rule: str = "payload.decode") -> None:
        super().__init__(reason)
        self.reason = reason
        self.rule = rule
