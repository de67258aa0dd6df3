"""Opacus's ghost clipping (Li et al., ICLR 2022; Bu et al. 2023): per-sample gradient
norms without the per-sample gradients, then a second, reweighted backward pass."""

from __future__ import annotations

from torch import nn

from fedkd.privacy.clipping.base import (
    ClippedBackward,
    ClippingMode,
    PlainBackward,
    register_clipping_mode,
)


@register_clipping_mode
class Ghost(ClippingMode):
    name = "ghost"
    opacus_mode = "ghost"

    def attach(
        self,
        private_model: nn.Module,
        model: nn.Module,
        criterion: nn.Module | None,
        *,
        max_grad_norm: float,
    ) -> ClippedBackward:
        if criterion is None:
            raise ValueError("ghost clipping needs the loss Opacus wraps for it")
        return PlainBackward(private_model, criterion)
