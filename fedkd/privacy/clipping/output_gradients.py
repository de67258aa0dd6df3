"""fedkd's output-gradient clipping (:mod:`fedkd.privacy.output_grads`): one backward pass
without batched parameter gradients, Linear layers clipped without per-sample gradients,
and the grouped-kernel Conv2d sampler.  It writes the clipped sum where ghost clipping's
optimiser takes it, so Opacus is asked for ghost mode and its hooks are removed."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fedkd.privacy.clipping.base import ClippedBackward, ClippingMode, register_clipping_mode
from fedkd.privacy.output_grads import OutputGradients


class _OutputGradientBackward:
    def __init__(self, private_model: nn.Module, model: nn.Module, max_grad_norm: float) -> None:
        self.private_model = private_model
        self.max_grad_norm = max_grad_norm
        self.gradients = OutputGradients(model)

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        logits = self.gradients.forward(self.private_model, x)
        summed = F.cross_entropy(logits, y, reduction="sum")
        self.gradients.clipped_sum(summed, len(x), max_grad_norm=self.max_grad_norm)
        return summed / max(len(x), 1)

    def close(self) -> None:
        self.gradients.close()


@register_clipping_mode
class OutputGradientClipping(ClippingMode):
    name = "output-grads"
    opacus_mode = "ghost"

    def attach(
        self,
        private_model: nn.Module,
        model: nn.Module,
        criterion: nn.Module | None,
        *,
        max_grad_norm: float,
    ) -> ClippedBackward:
        private_model.remove_hooks()  # type: ignore[operator]
        return _OutputGradientBackward(private_model, model, max_grad_norm)
