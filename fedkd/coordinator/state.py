"""What a checkpoint carries of the coordinator, by node name, and when it may not resume."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from fedkd.fusion import Knowledge
from fedkd.interrupt import RunFailed
from fedkd.privacy.accounting import History
from fedkd.wire.types import FusedKnowledge, NodeFingerprint


class ResumeRefused(RunFailed):
    """A checkpoint that must not be carried on: a node is not what it was."""


@dataclass(frozen=True)
class CoordinatorState:
    """What the coordinator carries from one round to the next, by node name.

    Flower node ids are transport addresses that change when a SuperNode restarts, so a
    checkpoint keeps everything under the names the nodes gave; ``Coordinator.resume``
    maps it back onto the ids of the nodes that are online again.
    """

    run_id: str
    completed_round: int
    anchor_rng: dict[str, object]
    shared: Knowledge | None
    fused: dict[str, FusedKnowledge]
    ledger_heads: dict[str, str]
    epsilon_recorded: dict[str, float]
    composed: dict[str, History]
    fingerprints: dict[str, NodeFingerprint] = field(default_factory=dict)
    """What each node said it was at the run's first handshake (keyed with its secret)."""


def fingerprint_changes(
    then: Mapping[str, NodeFingerprint], now: Mapping[str, NodeFingerprint], names: list[str]
) -> list[str]:
    """For each of ``names`` fingerprinted in ``then``: what changed by ``now`` (one line
    per node; empty when every node is what it was)."""
    changed = []
    for name in names:
        before, after = then.get(name), now.get(name)
        if before is None:
            continue
        if after is None:
            changed.append(f"{name} gives no fingerprint to check against it")
            continue
        parts = after.changes_from(before)
        if not (after.data and before.data):  # a node that could not read its data
            parts = [p for p in parts if p != "data"]
        if parts:
            changed.append(f"{name}'s {' and '.join(parts)} changed since the run started")
    return changed
