"""``median``: coordinate-wise median, robust to a minority of poisoned clients.

Yin, Chen, Ramchandran, Bartlett, "Byzantine-Robust Distributed Learning: Towards Optimal
Statistical Rates", ICML 2018, arXiv:1803.01498::

    G[t, c] = median_j P_j[t, c],       F[t] = G[t] / Σ_c G[t, c]

The median of distributions is not a distribution, hence the renormalisation; a row whose
medians are all zero (e.g. three one-hot votes that all disagree) becomes uniform.
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
    personalised = False

    def _fuse(self, p: np.ndarray, w: np.ndarray) -> FusionResult:
        med = renormalise_rows(np.median(p, axis=0))
        return FusionResult(targets=np.broadcast_to(med, p.shape).copy(), mixing=None)


def renormalise_rows(rows: np.ndarray) -> np.ndarray:
    """Scale each last-axis row to sum to 1; an all-zero row becomes uniform."""
    sums = rows.sum(axis=-1, keepdims=True)
    uniform = np.full_like(rows, 1.0 / rows.shape[-1])
    out: np.ndarray = np.where(sums > 0, rows / np.where(sums > 0, sums, 1.0), uniform)
    return out
