"""Clipped per-sample gradient sums from one backward pass that computes no parameter
gradient (book-keeping, after Bu et al., "Differentially Private Optimization on Large
Model at Small Cost", ICML 2023).

Opacus's ``hooks`` mode lets autograd compute every parameter's batched gradient, which
DP-SGD then discards for the clipped sum of per-sample gradients; its ``ghost`` mode runs
two backward passes.  Here instead:

1. forward hooks record each trainable layer's input ``a`` and output;
2. ``torch.autograd.grad`` of the *summed* loss with respect to those outputs returns
   ``g_i = ∂ℓ_i/∂out_i`` for every sample i, and autograd computes input gradients only;
3. each sample's gradient norm, over all layers together (flat clipping), comes from
   ``(a, g)``: for a Linear layer on ``(B, d)`` inputs without materialising anything,
   ``‖∇_W ℓ_i‖ = ‖g_i‖·‖a_i‖`` and ``‖∇_b ℓ_i‖ = ‖g_i‖``; for any other layer from the
   per-sample gradients of the grad sampler Opacus has registered for its type (Conv2d:
   fedkd's grouped kernel, :mod:`fedkd.privacy.conv_grad_sample`);
4. with Opacus's clip factor ``c_i = min(1, C / (‖∇ℓ_i‖ + 10⁻⁶))`` the clipped sum is
   written to ``p.grad``: ``∇_W = (c ⊙ g)ᵀ a`` for those Linear layers (one matrix product,
   the cost of the batched weight gradient), ``Σ_i c_i ∇_p ℓ_i`` for the others.

Opacus's fast-gradient-clipping DPOptimizer (which takes ``p.grad`` as the clipped sum, as
it does for ghost clipping) then accumulates physical batches, adds the noise, averages,
steps and accounts exactly as in any other mode; the result equals ``hooks`` step for step
(tests/privacy/test_output_grads.py).  The mode serves models whose trainable parameters
all sit in layers with a registered grad sampler, each layer called once per forward
pass; :func:`unsupported_layers` names any other, and ``hooks`` handles those models.
"""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType

import torch
from opacus.grad_sample import GradSampleModule
from torch import nn
from torch.utils.hooks import RemovableHandle


def _trainable_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    return [
        (name or type(model).__name__, module)
        for name, module in model.named_modules()
        if any(p.requires_grad for p in module.parameters(recurse=False))
    ]


def unsupported_layers(model: nn.Module) -> list[str]:
    """Trainable layers Opacus has no grad sampler for (empty: the mode applies)."""
    return [
        f"{name} ({type(module).__name__})"
        for name, module in _trainable_layers(model)
        if type(module) not in GradSampleModule.GRAD_SAMPLERS
    ]


def _own_trainable(module: nn.Module) -> list[nn.Parameter]:
    return [p for p in module.parameters(recurse=False) if p.requires_grad]


def _linear_clipped_sum(
    module: nn.Linear, x: torch.Tensor, grad: torch.Tensor, squared_norms: torch.Tensor
) -> Callable[[torch.Tensor], None]:
    """Adds the layer's per-sample squared norms; returns what writes its clipped sum."""
    grad_norms = grad.pow(2).sum(dim=1)
    if module.weight.requires_grad:
        squared_norms.add_(grad_norms * x.pow(2).sum(dim=1))
    if module.bias is not None and module.bias.requires_grad:
        squared_norms.add_(grad_norms)

    def write(clip_factors: torch.Tensor) -> None:
        clipped = grad * clip_factors.unsqueeze(1)
        if module.weight.requires_grad:
            module.weight.grad = clipped.t().mm(x)
        if module.bias is not None and module.bias.requires_grad:
            module.bias.grad = clipped.sum(dim=0)

    return write


def _sampled_clipped_sum(
    module: nn.Module, x: torch.Tensor, grad: torch.Tensor, squared_norms: torch.Tensor
) -> Callable[[torch.Tensor], None]:
    """The same from the per-sample gradients of the layer type's registered sampler."""
    sampler: Callable[..., dict[torch.Tensor, torch.Tensor]]
    sampler = GradSampleModule.GRAD_SAMPLERS[type(module)]
    per_sample = {
        param: samples
        for param, samples in sampler(module, [x], grad).items()
        if param.requires_grad
    }
    for samples in per_sample.values():
        squared_norms.add_(samples.reshape(len(samples), -1).pow(2).sum(dim=1))

    def write(clip_factors: torch.Tensor) -> None:
        for param, samples in per_sample.items():
            param.grad = torch.einsum("i,i...->...", clip_factors, samples)

    return write


class OutputGradients:
    """Records trainable layers' inputs and outputs; turns a summed loss into the clipped
    sum of per-sample gradients (``p.grad``).  Use as a context manager."""

    def __init__(self, model: nn.Module) -> None:
        unsupported = unsupported_layers(model)
        if unsupported:
            raise ValueError(f"no per-sample grad sampler for: {', '.join(unsupported)}")
        self._layers = _trainable_layers(model)
        self._names = {id(module): name for name, module in self._layers}
        self._records: list[tuple[nn.Module, torch.Tensor, torch.Tensor]] = []
        self._handles: list[RemovableHandle] = [
            module.register_forward_hook(self._record) for _, module in self._layers
        ]

    def _record(self, module: nn.Module, inputs: tuple[object, ...], output: object) -> None:
        if not torch.is_grad_enabled():
            return
        if any(seen is module for seen, _, _ in self._records):
            raise ValueError(
                f"layer {self._names[id(module)]} ran twice in one forward pass; "
                "per-sample gradients of shared layers need grad-sample mode 'hooks'"
            )
        if not inputs or not isinstance(inputs[0], torch.Tensor):
            raise ValueError(f"layer {self._names[id(module)]} has no tensor input")
        if not isinstance(output, torch.Tensor):
            raise ValueError(f"layer {self._names[id(module)]} returns no single tensor")
        self._records.append((module, inputs[0].detach(), output))

    def forward(self, model: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """``model(x)``, recording what :meth:`clipped_sum` needs."""
        self._records.clear()
        out: torch.Tensor = model(x)
        return out

    def clipped_sum(
        self, summed_loss: torch.Tensor, batch_size: int, *, max_grad_norm: float
    ) -> None:
        """Set ``p.grad`` to ``Σ_i c_i ∇_p ℓ_i`` on every trainable parameter.

        ``summed_loss`` must be the *sum* of per-sample losses of the last :meth:`forward`;
        ``c_i`` clips each sample's gradient, all parameters together, to ``max_grad_norm``.
        """
        params = [p for _, module in self._layers for p in _own_trainable(module)]
        if batch_size == 0:  # an empty Poisson batch: no gradient, the step is noise only
            for param in params:
                param.grad = torch.zeros_like(param)
            return
        outputs = [output for _, _, output in self._records]
        grads = torch.autograd.grad(summed_loss, outputs, allow_unused=True)
        squared_norms = torch.zeros(batch_size, dtype=summed_loss.dtype, device=summed_loss.device)
        writers: list[Callable[[torch.Tensor], None]] = []
        for (module, x, output), grad in zip(self._records, grads, strict=True):
            grad = torch.zeros_like(output) if grad is None else grad.detach()
            if type(module) is nn.Linear and x.dim() == 2:  # a subclass may compute otherwise
                writers.append(_linear_clipped_sum(module, x, grad, squared_norms))
            else:
                writers.append(_sampled_clipped_sum(module, x, grad, squared_norms))
        self._records.clear()
        clip_factors = (max_grad_norm / (squared_norms.sqrt() + 1e-6)).clamp(max=1.0)
        for write in writers:
            write(clip_factors)
        for param in params:  # a layer the forward pass did not use
            if param.grad is None:
                param.grad = torch.zeros_like(param)

    def close(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self._records.clear()

    def __enter__(self) -> OutputGradients:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
