"""DP-SGD trains, and what is accounted is exactly what was taken."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from fedkd.distill.loops import OptimiserConfig, evaluate
from fedkd.models import ModelSpec, build_model
from fedkd.privacy.csprng import ChaCha20Stream
from fedkd.privacy.dp_sgd import (
    PrivacyConfigError,
    default_grad_sample_mode,
    train_private,
    validate_private_model,
)
from fedkd.privacy.sampling import sample_rate, steps_per_epoch


def data(n: int = 600, d: int = 20, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, size=n)
    centres = rng.normal(scale=3.0, size=(3, d))
    x = (centres[y] + rng.normal(size=(n, d))).astype(np.float32)
    return x, y.astype(np.int64)


def mlp() -> nn.Module:
    torch.manual_seed(0)
    return build_model("mlp-s", ModelSpec(input_shape=(20,), num_classes=3))


def test_poisson_rate_is_over_private_records_only() -> None:
    assert steps_per_epoch(600, 64) == 10 and sample_rate(600, 64) == pytest.approx(0.1)
    assert steps_per_epoch(10, 64) == 1 and sample_rate(10, 64) == 1.0


@pytest.mark.parametrize("mode", ["output-grads", "hooks", "ghost", "functorch", "ew"])
def test_every_mode_learns_and_accounts_its_steps(mode: str) -> None:
    x, y = data()
    model = mlp()
    result = train_private(
        model,
        x,
        y,
        epochs=3,
        cfg=OptimiserConfig(lr=0.1, batch_size=64),
        noise_multiplier=0.8,
        max_grad_norm=1.0,
        grad_sample_mode=mode,
        randomness=ChaCha20Stream.reproducible("1"),
    )
    assert result.spent.steps == 3 * steps_per_epoch(600, 64)
    assert result.spent.sample_rate == pytest.approx(sample_rate(600, 64))
    assert result.spent.noise_multiplier == 0.8
    accuracy, _ = evaluate(model, x, y)
    assert accuracy > 0.8  # well-separated blobs: DP-SGD at σ = 0.8 still learns them
    assert not any(hasattr(p, "grad_sample") for p in model.parameters())


def test_hook_counts_every_step_that_saw_private_records() -> None:
    """Count optimizer steps with a hook on the model's forward and compare."""
    x, y = data(n=300)
    model = mlp()
    seen_private: list[int] = []
    first = next(m for m in model.modules() if isinstance(m, nn.Linear))
    handle = first.register_forward_hook(lambda _m, inp, _o: seen_private.append(len(inp[0])))
    result = train_private(
        model,
        x,
        y,
        epochs=2,
        cfg=OptimiserConfig(batch_size=32),
        noise_multiplier=1.0,
        max_grad_norm=1.0,
        grad_sample_mode="hooks",
        max_physical_batch_size=1024,
        randomness=ChaCha20Stream.reproducible("2"),
    )
    handle.remove()
    # One forward per logical batch (physical batches never split at this size).
    assert len(seen_private) == result.spent.steps == 2 * steps_per_epoch(300, 32)
    # Poisson batches vary around B = 32.
    assert 20 < np.mean(seen_private) < 44 and len(set(seen_private)) > 1


def test_batch_memory_manager_splits_but_steps_once_per_logical_batch() -> None:
    x, y = data(n=512)
    result = train_private(
        mlp(),
        x,
        y,
        epochs=1,
        cfg=OptimiserConfig(batch_size=256),
        noise_multiplier=1.0,
        max_grad_norm=1.0,
        grad_sample_mode="hooks",
        max_physical_batch_size=32,
        randomness=ChaCha20Stream.reproducible("3"),
    )
    assert result.spent.steps == steps_per_epoch(512, 256) == 2


def test_default_mode_follows_the_architecture() -> None:
    assert default_grad_sample_mode(mlp()) == "output-grads"
    cnn = build_model("cnn-s", ModelSpec(input_shape=(1, 28, 28), num_classes=10))
    assert default_grad_sample_mode(cnn) == "output-grads"
    # A layer without a grad sampler: the hooks mode (functorch fallback) serves a CNN,
    # ghost clipping a Linear-only model.
    odd = nn.Sequential(nn.Conv2d(1, 4, 3), nn.PReLU(), nn.Flatten(), nn.Linear(4 * 26 * 26, 2))
    assert default_grad_sample_mode(odd) == "hooks"
    odd_mlp = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.PReLU(), nn.Linear(8, 2))
    assert default_grad_sample_mode(odd_mlp) == "ghost"


def test_incompatible_layer_is_named() -> None:
    model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Linear(8, 2))
    with pytest.raises(PrivacyConfigError, match="BatchNorm"):
        validate_private_model(model)


@pytest.mark.parametrize("mode", ["output-grads", "hooks", "ghost", "ew", "functorch"])
def test_empty_poisson_batches_still_step_and_stay_finite(mode: str) -> None:
    x = np.random.default_rng(0).uniform(size=(5, 1, 8, 8)).astype(np.float32)
    y = np.array([0, 1, 2, 0, 1])
    cnn = build_model("cnn-s", ModelSpec(input_shape=(1, 8, 8), num_classes=3))
    result = train_private(
        cnn,
        x,
        y,
        epochs=4,
        cfg=OptimiserConfig(batch_size=1),
        noise_multiplier=1.0,
        max_grad_norm=1.0,
        grad_sample_mode=mode,
        randomness=ChaCha20Stream.reproducible("2"),
    )
    # q = 1/5: about a third of the 20 Poisson batches are empty; each still counts.
    assert result.spent.steps == 20
    assert all(torch.isfinite(p).all() for p in cnn.parameters())
