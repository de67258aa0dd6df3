"""Local-training throughput with and without DP-SGD, for every grad-sample mode.

One process, modes interleaved over repetitions (these machines are shared and noisy), the
median of each reported, and every DP mode as a ratio to non-DP training measured in the
same run.  Fixed: the model, an MNIST-sized client (6,000 records, 1×28×28), logical batch
256 (``--batch``; a usual DP-SGD batch), Poisson sampling, BatchMemoryManager with physical
batches of at most 256, σ = 1, C = 1.

Usage: python simulations/bench_dp_throughput.py [--models cnn-s,cnn-m,mlp-m] [--reps 5]
           [--out simulations/results/dp_throughput.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from fedkd.distill.device import pick_device
from fedkd.distill.loops import OptimiserConfig, train_local
from fedkd.models import ModelSpec, build_model
from fedkd.privacy.dp_sgd import GRAD_SAMPLE_MODES, default_grad_sample_mode, train_private

RECORDS, PHYSICAL = 6000, 256


def _data(device_seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(device_seed)
    x = rng.uniform(size=(RECORDS, 1, 28, 28)).astype(np.float32)
    return x, rng.integers(0, 10, size=RECORDS).astype(np.int64)


def _one_epoch(
    model_name: str, mode: str, x: np.ndarray, y: np.ndarray, device: str, batch: int
) -> float:
    """Samples per second over one epoch (the mode ``none`` is non-DP training)."""
    torch.manual_seed(0)
    model = build_model(model_name, ModelSpec(input_shape=(1, 28, 28), num_classes=10))
    model.to(device)
    cfg = OptimiserConfig(lr=0.05, batch_size=batch)
    start = time.perf_counter()
    if mode == "none":
        train_local(model, x, y, epochs=1, cfg=cfg, seed=1)
    else:
        train_private(
            model,
            x,
            y,
            epochs=1,
            cfg=cfg,
            noise_multiplier=1.0,
            max_grad_norm=1.0,
            grad_sample_mode=mode,
            max_physical_batch_size=PHYSICAL,
            seed=1,
        )
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return RECORDS / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="cnn-s,cnn-m,mlp-m")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--batch", type=int, default=256, help="logical batch size")
    parser.add_argument("--out", type=Path, default=Path("simulations/results/dp_throughput.json"))
    args = parser.parse_args()
    device = str(pick_device("auto"))
    x, y = _data(0)
    modes = ["none", *GRAD_SAMPLE_MODES]
    results: dict[str, dict[str, object]] = {}
    for model_name in args.models.split(","):
        for mode in modes:  # warm-up: first calls pay for kernel selection and allocation
            _one_epoch(model_name, mode, x[:1024], y[:1024], device, args.batch)
        samples: dict[str, list[float]] = {m: [] for m in modes}
        for rep in range(args.reps):
            for mode in modes if rep % 2 == 0 else reversed(modes):
                samples[mode].append(_one_epoch(model_name, mode, x, y, device, args.batch))
        median = {m: statistics.median(v) for m, v in samples.items()}
        model = build_model(model_name, ModelSpec(input_shape=(1, 28, 28), num_classes=10))
        default = default_grad_sample_mode(model, num_records=RECORDS, batch_size=args.batch)
        best = max(GRAD_SAMPLE_MODES, key=lambda m: median[m])
        results[model_name] = {
            "samples_per_s_median": median,
            "samples_per_s_all": samples,
            "ratio_to_non_dp": {m: median[m] / median["none"] for m in GRAD_SAMPLE_MODES},
            "default_mode": default,
            "best_mode": best,
            "default_within_10pct_of_best": median[default] >= 0.9 * median[best],
        }
        print(f"\n{model_name} on {device} ({args.reps} reps, median samples/s):")
        for m in modes:
            ratio = "" if m == "none" else f"  {median[m] / median['none']:.2f}× non-DP"
            tag = "  ← default" if m == default else ""
            print(f"  {m:10s} {median[m]:9.0f}{ratio}{tag}")
    payload = {
        "device": device,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "records": RECORDS,
        "logical_batch": args.batch,
        "physical_batch_max": PHYSICAL,
        "models": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(payload, indent=2))
    print(f"\nwritten to {args.out}")


if __name__ == "__main__":
    main()
