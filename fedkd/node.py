"""What a client node does with one request, with no Flower in sight.

One message per round (fewer round trips, which cost seconds each in deployment):

1. distil toward the previous round's fused targets on its anchors (+ CE on private data),
   or load the aggregated weights (weight-averaging baseline);
2. evaluate: personalised accuracy on the local test split, and on the global test set;
3. train locally on private data (skipped for the final evaluation message);
4. release soft labels on this round's anchors (or weights, for weight averaging).

The model's state comes in and goes out as a ``name → ndarray`` dict so the caller (the
Flower ClientApp) can keep it in node state between messages.
"""

from __future__ import annotations

import dataclasses
import json
import time
import zlib
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from fedkd.config import RunConfig
from fedkd.data.federated import ClientData, FederatedData, build_federated_data
from fedkd.distill.device import pick_device
from fedkd.distill.loops import distil, evaluate, predict_logits, soft_labels, train_local
from fedkd.fusion import make_fusion
from fedkd.models import ModelSpec, build_model
from fedkd.privacy.accounting import DPSteps, compose
from fedkd.privacy.dp_sgd import train_private
from fedkd.privacy.guard import PrivacyPlan, plan_for, private_digest, release_record, spend_after
from fedkd.privacy.ledger import GENESIS, Ledger, LedgerError
from fedkd.privacy.scorers import make_scorer
from fedkd.privacy.swing import swing_release, swing_targets
from fedkd.wire.errors import PayloadError
from fedkd.wire.serde import knowledge_reply_to_bytes, knowledge_request_from_bytes
from fedkd.wire.types import (
    EvalReport,
    KnowledgeReply,
    KnowledgeRequest,
    ModelWeights,
    Status,
    StatusCode,
    TransferSetRef,
)


@dataclass(frozen=True)
class NodeIdentity:
    node_id: int
    partition_id: int


def phase_seed(cfg: RunConfig, partition_id: int, round_: int, phase: str) -> int:
    """A seed per (run seed, client, round, phase), stable across processes."""
    return zlib.crc32(f"{cfg.seed}/{partition_id}/{round_}/{phase}".encode())


def init_model(cfg: RunConfig, data: FederatedData, partition_id: int) -> nn.Module:
    """The client's architecture, initialised from the run seed and the architecture name.

    Clients with the same architecture start from the same weights, as weight averaging
    requires (averaging independently initialised networks destroys both).
    """
    torch.manual_seed(zlib.crc32(f"{cfg.seed}/init/{cfg.model_for(partition_id)}".encode()))
    spec = ModelSpec(input_shape=data.input_shape, num_classes=data.num_classes)
    return build_model(cfg.model_for(partition_id), spec)


def model_state(model: nn.Module) -> ModelWeights:
    return {k: v.detach().cpu().numpy().copy() for k, v in model.state_dict().items()}


def load_state(model: nn.Module, state: ModelWeights) -> None:
    tensors = {k: torch.from_numpy(np.asarray(v)) for k, v in state.items()}
    model.load_state_dict(tensors, strict=True)


def transfer_ref(data: FederatedData) -> TransferSetRef:
    return TransferSetRef(
        digest=data.transfer.digest,
        num_samples=data.transfer.num_samples,
        num_classes=data.num_classes,
        name=data.transfer.name,
    )


def handle_request(
    cfg: RunConfig,
    identity: NodeIdentity,
    request_bytes: bytes,
    state: ModelWeights | None,
    *,
    train: bool = True,
) -> tuple[bytes, ModelWeights | None]:
    """Serve one request; returns the serialized reply and the model state to keep.

    A request that cannot be decoded or does not match this node's transfer set gets a
    reply with status ``INVALID_REQUEST`` and the model state is left untouched.
    """
    data = build_federated_data(cfg.data_spec)
    ref = transfer_ref(data)
    try:
        request = knowledge_request_from_bytes(request_bytes, max_bytes=cfg.max_payload_bytes)
        _check_request(request, ref, data)
    except PayloadError as exc:
        reply = KnowledgeReply(
            run_id="",
            round=0,
            node_id=identity.node_id,
            transfer_set=ref,
            soft_labels=None,
            num_examples=0,
            status=Status(StatusCode.INVALID_REQUEST, exc.reason),
        )
        return knowledge_reply_to_bytes(reply), state
    reply, new_state = _serve(cfg, identity, data, request, state, train=train)
    return knowledge_reply_to_bytes(reply), new_state


def _check_request(request: KnowledgeRequest, ref: TransferSetRef, data: FederatedData) -> None:
    if request.transfer_set.digest != ref.digest:
        raise PayloadError(
            f"request transfer-set digest {request.transfer_set.digest!r} "
            f"does not match this node's {ref.digest!r}"
        )
    index_sets = {"anchor": request.anchor_indices}
    if request.fused is not None:
        index_sets["fused anchor"] = request.fused.anchor_indices
    for what, idx in index_sets.items():
        if len(idx) and int(idx.max()) >= data.transfer.num_samples:
            raise PayloadError(f"{what} index {int(idx.max())} outside the transfer set")
    if request.fused is not None:
        want = (len(request.fused.anchor_indices), data.num_classes)
        if request.fused.targets.shape != want:
            raise PayloadError(
                f"fused targets shape {request.fused.targets.shape}, expected {want}"
            )
        if not np.all(np.isfinite(request.fused.targets)):
            raise PayloadError("fused targets contain non-finite values")


def _serve(
    cfg: RunConfig,
    identity: NodeIdentity,
    data: FederatedData,
    request: KnowledgeRequest,
    state: ModelWeights | None,
    *,
    train: bool,
) -> tuple[KnowledgeReply, ModelWeights | None]:
    pid = identity.partition_id
    client = data.clients[pid]
    try:
        ledger = Ledger.open(cfg.ledger_path(pid), expected_head=request.ledger_head or GENESIS)
    except LedgerError as exc:
        return _refusal(identity, data, request, StatusCode.LEDGER_REFUSED, str(exc)), state
    dataset_digest = private_digest(cfg.data_spec, pid)
    history = ledger.history(dataset_digest)
    plan = plan_for(cfg, len(client.train)) if cfg.dp else None
    budget = plan.budget if plan is not None else None
    if train and plan and budget and not budget.allows(history, plan.round_steps):
        reason = (
            f"another round would spend ε > {budget.epsilon} "
            f"(spent {budget.spent(history):.3f} at δ = {budget.delta})"
        )
        refusal = _refusal(identity, data, request, StatusCode.BUDGET_EXHAUSTED, reason)
        refusal = replace(refusal, privacy=spend_after(cfg, history, plan))
        return _recorded(cfg, ledger, refusal, dataset_digest, data, taken=None), state

    device = pick_device(cfg.device)
    model = init_model(cfg, data, pid)
    if state is not None:
        load_state(model, state)
    model.to(device)
    seconds: dict[str, float] = {}

    tick = time.perf_counter()
    distill_loss = _absorb(cfg, pid, data, client, request, model)
    seconds["distill"] = time.perf_counter() - tick

    tick = time.perf_counter()
    report = _evaluate(cfg, pid, data, client, model, request.round - 1, distill_loss)
    seconds["evaluate"] = time.perf_counter() - tick

    train_loss, taken = float("nan"), None
    tick = time.perf_counter()
    if train:
        train_loss, taken = _train(cfg, pid, client, request.round, model, plan)
        if taken is not None:
            history = compose(history, taken)
    seconds["train"] = time.perf_counter() - tick

    tick = time.perf_counter()
    released, weights = _release(cfg, pid, data, client, request, model, train=train)
    seconds["extract"] = time.perf_counter() - tick

    report = replace(report, train_loss=train_loss, phase_seconds=seconds)
    if cfg.dp:
        # Under DP only accounted releases leave the node: local accuracy, losses, record
        # counts and timings were computed on private data, so they go to the node's log.
        _log_locally(cfg, pid, report)
        report = replace(
            report,
            local_accuracy=float("nan"),
            local_loss=float("nan"),
            local_test_examples=0,
            train_loss=float("nan"),
            distill_loss=float("nan"),
            phase_seconds={},
        )
    reply = KnowledgeReply(
        run_id=request.run_id,
        round=request.round,
        node_id=identity.node_id,
        transfer_set=transfer_ref(data),
        soft_labels=released,
        num_examples=0 if cfg.dp else len(client.train),
        privacy=spend_after(cfg, history, plan),
        status=Status(StatusCode.OK if train else StatusCode.SKIPPED),
        dtype=request.reply_dtype,
        weights=weights,
        eval=report,
    )
    return _recorded(cfg, ledger, reply, dataset_digest, data, taken=taken), model_state(model)


def _refusal(
    identity: NodeIdentity,
    data: FederatedData,
    request: KnowledgeRequest,
    code: StatusCode,
    reason: str,
) -> KnowledgeReply:
    return KnowledgeReply(
        run_id=request.run_id,
        round=request.round,
        node_id=identity.node_id,
        transfer_set=transfer_ref(data),
        soft_labels=None,
        num_examples=0,
        status=Status(code, reason),
        dtype=request.reply_dtype,
    )


def _recorded(
    cfg: RunConfig,
    ledger: Ledger,
    reply: KnowledgeReply,
    dataset_digest: str,
    data: FederatedData,
    *,
    taken: DPSteps | None,
) -> KnowledgeReply:
    """Write the reply's ledger row (before anything is sent) and stamp the new head."""
    row = ledger.append(
        release_record(
            cfg,
            reply,
            dataset_digest=dataset_digest,
            transfer_digest=data.transfer.digest,
            taken=taken,
        )
    )
    return replace(reply, privacy=replace(reply.privacy, ledger_head=row.row_hash))


def _train(
    cfg: RunConfig,
    pid: int,
    client: ClientData,
    round_: int,
    model: nn.Module,
    plan: PrivacyPlan | None,
) -> tuple[float, DPSteps | None]:
    seed = phase_seed(cfg, pid, round_, "train")
    if plan is None:
        loss = train_local(
            model,
            client.train.x,
            client.train.y,
            epochs=cfg.local_epochs,
            cfg=cfg.optimiser,
            seed=seed,
        )
        return loss, None
    if cfg.local_epochs == 0:
        return float("nan"), None
    result = train_private(
        model,
        client.train.x,
        client.train.y,
        epochs=cfg.local_epochs,
        cfg=cfg.optimiser,
        noise_multiplier=plan.noise_multiplier,
        max_grad_norm=cfg.dp_max_grad_norm,
        grad_sample_mode=cfg.dp_grad_sample_mode or None,
        max_physical_batch_size=cfg.dp_physical_batch_size,
        seed=seed,
    )
    return result.loss, result.spent


def _log_locally(cfg: RunConfig, pid: int, report: EvalReport) -> None:
    """Append ``report`` to the node's own log (never sent): ``node-<pid>.eval.jsonl``."""
    path = node_log_path(cfg, pid)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        fh.write(json.dumps(dataclasses.asdict(report), sort_keys=True) + "\n")


def node_log_path(cfg: RunConfig, pid: int) -> Path:
    return cfg.ledger_path(pid).with_name(f"node-{pid}.eval.jsonl")


def _absorb(
    cfg: RunConfig,
    pid: int,
    data: FederatedData,
    client: ClientData,
    request: KnowledgeRequest,
    model: nn.Module,
) -> float:
    """Take in last round's knowledge: fused targets, or averaged weights."""
    if request.global_weights is not None:
        load_state(model, request.global_weights)
        return float("nan")
    fused = request.fused
    if fused is None or len(fused.anchor_indices) == 0:
        return float("nan")
    # Under DP the CE-on-private-data term would be an unaccounted private step: distil on
    # the public anchors only (post-processing); private records are seen by DP-SGD alone.
    distill_cfg = replace(cfg.distill, ce_weight=0.0) if cfg.dp else cfg.distill
    anchors = data.transfer.x[fused.anchor_indices.astype(np.int64)]
    targets = fused.targets.astype(np.float32)
    swing = cfg.swing
    if swing is not None and cfg.swing_receive:
        targets = swing_targets(
            targets,
            _privacy_likelihood(cfg, model, anchors, client),
            swing,
            seed=phase_seed(cfg, pid, fused.round, "swing-receive"),
        )
    return distil(
        model,
        anchors,
        targets,
        client.train.x,
        client.train.y,
        distill_cfg=distill_cfg,
        cfg=cfg.optimiser,
        seed=phase_seed(cfg, pid, fused.round, "distill"),
    )


def _evaluate(
    cfg: RunConfig,
    pid: int,
    data: FederatedData,
    client: ClientData,
    model: nn.Module,
    evaluated_round: int,
    distill_loss: float,
) -> EvalReport:
    local_acc, local_loss = evaluate(model, client.test.x, client.test.y)
    global_acc, global_loss = evaluate(model, data.global_test.x, data.global_test.y)
    return EvalReport(
        evaluated_round=evaluated_round,
        partition_id=pid,
        local_accuracy=local_acc,
        local_loss=local_loss,
        local_test_examples=len(client.test),
        global_accuracy=global_acc,
        global_loss=global_loss,
        distill_loss=distill_loss,
        model=cfg.model_for(pid),
    )


def _release(
    cfg: RunConfig,
    pid: int,
    data: FederatedData,
    client: ClientData,
    request: KnowledgeRequest,
    model: nn.Module,
    *,
    train: bool,
) -> tuple[np.ndarray | None, ModelWeights | None]:
    if not train:
        return None, None
    strategy = make_fusion(cfg.strategy, **cfg.fusion_params())
    if strategy.weight_averaging:
        return None, model_state(model)
    if not strategy.exchanges_knowledge or len(request.anchor_indices) == 0:
        return None, None
    anchors = data.transfer.x[request.anchor_indices.astype(np.int64)]
    swing = cfg.swing
    if swing is None:
        return soft_labels(model, anchors, temperature=cfg.distill_temperature), None
    likelihood = _privacy_likelihood(cfg, model, anchors, client)
    # The per-sample temperatures are used here and discarded: they never leave the node.
    released = swing_release(
        predict_logits(model, anchors),
        likelihood,
        swing,
        seed=phase_seed(cfg, pid, request.round, "swing"),
    )
    return released, None


def _privacy_likelihood(
    cfg: RunConfig, model: nn.Module, anchors: np.ndarray, client: ClientData
) -> np.ndarray:
    """p_i of each anchor from the configured scorer (all zeros without one)."""
    if not cfg.swing_scorer:
        return np.zeros(len(anchors))
    return make_scorer(cfg.swing_scorer).score(model, anchors, client.train.x)
