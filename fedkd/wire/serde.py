"""``x_to_proto`` / ``x_from_proto`` pairs between ``fedkd.wire.types`` and the schema.

Only this module touches generated protobuf classes.  ``*_from_bytes`` raise
:class:`~fedkd.wire.errors.PayloadError` on anything undecodable, so a bad payload never
escapes as a protobuf or numpy exception.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
from google.protobuf.message import DecodeError

from fedkd.wire import SCHEMA_VERSION
from fedkd.wire.errors import PayloadError
from fedkd.wire.types import (
    EvalReport,
    FusedKnowledge,
    KnowledgeReply,
    KnowledgeRequest,
    ModelWeights,
    NodeFingerprint,
    PrivacySpend,
    ReleaseKind,
    Status,
    StatusCode,
    TransferSetRef,
    WireDType,
)
from fedkd.wire.v1 import knowledge_pb2, privacy_pb2, tensor_pb2

_DTYPE_TO_PROTO = {
    WireDType.FLOAT32: tensor_pb2.DTYPE_FLOAT32,
    WireDType.FLOAT16: tensor_pb2.DTYPE_FLOAT16,
    WireDType.INT8: tensor_pb2.DTYPE_INT8,
}
_DTYPE_FROM_PROTO = {v: k for k, v in _DTYPE_TO_PROTO.items()}
_NUMPY_DTYPE: dict[WireDType, np.dtype[Any]] = {
    WireDType.FLOAT32: np.dtype("<f4"),
    WireDType.FLOAT16: np.dtype("<f2"),
    WireDType.INT8: np.dtype("i1"),
}
_STATUS_TO_PROTO = {
    StatusCode.OK: knowledge_pb2.Status.CODE_OK,
    StatusCode.SKIPPED: knowledge_pb2.Status.CODE_SKIPPED,
    StatusCode.BUDGET_EXHAUSTED: knowledge_pb2.Status.CODE_BUDGET_EXHAUSTED,
    StatusCode.INVALID_REQUEST: knowledge_pb2.Status.CODE_INVALID_REQUEST,
    StatusCode.INTERNAL_ERROR: knowledge_pb2.Status.CODE_INTERNAL_ERROR,
    StatusCode.LEDGER_REFUSED: knowledge_pb2.Status.CODE_LEDGER_REFUSED,
    StatusCode.POLICY_REFUSED: knowledge_pb2.Status.CODE_POLICY_REFUSED,
    StatusCode.UNAVAILABLE: knowledge_pb2.Status.CODE_UNAVAILABLE,
}
_STATUS_FROM_PROTO = {v: k for k, v in _STATUS_TO_PROTO.items()}
_RELEASE_TO_PROTO = {
    ReleaseKind.NOTHING: knowledge_pb2.RELEASE_KIND_NOTHING,
    ReleaseKind.SOFT_LABELS: knowledge_pb2.RELEASE_KIND_SOFT_LABELS,
    ReleaseKind.WEIGHTS: knowledge_pb2.RELEASE_KIND_WEIGHTS,
}
_RELEASE_FROM_PROTO = {v: k for k, v in _RELEASE_TO_PROTO.items()}
INT8_MAX = 127
MAX_TENSOR_RANK = 8
MAX_DIMENSION = 2**31 - 1


@dataclass(frozen=True)
class ReplyShapes:
    """The tensor shapes a request allows in its reply, checked before any array is made.

    A declared shape is a claim: ``[0, 2^32-1, 2^32-1]`` with no data passes a byte count
    and then fails to reshape, so every shape is judged against what was asked first.
    """

    soft_labels: tuple[int, ...]
    """Exactly ``(anchors asked for, classes)``."""
    weights: Mapping[str, tuple[int, ...]] | None = None
    """Exactly these names and shapes (the model the server distributed), when it has one;
    ``None``: any names, every dimension at least 1 (so the bytes bound the elements)."""
    weights_allowed: bool = True
    """Whether the request asked for weights at all."""


# --- tensors -----------------------------------------------------------------------------


def tensor_to_proto(array: np.ndarray, dtype: WireDType) -> tensor_pb2.Tensor:
    """Encode a float array; int8 uses a symmetric per-tensor scale ``max|x| / 127``."""
    values = np.ascontiguousarray(array, dtype=np.float32)
    message = tensor_pb2.Tensor(dtype=_DTYPE_TO_PROTO[dtype], shape=list(values.shape))
    if dtype is WireDType.INT8:
        peak = float(np.max(np.abs(values))) if values.size else 0.0
        scale = peak / INT8_MAX if peak > 0 else 1.0
        codes = np.clip(np.rint(values / scale), -INT8_MAX, INT8_MAX).astype(np.int8)
        message.data = codes.tobytes()
        message.quantisation.scale = scale
    else:
        message.data = values.astype(_NUMPY_DTYPE[dtype]).tobytes()
    return message


def tensor_from_proto(
    message: tensor_pb2.Tensor, *, shape: tuple[int, ...] | None = None, what: str = "tensor"
) -> tuple[np.ndarray, WireDType]:
    """Decode to float32, the declared shape checked before the bytes are touched.

    ``shape``, when given, is the only acceptable one; otherwise every dimension must be
    at least 1, so the element count can never exceed the byte count.
    """
    if message.dtype not in _DTYPE_FROM_PROTO:
        raise PayloadError(f"unsupported tensor dtype code {message.dtype}")
    dtype = _DTYPE_FROM_PROTO[message.dtype]
    declared = tuple(int(d) for d in message.shape[: MAX_TENSOR_RANK + 1])
    _check_shape(declared, len(message.shape), shape, what)
    # Python integers: a crafted shape cannot overflow the count past the size check.
    expected = math.prod(declared) * dtype.itemsize
    if len(message.data) != expected:
        raise PayloadError(
            f"{what} of shape {declared} and dtype {dtype.value} needs {expected} bytes, "
            f"got {len(message.data)}"
        )
    raw = np.frombuffer(message.data, dtype=_NUMPY_DTYPE[dtype]).reshape(declared)
    if dtype is WireDType.INT8:
        scale = float(message.quantisation.scale)
        if not np.isfinite(scale) or scale <= 0:
            raise PayloadError(f"int8 tensor needs a finite positive scale, got {scale}")
        return raw.astype(np.float32) * np.float32(scale), dtype
    return raw.astype(np.float32), dtype


def _check_shape(
    declared: tuple[int, ...], rank: int, wanted: tuple[int, ...] | None, what: str
) -> None:
    if wanted is not None:
        if rank != len(wanted) or declared != wanted:
            shown = declared if rank <= MAX_TENSOR_RANK else f"rank {rank}"
            raise PayloadError(f"{what} shape {shown}, expected {wanted}", rule="tensor.shape")
        return
    if rank > MAX_TENSOR_RANK:
        raise PayloadError(
            f"{what} has rank {rank} (at most {MAX_TENSOR_RANK})", rule="tensor.shape"
        )
    if any(not 1 <= d <= MAX_DIMENSION for d in declared):
        raise PayloadError(
            f"{what} shape {declared}: every dimension must be in [1, {MAX_DIMENSION}]",
            rule="tensor.shape",
        )


def weights_to_proto(weights: ModelWeights) -> tensor_pb2.ModelWeights:
    return tensor_pb2.ModelWeights(
        tensors=[
            tensor_pb2.NamedTensor(name=name, tensor=tensor_to_proto(value, WireDType.FLOAT32))
            for name, value in weights.items()
        ]
    )


def weights_from_proto(
    message: tensor_pb2.ModelWeights, *, shapes: Mapping[str, tuple[int, ...]] | None = None
) -> ModelWeights:
    """Decode named tensors; with ``shapes``, exactly those names and shapes."""
    if shapes is not None:
        names = [named.name for named in message.tensors]
        if sorted(names) != sorted(shapes):
            missing = sorted(set(shapes) - set(names))[:5]
            extra = sorted(set(names) - set(shapes))[:5]
            raise PayloadError(
                f"weights name other tensors than the model's: missing {missing}, "
                f"extra {[n[:40] for n in extra]}",
                rule="tensor.shape",
            )
    weights: ModelWeights = {}
    for named in message.tensors:
        if named.name in weights:
            raise PayloadError(f"weights list tensor {named.name[:40]!r} twice")
        wanted = shapes[named.name] if shapes is not None else None
        weights[named.name], _ = tensor_from_proto(
            named.tensor, shape=wanted, what=f"weights tensor {named.name[:40]!r}"
        )
    return weights


# --- small messages ----------------------------------------------------------------------


def transfer_set_to_proto(ref: TransferSetRef) -> tensor_pb2.TransferSetRef:
    return tensor_pb2.TransferSetRef(
        digest=ref.digest, num_samples=ref.num_samples, num_classes=ref.num_classes, name=ref.name
    )


def transfer_set_from_proto(message: tensor_pb2.TransferSetRef) -> TransferSetRef:
    return TransferSetRef(
        digest=message.digest,
        num_samples=message.num_samples,
        num_classes=message.num_classes,
        name=message.name,
    )


def privacy_spend_to_proto(spend: PrivacySpend) -> privacy_pb2.PrivacySpend:
    return privacy_pb2.PrivacySpend(
        mechanism=spend.mechanism,
        epsilon=spend.epsilon,
        delta=spend.delta,
        accountant=spend.accountant,
        noise_multiplier=spend.noise_multiplier,
        sample_rate=spend.sample_rate,
        steps=spend.steps,
        ledger_head=spend.ledger_head,
        unbounded_since_row=spend.unbounded_since_row,
        release_steps=spend.release_steps,
    )


def privacy_spend_from_proto(message: privacy_pb2.PrivacySpend) -> PrivacySpend:
    return PrivacySpend(
        mechanism=message.mechanism,
        epsilon=message.epsilon,
        delta=message.delta,
        accountant=message.accountant,
        noise_multiplier=message.noise_multiplier,
        sample_rate=message.sample_rate,
        steps=message.steps,
        ledger_head=message.ledger_head,
        unbounded_since_row=message.unbounded_since_row,
        release_steps=message.release_steps,
    )


def status_to_proto(status: Status) -> knowledge_pb2.Status:
    return knowledge_pb2.Status(code=_STATUS_TO_PROTO[status.code], reason=status.reason)


def status_from_proto(message: knowledge_pb2.Status) -> Status:
    if message.code not in _STATUS_FROM_PROTO:
        raise PayloadError(f"unknown status code {message.code}")
    return Status(code=_STATUS_FROM_PROTO[message.code], reason=message.reason)


def eval_report_to_proto(report: EvalReport) -> knowledge_pb2.EvalReport:
    return knowledge_pb2.EvalReport(
        evaluated_round=report.evaluated_round,
        partition_id=report.partition_id,
        local_accuracy=report.local_accuracy,
        local_loss=report.local_loss,
        local_test_examples=report.local_test_examples,
        global_accuracy=report.global_accuracy,
        global_loss=report.global_loss,
        train_loss=report.train_loss,
        distill_loss=report.distill_loss,
        phase_seconds=report.phase_seconds,
        model=report.model,
    )


def eval_report_from_proto(message: knowledge_pb2.EvalReport) -> EvalReport:
    return EvalReport(
        evaluated_round=message.evaluated_round,
        partition_id=message.partition_id,
        local_accuracy=message.local_accuracy,
        local_loss=message.local_loss,
        local_test_examples=message.local_test_examples,
        global_accuracy=message.global_accuracy,
        global_loss=message.global_loss,
        train_loss=message.train_loss,
        distill_loss=message.distill_loss,
        phase_seconds=dict(message.phase_seconds),
        model=message.model,
    )


def _anchors_to_proto(indices: np.ndarray, ref: TransferSetRef) -> dict[str, Any]:
    """The whole transfer set in order travels as a flag instead of T indices."""
    if (
        len(indices)
        and len(indices) == ref.num_samples
        and np.array_equal(indices, np.arange(ref.num_samples))
    ):
        return {"all_anchors": True}
    return {"anchor_indices": indices.astype(np.uint32).tolist()}


def _anchors_from_proto(
    message: knowledge_pb2.KnowledgeRequest | knowledge_pb2.FusedKnowledge,
) -> np.ndarray:
    if message.all_anchors:
        if len(message.anchor_indices):
            raise PayloadError("all_anchors is set but anchor indices are listed too")
        return np.arange(message.transfer_set.num_samples, dtype=np.uint32)
    return np.asarray(message.anchor_indices, dtype=np.uint32)


# --- round messages ----------------------------------------------------------------------


def fused_knowledge_to_proto(fused: FusedKnowledge) -> knowledge_pb2.FusedKnowledge:
    return knowledge_pb2.FusedKnowledge(
        schema_version=SCHEMA_VERSION,
        run_id=fused.run_id,
        round=fused.round,
        transfer_set=transfer_set_to_proto(fused.transfer_set),
        targets=tensor_to_proto(fused.targets, fused.dtype),
        strategy=fused.strategy,
        **_anchors_to_proto(fused.anchor_indices, fused.transfer_set),
    )


def fused_knowledge_from_proto(message: knowledge_pb2.FusedKnowledge) -> FusedKnowledge:
    targets, dtype = tensor_from_proto(message.targets)
    return FusedKnowledge(
        run_id=message.run_id,
        round=message.round,
        transfer_set=transfer_set_from_proto(message.transfer_set),
        anchor_indices=_anchors_from_proto(message),
        targets=targets,
        strategy=message.strategy,
        dtype=dtype,
    )


def knowledge_request_to_proto(request: KnowledgeRequest) -> knowledge_pb2.KnowledgeRequest:
    message = knowledge_pb2.KnowledgeRequest(
        schema_version=SCHEMA_VERSION,
        run_id=request.run_id,
        round=request.round,
        transfer_set=transfer_set_to_proto(request.transfer_set),
        reply_dtype=_DTYPE_TO_PROTO[request.reply_dtype],
        ledger_head=request.ledger_head,
        release=_RELEASE_TO_PROTO[request.release],
        software_version=request.software_version,
        **_anchors_to_proto(request.anchor_indices, request.transfer_set),
    )
    if request.fused is not None:
        message.fused.CopyFrom(fused_knowledge_to_proto(request.fused))
    if request.global_weights is not None:
        message.global_weights.CopyFrom(weights_to_proto(request.global_weights))
    return message


def knowledge_request_from_proto(message: knowledge_pb2.KnowledgeRequest) -> KnowledgeRequest:
    _check_schema_version(message.schema_version, "KnowledgeRequest")
    if message.reply_dtype not in _DTYPE_FROM_PROTO:
        raise PayloadError(f"unsupported reply dtype code {message.reply_dtype}")
    if message.release not in _RELEASE_FROM_PROTO:
        raise PayloadError(f"unknown release kind {message.release}")
    fused = None
    if message.HasField("fused"):
        _check_schema_version(message.fused.schema_version, "FusedKnowledge")
        fused = fused_knowledge_from_proto(message.fused)
    return KnowledgeRequest(
        run_id=message.run_id,
        round=message.round,
        transfer_set=transfer_set_from_proto(message.transfer_set),
        anchor_indices=_anchors_from_proto(message),
        fused=fused,
        reply_dtype=_DTYPE_FROM_PROTO[message.reply_dtype],
        global_weights=(
            weights_from_proto(message.global_weights)
            if message.HasField("global_weights")
            else None
        ),
        ledger_head=message.ledger_head,
        release=_RELEASE_FROM_PROTO[message.release],
        software_version=message.software_version,
    )


def knowledge_reply_to_proto(reply: KnowledgeReply) -> knowledge_pb2.KnowledgeReply:
    message = knowledge_pb2.KnowledgeReply(
        schema_version=SCHEMA_VERSION,
        run_id=reply.run_id,
        round=reply.round,
        node_id=reply.node_id,
        node_name=reply.node_name,
        software_version=reply.software_version,
        transfer_set=transfer_set_to_proto(reply.transfer_set),
        num_examples=reply.num_examples,
        privacy=privacy_spend_to_proto(reply.privacy),
        status=status_to_proto(reply.status),
    )
    if reply.soft_labels is not None:
        message.soft_labels.CopyFrom(tensor_to_proto(reply.soft_labels, reply.dtype))
    if reply.weights is not None:
        message.weights.CopyFrom(weights_to_proto(reply.weights))
    if reply.eval is not None:
        message.eval.CopyFrom(eval_report_to_proto(reply.eval))
    if reply.fingerprint is not None:
        message.fingerprint.CopyFrom(node_fingerprint_to_proto(reply.fingerprint))
    return message


def knowledge_reply_from_proto(
    message: knowledge_pb2.KnowledgeReply, *, shapes: ReplyShapes | None = None
) -> KnowledgeReply:
    """The reply, its tensors' shapes checked against ``shapes`` (the request) first."""
    _check_schema_version(message.schema_version, "KnowledgeReply")
    soft_labels, dtype = None, WireDType.FLOAT32
    if message.HasField("soft_labels"):
        soft_labels, dtype = tensor_from_proto(
            message.soft_labels,
            shape=shapes.soft_labels if shapes is not None else None,
            what="soft labels",
        )
    weights = None
    if message.HasField("weights"):
        if shapes is not None and not shapes.weights_allowed:
            raise PayloadError("carries weights the request did not ask for", rule="tensor.shape")
        weights = weights_from_proto(
            message.weights, shapes=shapes.weights if shapes is not None else None
        )
    if not message.HasField("privacy"):
        raise PayloadError("KnowledgeReply carries no privacy spend")
    return KnowledgeReply(
        run_id=message.run_id,
        round=message.round,
        node_id=message.node_id,
        transfer_set=transfer_set_from_proto(message.transfer_set),
        soft_labels=soft_labels,
        num_examples=message.num_examples,
        privacy=privacy_spend_from_proto(message.privacy),
        status=status_from_proto(message.status),
        dtype=dtype,
        weights=weights,
        eval=eval_report_from_proto(message.eval) if message.HasField("eval") else None,
        node_name=message.node_name,
        software_version=message.software_version,
        fingerprint=(
            node_fingerprint_from_proto(message.fingerprint)
            if message.HasField("fingerprint")
            else None
        ),
    )


def node_fingerprint_to_proto(fingerprint: NodeFingerprint) -> knowledge_pb2.NodeFingerprint:
    return knowledge_pb2.NodeFingerprint(
        config=fingerprint.config, model=fingerprint.model, data=fingerprint.data
    )


def node_fingerprint_from_proto(message: knowledge_pb2.NodeFingerprint) -> NodeFingerprint:
    return NodeFingerprint(config=message.config, model=message.model, data=message.data)


def _check_schema_version(version: int, what: str) -> None:
    if version != SCHEMA_VERSION:
        raise PayloadError(f"{what} has schema version {version}, expected {SCHEMA_VERSION}")


# --- bytes -------------------------------------------------------------------------------


def knowledge_request_to_bytes(request: KnowledgeRequest) -> bytes:
    data: bytes = knowledge_request_to_proto(request).SerializeToString()
    return data


def knowledge_request_from_bytes(data: bytes, *, max_bytes: int) -> KnowledgeRequest:
    message = _parse(knowledge_pb2.KnowledgeRequest(), data, max_bytes, "KnowledgeRequest")
    return knowledge_request_from_proto(message)


def knowledge_reply_to_bytes(reply: KnowledgeReply) -> bytes:
    data: bytes = knowledge_reply_to_proto(reply).SerializeToString()
    return data


def knowledge_reply_from_bytes(
    data: bytes, *, max_bytes: int, shapes: ReplyShapes | None = None
) -> KnowledgeReply:
    message = _parse(knowledge_pb2.KnowledgeReply(), data, max_bytes, "KnowledgeReply")
    return knowledge_reply_from_proto(message, shapes=shapes)


_Message = TypeVar("_Message", knowledge_pb2.KnowledgeRequest, knowledge_pb2.KnowledgeReply)


def _parse(message: _Message, data: bytes, max_bytes: int, what: str) -> _Message:
    if not isinstance(data, bytes | bytearray):
        raise PayloadError(f"{what} must be bytes, got {type(data).__name__}")
    # The size cap is checked before parsing so an oversize payload costs nothing to reject.
    if len(data) > max_bytes:
        raise PayloadError(
            f"{what} is {len(data)} bytes, over the {max_bytes}-byte cap", rule="payload.size"
        )
    try:
        message.ParseFromString(bytes(data))
    except DecodeError as exc:
        raise PayloadError(f"{what} is not decodable protobuf: {exc}") from exc
    return message
