"""``confidence``: a memorisation proxy that reads only the model and the public anchors.

A model that memorised private records tends to be unusually confident near them.  With
c_i the model's top-class probability on anchor i (temperature 1) and c_med the median
over this round's anchors::

    p_i = clip((c_i − c_med) / (1 − c_med), 0, 1)

It is a cheap proxy (no reference model trained without the nearest records), chosen
because it needs no private record: under DP the release stays post-processing of the DP
model, and the run keeps its ε.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import torch
from torch import nn

from fedkd.distill.loops import predict_logits
from fedkd.privacy.scorers.base import PrivacyScorer, register_scorer, relative_excess


@register_scorer
class ConfidenceScorer(PrivacyScorer):
    name = "confidence"
    reads_private_records: ClassVar[bool] = False

    def score(
        self, model: nn.Module, anchors: np.ndarray, private_x: np.ndarray | None
    ) -> np.ndarray:
        logits = torch.from_numpy(predict_logits(model, anchors))
        top = torch.softmax(logits.double(), dim=1).max(dim=1).values.numpy()
        return relative_excess(top, float(np.median(top)))
