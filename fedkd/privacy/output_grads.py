"""Per-sample gradients from a backward pass that computes no parameter gradient.

Opacus's ``hooks`` mode lets autograd compute every parameter's batched gradient, which
DP-SGD then discards for the clipped sum of per-sample gradients; it captures each layer's
output gradient with a full backward hook and, for a mean-reduced loss, rescales it by the
batch size.  Here instead:

1. forward hooks record each trainable layer's input and output;
2. ``torch.autograd.grad`` of the *summed* loss with respect to those outputs returns
   ∂ℓ_i/∂out_i for every sample i, and autograd computes input gradients only, never a
   parameter's batched gradient;
3. the grad sampler Opacus has registered for the layer's type (for Conv2d, fedkd's
   grouped kernel in :mod:`fedkd.privacy.conv_grad_sample`) turns (input, output
   gradient) into per-sample gradients, stored as ``p.grad_sample``.

Opacus's DPOptimizer (``grad_sample_mode="no_op"``) then clips, adds noise, steps and
accounts exactly as in any other mode; the per-sample gradients equal those of ``hooks``
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


def _set_grad_sample(param: torch.Tensor, per_sample: torch.Tensor) -> None:
    # Opacus's DPOptimizer reads per-sample gradients from this attribute.
    setattr(param, "grad_sample", per_sample)  # noqa: B010


class OutputGradients:
    """Records trainable layers' inputs and outputs; turns a summed loss into per-sample
    gradients on the parameters (``p.grad_sample``).  Use as a context manager."""

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
        """``model(x)``, recording what :meth:`per_sample_gradients` needs."""
        self._records.clear()
        out: torch.Tensor = model(x)
        return out

    def per_sample_gradients(self, summed_loss: torch.Tensor, batch_size: int) -> None:
        """Set ``p.grad_sample`` (batch_size, *p.shape) on every trainable parameter.

        ``summed_loss`` must be the *sum* of per-sample losses of the last :meth:`forward`.
        """
        if batch_size == 0:  # an empty Poisson batch: no gradient, the step is noise only
            for _, module in self._layers:
                for param in module.parameters(recurse=False):
                    if param.requires_grad:
                        empty = torch.zeros((0, *param.shape), dtype=param.dtype)
                        _set_grad_sample(param, empty.to(param.device))
            return
        outputs = [output for _, _, output in self._records]
        grads = torch.autograd.grad(summed_loss, outputs, allow_unused=True)
        for (module, x, output), grad in zip(self._records, grads, strict=True):
            grad = torch.zeros_like(output) if grad is None else grad
            sampler: Callable[..., dict[torch.Tensor, torch.Tensor]]
            sampler = GradSampleModule.GRAD_SAMPLERS[type(module)]
            for tensor, per_sample in sampler(module, [x], grad).items():
                _set_grad_sample(tensor, per_sample)
        self._records.clear()

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
