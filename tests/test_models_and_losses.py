"""Model zoo (Opacus-compatible) and the distillation loss against its formula."""

from __future__ import annotations

import math

import pytest
import torch
from opacus.validators import ModuleValidator

from fedkd.distill.losses import soft_target_kl
from fedkd.models import MODEL_REGISTRY, ModelSpec, build_model


@pytest.mark.parametrize("name", sorted(MODEL_REGISTRY))
@pytest.mark.parametrize("shape", [(1, 8, 8), (1, 28, 28)])
def test_models_build_run_and_pass_opacus_validation(name: str, shape: tuple[int, ...]) -> None:
    model = build_model(name, ModelSpec(input_shape=shape, num_classes=10))
    assert model(torch.zeros(3, *shape)).shape == (3, 10)
    assert ModuleValidator.validate(model, strict=False) == []
    assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in model.modules())


def test_tabular_input_rejects_cnn_with_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"CNNs need \(channels, height, width\) inputs"):
        build_model("cnn-s", ModelSpec(input_shape=(15,), num_classes=2))


def test_soft_target_kl_matches_the_formula() -> None:
    torch.manual_seed(0)
    z = torch.randn(4, 5)
    q = torch.softmax(torch.randn(4, 5), dim=1)
    tau = 3.0
    p = torch.softmax(z / tau, dim=1)
    manual = tau**2 * sum(float((q[b] * (q[b].log() - p[b].log())).sum()) for b in range(4)) / 4
    assert math.isclose(float(soft_target_kl(z, q, tau)), manual, rel_tol=1e-5)
    # KL of a distribution with itself is zero.
    assert float(soft_target_kl(z, torch.softmax(z / tau, dim=1), tau)) == pytest.approx(
        0, abs=1e-6
    )


def test_the_fedavg_cnn_has_the_papers_parameter_count() -> None:
    # McMahan et al. 2017 give 1,663,370 parameters for their MNIST CNN.
    model = build_model("cnn-fedavg", ModelSpec(input_shape=(1, 28, 28), num_classes=10))
    assert sum(p.numel() for p in model.parameters()) == 1_663_370
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [(c.out_channels, c.kernel_size) for c in convs] == [(32, (5, 5)), (64, (5, 5))]
