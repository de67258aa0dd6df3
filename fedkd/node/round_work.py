"""The four things a node does with its model in a round, each on one :class:`RoundWork`.

1. :func:`absorb` last round's knowledge: distil toward the fused targets on their anchors
   (+ CE on private data, without DP), or load the averaged weights;
2. :func:`evaluate`: personalised accuracy on the local test set, and on the public test set;
3. :func:`train` locally on the private records (DP-SGD when the node's privacy says so);
4. :func:`release` what the request asks for: soft labels on its anchors, weights, or nothing.

Every loop gets its randomness explicitly; nothing touches global random state.  What
touches private records through a privacy mechanism — DP-SGD's Poisson masks and noise,
swing noise — draws from a :class:`~fedkd.privacy.csprng.ChaCha20Stream` keyed with fresh
OS entropy per message and phase, unless the node itself runs in reproducible mode
(simulated data only).  The rest (non-DP training order, distillation on public anchors)
is seeded per (run seed, node index, round, phase), so a run without DP replays.
"""

from __future__ import annotations

import dataclasses
import zlib
from dataclasses import dataclass, replace

import numpy as np
from torch import nn

from fedkd.data.private import PrivateData
from fedkd.data.public import PublicData, global_test_subset
from fedkd.distill.loops import distil, predict_logits, soft_labels, train_local
from fedkd.distill.loops import evaluate as evaluate_model
from fedkd.node.model import load_state, model_state
from fedkd.node.protocol import RunProtocol
from fedkd.privacy.accounting import DPSteps
from fedkd.privacy.csprng import ChaCha20Stream
from fedkd.privacy.guard import PrivacyPlan
from fedkd.privacy.policy import EffectivePrivacy
from fedkd.privacy.recipe import dp_training
from fedkd.privacy.scorers import make_scorer
from fedkd.privacy.swing import swing_release, swing_targets
from fedkd.wire.types import EvalReport, KnowledgeRequest, ModelWeights, ReleaseKind


def phase_seed(run_seed: int, node_index: int, round_: int, phase: str) -> int:
    """A seed per (run seed, node, round, phase), stable across processes."""
    return zlib.crc32(f"{run_seed}/{node_index}/{round_}/{phase}".encode())


@dataclass(frozen=True)
class RoundWork:
    """What one message's work needs: the run's protocol, the node's data, model, privacy."""

    protocol: RunProtocol
    privacy: EffectivePrivacy
    public: PublicData
    private: PrivateData
    model: nn.Module
    node_index: int
    architecture: str
    reproducible: bool = False
    noise_off: bool = False
    """The audit's positive control only (NodeConfig.audit_control_noise_off)."""

    def seed(self, round_: int, phase: str) -> int:
        """A replayable seed for work whose randomness protects nothing."""
        return phase_seed(self.protocol.seed, self.node_index, round_, phase)

    def private_stream(self, round_: int, phase: str) -> ChaCha20Stream:
        """A privacy mechanism's randomness: 256 fresh bits of key (replayable only in a
        node's flagged reproducible mode)."""
        if self.reproducible:
            return ChaCha20Stream.reproducible(
                f"{self.protocol.seed}/{self.node_index}/{round_}/{phase}"
            )
        return ChaCha20Stream.fresh()


def absorb(work: RoundWork, request: KnowledgeRequest) -> float:
    """Take in last round's knowledge; returns the distillation loss (NaN: none)."""
    if request.global_weights is not None:
        load_state(work.model, request.global_weights)
        return float("nan")
    fused = request.fused
    if fused is None or len(fused.anchor_indices) == 0:
        return float("nan")
    # Under DP the CE-on-private-data term would be an unaccounted private step: distil on
    # the public anchors only (post-processing); private records are seen by DP-SGD alone.
    distill_cfg = work.protocol.distill
    if work.privacy.dp:
        distill_cfg = replace(distill_cfg, ce_weight=0.0)
    anchors = work.public.transfer.x[fused.anchor_indices.astype(np.int64)]
    targets = fused.targets.astype(np.float32)
    swing = work.protocol.swing
    if swing is not None and work.protocol.swing_receive:
        targets = swing_targets(
            targets,
            privacy_likelihood(work, anchors),
            swing,
            randomness=work.private_stream(fused.round, "swing-receive"),
        )
    return distil(
        work.model,
        anchors,
        targets,
        work.private.train.x,
        work.private.train.y,
        distill_cfg=distill_cfg,
        cfg=work.protocol.optimiser,
        seed=work.seed(fused.round, "distill"),
    )


def evaluate(work: RoundWork, evaluated_round: int, distill_loss: float) -> EvalReport:
    """The model on the local test set and on the public test set (nothing redacted yet)."""
    local_acc, local_loss = evaluate_model(work.model, work.private.test.x, work.private.test.y)
    public_test = global_test_subset(work.public.test, work.protocol.global_test_size)
    global_acc, global_loss = evaluate_model(work.model, public_test.x, public_test.y)
    return EvalReport(
        evaluated_round=evaluated_round,
        partition_id=work.node_index,
        local_accuracy=local_acc,
        local_loss=local_loss,
        local_test_examples=len(work.private.test),
        global_accuracy=global_acc,
        global_loss=global_loss,
        distill_loss=distill_loss,
        model=work.architecture,
    )


def train(work: RoundWork, round_: int, plan: PrivacyPlan | None) -> tuple[float, DPSteps | None]:
    """Local training; returns the mean loss and the DP steps taken (None without DP)."""
    records = work.private.train
    if plan is None:
        seed = work.seed(round_, "train")
        loss = train_local(
            work.model,
            records.x,
            records.y,
            epochs=work.protocol.local_epochs,
            cfg=work.protocol.optimiser,
            seed=seed,
        )
        return loss, None
    training = dp_training(work.protocol.private_training, plan.mechanism_records or len(records))
    if training.local_epochs == 0:
        return float("nan"), None
    # Opacus loads with the first private step: a node without DP never imports it.
    from fedkd.privacy.dp_sgd import train_private

    # An audit's positive control: noise all but removed.  The steps keep the nominal σ,
    # which its ledger rows and replies record under "control: no guarantee" (ε = ∞).
    actual_noise = NO_NOISE if work.noise_off else plan.noise_multiplier
    result = train_private(
        work.model,
        records.x,
        records.y,
        epochs=training.local_epochs,
        cfg=training.optimiser,
        noise_multiplier=actual_noise,
        max_grad_norm=work.privacy.max_grad_norm,
        grad_sample_mode=work.protocol.private_training.dp_grad_sample_mode or None,
        max_physical_batch_size=work.protocol.private_training.dp_physical_batch_size,
        randomness=work.private_stream(round_, "train"),
        nominal_records=plan.mechanism_records or None,
    )
    spent = result.spent
    if work.noise_off:
        spent = dataclasses.replace(spent, noise_multiplier=plan.noise_multiplier)
    return result.loss, spent


NO_NOISE = 1e-12
"""σ of the sabotaged mechanism (DP-SGD refuses σ = 0)."""


def release(
    work: RoundWork, request: KnowledgeRequest
) -> tuple[np.ndarray | None, ModelWeights | None]:
    """What ``request`` asks for: ``(soft labels, None)``, ``(None, weights)`` or neither."""
    if request.release is ReleaseKind.WEIGHTS:
        return None, model_state(work.model)
    if request.release is not ReleaseKind.SOFT_LABELS or len(request.anchor_indices) == 0:
        return None, None
    anchors = work.public.transfer.x[request.anchor_indices.astype(np.int64)]
    swing = work.protocol.swing
    if swing is None:
        return soft_labels(work.model, anchors, temperature=work.protocol.distill.temperature), None
    # The per-sample temperatures are used here and discarded: they never leave the node.
    released = swing_release(
        predict_logits(work.model, anchors),
        privacy_likelihood(work, anchors),
        swing,
        randomness=work.private_stream(request.round, "swing"),
    )
    return released, None


def privacy_likelihood(work: RoundWork, anchors: np.ndarray) -> np.ndarray:
    """p_i of each anchor from the run's swing scorer (all zeros without one)."""
    scorer = work.privacy.swing_scorer
    if not scorer:
        return np.zeros(len(anchors))
    return make_scorer(scorer).score(work.model, anchors, work.private.train.x)
