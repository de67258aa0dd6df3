from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class SignedReply(_message.Message):
    __slots__ = ("schema_version", "reply", "signature", "node_name")
    SCHEMA_VERSION_FIELD_NUMBER: _ClassVar[int]
    REPLY_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    NODE_NAME_FIELD_NUMBER: _ClassVar[int]
    schema_version: int
    reply: bytes
    signature: bytes
    node_name: str
    def __init__(self, schema_version: _Optional[int] = ..., reply: _Optional[bytes] = ..., signature: _Optional[bytes] = ..., node_name: _Optional[str] = ...) -> None: ...
