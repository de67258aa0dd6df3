"""Local-training throughput with and without DP-SGD, for every grad-sample mode.

One process; each repetition times one epoch of non-DP training and one of every DP mode,
back to back in rotating order, and each mode's ratio to non-DP is taken within the
repetition, so that a slow spell on these shared machines hits both sides of a ratio.
Reported: the median samples/s of each mode, and the median and range of its per-
repetition ratios.  Fixed: the model, an MNIST-sized client (6,000 records, 1×28×28),
logical batch 256 (``--batch``; a usual DP-SGD batch), Poisson sampling, BatchMemoryManager
with physical batches of at most ``--physical`` (512: a Poisson batch is rarely split,
as with the platform's default of 256 for its logical batches of 32–64), σ = 1, C = 1.
Each epoch includes the per-call set-up (``make_private``), as a round does.  The process
keeps freed memory as fedkd's nodes do (fedkd/allocator.py; ``--malloc-defaults`` not).

Usage: python simulations/bench_dp_throughput.py [--models cnn-m,cnn-s,mlp-m] [--reps 9]
           [--batch 256] [--physical 512] [--modes output-grads,hooks,…] [--malloc-defaults]
           [--out simulations/results/dp_throughput.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fedkd.allocator import keep_freed_memory
from fedkd.distill.device import pick_device
from fedkd.distill.loops import OptimiserConfig, train_local
from fedkd.models import ModelSpec, build_model
from fedkd.privacy.csprng import ChaCha20Stream
from fedkd.privacy.dp_sgd import GRAD_SAMPLE_MODES, default_grad_sample_mode, train_private

RECORDS = 6000


def synthetic_records(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` MNIST-shaped records (1×28×28, 10 classes); throughput needs no real images."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(size=(n, 1, 28, 28)).astype(np.float32)
    return x, rng.integers(0, 10, size=n).astype(np.int64)


def one_epoch(
    model_name: str,
    mode: str,
    x: np.ndarray,
    y: np.ndarray,
    device: str,
    batch: int,
    physical: int,
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
            max_physical_batch_size=physical,
            randomness=ChaCha20Stream.reproducible("1"),
        )
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return len(x) / (time.perf_counter() - start)


def measure(
    model_name: str,
    x: np.ndarray,
    y: np.ndarray,
    *,
    device: str,
    batch: int,
    physical: int,
    reps: int,
    modes: tuple[str, ...] = GRAD_SAMPLE_MODES,
) -> dict[str, Any]:
    """Every mode's samples/s and ratio to non-DP for one model, repetitions interleaved."""

    def epoch(mode: str, n: int = len(x)) -> float:
        return one_epoch(model_name, mode, x[:n], y[:n], device, batch, physical)

    every = ["none", *modes]
    for mode in every:  # warm-up: first calls pay for kernel selection and allocation
        epoch(mode, min(1024, len(x)))
    samples: dict[str, list[float]] = {m: [] for m in every}
    ratios: dict[str, list[float]] = {m: [] for m in modes}
    for rep in range(reps):
        shift = rep % len(every)
        this_rep = {m: epoch(m) for m in every[shift:] + every[:shift]}
        for m, value in this_rep.items():
            samples[m].append(value)
        for m in modes:
            ratios[m].append(this_rep[m] / this_rep["none"])
    ratio = {m: statistics.median(v) for m, v in ratios.items()}
    model = build_model(model_name, ModelSpec(input_shape=(1, 28, 28), num_classes=10))
    default = default_grad_sample_mode(model)
    best = max(modes, key=lambda m: ratio[m])
    return {
        "samples_per_s_median": {m: statistics.median(v) for m, v in samples.items()},
        "samples_per_s_all": samples,
        "ratio_to_non_dp": ratio,
        "ratio_to_non_dp_all": ratios,
        "default_mode": default,
        "best_mode": best,
        "default_within_10pct_of_best": default in ratio and ratio[default] >= 0.9 * ratio[best],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="cnn-m,cnn-s,mlp-m")
    parser.add_argument("--reps", type=int, default=9)
    parser.add_argument("--batch", type=int, default=256, help="logical batch size")
    parser.add_argument("--physical", type=int, default=512, help="largest physical batch")
    parser.add_argument("--records", type=int, default=RECORDS, help="records per epoch")
    parser.add_argument("--modes", default=",".join(GRAD_SAMPLE_MODES), help="DP modes to time")
    parser.add_argument(
        "--malloc-defaults",
        action="store_true",
        help="leave glibc's malloc thresholds as they are (fedkd's nodes set them: "
        "fedkd/allocator.py)",
    )
    parser.add_argument("--out", type=Path, default=Path("simulations/results/dp_throughput.json"))
    args = parser.parse_args()
    allocator = "glibc defaults" if args.malloc_defaults else "freed memory kept"
    if not args.malloc_defaults and not keep_freed_memory():
        allocator = "glibc defaults (not glibc)"
    modes = tuple(args.modes.split(","))
    device = str(pick_device("auto"))
    x, y = synthetic_records(args.records)
    results: dict[str, dict[str, Any]] = {}
    for model_name in args.models.split(","):
        results[model_name] = measure(
            model_name, x, y, device=device, batch=args.batch, physical=args.physical,
            reps=args.reps, modes=modes,
        )  # fmt: skip
        got = results[model_name]
        print(f"\n{model_name} on {device} ({args.reps} reps; median samples/s, ratio to non-DP):")
        for m in ["none", *modes]:
            line = f"  {m:13s} {got['samples_per_s_median'][m]:9.0f}"
            if m != "none":
                every = got["ratio_to_non_dp_all"][m]
                ratio = got["ratio_to_non_dp"][m]
                line += f"  {ratio:.2f}× (range {min(every):.2f}–{max(every):.2f})"
            print(line + ("  ← default" if m == got["default_mode"] else ""))
    payload = {
        "device": device,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "records": args.records,
        "logical_batch": args.batch,
        "physical_batch_max": args.physical,
        "allocator": allocator,
        "models": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(payload, indent=2))
    print(f"\nwritten to {args.out}")


if __name__ == "__main__":
    main()
