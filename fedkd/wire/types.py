"""Library-side payload types; the protobuf schema in ``proto/fedkd/v1`` mirrors them."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

import numpy as np

from fedkd.version_check import __version__


class WireDType(enum.Enum):
    """How a tensor travels: plain float32, float16, or int8 codes with a scale."""

    FLOAT32 = "fp32"
    FLOAT16 = "fp16"
    INT8 = "int8"

    @property
    def itemsize(self) -> int:
        return {"fp32": 4, "fp16": 2, "int8": 1}[self.value]


class StatusCode(enum.Enum):
    """Outcome of a node's part of a round."""

    OK = "ok"
    SKIPPED = "skipped"
    BUDGET_EXHAUSTED = "budget-exhausted"
    INVALID_REQUEST = "invalid-request"
    INTERNAL_ERROR = "internal-error"
    LEDGER_REFUSED = "ledger-refused"
    POLICY_REFUSED = "policy-refused"
    UNAVAILABLE = "unavailable"


class ReleaseKind(enum.Enum):
    """What the server asks a node to release after local training."""

    NOTHING = "nothing"
    SOFT_LABELS = "soft-labels"
    WEIGHTS = "weights"


@dataclass(frozen=True)
class Status:
    code: StatusCode = StatusCode.OK
    reason: str = ""


@dataclass(frozen=True)
class TransferSetRef:
    """Content identity of the public transfer set."""

    digest: str
    num_samples: int
    num_classes: int
    name: str = ""


NO_MECHANISM = "none"
DP_MECHANISM = "dp-sgd"
CONTROL_MECHANISM = "control: no guarantee"
"""An audit's positive control: DP-SGD sabotaged (noise off).  Its rows and replies keep
the σ, q and steps the sabotaged mechanism pretends to (what the audit tests against),
and claim no ε: the store's ε is unbounded from the first such row."""
CLAIMED_MECHANISMS = (NO_MECHANISM, DP_MECHANISM, CONTROL_MECHANISM)
"""Every mechanism a reply may state (a closed set); a server refuses any other."""


@dataclass(frozen=True)
class PrivacySpend:
    """Cumulative privacy spend of a node; ``mechanism == "none"`` means no formal guarantee."""

    mechanism: str = "none"
    epsilon: float = 0.0
    delta: float = 0.0
    accountant: str = ""
    noise_multiplier: float = 0.0
    sample_rate: float = 0.0
    steps: int = 0
    ledger_head: str = ""
    unbounded_since_row: int = 0
    release_steps: int = 0


@dataclass(frozen=True)
class EvalReport:
    """A node's evaluation after distilling the targets of ``evaluated_round``."""

    evaluated_round: int
    partition_id: int
    local_accuracy: float
    local_loss: float
    local_test_examples: int
    global_accuracy: float
    global_loss: float
    train_loss: float = float("nan")
    distill_loss: float = float("nan")
    phase_seconds: dict[str, float] = field(default_factory=dict)
    model: str = ""


ModelWeights = dict[str, np.ndarray]


@dataclass(frozen=True)
class NodeFingerprint:
    """A node's configuration, model and data, each keyed with the node's own secret."""

    config: str = ""
    model: str = ""
    data: str = ""

    def changes_from(self, earlier: NodeFingerprint) -> list[str]:
        """What differs from ``earlier`` ("configuration", "model", "data")."""
        parts = (("configuration", "config"), ("model", "model"), ("data", "data"))
        return [word for word, name in parts if getattr(self, name) != getattr(earlier, name)]


@dataclass(frozen=True)
class FusedKnowledge:
    """Personalised targets for one node on the anchors of ``round``."""

    run_id: str
    round: int
    transfer_set: TransferSetRef
    anchor_indices: np.ndarray  # uint32 (T,)
    targets: np.ndarray  # float32 (T, C)
    strategy: str
    dtype: WireDType = WireDType.FLOAT32


@dataclass(frozen=True)
class KnowledgeRequest:
    """Server → node for one round."""

    run_id: str
    round: int
    transfer_set: TransferSetRef
    anchor_indices: np.ndarray  # uint32 (T,)
    fused: FusedKnowledge | None = None
    reply_dtype: WireDType = WireDType.FLOAT32
    global_weights: ModelWeights | None = None
    ledger_head: str = ""
    release: ReleaseKind = ReleaseKind.SOFT_LABELS
    software_version: str = __version__


@dataclass(frozen=True)
class KnowledgeReply:
    """Node → server for one round: soft labels on the requested anchors."""

    run_id: str
    round: int
    node_id: int
    transfer_set: TransferSetRef
    soft_labels: np.ndarray | None  # float32 (T, C) after dequantisation
    num_examples: int
    privacy: PrivacySpend = field(default_factory=PrivacySpend)
    status: Status = field(default_factory=Status)
    dtype: WireDType = WireDType.FLOAT32
    weights: ModelWeights | None = None
    eval: EvalReport | None = None
    node_name: str = ""
    software_version: str = __version__
    fingerprint: NodeFingerprint | None = None
