"""``dsfl``: entropy-reduction averaging (ERA) from DS-FL.

Itahara, Nishio, Koda, Morikura, Yamamoto, "Distillation-Based Semi-Supervised Federated
Learning for Communication-Efficient Collaborative Training with Non-IID Private Data",
IEEE Transactions on Mobile Computing 2021, doi:10.1109/TMC.2021.3070013, arXiv:2008.06180::

    F[t] = softmax( log( (1/K) Σ_j P_j[t] ) / T_era ),     log clamped at log(1e-12)

``0 < T_era < 1`` sharpens the averaged soft labels (the paper's point: lower entropy
targets speed up distillation under non-IID data); ``T_era = 1`` gives back the plain
mean.  The same target for every client, and not a linear mixture (``mixing`` is None).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from fedkd.fusion.base import FusionResult, FusionStrategy
from fedkd.fusion.registry import register_fusion
from fedkd.fusion.sharpen import entropy_reduced


@register_fusion
@dataclass(frozen=True)
class DSFL(FusionStrategy):
    """Average, then sharpen with a temperature below one.

    Parameters
    ----------
    temperature
        ``T_era``; must be finite and > 0, and < 1 to sharpen.
    """

    name = "dsfl"
    personalised = False
    sharpens = True
    """Its formula already sharpens: :func:`fedkd.fusion.sharpen.with_sharpening` leaves it."""
    temperature: float = 0.1

    def __post_init__(self) -> None:
        if not 0 < self.temperature < math.inf:
            raise ValueError(f"temperature must be finite and > 0, got {self.temperature}")

    def _fuse(self, p: np.ndarray, w: np.ndarray) -> FusionResult:
        # The floor keeps a class nobody predicts finite (top-k/int8 payloads carry zeros).
        sharp = entropy_reduced(p.mean(axis=0), self.temperature)
        return FusionResult(targets=np.broadcast_to(sharp, p.shape).copy(), mixing=None)
