"""``trimmed-mean``: coordinate-wise β-trimmed mean.

Yin, Chen, Ramchandran, Bartlett, ICML 2018, arXiv:1803.01498.  With b = ⌊β·K⌋::

    F[t, c] = mean of P_j[t, c] over j after dropping the b smallest and b largest values,
    rows renormalised to sum to 1
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fedkd.fusion.base import FusionResult, FusionStrategy
from fedkd.fusion.median import _renormalise
from fedkd.fusion.registry import register_fusion


@register_fusion
@dataclass(frozen=True)
class TrimmedMean(FusionStrategy):
    """Per-entry mean after trimming the extremes on both sides."""

    name = "trimmed-mean"
    trim_fraction: float = 0.2

    def __post_init__(self) -> None:
        if not 0 <= self.trim_fraction < 0.5:
            raise ValueError(f"trim_fraction must be in [0, 0.5), got {self.trim_fraction}")

    def _fuse(self, p: np.ndarray, w: np.ndarray) -> FusionResult:
        k = p.shape[0]
        b = int(np.floor(self.trim_fraction * k))
        kept = np.sort(p, axis=0)[b : k - b]
        return FusionResult(
            targets=np.broadcast_to(_renormalise(kept.mean(axis=0)), p.shape).copy()
        )
