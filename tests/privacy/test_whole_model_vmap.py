"""The ``vmap`` clipping mode trains the same model as Opacus's hooks mode, step for step."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fedkd.distill.loops import OptimiserConfig
from fedkd.models import ModelSpec, build_model
from fedkd.privacy.csprng import ChaCha20Stream
from fedkd.privacy.dp_sgd import train_private

SPEC = ModelSpec(input_shape=(1, 16, 16), num_classes=4)


@pytest.mark.filterwarnings("ignore:Full backward hook is firing")
@pytest.mark.parametrize("model_name", ["cnn-s", "mlp-m"])
def test_vmap_trains_what_the_hooks_mode_trains(model_name: str) -> None:
    rng = np.random.default_rng(1)
    # 96 records at batch 32: three logical steps an epoch, each split into physical
    # batches of at most 16 (small, so the comparison costs seconds, not a minute).
    x = rng.normal(size=(96, 1, 16, 16)).astype(np.float32)
    y = rng.integers(0, 4, size=96).astype(np.int64)
    trained = {}
    for mode in ("hooks", "vmap"):
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
    (hooks, hooks_state), (ours, ours_state) = trained["hooks"], trained["vmap"]
    assert ours.spent == hooks.spent  # the same mechanism: σ, q and steps
    assert ours.loss == pytest.approx(hooks.loss, rel=1e-4)
    for key, value in hooks_state.items():
        torch.testing.assert_close(ours_state[key], value, rtol=1e-4, atol=1e-5)


def test_vmap_is_a_registered_mode_a_config_may_name() -> None:
    from fedkd.config import parse_run_config
    from fedkd.privacy.modes import GRAD_SAMPLE_MODES

    assert "vmap" in GRAD_SAMPLE_MODES
    cfg = parse_run_config({"dp": True, "dp-target-epsilon": 3.0, "dp-grad-sample-mode": "vmap"})
    assert cfg.dp_grad_sample_mode == "vmap"
