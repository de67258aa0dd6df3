"""``trimmed-mean``: coordinate-wise β-trimmed mean.

Yin, Chen, Ramchandran, Bartlett, "Byzantine-Robust Distributed Learning: Towards Optimal
Statistical Rates", ICML 2018, arXiv:1803.01498.  With b = ⌊β·K⌋ and, per coordinate,
the values sorted P_(1)[t, c] ≤ … ≤ P_(K)[t, c]::

    G[t, c] = 1/(K − 2b) · Σ_{i=b+1}^{K−b} P_(i)[t, c],      F[t] = G[t] / Σ_c G[t, c]

``β = 0`` is the plain mean; ``β < 0.5`` keeps at least one value per coordinate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from fedkd.fusion.base import FusionResult, FusionStrategy
from fedkd.fusion.median import renormalise_rows
from fedkd.fusion.registry import register_fusion


@register_fusion
@dataclass(frozen=True)
class TrimmedMean(FusionStrategy):
    """Per-entry mean after trimming the extremes on both sides.

    Parameters
    ----------
    trim_fraction
        β ∈ [0, 0.5): the fraction of clients dropped at each end, per coordinate.
    """

    name = "trimmed-mean"
    personalised = False
    trim_fraction: float = 0.2

    def __post_init__(self) -> None:
        if not 0 <= self.trim_fraction < 0.5:
            raise ValueError(f"trim_fraction must be in [0, 0.5), got {self.trim_fraction}")

    def _fuse(self, p: np.ndarray, w: np.ndarray) -> FusionResult:
        k = p.shape[0]
        b = math.floor(self.trim_fraction * k)
        kept = np.sort(p, axis=0)[b : k - b]
        trimmed = renormalise_rows(kept.mean(axis=0))
        return FusionResult(targets=np.broadcast_to(trimmed, p.shape).copy(), mixing=None)
