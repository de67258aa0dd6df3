"""Opacus's hooks: per-sample gradients computed by module hooks, then clipped."""

from __future__ import annotations

from torch import nn

from fedkd.privacy.clipping.base import (
    ClippedBackward,
    ClippingMode,
    PlainBackward,
    register_clipping_mode,
)


@register_clipping_mode
class Hooks(ClippingMode):
    name = "hooks"
    opacus_mode = "hooks"

    def attach(
        self,
        private_model: nn.Module,
        model: nn.Module,
        criterion: nn.Module | None,
        *,
        max_grad_norm: float,
    ) -> ClippedBackward:
        return PlainBackward(private_model, nn.CrossEntropyLoss())
