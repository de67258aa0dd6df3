"""The server's declared reply rules, and the checks of those it can judge from one reply.

Every reply the server reads passes :data:`REPLY_RULES` in order, each row naming the
field it reads and the requirement, in terms of what the server itself asked for (its
record of the request), never of what the reply says about itself.  Each failure raises
:class:`PayloadError` carrying the row's name, which the server records with the node's
exclusion; the fuzz suite enumerates this table, so a new field cannot skip it.

Rows of stage ``decode`` run while the bytes are parsed (:mod:`fedkd.wire.serde`:
shapes before any allocation), ``reply`` here, ``claim`` in the coordinator (they need
the node's earlier rounds), ``fusion`` in the strategy.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np

from fedkd.wire.errors import PayloadError
from fedkd.wire.tolerance import row_sum_tolerance
from fedkd.wire.types import (
    CLAIMED_MECHANISMS,
    NO_MECHANISM,
    EvalReport,
    KnowledgeReply,
    StatusCode,
    WireDType,
)

MAX_REPORTED_RECORDS = 10**9
"""A node reporting more private records than this is not believed."""
MAX_NAME_LENGTH = 64
UNNAMED_PREFIX = "flower-node-"
"""How the server calls a node that gave no name it keeps; no node may give one like it."""
MAX_WEIGHT_MAGNITUDE = 1e6
"""No trained parameter is this large; a reply that sends one is poisoning, and an
average with 3e38 in it overflows the next round's arithmetic."""

Stage = Literal["decode", "reply", "claim", "fusion"]


@dataclass(frozen=True)
class ReplyRule:
    """One row of the declared table: a reply field and what the server requires of it."""

    name: str
    stage: Stage
    field: str
    requirement: str


REPLY_RULES: tuple[ReplyRule, ...] = (
    ReplyRule("payload.size", "decode", "bytes", "at most max-payload-bytes, before parsing"),
    ReplyRule(
        "payload.signature",
        "decode",
        "signed envelope",
        "signed by the registered key of the name it carries, the name this node gave",
    ),
    ReplyRule(
        "payload.decode",
        "decode",
        "bytes",
        "protobuf of this schema version; known status and dtype codes; a privacy spend",
    ),
    ReplyRule(
        "tensor.shape",
        "decode",
        "soft_labels.shape, weights[*].shape",
        "soft labels exactly (anchors asked, classes); weights only when asked, with the "
        "names and shapes of the model the server sent (round 1: every dimension >= 1)",
    ),
    ReplyRule("identity.run", "reply", "run_id", "the run's id"),
    ReplyRule("identity.round", "reply", "round", "the round the request was for"),
    ReplyRule(
        "identity.node",
        "reply",
        "node_id, node_name",
        "the node the request went to, under the name it gave at the handshake; a name is "
        f"1-{MAX_NAME_LENGTH} printable characters, no path separator, not . or .., not "
        f"{UNNAMED_PREFIX}*",
    ),
    ReplyRule("identity.transfer-set", "reply", "transfer_set.digest", "the run's transfer set"),
    ReplyRule("software.version", "reply", "software_version", "a supported fedkd version"),
    ReplyRule(
        "count.records",
        "reply",
        "num_examples",
        f"0 <= n <= {MAX_REPORTED_RECORDS} (fusion weighs it only outside DP, capped)",
    ),
    ReplyRule(
        "eval.values",
        "reply",
        "eval.*_accuracy, eval.*_loss, eval.phase_seconds, eval.local_test_examples",
        "accuracies in [0, 1], losses and seconds finite and >= 0 (NaN: not reported)",
    ),
    ReplyRule(
        "eval.round",
        "reply",
        "eval.evaluated_round",
        "the round before the request's (what the node distilled)",
    ),
    ReplyRule(
        "eval.partition",
        "reply",
        "eval.partition_id",
        "the partition the simulation's roster gives the node's name (unchecked, and not "
        "recorded, without a roster)",
    ),
    ReplyRule(
        "soft-labels.values",
        "reply",
        "soft_labels, dtype",
        "the run's wire dtype; finite, >= 0, rows summing to 1 within the dtype's rounding",
    ),
    ReplyRule(
        "payload.missing",
        "reply",
        "soft_labels, weights",
        "status OK carries what the request asked for",
    ),
    ReplyRule(
        "weights.values",
        "reply",
        "weights[*]",
        f"finite, |w| <= {MAX_WEIGHT_MAGNITUDE:g}",
    ),
    ReplyRule(
        "claim.mechanism",
        "reply",
        "privacy.mechanism",
        "one of the known mechanisms; dp-sgd (or an honest unbounded store) when the run "
        "requires DP",
    ),
    ReplyRule(
        "claim.parameters",
        "claim",
        "privacy.delta, accountant, noise_multiplier, sample_rate",
        "δ and accountant the run's; σ finite > 0; q = 1/k for an integer k",
    ),
    ReplyRule(
        "claim.steps",
        "claim",
        "privacy.release_steps",
        "local-epochs × 1/q in a round the node trained in, 0 in any other",
    ),
    ReplyRule(
        "claim.epsilon",
        "claim",
        "privacy.epsilon",
        "finite, never below the ε recorded for the node before",
    ),
    ReplyRule(
        "claim.composition",
        "claim",
        "privacy.epsilon",
        "at least the composition of every DP release this server recorded for the node",
    ),
    ReplyRule(
        "fusion.model",
        "fusion",
        "weights",
        "the names and shapes of the model most of the round's nodes sent (round 1)",
    ),
    ReplyRule(
        "fusion.outlier",
        "fusion",
        "weights",
        "an update whose norm is within the round's robust spread (weight averaging)",
    ),
)
RULES = {rule.name: rule for rule in REPLY_RULES}


def name_problem(name: str) -> str:
    """Why ``name`` cannot name a node ("" when it can): names become file names (the
    audit's release files, the registry), log lines and summary keys."""
    if not 1 <= len(name) <= MAX_NAME_LENGTH or not name.isprintable():
        return (
            f"node name {name[:MAX_NAME_LENGTH]!r} is not 1-{MAX_NAME_LENGTH} printable characters"
        )
    if any(c in name for c in "/\\") or name in {".", ".."}:
        return f"node name {name!r} is not a plain file name"
    if name.startswith(UNNAMED_PREFIX):
        return f"node name {name!r} takes the server's prefix for unnamed nodes"
    return ""


def reject(rule: str, reason: str) -> PayloadError:
    """The error for a failed row of :data:`REPLY_RULES` (an undeclared rule is a bug)."""
    if rule not in RULES:
        raise KeyError(f"{rule!r} is not a declared reply rule")
    return PayloadError(reason, rule=rule)


@dataclass(frozen=True)
class ReplyExpectation:
    """What the server asked for in a round, from its own records."""

    run_id: str
    round: int
    node_id: int
    transfer_digest: str
    num_anchors: int
    num_classes: int
    allowed_dtypes: frozenset[WireDType] = frozenset(WireDType)
    require_privacy: bool = False
    expect_soft_labels: bool = True
    expect_weights: bool = False
    node_name: str | None = None
    """The name the node gave at the handshake (``None``: it gave none that was kept)."""
    names_of_others: frozenset[str] = frozenset()
    """Names other nodes hold: a node without one of its own may not reply under them."""
    partition_id: int | None = None
    """The node's partition in the simulation's roster (``None``: no roster, or a node
    without a name yet: then ``roster`` gives the partition of the name it replies under)."""
    roster: Mapping[str, int] | None = None


def validate_reply(reply: KnowledgeReply, expected: ReplyExpectation) -> None:
    """Raise :class:`PayloadError` unless ``reply`` answers exactly what was asked."""
    if reply.run_id != expected.run_id:
        raise reject("identity.run", f"run id {reply.run_id[:80]!r}, expected {expected.run_id!r}")
    if reply.round != expected.round:
        raise reject("identity.round", f"round {reply.round}, expected {expected.round}")
    if reply.node_id != expected.node_id:
        raise reject(
            "identity.node", f"claims node {reply.node_id}, sent by node {expected.node_id}"
        )
    if reply.node_name and name_problem(reply.node_name):
        raise reject("identity.node", name_problem(reply.node_name))
    if expected.node_name is not None and reply.node_name != expected.node_name:
        raise reject(
            "identity.node",
            f"names itself {reply.node_name[:80]!r}, but node {expected.node_id} is "
            f"{expected.node_name!r}",
        )
    if expected.node_name is None and reply.node_name in expected.names_of_others:
        raise reject(
            "identity.node",
            f"names itself {reply.node_name[:80]!r}, the name another node gave",
        )
    if reply.transfer_set.digest != expected.transfer_digest:
        raise reject(
            "identity.transfer-set",
            f"transfer-set digest {reply.transfer_set.digest[:80]!r}, "
            f"expected {expected.transfer_digest!r}",
        )
    if not 0 <= reply.num_examples <= MAX_REPORTED_RECORDS:
        raise reject(
            "count.records",
            f"reports {reply.num_examples} records (at most {MAX_REPORTED_RECORDS})",
        )
    if reply.eval is not None:
        _validate_eval(reply.eval, expected, reply.node_name)
    # Whatever the status says, anything the reply carries is checked before it is used.
    _validate_soft_labels(reply, expected)
    _validate_weights(reply, expected)
    _validate_mechanism(reply, expected)


def _validate_mechanism(reply: KnowledgeReply, expected: ReplyExpectation) -> None:
    mechanism = reply.privacy.mechanism
    if mechanism not in CLAIMED_MECHANISMS:
        raise reject("claim.mechanism", f"unknown privacy mechanism {mechanism[:40]!r}")
    unbounded = reply.privacy.unbounded_since_row > 0  # honest: no ε can be claimed
    if expected.require_privacy and mechanism == NO_MECHANISM and not unbounded:
        raise reject("claim.mechanism", "run requires DP but the reply claims no privacy spend")


def _validate_eval(report: EvalReport, expected: ReplyExpectation, node_name: str) -> None:
    """Client-reported metrics: accuracies in [0, 1], losses ≥ 0 (NaN: not reported);
    what it evaluated and for which partition, as the server's records say."""
    for name in ("local_accuracy", "global_accuracy"):
        value = getattr(report, name)
        if not math.isnan(value) and not 0.0 <= value <= 1.0:
            raise reject("eval.values", f"eval {name} {value!r} outside [0, 1]")
    for name in ("local_loss", "global_loss", "train_loss", "distill_loss"):
        value = getattr(report, name)
        if not math.isnan(value) and not (math.isfinite(value) and value >= 0):
            raise reject("eval.values", f"eval {name} {value!r} is not a finite nonnegative loss")
    if not 0 <= report.local_test_examples <= MAX_REPORTED_RECORDS:
        raise reject(
            "eval.values", f"eval local_test_examples {report.local_test_examples} implausible"
        )
    if any(not math.isfinite(v) or v < 0 for v in report.phase_seconds.values()):
        raise reject("eval.values", "eval phase_seconds must be finite and nonnegative")
    if report.evaluated_round != expected.round - 1:
        raise reject(
            "eval.round",
            f"eval of round {report.evaluated_round}, but round {expected.round}'s request "
            f"evaluates round {expected.round - 1}",
        )
    holder: str | None = expected.node_name
    partition = expected.partition_id
    if holder is None and expected.roster is not None:
        holder, partition = node_name, expected.roster.get(node_name)
    if partition is not None and report.partition_id != partition:
        raise reject(
            "eval.partition",
            f"eval for partition {report.partition_id}, but {holder!r} is partition {partition}",
        )


def _validate_weights(reply: KnowledgeReply, expected: ReplyExpectation) -> None:
    if reply.weights is None:
        if expected.expect_weights and reply.status.code is StatusCode.OK:
            raise reject("payload.missing", "asked for weights but the reply carries none")
        return
    for name, array in reply.weights.items():
        if not np.all(np.isfinite(array)):
            raise reject(
                "weights.values", f"weights tensor {name[:40]!r} contains non-finite values"
            )
        peak = float(np.max(np.abs(array))) if array.size else 0.0
        if peak > MAX_WEIGHT_MAGNITUDE:
            raise reject(
                "weights.values",
                f"weights tensor {name[:40]!r} holds {peak:.3g} (at most {MAX_WEIGHT_MAGNITUDE:g})",
            )


def normalised_soft_labels(reply: KnowledgeReply) -> np.ndarray | None:
    """The validated soft labels with every row renormalised to sum to 1 exactly."""
    labels = reply.soft_labels
    if labels is None:
        return None
    sums = labels.sum(axis=1, keepdims=True)
    out: np.ndarray = (labels / sums).astype(np.float32)
    return out


def _validate_soft_labels(reply: KnowledgeReply, expected: ReplyExpectation) -> None:
    labels = reply.soft_labels
    if labels is None:
        if expected.expect_soft_labels and reply.status.code is StatusCode.OK:
            raise reject("payload.missing", "asked for soft labels but the reply carries none")
        return
    if reply.dtype not in expected.allowed_dtypes:
        allowed = sorted(d.value for d in expected.allowed_dtypes)
        raise reject(
            "soft-labels.values", f"dtype {reply.dtype.value}, the run asked for {allowed}"
        )
    want = (expected.num_anchors, expected.num_classes)
    if labels.shape != want:
        raise reject("tensor.shape", f"soft labels shape {labels.shape}, expected {want}")
    if not np.all(np.isfinite(labels)):
        bad = int(np.size(labels) - np.count_nonzero(np.isfinite(labels)))
        raise reject(
            "soft-labels.values", f"soft labels contain {bad} non-finite values (NaN or inf)"
        )
    if np.any(labels < 0):
        raise reject(
            "soft-labels.values",
            f"soft labels contain negative values (min {float(labels.min()):.3g})",
        )
    row_error = float(np.max(np.abs(labels.sum(axis=1) - 1.0))) if len(labels) else 0.0
    tolerance = row_sum_tolerance(reply.dtype, expected.num_classes)
    if row_error > tolerance:
        raise reject(
            "soft-labels.values",
            f"soft-label rows do not sum to 1 (max deviation {row_error:.3g}, "
            f"{reply.dtype.value} allows {tolerance:.3g})",
        )
