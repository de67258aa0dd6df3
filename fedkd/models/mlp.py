"""Multi-layer perceptrons for flat or image inputs (images are flattened)."""

from __future__ import annotations

import math

import torch
from torch import nn

from fedkd.models.registry import register_model


class MLP(nn.Module):
    """``Linear → ReLU`` blocks followed by a linear classifier."""

    def __init__(self, in_features: int, hidden: tuple[int, ...], num_classes: int) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        width = in_features
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        layers.append(nn.Linear(width, num_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.net(x)
        return out


register_model("mlp-s")(lambda spec: MLP(math.prod(spec.input_shape), (64,), spec.num_classes))
register_model("mlp-m")(lambda spec: MLP(math.prod(spec.input_shape), (200,), spec.num_classes))
register_model("mlp-l")(lambda spec: MLP(math.prod(spec.input_shape), (256, 128), spec.num_classes))
