"""The knowledge a run keeps between rounds: each node's fused targets and the shared model.

Valid contributions go to the strategy; what it returns is kept here until it is
delivered — per-node targets in the next round only, a shared model (e.g. FedAvg's global
weights) until a later round replaces it, or until most nodes prove it broken.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Protocol

import numpy as np

from fedkd.coordinator.round import RoundOutcome
from fedkd.fusion import Contribution, Instruction, Knowledge, Release, Strategy
from fedkd.fusion.sharpen import sharpen
from fedkd.wire.types import FusedKnowledge, KnowledgeReply, StatusCode, TransferSetRef, WireDType
from fedkd.wire.validate import normalised_soft_labels

log = logging.getLogger("fedkd.coordinator")


class ReleaseObserver(Protocol):
    """Told of every soft-label release the server accepts, before any strategy uses it.

    The coordinator records nothing for the audit itself: a run that keeps its releases
    (``record-releases``) attaches an observer, and the audit reads what it kept.
    """

    def record(
        self, node: str, round_: int, anchors: np.ndarray, soft_labels: np.ndarray
    ) -> None: ...


class KnowledgeKeeper:
    """Fuses each round's valid contributions and keeps the result for delivery."""

    def __init__(
        self,
        strategy: Strategy,
        *,
        sharpening: float,
        ref: TransferSetRef,
        dtype: WireDType,
        weigh_by_records: bool,
        observer: ReleaseObserver | None = None,
    ) -> None:
        self.strategy = strategy
        self.sharpening = sharpening
        """Every soft-label target is sharpened at this temperature (1: as fused)."""
        self.ref = ref
        self.dtype = dtype
        self.weigh_by_records = weigh_by_records
        """False under DP: a record count is private and a claim, never a weight."""
        self.observer = observer
        self.fused: dict[int, FusedKnowledge] = {}
        self.shared: Knowledge | None = None
        self.shared_before: Knowledge | None = None
        self.shared_from: tuple[int, list[str]] | None = None
        """The round the standing shared model was made in, and from whose replies."""

    @property
    def shared_weights(self) -> dict[str, np.ndarray] | None:
        return self.shared.weights if self.shared is not None else None

    def aggregate(
        self,
        run_id: str,
        round_: int,
        valid: dict[int, KnowledgeReply],
        instruction: Callable[[int], Instruction],
        name_of: Callable[[int], str],
    ) -> dict[int, tuple[str, str]]:
        """Fuse the valid contributions; returns the nodes the strategy excluded: the rule
        and the reason.  ``instruction`` and ``name_of`` give each node's ask and name."""
        # Only replies that say they did the round's work contribute (a SKIPPED or refusal
        # reply carrying a payload is checked, never fused); rows arrive renormalised.
        contributions = {
            node_id: Contribution(
                soft_labels=normalised_soft_labels(reply),
                weights=reply.weights,
                num_examples=reply.num_examples if self.weigh_by_records else 0,
            )
            for node_id, reply in valid.items()
            if instruction(node_id).release is not Release.NOTHING
            and reply.status.code is StatusCode.OK
        }
        if self.observer is not None:
            for node_id, contribution in contributions.items():
                if contribution.soft_labels is not None:
                    anchors = instruction(node_id).anchor_indices
                    self.observer.record(
                        name_of(node_id), round_, anchors, contribution.soft_labels
                    )
        if not contributions:
            if not valid:
                log.warning("round %d: no valid replies; nothing to aggregate", round_)
            return {}  # or nobody was asked for anything (e.g. ``local``)
        try:
            result = self.strategy.aggregate(round_, contributions)
        except Exception as exc:  # one round's failure must not end the run
            log.error("round %d: %s could not aggregate: %s", round_, self.strategy.name, exc)
            return {}
        if result.shared is not None:
            self.shared_before, self.shared = self.shared, result.shared
            fused = [n for n in contributions if n not in result.excluded]
            self.shared_from = (round_, sorted(name_of(n) for n in fused))
        for node_id, knowledge in result.per_node.items():
            if knowledge.targets is None:
                continue
            self.fused[node_id] = FusedKnowledge(
                run_id=run_id,
                round=round_,
                transfer_set=self.ref,
                anchor_indices=instruction(node_id).anchor_indices,
                targets=sharpen(knowledge.targets, self.sharpening),
                strategy=self.strategy.name,
                dtype=self.dtype,
            )
        return {
            node_id: (result.rules.get(node_id, "fusion.model"), reason)
            for node_id, reason in result.excluded.items()
        }

    def trace_non_finite(
        self, round_: int, outcome: RoundOutcome, instruction: Callable[[int], Instruction]
    ) -> None:
        """Most nodes returning non-finite weights from the global model of the round before
        is that model's fault, not theirs: it is rolled back, and their exclusions say so."""
        asked = [
            n
            for n in outcome.nodes
            if instruction(n).release is Release.WEIGHTS and outcome.nodes[n].status != "missing"
        ]
        broken = [
            n
            for n in asked
            if outcome.nodes[n].rule == "weights.values" and "non-finite" in outcome.nodes[n].reason
        ]
        if not broken or 2 * len(broken) <= len(asked) or self.shared_from is None:
            return
        made_in, contributors = self.shared_from
        blame = (
            f"{len(broken)} of {len(asked)} nodes trained the global model of round {made_in} "
            f"(averaged from {', '.join(contributors)}) into non-finite weights: that model "
            f"is rolled back to the one before it"
        )
        log.error("round %d: %s", round_, blame)
        self.shared, self.shared_before = self.shared_before, None
        self.shared_from = None
        for node_id in broken:
            outcome.nodes[node_id].reason += f" ({blame})"
