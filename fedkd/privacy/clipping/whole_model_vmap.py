"""Per-sample gradients of the whole model at once with ``torch.func`` (``vmap`` of
``grad`` over ``functional_call``), as JAX-style DP-SGD libraries compute them.

No layer needs a grad sampler of its own: any model ``functional_call`` can run serves.
Opacus is asked for its ``no_op`` grad-sample module, which leaves ``p.grad_sample`` to
the caller; its optimiser then clips and accumulates exactly as in the ``hooks`` mode.
Memory grows with batch × parameters, as every materialising mode's does.  vmap over an
empty batch fails in GroupNorm: an empty Poisson batch skips the model.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, vmap

from fedkd.privacy.clipping.base import ClippedBackward, ClippingMode, register_clipping_mode


class _VmapBackward:
    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.params = {n: p for n, p in model.named_parameters() if p.requires_grad}

        def record_loss(
            params: dict[str, torch.Tensor],
            buffers: dict[str, torch.Tensor],
            x: torch.Tensor,
            y: torch.Tensor,
        ) -> tuple[torch.Tensor, torch.Tensor]:
            logits = functional_call(model, (params, buffers), (x.unsqueeze(0),))
            loss = F.cross_entropy(logits, y.unsqueeze(0))
            return loss, loss.detach()

        per_record: Callable[..., Any] = grad(record_loss, has_aux=True)
        self.per_sample = vmap(per_record, in_dims=(None, None, 0, 0))

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        params = {n: p.detach() for n, p in self.params.items()}
        buffers = {n: b.detach() for n, b in self.model.named_buffers()}
        grads, losses = self.per_sample(params, buffers, x, y)
        for name, p in self.params.items():
            p.grad_sample = grads[name]  # type: ignore[attr-defined]
        mean: torch.Tensor = losses.mean()
        return mean

    def close(self) -> None:
        for p in self.params.values():
            if hasattr(p, "grad_sample"):
                del p.grad_sample


@register_clipping_mode
class WholeModelVmap(ClippingMode):
    name = "vmap"
    opacus_mode = "no_op"
    runs_empty_batches = False

    def attach(
        self,
        private_model: nn.Module,
        model: nn.Module,
        criterion: nn.Module | None,
        *,
        max_grad_norm: float,
    ) -> ClippedBackward:
        return _VmapBackward(model)
