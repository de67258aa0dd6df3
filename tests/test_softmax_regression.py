"""``softmax-regression``: a built-in model by its one file, with what every model must do."""

from __future__ import annotations

import numpy as np
import torch

from fedkd.distill.loops import OptimiserConfig
from fedkd.model_names import builtin_models
from fedkd.models import ModelSpec, build_model
from fedkd.privacy.csprng import ChaCha20Stream
from fedkd.privacy.dp_sgd import default_grad_sample_mode, train_private, validate_private_model

SPEC = ModelSpec(input_shape=(1, 8, 8), num_classes=10)


def test_it_is_known_without_torch_and_built_by_name() -> None:
    assert "softmax-regression" in builtin_models()
    model = build_model("softmax-regression", SPEC)
    assert sum(p.numel() for p in model.parameters()) == 64 * 10 + 10
    assert model(torch.zeros(5, 1, 8, 8)).shape == (5, 10)


def test_its_logits_are_w_x_plus_b() -> None:
    model = build_model("softmax-regression", SPEC)
    x = torch.randn(3, 1, 8, 8)
    linear = next(m for m in model.modules() if isinstance(m, torch.nn.Linear))
    torch.testing.assert_close(model(x), x.reshape(3, -1) @ linear.weight.T + linear.bias)


def test_dp_sgd_trains_it_in_fedkds_fastest_mode() -> None:
    torch.manual_seed(0)
    model = build_model("softmax-regression", ModelSpec(input_shape=(1, 8, 8), num_classes=2))
    validate_private_model(model)
    assert default_grad_sample_mode(model) == "output-grads"
    rng = np.random.default_rng(0)
    # Two classes a mean shift apart: a DP-trained linear model still tells them apart.
    y = rng.integers(0, 2, size=400).astype(np.int64)
    x = (rng.normal(size=(400, 1, 8, 8)) + 1.0 * y[:, None, None, None]).astype(np.float32)
    result = train_private(
        model,
        x,
        y,
        epochs=3,
        cfg=OptimiserConfig(lr=0.5, batch_size=50),
        noise_multiplier=1.0,
        max_grad_norm=1.0,
        randomness=ChaCha20Stream.reproducible("softmax-regression"),
    )
    accuracy = float((model(torch.from_numpy(x)).argmax(1).numpy() == y).mean())
    assert result.spent.steps == 3 * 8 and accuracy > 0.85
