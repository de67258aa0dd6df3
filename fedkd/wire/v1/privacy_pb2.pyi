from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class PrivacySpend(_message.Message):
    __slots__ = ("mechanism", "epsilon", "delta", "accountant", "noise_multiplier", "sample_rate", "steps", "ledger_head", "unbounded_since_row", "release_steps")
    MECHANISM_FIELD_NUMBER: _ClassVar[int]
    EPSILON_FIELD_NUMBER: _ClassVar[int]
    DELTA_FIELD_NUMBER: _ClassVar[int]
    ACCOUNTANT_FIELD_NUMBER: _ClassVar[int]
    NOISE_MULTIPLIER_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_RATE_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    LEDGER_HEAD_FIELD_NUMBER: _ClassVar[int]
    UNBOUNDED_SINCE_ROW_FIELD_NUMBER: _ClassVar[int]
    RELEASE_STEPS_FIELD_NUMBER: _ClassVar[int]
    mechanism: str
    epsilon: float
    delta: float
    accountant: str
    noise_multiplier: float
    sample_rate: float
    steps: int
    ledger_head: str
    unbounded_since_row: int
    release_steps: int
    def __init__(self, mechanism: _Optional[str] = ..., epsilon: _Optional[float] = ..., delta: _Optional[float] = ..., accountant: _Optional[str] = ..., noise_multiplier: _Optional[float] = ..., sample_rate: _Optional[float] = ..., steps: _Optional[int] = ..., ledger_head: _Optional[str] = ..., unbounded_since_row: _Optional[int] = ..., release_steps: _Optional[int] = ...) -> None: ...
