"""What a node's privacy machinery decides for one message, kept apart from the round loop.

* :func:`plan_for` fixes σ for the whole federation (calibrated once for the total planned
  work, or given) and a round's DP steps;
* :func:`spend_after` turns the ledger's history into the cumulative ``PrivacySpend``;
* :func:`release_record` is the ledger row for a reply, listing every field it sends.
"""

from __future__ import annotations

import functools
import hashlib
import math
from dataclasses import dataclass

import numpy as np

from fedkd.config import RunConfig
from fedkd.data.federated import DataSpec, build_federated_data
from fedkd.data.transfer import content_digest
from fedkd.privacy.accounting import Budget, DPSteps, History, calibrate_noise_multiplier
from fedkd.privacy.accounting import epsilon as epsilon_of
from fedkd.privacy.dp_sgd import sample_rate, steps_per_epoch
from fedkd.privacy.ledger import Release
from fedkd.wire.types import KnowledgeReply, PrivacySpend

DP_MECHANISM = "dp-sgd"


@dataclass(frozen=True)
class PrivacyPlan:
    """A node's DP-SGD settings for the run: σ, q, and one round's planned steps."""

    noise_multiplier: float
    sample_rate: float
    steps_per_round: int
    budget: Budget | None

    @property
    def round_steps(self) -> DPSteps:
        return DPSteps(self.noise_multiplier, self.sample_rate, self.steps_per_round)


@functools.lru_cache(maxsize=64)
def plan_for(cfg: RunConfig, num_records: int) -> PrivacyPlan:
    """σ for ``num_records`` private records: calibrated for rounds × epochs × steps."""
    rate = sample_rate(num_records, cfg.batch_size)
    per_round = cfg.local_epochs * steps_per_epoch(num_records, cfg.batch_size)
    budget = (
        Budget(epsilon=cfg.dp_target_epsilon, delta=cfg.dp_delta, accountant=cfg.dp_accountant)
        if cfg.dp_target_epsilon > 0
        else None
    )
    if cfg.dp_noise_multiplier > 0:
        sigma = cfg.dp_noise_multiplier
    else:
        sigma = calibrate_noise_multiplier(
            target_epsilon=cfg.dp_target_epsilon,
            target_delta=cfg.dp_delta,
            sample_rate=rate,
            steps=max(1, cfg.num_server_rounds * per_round),
            accountant=cfg.dp_accountant,
        )
    return PrivacyPlan(sigma, rate, per_round, budget)


@functools.lru_cache(maxsize=64)
def private_digest(spec: DataSpec, partition_id: int) -> str:
    """Content digest of a node's private records: the key its budget is kept under.

    Cached per process: hashing an MNIST-sized client is tens of milliseconds per message.
    """
    train = build_federated_data(spec).clients[partition_id].train
    return content_digest(train.x, train.y)


def spend_after(cfg: RunConfig, history: History, plan: PrivacyPlan | None) -> PrivacySpend:
    """The cumulative spend to report; ``mechanism == "none"`` when no ε may be claimed."""
    if plan is None or not cfg.claims_dp:
        return PrivacySpend(mechanism="none")
    total = sum(h.steps for h in history)
    return PrivacySpend(
        mechanism=DP_MECHANISM,
        epsilon=epsilon_of(history, delta=cfg.dp_delta, accountant=cfg.dp_accountant),
        delta=cfg.dp_delta,
        accountant=cfg.dp_accountant,
        noise_multiplier=plan.noise_multiplier,
        sample_rate=plan.sample_rate,
        steps=total,
    )


def fields_sent(reply: KnowledgeReply) -> tuple[str, ...]:
    """Every field of ``reply`` that carries information, as the ledger lists them."""
    sent = ["run_id", "round", "node_id", "transfer_set", "status", "privacy"]
    if reply.soft_labels is not None:
        sent.append("soft_labels")
    if reply.weights is not None:
        sent.append("weights")
    if reply.num_examples:
        sent.append("num_examples")
    if reply.eval is not None:
        report = reply.eval
        sent += ["eval.evaluated_round", "eval.partition_id", "eval.model"]
        for name in (
            "local_accuracy",
            "local_loss",
            "global_accuracy",
            "global_loss",
            "train_loss",
            "distill_loss",
        ):
            if math.isfinite(getattr(report, name)):
                sent.append(f"eval.{name}")
        if report.local_test_examples:
            sent.append("eval.local_test_examples")
        if report.phase_seconds:
            sent.append("eval.phase_seconds")
    return tuple(sent)


def payload_sha256(reply: KnowledgeReply) -> str:
    """SHA-256 over what the reply releases about the model (soft labels or weights)."""
    h = hashlib.sha256()
    if reply.soft_labels is not None:
        h.update(np.ascontiguousarray(reply.soft_labels).tobytes())
    for name, array in sorted((reply.weights or {}).items()):
        h.update(name.encode())
        h.update(np.ascontiguousarray(array).tobytes())
    return h.hexdigest()


def release_record(
    cfg: RunConfig,
    reply: KnowledgeReply,
    *,
    dataset_digest: str,
    transfer_digest: str,
    taken: DPSteps | None,
) -> Release:
    """The ledger row for ``reply``; ``taken`` is this message's DP steps (None: none)."""
    claims = reply.privacy.mechanism != "none"
    return Release(
        run_id=reply.run_id,
        round=reply.round,
        node_id=reply.node_id,
        dataset_digest=dataset_digest,
        transfer_digest=transfer_digest,
        mechanism=reply.privacy.mechanism if claims else ("dp-sgd-unclaimed" if cfg.dp else "none"),
        accountant=cfg.dp_accountant if cfg.dp else "",
        noise_multiplier=taken.noise_multiplier if taken else 0.0,
        sample_rate=taken.sample_rate if taken else 0.0,
        steps=taken.steps if taken else 0,
        epsilon=reply.privacy.epsilon if claims else None,
        delta=cfg.dp_delta if cfg.dp else 0.0,
        payload_sha256=payload_sha256(reply),
        fields_sent=fields_sent(reply),
    )
