"""``softmax-regression``: multinomial logistic regression on the flattened input.

The smallest model a DP baseline can train: d·C + C weights, a convex loss, and per-sample
gradients that are outer products (DP-SGD's noise, which grows with √d, costs least on
it).  It is the linear head ScatterNet's features feed, without the features: what a
deep model has to beat.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from fedkd.models.registry import ModelSpec, register_model


class SoftmaxRegression(nn.Module):
    """``Flatten → Linear``: logits ``W x + b``."""

    def __init__(self, in_features: int, num_classes: int) -> None:
        super().__init__()
        self.flatten = nn.Flatten()
        self.linear = nn.Linear(in_features, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.linear(self.flatten(x))
        return out


@register_model("softmax-regression")
def _softmax_regression(spec: ModelSpec) -> nn.Module:
    return SoftmaxRegression(math.prod(spec.input_shape), spec.num_classes)
