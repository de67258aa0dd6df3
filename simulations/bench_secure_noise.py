"""What the DP noise costs per DP-SGD step, from the CSPRNG and from torch's generator.

DP-SGD steps draw Gaussian noise for every parameter.  fedkd draws it from a ChaCha20
stream keyed with fresh OS entropy, each value a sum of four Box–Muller normals in
float64 (against floating-point attacks on the noise): "csprng".  This times one step's
noise for each model's parameters that way, as Opacus's secure mode draws it from torch's
(non-cryptographic) generator ("torch-secure", what fedkd did before), and as Opacus
draws it without secure mode ("plain"), in rotating order within each repetition (ratios
taken within the repetition, as on a shared machine a slow spell hits all three).

Usage: python simulations/bench_secure_noise.py [--models cnn-s,cnn-m,mlp-m] [--reps 30]
           [--out simulations/results/secure_noise.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
from opacus.optimizers.optimizer import _generate_noise

from fedkd.models import ModelSpec, build_model
from fedkd.privacy.csprng import ChaCha20Stream
from fedkd.privacy.secure_noise import noise_like

KINDS = ("csprng", "torch-secure", "plain")


def step_noise_seconds(params: list[torch.Tensor], kind: str = "csprng") -> float:
    """Seconds to draw one DP-SGD step's noise for ``params`` (``kind`` in :data:`KINDS`)."""
    tick = time.perf_counter()
    if kind == "csprng":
        noise_like(ChaCha20Stream.fresh(), params, 1.0)
    else:
        for p in params:
            _generate_noise(std=1.0, reference=p, secure_mode=kind == "torch-secure")
    return time.perf_counter() - tick


def measure(model_name: str, reps: int) -> dict[str, float | int]:
    model = build_model(model_name, ModelSpec(input_shape=(1, 28, 28), num_classes=10))
    params = [p.detach() for p in model.parameters()]
    seconds: dict[str, list[float]] = {kind: [] for kind in KINDS}
    ratios = []
    for rep in range(reps):
        order = KINDS[rep % 3 :] + KINDS[: rep % 3]
        times = {kind: step_noise_seconds(params, kind) for kind in order}
        for kind, value in times.items():
            seconds[kind].append(value)
        ratios.append(times["csprng"] / times["torch-secure"])
    return {
        "parameters": sum(p.numel() for p in params),
        **{f"{k.replace('-', '_')}_ms_per_step": 1e3 * statistics.median(v)
           for k, v in seconds.items()},
        "csprng_to_torch_secure_median": statistics.median(ratios),
        "csprng_to_torch_secure_min": min(ratios),
        "csprng_to_torch_secure_max": max(ratios),
        "reps": reps,
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="cnn-s,cnn-m,mlp-m")
    parser.add_argument("--reps", type=int, default=30)
    parser.add_argument("--out", type=Path, default=Path("simulations/results/secure_noise.json"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    results = {name: measure(name, args.reps) for name in args.models.split(",")}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, sort_keys=True))
    for name, r in results.items():
        print(
            f"{name}: {r['parameters']:,} parameters, noise per step "
            f"{r['csprng_ms_per_step']:.2f} ms CSPRNG vs {r['torch_secure_ms_per_step']:.2f} ms "
            f"torch secure mode vs {r['plain_ms_per_step']:.2f} ms plain "
            f"(CSPRNG {r['csprng_to_torch_secure_median']:.2f}× torch secure, range "
            f"{r['csprng_to_torch_secure_min']:.2f}–{r['csprng_to_torch_secure_max']:.2f})"
        )


if __name__ == "__main__":
    main()
