"""What a node's privacy machinery decides for one message, kept apart from the round loop.

Everything here works on the node's :class:`~fedkd.privacy.policy.EffectivePrivacy` (the
run's request bounded by the node's own policy), never on the server's run config.

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

from fedkd.privacy.accounting import Budget, DPSteps, History, calibrate_after
from fedkd.privacy.accounting import epsilon as epsilon_of
from fedkd.privacy.ledger import Release
from fedkd.privacy.policy import EffectivePrivacy, PolicyRefusal
from fedkd.privacy.sampling import sample_rate, steps_per_epoch
from fedkd.wire.types import CONTROL_MECHANISM as CONTROL_MECHANISM
from fedkd.wire.types import DP_MECHANISM as DP_MECHANISM
from fedkd.wire.types import KnowledgeReply, PrivacySpend

FRESH_RANDOMNESS = "ChaCha20 CSPRNG keyed with 256 fresh OS bits per message"
REPRODUCIBLE_RANDOMNESS = (
    "reproducible (seeded from the run seed): ε not valid against anyone who knows the seed"
)


@dataclass(frozen=True)
class PrivacyPlan:
    """A node's DP-SGD settings for the run: σ, q, and one round's planned steps."""

    noise_multiplier: float
    sample_rate: float
    steps_per_round: int
    budget: Budget | None
    mechanism_records: int = 0
    """The record count q and the gradient average come from (the nominal one if stated)."""

    @property
    def round_steps(self) -> DPSteps:
        return DPSteps(self.noise_multiplier, self.sample_rate, self.steps_per_round)


@dataclass(frozen=True)
class TrainingPlan:
    """The run's planned private work per node: rounds × local epochs at a batch size."""

    num_rounds: int
    local_epochs: int
    batch_size: int


@functools.lru_cache(maxsize=64)
def plan_for(
    privacy: EffectivePrivacy,
    training: TrainingPlan,
    num_records: int,
    *,
    history: History = (),
    remaining_rounds: int | None = None,
) -> PrivacyPlan:
    """σ and q for this node: the mechanism comes from public values and the ledger only.

    q and steps come from the policy's nominal record count (the actual ``num_records``
    only when none is stated); σ is the fixed one asked for, or calibrated so that the
    store's ``history`` plus the ``remaining_rounds`` of planned work (all of the run's
    rounds by default) stay within the budget.

    Raises
    ------
    PolicyRefusal
        σ is below the policy's minimum noise multiplier.
    BudgetSpentError
        The history leaves no room for the remaining plan under the budget.
    """
    records = privacy.policy.nominal_records or num_records
    rate = sample_rate(records, training.batch_size)
    per_round = training.local_epochs * steps_per_epoch(records, training.batch_size)
    rounds = training.num_rounds if remaining_rounds is None else remaining_rounds
    budget = (
        Budget(epsilon=privacy.budget, delta=privacy.delta, accountant=privacy.accountant)
        if math.isfinite(privacy.budget)
        else None
    )
    if not privacy.calibrates:
        sigma = privacy.noise_multiplier
    elif budget is not None:
        sigma = calibrate_after(
            history,
            target_epsilon=budget.epsilon,
            target_delta=privacy.delta,
            sample_rate=rate,
            steps=max(1, rounds * per_round),
            accountant=privacy.accountant,
        )
    else:
        raise ValueError("DP-SGD needs a target ε (budget) or a fixed noise multiplier")
    if sigma < privacy.min_noise_multiplier:
        raise PolicyRefusal(
            f"σ = {sigma:.4g} for this run is below the node's minimum "
            f"{privacy.min_noise_multiplier:g}"
        )
    return PrivacyPlan(sigma, rate, per_round, budget, records)


def reporting_plan(history: History) -> PrivacyPlan | None:
    """σ and q to report on a message that trains nothing (the store's last DP steps)."""
    if not history:
        return None
    last = history[-1]
    return PrivacyPlan(last.noise_multiplier, last.sample_rate, 0, None)


def claims_dp(privacy: EffectivePrivacy) -> bool:
    """Whether releases are post-processing of the DP model only (so ε is reported).

    A swing scorer that reads private records breaks that: the release then depends on
    private data outside DP-SGD, and no ε may be claimed for it.
    """
    if not privacy.dp:
        return False
    from fedkd.privacy.scorers import make_scorer

    scorer = privacy.swing_scorer
    return not (scorer and make_scorer(scorer).reads_private_records)


def spend_after(
    privacy: EffectivePrivacy,
    history: History,
    plan: PrivacyPlan | None,
    *,
    unbounded_since: int | None = None,
    control: bool = False,
) -> PrivacySpend:
    """The cumulative spend to report; ``mechanism == "none"`` when no ε may be claimed
    (no DP, a scorer that read private records, or a store already unbounded), and
    :data:`CONTROL_MECHANISM` with ε = ∞ for an audit's positive control."""
    if control:
        total = sum(h.steps for h in history)
        return PrivacySpend(
            mechanism=CONTROL_MECHANISM,
            epsilon=math.inf,
            delta=privacy.delta,
            accountant=privacy.accountant,
            noise_multiplier=plan.noise_multiplier if plan else 0.0,
            sample_rate=plan.sample_rate if plan else 0.0,
            steps=total,
            unbounded_since_row=unbounded_since or 0,
        )
    if unbounded_since is not None:
        return PrivacySpend(mechanism="none", unbounded_since_row=unbounded_since)
    if plan is None or not claims_dp(privacy):
        return PrivacySpend(mechanism="none")
    total = sum(h.steps for h in history)
    return PrivacySpend(
        mechanism=DP_MECHANISM,
        epsilon=epsilon_of(history, delta=privacy.delta, accountant=privacy.accountant),
        delta=privacy.delta,
        accountant=privacy.accountant,
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
    if reply.fingerprint is not None:
        sent.append("fingerprint")
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
    privacy: EffectivePrivacy,
    reply: KnowledgeReply,
    *,
    dataset_digest: str,
    transfer_digest: str,
    taken: DPSteps | None,
    reproducible: bool = False,
) -> Release:
    """The ledger row for ``reply``; ``taken`` is this message's DP steps (None: none)."""
    claims = reply.privacy.mechanism == DP_MECHANISM
    control = reply.privacy.mechanism == CONTROL_MECHANISM
    mechanism = "dp-sgd-unclaimed" if privacy.dp else "none"
    return Release(
        run_id=reply.run_id,
        round=reply.round,
        node_id=reply.node_id,
        dataset_digest=dataset_digest,
        transfer_digest=transfer_digest,
        mechanism=reply.privacy.mechanism if claims or control else mechanism,
        accountant=privacy.accountant if privacy.dp else "",
        noise_multiplier=taken.noise_multiplier if taken else 0.0,
        sample_rate=taken.sample_rate if taken else 0.0,
        steps=taken.steps if taken else 0,
        epsilon=reply.privacy.epsilon if claims else None,
        delta=privacy.delta if privacy.dp else 0.0,
        payload_sha256=payload_sha256(reply),
        fields_sent=fields_sent(reply),
        policy=privacy.policy.to_json(),
        randomness=REPRODUCIBLE_RANDOMNESS if reproducible else FRESH_RANDOMNESS,
    )
