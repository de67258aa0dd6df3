"""``selective``: average only the soft labels a client is confident about, anchor by anchor.

After the selectors of Selective-FD: Shao, Wu, Zhang, "Selective Knowledge Sharing for
Privacy-Preserving Federated Distillation without A Good Teacher", Nature Communications
15, 349 (2024), arXiv:2304.01731.  The paper's client-side selector drops predictions on
samples outside a client's local distribution (density-ratio estimation); here a client's
confidence on the anchor stands in for it, a simpler selector with no extra model::

    s_j[t] = 1[ max_c P_j[t, c] ≥ τ ]
    F[t]   = Σ_j s_j[t] w_j P_j[t] / Σ_j s_j[t] w_j      if some s_j[t] = 1
           = Σ_j w_j P_j[t]                             otherwise (nobody is sure: the mean)

with ``w_j = 1/K``, or ``n_j / Σ n_i`` with ``weighted``.  Under strong label skew a client
is rarely confident on classes it never saw, so their near-uniform guesses stop diluting
the clients that know.  The same target for every client; the mixture differs per anchor,
so ``mixing`` is None.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fedkd.fusion.base import FusionResult, FusionStrategy
from fedkd.fusion.registry import register_fusion


@register_fusion
@dataclass(frozen=True)
class Selective(FusionStrategy):
    """Per-anchor average over the clients whose top probability reaches ``confidence``.

    Parameters
    ----------
    confidence
        ``τ`` in ``[0, 1]``; 0 keeps every client (the plain mean).
    weighted
        Weight client j by ``inputs.weights[j]`` (e.g. its local record count).
    """

    name = "selective"
    personalised = False
    confidence: float = 0.5
    weighted: bool = False

    def __post_init__(self) -> None:
        if not 0.0 <= self.confidence <= 1.0:
            raise ValueError(f"confidence must be in [0, 1], got {self.confidence}")

    def _fuse(self, p: np.ndarray, w: np.ndarray) -> FusionResult:
        k = p.shape[0]
        weights = w if self.weighted else np.full(k, 1.0 / k)
        selected = (p.max(axis=2) >= self.confidence).astype(np.float64)  # (K, T)
        share = selected * weights[:, None]
        nobody = share.sum(axis=0) == 0
        share[:, nobody] = weights[:, None]  # fall back to the mean on those anchors
        share /= share.sum(axis=0, keepdims=True)
        consensus = np.einsum("jt,jtc->tc", share, p)
        return FusionResult(targets=np.broadcast_to(consensus, p.shape).copy(), mixing=None)
