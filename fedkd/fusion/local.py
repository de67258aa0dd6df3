"""``local``: no exchange, each client keeps its own knowledge.

The no-collaboration baseline that KnFu (Seyedmohammadi et al., arXiv:2403.11892) finds
can win when local datasets are large and highly heterogeneous::

    F_k = P_k,        M = I

Nodes are asked to release nothing, so the server never calls ``_fuse``; it still behaves.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from fedkd.fusion.base import FusionResult, FusionStrategy, Instruction, Release
from fedkd.fusion.registry import register_fusion


@register_fusion
@dataclass(frozen=True)
class Local(FusionStrategy):
    """Identity: every client's target is its own soft labels."""

    name = "local"
    personalised = True

    def configure_round(
        self, round_: int, nodes: Sequence[int], anchors: np.ndarray
    ) -> dict[int, Instruction]:
        """Nobody releases anything."""
        ask = Instruction(Release.NOTHING, np.zeros(0, dtype=np.uint32))
        return dict.fromkeys(nodes, ask)

    def _fuse(self, p: np.ndarray, w: np.ndarray) -> FusionResult:
        return FusionResult(targets=p.copy(), mixing=np.eye(p.shape[0]))
