"""The output-grads mode computes the same clipped gradient sums, and trains the same
model, as Opacus's hooks mode."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from opacus.grad_sample import GradSampleModule
from torch import nn

from fedkd.distill.loops import OptimiserConfig
from fedkd.models import ModelSpec, build_model
from fedkd.privacy.csprng import ChaCha20Stream
from fedkd.privacy.dp_sgd import train_private
from fedkd.privacy.output_grads import OutputGradients, unsupported_layers

SPEC = ModelSpec(input_shape=(1, 16, 16), num_classes=4)


def _batch(n: int = 12) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(n, 1, 16, 16, generator=generator)
    return x, torch.randint(0, 4, (n,), generator=generator)


def _opacus_clipped_sum(per_sample: list[torch.Tensor], max_grad_norm: float) -> list[torch.Tensor]:
    """DPOptimizer.clip_and_accumulate's arithmetic (flat clipping), on given samples."""
    norms = torch.stack([g.reshape(len(g), -1).norm(2, dim=-1) for g in per_sample], dim=1)
    factors = (max_grad_norm / (norms.norm(2, dim=1) + 1e-6)).clamp(max=1.0)
    return [torch.einsum("i,i...", factors, g) for g in per_sample]


@pytest.mark.filterwarnings("ignore:Full backward hook is firing")
@pytest.mark.parametrize("model_name", ["cnn-s", "mlp-m"])
@pytest.mark.parametrize("max_grad_norm", [0.05, 1e6])  # every sample clipped; none
def test_clipped_sum_equals_opacus_clipping_of_the_hooks_mode(
    model_name: str, max_grad_norm: float
) -> None:
    torch.manual_seed(3)
    # cnn-s: convs on both samplers' paths, GroupNorm, Linear; mlp-m: Linear only.
    model = build_model(model_name, SPEC)
    x, y = _batch()
    wrapped = GradSampleModule(model, loss_reduction="sum")
    nn.functional.cross_entropy(wrapped(x), y, reduction="sum").backward()  # type: ignore[no-untyped-call]
    samples = [p.grad_sample.clone() for p in model.parameters()]  # type: ignore[attr-defined]
    want = _opacus_clipped_sum(samples, max_grad_norm)
    wrapped._close()
    model.zero_grad(set_to_none=True)

    with OutputGradients(model) as taps:
        summed = nn.functional.cross_entropy(taps.forward(model, x), y, reduction="sum")
        taps.clipped_sum(summed, len(x), max_grad_norm=max_grad_norm)
    for (name, p), expected in zip(model.named_parameters(), want, strict=True):
        assert p.grad is not None, name
        torch.testing.assert_close(p.grad, expected, rtol=1e-4, atol=1e-6)
        assert not hasattr(p, "grad_sample")  # nothing per-sample was left behind
    if max_grad_norm < 1:  # every sample's clipped gradient has norm C: the sum's ≤ B·C
        total = torch.cat([p.grad.flatten() for p in model.parameters()]).norm()  # type: ignore[union-attr]
        assert total <= len(x) * max_grad_norm * (1 + 1e-4)


def test_an_empty_batch_gives_zero_gradients() -> None:
    model = build_model("mlp-m", SPEC)
    with OutputGradients(model) as taps:
        logits = taps.forward(model, torch.zeros(0, 1, 16, 16))
        summed = nn.functional.cross_entropy(
            logits, torch.zeros(0, dtype=torch.long), reduction="sum"
        )
        taps.clipped_sum(summed, 0, max_grad_norm=1.0)
    for p in model.parameters():
        assert p.grad is not None and not p.grad.any()


@pytest.mark.filterwarnings("ignore:Full backward hook is firing")
@pytest.mark.parametrize("model_name", ["cnn-s", "mlp-m"])
def test_dp_training_matches_the_hooks_mode_step_for_step(model_name: str) -> None:
    rng = np.random.default_rng(1)
    # 96 records at batch 32: three logical steps an epoch, each split into physical
    # batches of at most 16 (small, so the comparison costs seconds, not a minute).
    x = rng.normal(size=(96, 1, 16, 16)).astype(np.float32)
    y = rng.integers(0, 4, size=96).astype(np.int64)
    trained = {}
    for mode in ("hooks", "output-grads"):
        torch.manual_seed(4)
        model = build_model(model_name, SPEC)
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
            randomness=ChaCha20Stream.reproducible("9"),
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


@pytest.mark.parametrize("model_name", ["cnn-s", "mlp-m"])
def test_one_record_moves_the_clipped_sum_by_at_most_the_clip_norm(model_name: str) -> None:
    """The sensitivity DP-SGD's noise is calibrated to, against a record built to dominate."""
    torch.manual_seed(5)
    model = build_model(model_name, SPEC)
    x, y = _batch(8)
    outlier = x[:1] * 1e4  # a huge input: its raw gradient is orders of magnitude above C
    max_grad_norm = 0.5

    def clipped(inputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        model.zero_grad(set_to_none=True)
        with OutputGradients(model) as taps:
            summed = nn.functional.cross_entropy(
                taps.forward(model, inputs), labels, reduction="sum"
            )
            taps.clipped_sum(summed, len(inputs), max_grad_norm=max_grad_norm)
        return torch.cat([p.grad.flatten() for p in model.parameters()])  # type: ignore[union-attr]

    without = clipped(x, y)
    with_outlier = clipped(torch.cat([x, outlier]), torch.cat([y, y[:1]]))
    moved = float((with_outlier - without).norm())
    assert 0.9 * max_grad_norm < moved <= max_grad_norm * (1 + 1e-4)
