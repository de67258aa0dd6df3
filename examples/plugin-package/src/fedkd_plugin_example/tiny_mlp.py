"""``mlp-xs``: one hidden layer of 32 units, for fast experiments and tests."""

from __future__ import annotations

import math

from torch import nn

from fedkd.models import ModelSpec, register_model


@register_model("mlp-xs")
def tiny_mlp(spec: ModelSpec) -> nn.Module:
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(math.prod(spec.input_shape), 32),
        nn.ReLU(),
        nn.Linear(32, spec.num_classes),
    )
