"""``mean``: plain averaging of soft labels (FedMD / FD).

Li & Wang, "FedMD: Heterogenous Federated Learning via Model Distillation", NeurIPS-W 2019,
arXiv:1910.03581; Jeong et al., "Communication-Efficient On-Device Machine Learning:
Federated Distillation and Augmentation", 2018, arXiv:1811.11479::

    F = Σ_j w_j P_j        (w_j = 1/K, or ∝ local data size with ``weighted``)

the same consensus for every client.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fedkd.fusion.base import FusionResult, FusionStrategy
from fedkd.fusion.registry import register_fusion


@register_fusion
@dataclass(frozen=True)
class Mean(FusionStrategy):
    """Consensus by (optionally data-size-weighted) averaging."""

    name = "mean"
    weighted: bool = False

    def _fuse(self, p: np.ndarray, w: np.ndarray) -> FusionResult:
        k = p.shape[0]
        weights = w if self.weighted else np.full(k, 1.0 / k)
        consensus = np.einsum("j,jtc->tc", weights, p)
        return FusionResult(
            targets=np.broadcast_to(consensus, p.shape).copy(),
            mixing=np.broadcast_to(weights, (k, k)).copy(),
        )
