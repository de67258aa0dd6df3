"""Geometric-mean fusion: the normalised product of the clients' soft labels.

    q_j(c) ∝ exp( (1/K) Σ_k log p_k,j(c) )

It is the distribution that minimises the mean of KL(q ‖ p_k) over the K clients (a
"product of experts"): a class that any client rules out is ruled out.  Clients count
equally, so no self-reported record count moves it.  ``floor`` keeps a
client's exact zero from vetoing a class for everyone.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fedkd.fusion import FusionResult, FusionStrategy, register_fusion


@register_fusion
@dataclass(frozen=True)
class GeometricMean(FusionStrategy):
    """Everyone gets the weighted geometric mean of all clients' soft labels."""

    name = "geometric-mean"
    personalised = False
    floor: float = 1e-6

    def __post_init__(self) -> None:
        if not 0 < self.floor < 1:
            raise ValueError(f"geometric-mean floor must be in (0, 1), got {self.floor}")

    def _fuse(self, p: np.ndarray, w: np.ndarray) -> FusionResult:
        log_p = np.log(np.clip(p, self.floor, 1.0))
        pooled = log_p.mean(axis=0)
        pooled = np.exp(pooled - pooled.max(axis=-1, keepdims=True))
        targets = pooled / pooled.sum(axis=-1, keepdims=True)
        return FusionResult(targets=np.broadcast_to(targets, p.shape).copy())
