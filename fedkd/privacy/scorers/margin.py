"""``margin``: how far the model's top class stands above its runner-up on each anchor.

Membership inference reads margins best: Carlini et al. ("Membership Inference Attacks
From First Principles", IEEE S&P 2022) found the scaled margin between the true class and
the rest to be the statistic that separates members from non-members, where raw
confidence saturates.  Without the anchors' labels, the margin between the two most
probable classes stands in for it.  With m_i = p_(1) − p_(2) on anchor i (temperature 1)
and m_med the median over this round's anchors::

    p_i = clip((m_i − m_med) / (1 − m_med), 0, 1)

It reads only the model and the public anchors: under DP the release stays
post-processing of the DP model, and the run keeps its ε.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import torch
from torch import nn

from fedkd.distill.loops import predict_logits
from fedkd.privacy.scorers.base import PrivacyScorer, register_scorer, relative_excess


@register_scorer
class MarginScorer(PrivacyScorer):
    name = "margin"
    reads_private_records: ClassVar[bool] = False

    def score(
        self, model: nn.Module, anchors: np.ndarray, private_x: np.ndarray | None
    ) -> np.ndarray:
        logits = torch.from_numpy(predict_logits(model, anchors))
        top_two = torch.softmax(logits.double(), dim=1).topk(2, dim=1).values.numpy()
        margin = top_two[:, 0] - top_two[:, 1]
        return relative_excess(margin, float(np.median(margin)))
