"""The output-grads mode computes the same per-sample gradients, and trains the same
model, as Opacus's hooks mode."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from opacus.grad_sample import GradSampleModule
from torch import nn

from fedkd.distill.loops import OptimiserConfig
from fedkd.models import ModelSpec, build_model
from fedkd.privacy.dp_sgd import train_private
from fedkd.privacy.output_grads import OutputGradients, unsupported_layers

SPEC = ModelSpec(input_shape=(1, 16, 16), num_classes=4)


def _batch(n: int = 12) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(n, 1, 16, 16, generator=generator)
    return x, torch.randint(0, 4, (n,), generator=generator)


@pytest.mark.filterwarnings("ignore:Full backward hook is firing")
def test_per_sample_gradients_equal_the_hooks_mode() -> None:
    torch.manual_seed(3)
    model = build_model("cnn-s", SPEC)  # convs on both samplers' paths, GroupNorm, Linear
    x, y = _batch()
    wrapped = GradSampleModule(model, loss_reduction="mean")
    nn.functional.cross_entropy(wrapped(x), y).backward()  # type: ignore[no-untyped-call]
    want = {name: p.grad_sample.clone() for name, p in model.named_parameters()}  # type: ignore[attr-defined]
    wrapped._close()
    model.zero_grad(set_to_none=True)

    with OutputGradients(model) as taps:
        summed = nn.functional.cross_entropy(taps.forward(model, x), y, reduction="sum")
        taps.per_sample_gradients(summed, len(x))
    for name, p in model.named_parameters():
        torch.testing.assert_close(p.grad_sample, want[name], rtol=1e-4, atol=1e-6)  # type: ignore[attr-defined]
        assert p.grad is None  # no batched parameter gradient was computed


@pytest.mark.filterwarnings("ignore:Full backward hook is firing")
def test_dp_training_matches_the_hooks_mode_step_for_step() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(200, 1, 16, 16)).astype(np.float32)
    y = rng.integers(0, 4, size=200).astype(np.int64)
    trained = {}
    for mode in ("hooks", "output-grads"):
        torch.manual_seed(4)
        model = build_model("cnn-s", SPEC)
        result = train_private(
            model,
            x,
            y,
            epochs=2,
            cfg=OptimiserConfig(lr=0.1, batch_size=32),
            noise_multiplier=1.0,
            max_grad_norm=0.5,
            grad_sample_mode=mode,
            max_physical_batch_size=16,  # several physical batches per logical one
            seed=9,
        )
        trained[mode] = (result, {k: v.detach().clone() for k, v in model.state_dict().items()})
        assert not any(hasattr(p, "grad_sample") for p in model.parameters())
        assert not any(m._forward_hooks for m in model.modules())
    (hooks, hooks_state), (ours, ours_state) = trained["hooks"], trained["output-grads"]
    assert ours.spent == hooks.spent
    assert ours.loss == pytest.approx(hooks.loss, rel=1e-4)
    for key, value in hooks_state.items():
        torch.testing.assert_close(ours_state[key], value, rtol=1e-4, atol=1e-5)


def test_layers_it_cannot_serve_are_named() -> None:
    odd = nn.Sequential(nn.Conv2d(1, 2, 3), nn.PReLU(), nn.Flatten(), nn.Linear(2 * 14 * 14, 2))
    assert unsupported_layers(odd) == ["1 (PReLU)"]
    with pytest.raises(ValueError, match="PReLU"):
        OutputGradients(odd)

    shared = nn.Linear(4, 4)
    twice = nn.Sequential(shared, nn.ReLU(), shared)
    with OutputGradients(twice) as taps, pytest.raises(ValueError, match="ran twice"):
        taps.forward(twice, torch.randn(3, 4))
