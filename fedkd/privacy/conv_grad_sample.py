"""Per-sample Conv2d gradients as the weight gradient of one grouped convolution.

Opacus computes a Conv2d layer's per-sample gradients by unfolding the input (im2col) and
taking one matrix product per sample.  The unfold materialises B·(C_in·k²)·L values for
L output positions, and on CPU copying them costs several times the products themselves.

The same B gradients are the weight gradient of a single grouped convolution in which
every sample is its own group (the batch-into-groups idea of Rochette et al., "Efficient
Per-Example Gradient Computations in Convolutional Neural Networks", 2019)::

    x  (B, C_in, H, W)     → (1, B·C_in, H, W)
    ∂ℓ/∂y (B, C_out, H', W') → (1, B·C_out, H', W')
    ∇W_b = conv2d_weight(x, ∂ℓ/∂y, groups = B·g)   reshaped to (B, C_out, C_in/g, kh, kw)

Here the grouped convolution's own weight-gradient kernel does the work, without an
unfolded copy.  It wins where each group has enough input channels and output positions
to keep that kernel busy; measured on CPU (``simulations/bench_conv_grad_sample.py``) it
is 1.9–5.2× faster than unfolding for 8–64 input channels on 14×14 or larger outputs,
and 0.4–0.9× as fast on first layers (1–3 input channels) and on 7×7 or 8×8 outputs, where
unfolding is cheap.  Those layers, CUDA tensors (not measured here) and paddings the
kernel does not take keep Opacus's own sampler.  Both compute the same sum per sample, to
float rounding.

Importing this module registers the sampler in Opacus's registry for ``nn.Conv2d``; it
serves the ``output-grads`` and ``hooks`` grad-sample modes and ghost clipping's fallback.
"""

from __future__ import annotations

import torch
from opacus.grad_sample import register_grad_sampler
from opacus.grad_sample.conv import compute_conv_grad_sample
from torch import nn
from torch.nn.grad import conv2d_weight

# Below these the unfolded copy is small and a batched matrix product beats the grouped
# kernel (measured: 1–3 input channels at any size; 64 channels at 7×7 and 8×8).
MIN_CHANNELS_PER_GROUP = 8
MIN_OUTPUT_POSITIONS = 100


def uses_grouped_kernel(
    layer: nn.Conv2d, activations: torch.Tensor, backprops: torch.Tensor
) -> bool:
    """Whether :func:`conv2d_grad_sample` takes the grouped-convolution path for this call."""
    return (
        not backprops.is_cuda
        and activations.shape[0] > 0
        and layer.padding_mode == "zeros"
        and not isinstance(layer.padding, str)
        and layer.in_channels // layer.groups >= MIN_CHANNELS_PER_GROUP
        and backprops.shape[2] * backprops.shape[3] >= MIN_OUTPUT_POSITIONS
    )


def conv2d_grad_sample(
    layer: nn.Conv2d, activations: list[torch.Tensor], backprops: torch.Tensor
) -> dict[torch.Tensor, torch.Tensor]:
    """Per-sample gradients of ``layer``'s weight and bias, keyed by parameter."""
    x = activations[0].to(backprops.dtype)
    if not uses_grouped_kernel(layer, x, backprops):
        grads: dict[torch.Tensor, torch.Tensor] = compute_conv_grad_sample(
            layer, activations, backprops
        )
        return grads
    n = x.shape[0]
    out: dict[torch.Tensor, torch.Tensor] = {}
    if layer.weight.requires_grad:
        c_out, c_in_per_group, kh, kw = layer.weight.shape
        per_sample = conv2d_weight(  # type: ignore[no-untyped-call]
            x.reshape(1, n * layer.in_channels, *x.shape[2:]),
            (n * c_out, c_in_per_group, kh, kw),
            backprops.reshape(1, n * c_out, *backprops.shape[2:]),
            stride=layer.stride,
            padding=layer.padding,
            dilation=layer.dilation,
            groups=n * layer.groups,
        )
        out[layer.weight] = per_sample.view(n, c_out, c_in_per_group, kh, kw)
    if layer.bias is not None and layer.bias.requires_grad:
        out[layer.bias] = backprops.sum(dim=(2, 3))
    return out


register_grad_sampler(nn.Conv2d)(conv2d_grad_sample)
