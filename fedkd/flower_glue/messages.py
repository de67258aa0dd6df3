"""Carry fedkd's protobuf payloads inside Flower messages, and measure them."""

from __future__ import annotations

from flwr.app import Array, ArrayRecord, ConfigRecord, Message, RecordDict
from flwr.common.serde import message_to_proto

from fedkd.wire.types import ModelWeights

RECORD = "fedkd"
PAYLOAD_KEY = "payload"
STATE_KEY = "fedkd-model"


def pack(payload: bytes) -> RecordDict:
    return RecordDict({RECORD: ConfigRecord({PAYLOAD_KEY: payload})})


def unpack(content: RecordDict) -> bytes | None:
    """The fedkd payload in ``content``, or ``None`` when absent or not bytes."""
    record = content.config_records.get(RECORD)
    if record is None:
        return None
    value = record.get(PAYLOAD_KEY)
    return value if isinstance(value, bytes) else None


def flower_size(message: Message) -> int:
    """Bytes of the Flower message as serialized on the wire (protobuf)."""
    size: int = message_to_proto(message).ByteSize()
    return size


def state_to_record(state: ModelWeights) -> ArrayRecord:
    return ArrayRecord({k: Array(v) for k, v in state.items()})


def state_from_record(record: ArrayRecord) -> ModelWeights:
    return {k: array.numpy() for k, array in record.items()}
