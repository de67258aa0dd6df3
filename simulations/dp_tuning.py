"""How the central DP-SGD settings were chosen: Fashion-MNIST, a validation split of its
training records, ε = 3, δ = 1e-5 — never MNIST, never a test set.

One simulated client holds every Fashion-MNIST training record (iid); 20 % of them are held
out as the validation set (``local-test-fraction``), the rest train.  Each setting trains a
fresh model with fedkd's DP-SGD (σ calibrated by PRV for its epochs) and is scored on the
validation records.  The winner per model is ``simulations/dp_utility.py``'s
``CENTRAL_MODELS``.

    python simulations/dp_tuning.py scatnet-linear        # every setting below
    python simulations/dp_tuning.py cnn-s 512,2,20,1      # batch,lr,epochs,C
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TUNING_SEED = 100
SETTINGS: dict[str, tuple[tuple[int, float, int, float], ...]] = {
    "scatnet-linear": (
        (1024, 4.0, 20, 1.0),
        (2048, 4.0, 40, 1.0),
        (4096, 8.0, 40, 1.0),
        (8192, 8.0, 60, 1.0),
        (1024, 4.0, 20, 0.1),
        (2048, 4.0, 40, 0.1),
        (4096, 2.0, 40, 0.1),
        (4096, 4.0, 40, 0.1),
        (4096, 8.0, 40, 0.1),
        (4096, 4.0, 60, 0.1),
        (8192, 8.0, 60, 0.1),
    ),
    "cnn-s": ((512, 2.0, 20, 1.0), (1024, 4.0, 20, 0.1)),
}
"""(logical batch, lr, epochs, C) per model."""


def validation_split(model: str) -> tuple[Any, Any]:
    """Fashion-MNIST's training records: (train, validation), 80 / 20."""
    from fedkd.config import load_simulation_file
    from fedkd.node import ClientNode
    from fedkd.simulated_nodes import simulated_node_config

    cfg = load_simulation_file(
        ROOT / "simulations" / "mnist.toml",
        {"dataset": "fashion-mnist", "seed": TUNING_SEED, "model": model, "num-clients": 1,
         "partitioner": "iid", "local-test-fraction": 0.2},
    )[0]  # fmt: skip
    state = ROOT / "runs" / "dp-tuning"
    data = ClientNode(
        simulated_node_config(cfg, 0, state_dir=str(state)), cfg.protocol(), node_id=0
    ).check()
    return data.train, data.test


def score(model_name: str, setting: tuple[int, float, int, float]) -> tuple[float, float]:
    """Validation accuracy and σ of one setting at ε = 3."""
    import torch

    import fedkd.models  # noqa: F401  (registers the built-in models)
    from fedkd.distill.loops import evaluate
    from fedkd.distill.settings import OptimiserConfig
    from fedkd.models.registry import ModelSpec, build_model
    from fedkd.privacy.accounting import calibrate_noise_multiplier
    from fedkd.privacy.dp_sgd import train_private
    from fedkd.privacy.sampling import sample_rate, steps_per_epoch

    batch, lr, epochs, clip = setting
    train, validation = validation_split(model_name)
    torch.manual_seed(0)
    model = build_model(model_name, ModelSpec(tuple(train.x.shape[1:]), 10))
    sigma = calibrate_noise_multiplier(
        target_epsilon=3.0,
        target_delta=1e-5,
        sample_rate=sample_rate(len(train.x), batch),
        steps=epochs * steps_per_epoch(len(train.x), batch),
    )
    train_private(
        model, train.x, train.y, epochs=epochs,
        cfg=OptimiserConfig(lr=lr, momentum=0.9, batch_size=batch),
        noise_multiplier=sigma, max_grad_norm=clip,
    )  # fmt: skip
    accuracy, _ = evaluate(model, validation.x, validation.y)
    return accuracy, sigma


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    name = sys.argv[1]
    chosen = (
        [tuple(float(v) for v in s.split(",")) for s in sys.argv[2:]]
        if len(sys.argv) > 2
        else SETTINGS[name]
    )
    for batch, lr, epochs, clip in chosen:
        started = time.perf_counter()
        setting = (int(batch), float(lr), int(epochs), float(clip))
        accuracy, sigma = score(name, setting)
        print(
            f"{name} batch {setting[0]} lr {lr:g} epochs {setting[2]} C {clip:g}: σ {sigma:.2f}, "
            f"validation accuracy {accuracy:.4f} ({time.perf_counter() - started:.0f} s)",
            flush=True,
        )
