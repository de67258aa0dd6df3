from fedkd.wire.v1 import privacy_pb2 as _privacy_pb2
from fedkd.wire.v1 import tensor_pb2 as _tensor_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ReleaseKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RELEASE_KIND_UNSPECIFIED: _ClassVar[ReleaseKind]
    RELEASE_KIND_NOTHING: _ClassVar[ReleaseKind]
    RELEASE_KIND_SOFT_LABELS: _ClassVar[ReleaseKind]
    RELEASE_KIND_WEIGHTS: _ClassVar[ReleaseKind]
RELEASE_KIND_UNSPECIFIED: ReleaseKind
RELEASE_KIND_NOTHING: ReleaseKind
RELEASE_KIND_SOFT_LABELS: ReleaseKind
RELEASE_KIND_WEIGHTS: ReleaseKind

class Status(_message.Message):
    __slots__ = ("code", "reason")
    class Code(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        CODE_UNSPECIFIED: _ClassVar[Status.Code]
        CODE_OK: _ClassVar[Status.Code]
        CODE_SKIPPED: _ClassVar[Status.Code]
        CODE_BUDGET_EXHAUSTED: _ClassVar[Status.Code]
        CODE_INVALID_REQUEST: _ClassVar[Status.Code]
        CODE_INTERNAL_ERROR: _ClassVar[Status.Code]
        CODE_LEDGER_REFUSED: _ClassVar[Status.Code]
        CODE_POLICY_REFUSED: _ClassVar[Status.Code]
        CODE_UNAVAILABLE: _ClassVar[Status.Code]
    CODE_UNSPECIFIED: Status.Code
    CODE_OK: Status.Code
    CODE_SKIPPED: Status.Code
    CODE_BUDGET_EXHAUSTED: Status.Code
    CODE_INVALID_REQUEST: Status.Code
    CODE_INTERNAL_ERROR: Status.Code
    CODE_LEDGER_REFUSED: Status.Code
    CODE_POLICY_REFUSED: Status.Code
    CODE_UNAVAILABLE: Status.Code
    CODE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    code: Status.Code
    reason: str
    def __init__(self, code: _Optional[_Union[Status.Code, str]] = ..., reason: _Optional[str] = ...) -> None: ...

class KnowledgeRequest(_message.Message):
    __slots__ = ("schema_version", "run_id", "round", "transfer_set", "anchor_indices", "fused", "reply_dtype", "global_weights", "all_anchors", "ledger_head", "release", "software_version")
    SCHEMA_VERSION_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    ROUND_FIELD_NUMBER: _ClassVar[int]
    TRANSFER_SET_FIELD_NUMBER: _ClassVar[int]
    ANCHOR_INDICES_FIELD_NUMBER: _ClassVar[int]
    FUSED_FIELD_NUMBER: _ClassVar[int]
    REPLY_DTYPE_FIELD_NUMBER: _ClassVar[int]
    GLOBAL_WEIGHTS_FIELD_NUMBER: _ClassVar[int]
    ALL_ANCHORS_FIELD_NUMBER: _ClassVar[int]
    LEDGER_HEAD_FIELD_NUMBER: _ClassVar[int]
    RELEASE_FIELD_NUMBER: _ClassVar[int]
    SOFTWARE_VERSION_FIELD_NUMBER: _ClassVar[int]
    schema_version: int
    run_id: str
    round: int
    transfer_set: _tensor_pb2.TransferSetRef
    anchor_indices: _containers.RepeatedScalarFieldContainer[int]
    fused: FusedKnowledge
    reply_dtype: _tensor_pb2.DType
    global_weights: _tensor_pb2.ModelWeights
    all_anchors: bool
    ledger_head: str
    release: ReleaseKind
    software_version: str
    def __init__(self, schema_version: _Optional[int] = ..., run_id: _Optional[str] = ..., round: _Optional[int] = ..., transfer_set: _Optional[_Union[_tensor_pb2.TransferSetRef, _Mapping]] = ..., anchor_indices: _Optional[_Iterable[int]] = ..., fused: _Optional[_Union[FusedKnowledge, _Mapping]] = ..., reply_dtype: _Optional[_Union[_tensor_pb2.DType, str]] = ..., global_weights: _Optional[_Union[_tensor_pb2.ModelWeights, _Mapping]] = ..., all_anchors: _Optional[bool] = ..., ledger_head: _Optional[str] = ..., release: _Optional[_Union[ReleaseKind, str]] = ..., software_version: _Optional[str] = ...) -> None: ...

class KnowledgeReply(_message.Message):
    __slots__ = ("schema_version", "run_id", "round", "node_id", "transfer_set", "soft_labels", "num_examples", "privacy", "status", "weights", "eval", "node_name", "software_version", "fingerprint")
    SCHEMA_VERSION_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    ROUND_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    TRANSFER_SET_FIELD_NUMBER: _ClassVar[int]
    SOFT_LABELS_FIELD_NUMBER: _ClassVar[int]
    NUM_EXAMPLES_FIELD_NUMBER: _ClassVar[int]
    PRIVACY_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    WEIGHTS_FIELD_NUMBER: _ClassVar[int]
    EVAL_FIELD_NUMBER: _ClassVar[int]
    NODE_NAME_FIELD_NUMBER: _ClassVar[int]
    SOFTWARE_VERSION_FIELD_NUMBER: _ClassVar[int]
    FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    schema_version: int
    run_id: str
    round: int
    node_id: int
    transfer_set: _tensor_pb2.TransferSetRef
    soft_labels: _tensor_pb2.Tensor
    num_examples: int
    privacy: _privacy_pb2.PrivacySpend
    status: Status
    weights: _tensor_pb2.ModelWeights
    eval: EvalReport
    node_name: str
    software_version: str
    fingerprint: NodeFingerprint
    def __init__(self, schema_version: _Optional[int] = ..., run_id: _Optional[str] = ..., round: _Optional[int] = ..., node_id: _Optional[int] = ..., transfer_set: _Optional[_Union[_tensor_pb2.TransferSetRef, _Mapping]] = ..., soft_labels: _Optional[_Union[_tensor_pb2.Tensor, _Mapping]] = ..., num_examples: _Optional[int] = ..., privacy: _Optional[_Union[_privacy_pb2.PrivacySpend, _Mapping]] = ..., status: _Optional[_Union[Status, _Mapping]] = ..., weights: _Optional[_Union[_tensor_pb2.ModelWeights, _Mapping]] = ..., eval: _Optional[_Union[EvalReport, _Mapping]] = ..., node_name: _Optional[str] = ..., software_version: _Optional[str] = ..., fingerprint: _Optional[_Union[NodeFingerprint, _Mapping]] = ...) -> None: ...

class NodeFingerprint(_message.Message):
    __slots__ = ("config", "model", "data")
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    config: str
    model: str
    data: str
    def __init__(self, config: _Optional[str] = ..., model: _Optional[str] = ..., data: _Optional[str] = ...) -> None: ...

class EvalReport(_message.Message):
    __slots__ = ("evaluated_round", "partition_id", "local_accuracy", "local_loss", "local_test_examples", "global_accuracy", "global_loss", "train_loss", "distill_loss", "phase_seconds", "model")
    class PhaseSecondsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    EVALUATED_ROUND_FIELD_NUMBER: _ClassVar[int]
    PARTITION_ID_FIELD_NUMBER: _ClassVar[int]
    LOCAL_ACCURACY_FIELD_NUMBER: _ClassVar[int]
    LOCAL_LOSS_FIELD_NUMBER: _ClassVar[int]
    LOCAL_TEST_EXAMPLES_FIELD_NUMBER: _ClassVar[int]
    GLOBAL_ACCURACY_FIELD_NUMBER: _ClassVar[int]
    GLOBAL_LOSS_FIELD_NUMBER: _ClassVar[int]
    TRAIN_LOSS_FIELD_NUMBER: _ClassVar[int]
    DISTILL_LOSS_FIELD_NUMBER: _ClassVar[int]
    PHASE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    evaluated_round: int
    partition_id: int
    local_accuracy: float
    local_loss: float
    local_test_examples: int
    global_accuracy: float
    global_loss: float
    train_loss: float
    distill_loss: float
    phase_seconds: _containers.ScalarMap[str, float]
    model: str
    def __init__(self, evaluated_round: _Optional[int] = ..., partition_id: _Optional[int] = ..., local_accuracy: _Optional[float] = ..., local_loss: _Optional[float] = ..., local_test_examples: _Optional[int] = ..., global_accuracy: _Optional[float] = ..., global_loss: _Optional[float] = ..., train_loss: _Optional[float] = ..., distill_loss: _Optional[float] = ..., phase_seconds: _Optional[_Mapping[str, float]] = ..., model: _Optional[str] = ...) -> None: ...

class FusedKnowledge(_message.Message):
    __slots__ = ("schema_version", "run_id", "round", "transfer_set", "anchor_indices", "targets", "strategy", "all_anchors")
    SCHEMA_VERSION_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    ROUND_FIELD_NUMBER: _ClassVar[int]
    TRANSFER_SET_FIELD_NUMBER: _ClassVar[int]
    ANCHOR_INDICES_FIELD_NUMBER: _ClassVar[int]
    TARGETS_FIELD_NUMBER: _ClassVar[int]
    STRATEGY_FIELD_NUMBER: _ClassVar[int]
    ALL_ANCHORS_FIELD_NUMBER: _ClassVar[int]
    schema_version: int
    run_id: str
    round: int
    transfer_set: _tensor_pb2.TransferSetRef
    anchor_indices: _containers.RepeatedScalarFieldContainer[int]
    targets: _tensor_pb2.Tensor
    strategy: str
    all_anchors: bool
    def __init__(self, schema_version: _Optional[int] = ..., run_id: _Optional[str] = ..., round: _Optional[int] = ..., transfer_set: _Optional[_Union[_tensor_pb2.TransferSetRef, _Mapping]] = ..., anchor_indices: _Optional[_Iterable[int]] = ..., targets: _Optional[_Union[_tensor_pb2.Tensor, _Mapping]] = ..., strategy: _Optional[str] = ..., all_anchors: _Optional[bool] = ...) -> None: ...
