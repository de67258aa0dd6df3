"""The grouped-kernel Conv2d sampler against per-sample autograd, one sample at a time."""

from __future__ import annotations

import pytest
import torch
from opacus.grad_sample import GradSampleModule
from opacus.grad_sample.conv import compute_conv_grad_sample
from torch import nn

from fedkd.privacy.conv_grad_sample import conv2d_grad_sample, uses_grouped_kernel


def _per_sample_autograd(
    layer: nn.Conv2d, x: torch.Tensor, grad_out: torch.Tensor
) -> dict[str, torch.Tensor]:
    """Reference: the gradient of ⟨layer(x_b), g_b⟩ for each sample b separately."""
    weights, biases = [], []
    for b in range(len(x)):
        layer.zero_grad()
        (layer(x[b : b + 1]) * grad_out[b : b + 1]).sum().backward()  # type: ignore[no-untyped-call]
        assert layer.weight.grad is not None
        weights.append(layer.weight.grad.clone())
        if layer.bias is not None:
            assert layer.bias.grad is not None
            biases.append(layer.bias.grad.clone())
    out = {"weight": torch.stack(weights)}
    if biases:
        out["bias"] = torch.stack(biases)
    return out


CASES = [
    # (c_in, c_out, size, kernel, stride, padding, dilation, groups, bias)
    (8, 16, 12, 3, 1, 1, 1, 1, True),
    (16, 8, 22, 3, 2, 1, 1, 1, True),
    (8, 4, 16, 5, 1, 2, 2, 1, False),
    (16, 32, 12, 3, 1, (0, 1), 1, 2, True),
    (8, 8, 20, (3, 2), (1, 2), 0, 1, 1, True),
]


@pytest.mark.parametrize("case", CASES)
def test_grouped_kernel_matches_per_sample_autograd(case: tuple[object, ...]) -> None:
    c_in, c_out, size, kernel, stride, padding, dilation, groups, bias = case
    torch.manual_seed(0)
    layer = nn.Conv2d(c_in, c_out, kernel, stride, padding, dilation, groups, bias)  # type: ignore[arg-type]
    x = torch.randn(5, c_in, size, size)  # type: ignore[call-overload]
    grad_out = torch.randn_like(layer(x))
    assert uses_grouped_kernel(layer, x, grad_out)

    got = conv2d_grad_sample(layer, [x], grad_out)
    want = _per_sample_autograd(layer, x, grad_out)

    torch.testing.assert_close(got[layer.weight], want["weight"], rtol=1e-4, atol=1e-5)
    if bias:
        torch.testing.assert_close(got[layer.bias], want["bias"], rtol=1e-4, atol=1e-5)
    else:
        assert set(got) == {layer.weight}


@pytest.mark.parametrize(
    ("c_in", "size"),
    [(1, 28), (3, 32), (64, 7), (16, 9)],  # few input channels or few output positions
)
def test_small_layers_keep_opacus_sampler(c_in: int, size: int) -> None:
    torch.manual_seed(1)
    layer = nn.Conv2d(c_in, 8, 3, padding=1)
    x = torch.randn(4, c_in, size, size)
    grad_out = torch.randn_like(layer(x))
    assert not uses_grouped_kernel(layer, x, grad_out)
    got = conv2d_grad_sample(layer, [x], grad_out)
    want = compute_conv_grad_sample(layer, [x], grad_out)
    torch.testing.assert_close(got[layer.weight], want[layer.weight], rtol=0, atol=0)


def test_empty_batch_and_frozen_weight() -> None:
    layer = nn.Conv2d(8, 4, 3, padding=1)
    empty = torch.zeros(0, 8, 12, 12)
    got = conv2d_grad_sample(layer, [empty], torch.zeros(0, 4, 12, 12))
    assert got[layer.weight].shape == (1, 4, 8, 3, 3)  # Opacus's empty-batch convention

    layer.weight.requires_grad_(False)
    x = torch.randn(3, 8, 12, 12)
    grad_out = torch.randn(3, 4, 12, 12)
    got = conv2d_grad_sample(layer, [x], grad_out)
    assert set(got) == {layer.bias}
    torch.testing.assert_close(got[layer.bias], grad_out.sum(dim=(2, 3)))


@pytest.mark.filterwarnings("ignore:Full backward hook is firing")
def test_opacus_hooks_use_the_registered_sampler() -> None:
    """Through GradSampleModule (the ``hooks`` mode) the per-sample gradients of a whole
    CNN match per-sample autograd, with a mean-reduced loss."""
    assert GradSampleModule.GRAD_SAMPLERS[nn.Conv2d] is conv2d_grad_sample
    torch.manual_seed(2)
    model = nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1),  # Opacus's unfold path
        nn.ReLU(),
        nn.Conv2d(8, 16, 3, padding=1),  # the grouped kernel (12×12 = 144 positions)
        nn.GroupNorm(4, 16),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(16 * 12 * 12, 3),
    )
    x, y = torch.randn(6, 1, 12, 12), torch.tensor([0, 1, 2, 0, 1, 2])
    wrapped = GradSampleModule(model, loss_reduction="mean")
    nn.functional.cross_entropy(wrapped(x), y).backward()  # type: ignore[no-untyped-call]
    per_sample = {name: p.grad_sample.clone() for name, p in model.named_parameters()}
    wrapped._close()

    for b in range(len(x)):
        model.zero_grad()
        nn.functional.cross_entropy(model(x[b : b + 1]), y[b : b + 1]).backward()  # type: ignore[no-untyped-call]
        for name, p in model.named_parameters():
            assert p.grad is not None
            torch.testing.assert_close(per_sample[name][b], p.grad, rtol=1e-4, atol=1e-6)
