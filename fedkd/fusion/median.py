"""``median``: coordinate-wise median, robust to a minority of poisoned clients.

Yin, Chen, Ramchandran, Bartlett, "Byzantine-Robust Distributed Learning: Towards Optimal
Statistical Rates", ICML 2018, arXiv:1803.01498::

    F[t, c] = median_j P_j[t, c],   rows renormalised to sum to 1
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fedkd.fusion.base import FusionResult, FusionStrategy
from fedkd.fusion.registry import register_fusion


@register_fusion
@dataclass(frozen=True)
class Median(FusionStrategy):
    """Per-entry median over clients."""

    name = "median"

    def _fuse(self, p: np.ndarray, w: np.ndarray) -> FusionResult:
        med = np.median(p, axis=0)
        return FusionResult(targets=np.broadcast_to(_renormalise(med), p.shape).copy())


def _renormalise(rows: np.ndarray) -> np.ndarray:
    sums = rows.sum(axis=-1, keepdims=True)
    uniform = np.full_like(rows, 1.0 / rows.shape[-1])
    return np.where(sums > 0, rows / np.where(sums > 0, sums, 1.0), uniform)
