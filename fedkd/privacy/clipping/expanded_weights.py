"""Opacus's expanded weights (``ew``): per-sample gradients from PyTorch's ExpandedWeights.

Expanded weights reject a zero batch: an empty Poisson batch skips the model and hands
the optimiser empty per-sample gradients.
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
class ExpandedWeights(ClippingMode):
    name = "ew"
    opacus_mode = "ew"
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
