"""``dsfl``: entropy-reduction averaging (ERA) from DS-FL.

Itahara, Nishio, Koda, Morikura, Yamamoto, "Distillation-Based Semi-Supervised Federated
Learning for Communication-Efficient Collaborative Training with Non-IID Private Data",
IEEE TMC 2021, doi:10.1109/TMC.2021.3070013, arXiv:2008.06180::

    F = softmax( log( (1/K) Σ_j P_j ) / T_era ),     0 < T_era < 1 sharpens

``T_era = 1`` gives back the plain mean.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fedkd.fusion.base import FusionResult, FusionStrategy
from fedkd.fusion.registry import register_fusion

_LOG_FLOOR = float(np.log(1e-12))


@register_fusion
@dataclass(frozen=True)
class DSFL(FusionStrategy):
    """Average, then sharpen with a temperature below one."""

    name = "dsfl"
    temperature: float = 0.1

    def __post_init__(self) -> None:
        if not self.temperature > 0:
            raise ValueError(f"dsfl temperature must be > 0, got {self.temperature}")

    def _fuse(self, p: np.ndarray, w: np.ndarray) -> FusionResult:
        mean = p.mean(axis=0)
        logits = np.maximum(np.log(np.maximum(mean, 1e-300)), _LOG_FLOOR) / self.temperature
        logits -= logits.max(axis=1, keepdims=True)
        sharp = np.exp(logits)
        sharp /= sharp.sum(axis=1, keepdims=True)
        return FusionResult(targets=np.broadcast_to(sharp, p.shape).copy(), mixing=None)
