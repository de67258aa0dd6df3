"""The DP ablation's step anatomy against hand-computed per-sample gradients."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from tests.simulation_scripts import load_script


def _linear_case() -> tuple[nn.Module, np.ndarray, np.ndarray, torch.Tensor]:
    """A 3 → 2 linear model and four records; per-sample gradients by the closed form
    ∂CE/∂W = (softmax(z) − e_y) xᵀ, ∂CE/∂b = softmax(z) − e_y."""
    torch.manual_seed(0)
    model = nn.Linear(3, 2)
    x = np.random.default_rng(1).normal(size=(4, 3)).astype(np.float32) * 4
    y = np.array([0, 1, 1, 0])
    with torch.no_grad():
        z = model(torch.from_numpy(x))
        residual = torch.softmax(z, dim=1) - nn.functional.one_hot(torch.from_numpy(y), 2)
        weight = residual[:, :, None] * torch.from_numpy(x)[:, None, :]
    grads = torch.cat([weight.reshape(4, -1), residual], dim=1)
    return model, x, y, grads


def test_anatomy_matches_the_closed_form_per_sample_gradients() -> None:
    ablation = load_script("dp_ablation")
    model, x, y, grads = _linear_case()
    clip, sigma = 0.5, 2.0
    got = ablation.step_anatomy(model, x, y, clip=clip, sigma=sigma, batch=4)
    norms = grads.norm(dim=1)
    clipped = (grads * (clip / norms).clamp(max=1)[:, None]).mean(0)
    noise = sigma * clip * math.sqrt(8) / 4  # d = 3·2 + 2
    assert got["clipped_share"] == pytest.approx(float((norms > clip).float().mean()))
    assert got["median_norm"] == pytest.approx(float(norms.median()), rel=1e-5)
    assert got["signal"] == pytest.approx(float(clipped.norm()), rel=1e-5)
    assert got["noise"] == pytest.approx(noise)
    assert got["noise_share"] == pytest.approx(noise**2 / (noise**2 + float(clipped.norm()) ** 2))
    true = grads.mean(0)
    cosine = float(clipped @ true / (clipped.norm() * true.norm()))
    assert got["cosine"] == pytest.approx(cosine, rel=1e-5)


def test_nothing_clipped_and_no_noise_keeps_the_true_gradient() -> None:
    ablation = load_script("dp_ablation")
    model, x, y, grads = _linear_case()
    got = ablation.step_anatomy(model, x, y, clip=1e6, sigma=0.0, batch=4)
    assert got["clipped_share"] == 0 and got["noise"] == 0 and got["noise_share"] == 0
    assert got["cosine"] == pytest.approx(1.0, abs=1e-6)
    assert got["signal"] == pytest.approx(float(grads.mean(0).norm()), rel=1e-5)


def test_protocol_rows_keep_the_runs_batch_and_the_recipe_rows_do_not() -> None:
    ablation = load_script("dp_ablation")
    protocol = ablation.federated_variant("knfu", 3.0, ablation.PROTOCOL_KEYS)
    assert protocol == (
        "knfu+dp=true+dp-target-epsilon=3+dp-batch-size=64+dp-lr=0.05+dp-max-grad-norm=1"
        "+fusion-sharpen=1"
    )
    # Every row names each setting that has since become a default, so that a stored run
    # is only ever reused for the settings it ran with.
    for _, variant in ablation.FEDERATED_ROWS:
        if "dp=true" in variant and "model=scatnet" not in variant:
            assert "dp-max-grad-norm=1" in variant and "fusion-sharpen=1" in variant
    assert ablation.federated_variant("knfu", None) == "knfu"
    assert ablation.federated_variant("local", 3.0) == "local+dp=true+dp-target-epsilon=3"


class _LeavesTorch(nn.Module):
    """The linear model behind a round trip through numpy, as ScatterNet's feature cache
    does: torch.func cannot trace it, so the anatomy takes one backward pass per record."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(torch.from_numpy(x.detach().numpy().copy()))


def test_a_model_torch_func_cannot_trace_gets_the_same_anatomy() -> None:
    ablation = load_script("dp_ablation")
    model, x, y, _ = _linear_case()
    traced = ablation.step_anatomy(model, x, y, clip=0.5, sigma=2.0, batch=4)
    looped = ablation.step_anatomy(_LeavesTorch(model), x, y, clip=0.5, sigma=2.0, batch=4)
    assert looped == pytest.approx(traced, rel=1e-5)
