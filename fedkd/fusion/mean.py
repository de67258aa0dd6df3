"""``mean``: plain averaging of soft labels, one consensus for everyone (FedMD / FD).

Li & Wang, "FedMD: Heterogenous Federated Learning via Model Distillation", NeurIPS 2019
Workshop on Federated Learning, arXiv:1910.03581; Jeong, Oh, Kim, Bennis, Kim,
"Communication-Efficient On-Device Machine Learning: Federated Distillation and
Augmentation under Non-IID Private Data", 2018, arXiv:1811.11479::

    F_k = Σ_j w_j P_j   for every k,      w_j = 1/K, or w_j = n_j / Σ_i n_i with ``weighted``

so ``M_kj = w_j`` (every row the same).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fedkd.fusion.base import FusionResult, FusionStrategy
from fedkd.fusion.registry import register_fusion


@register_fusion
@dataclass(frozen=True)
class Mean(FusionStrategy):
    """Consensus by (optionally data-size-weighted) averaging.

    Parameters
    ----------
    weighted
        Weight client j by ``inputs.weights[j]`` (e.g. its number of local examples)
        instead of uniformly.
    """

    name = "mean"
    personalised = False
    weighted: bool = False

    def _fuse(self, p: np.ndarray, w: np.ndarray) -> FusionResult:
        k = p.shape[0]
        weights = w if self.weighted else np.full(k, 1.0 / k)
        consensus = np.einsum("j,jtc->tc", weights, p)
        return FusionResult(
            targets=np.broadcast_to(consensus, p.shape).copy(),
            mixing=np.broadcast_to(weights, (k, k)).copy(),
        )
