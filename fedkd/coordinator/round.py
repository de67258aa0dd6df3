"""One round as the server records it: what came back from each node, and what became of it."""

from __future__ import annotations

from dataclasses import dataclass, field

from fedkd.wire.types import EvalReport

BOUNDARY_RULE = "server.boundary"
"""The rule recorded when judging a reply failed in a way no declared rule foresaw: the
node is excluded, the round goes on (a bug to fix, never a crash)."""


@dataclass(frozen=True)
class Delivery:
    """What came back from one node: bytes, or why nothing usable did."""

    node_id: int
    payload: bytes | None = None
    transport_error: str = ""
    flower_bytes: int = 0


@dataclass
class NodeRound:
    """One node's part in one round, as the results record it."""

    node_id: int
    round: int
    bytes_down: int = 0
    bytes_up: int = 0
    flower_bytes_down: int = 0
    flower_bytes_up: int = 0
    status: str = "pending"
    reason: str = ""
    rule: str = ""
    """The declared reply rule that excluded the node (:data:`fedkd.wire.validate.REPLY_RULES`),
    or :data:`BOUNDARY_RULE` when judging it failed in a way no rule foresaw."""
    privacy_epsilon: float | None = None


@dataclass
class RoundOutcome:
    round: int
    nodes: dict[int, NodeRound] = field(default_factory=dict)
    evals: list[EvalReport] = field(default_factory=list)
    eval_nodes: list[int] = field(default_factory=list)
    seconds: float = 0.0
    """The round's wall time at the server: requests sent to replies judged and fused."""
    fusion_seconds: float = 0.0
    """Of which fusing the valid contributions (the strategy's own work)."""

    @property
    def accepted(self) -> list[int]:
        return [n for n, r in self.nodes.items() if r.status == "ok"]

    @property
    def excluded(self) -> dict[int, str]:
        return {n: r.reason for n, r in self.nodes.items() if r.status != "ok"}


def unforeseen(exc: BaseException) -> str:
    """The reason recorded when judging a reply failed outside every declared rule."""
    return f"the server could not judge this reply ({type(exc).__name__}: {str(exc)[:200]})"
