"""Opacus's functorch mode: per-sample gradients by ``vmap`` over each layer.

vmap over an empty batch fails in GroupNorm: an empty Poisson batch skips the model and
hands the optimiser empty per-sample gradients.
"""

from __future__ import annotations

from torch import nn

from fedkd.privacy.clipping.base import (
    ClippedBackward,
    ClippingMode,
    PlainBackward,
    register_clipping_mode,
)


@register_clipping_mode
class Functorch(ClippingMode):
    name = "functorch"
    opacus_mode = "functorch"
    runs_empty_batches = False

    def attach(
        self,
        private_model: nn.Module,
        model: nn.Module,
        criterion: nn.Module | None,
        *,
        max_grad_norm: float,
    ) -> ClippedBackward:
        return PlainBackward(private_model, nn.CrossEntropyLoss())
