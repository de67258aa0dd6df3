"""``local``: no exchange, each client keeps its own knowledge.

The no-collaboration baseline that KnFu (Seyedmohammadi et al., arXiv:2403.11892) finds
can win when local datasets are large and highly heterogeneous::

    F_k = P_k,        M = I

The server never needs to call it (``exchanges_knowledge`` is False), but it behaves.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fedkd.fusion.base import FusionResult, FusionStrategy
from fedkd.fusion.registry import register_fusion


@register_fusion
@dataclass(frozen=True)
class Local(FusionStrategy):
    """Identity: every client's target is its own soft labels."""

    name = "local"
    personalised = True
    exchanges_knowledge = False

    def _fuse(self, p: np.ndarray, w: np.ndarray) -> FusionResult:
        return FusionResult(targets=p.copy(), mixing=np.eye(p.shape[0]))
