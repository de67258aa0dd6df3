"""The ScatterNet front end: fixed features, only the classifier is a weight, DP-SGD-ready."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from fedkd.distill.loops import evaluate, train_local
from fedkd.distill.settings import OptimiserConfig
from fedkd.models import ModelSpec, build_model
from fedkd.models.scatnet import ScatterNetLinear
from fedkd.privacy.dp_sgd import default_grad_sample_mode, train_private


def test_only_the_classifier_is_a_weight_and_mnist_has_the_papers_shape() -> None:
    model = build_model("scatnet-linear", ModelSpec((1, 28, 28), 10))
    assert isinstance(model, ScatterNetLinear)
    # 81 channels of 7×7 (J = 2, L = 8) into a linear layer: 81·49·10 + 10.
    assert model.feature_channels == 81
    assert sum(p.numel() for p in model.parameters()) == 81 * 49 * 10 + 10 == 39_700
    # The wavelet filters are constants: nothing to send, average or clip.
    assert sorted(model.state_dict()) == ["classifier.bias", "classifier.weight"]
    assert default_grad_sample_mode(model) == "output-grads"


def test_cached_features_equal_the_transform_and_do_not_depend_on_the_batch() -> None:
    model = build_model("scatnet-linear", ModelSpec((3, 8, 8), 4))
    x = torch.rand(6, 3, 8, 8)
    direct = model._scattering[0](x).reshape(6, 3 * 81, 2, 2)
    assert torch.equal(model.features(x), direct)  # computed
    assert torch.equal(model.features(x), direct)  # cached
    assert torch.equal(model.features(x[[4, 1]]), direct[[4, 1]])  # cached, other batch


def test_images_too_small_for_two_scales_are_refused() -> None:
    with pytest.raises(ValueError, match="side >= 4"):
        build_model("scatnet-linear", ModelSpec((1, 3, 8), 10))
    with pytest.raises(ValueError, match="channels, height, width"):
        build_model("scatnet-linear", ModelSpec((64,), 10))


def _digits() -> tuple[np.ndarray, ...]:
    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[:, None]
    y = digits.target.astype(np.int64)
    return x[:1400], y[:1400], x[1400:], y[1400:]


def test_it_learns_digits_with_and_without_dp() -> None:
    x, y, tx, ty = _digits()
    torch.manual_seed(0)
    plain = build_model("scatnet-linear", ModelSpec((1, 8, 8), 10))
    train_local(plain, x, y, epochs=5, cfg=OptimiserConfig(lr=0.05, batch_size=32), seed=0)
    assert evaluate(plain, tx, ty)[0] >= 0.9
    private = build_model("scatnet-linear", ModelSpec((1, 8, 8), 10))
    result = train_private(
        private, x, y, epochs=5, cfg=OptimiserConfig(lr=1.0, batch_size=128),
        noise_multiplier=1.0, max_grad_norm=1.0,
    )  # fmt: skip
    assert result.spent.steps == 5 * 11
    assert evaluate(private, tx, ty)[0] >= 0.8
