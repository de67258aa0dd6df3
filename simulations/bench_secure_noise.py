"""What the DP noise's secure mode costs per DP-SGD step.

DP-SGD steps draw Gaussian noise for every parameter.  fedkd draws it from a ChaCha20
stream keyed with fresh OS entropy, each value a sum of four Box–Muller normals in
float64 (against floating-point attacks on the noise).  This times one step's noise for
each model's parameters that way ("secure") and as Opacus does without its secure mode
(one ``torch.normal`` draw per value from torch's generator, "plain"), back to back in
alternating order within each repetition (ratios taken within the repetition, as on a
shared machine a slow spell hits both).

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
from fedkd.privacy.dp_sgd import noise_like


def step_noise_seconds(params: list[torch.Tensor], secure: bool) -> float:
    """Seconds to draw one DP-SGD step's noise for ``params``: fedkd's CSPRNG noise
    (``secure``) or Opacus's plain ``torch.normal`` draws."""
    tick = time.perf_counter()
    if secure:
        noise_like(ChaCha20Stream.fresh(), params, 1.0)
    else:
        for p in params:
            _generate_noise(std=1.0, reference=p, secure_mode=False)
    return time.perf_counter() - tick


def measure(model_name: str, reps: int) -> dict[str, float | int]:
    model = build_model(model_name, ModelSpec(input_shape=(1, 28, 28), num_classes=10))
    params = [p.detach() for p in model.parameters()]
    ratios, secure_s, plain_s = [], [], []
    for rep in range(reps):
        order = (True, False) if rep % 2 == 0 else (False, True)
        times = {mode: step_noise_seconds(params, mode) for mode in order}
        secure_s.append(times[True])
        plain_s.append(times[False])
        ratios.append(times[True] / times[False])
    return {
        "parameters": sum(p.numel() for p in params),
        "secure_ms_per_step": 1e3 * statistics.median(secure_s),
        "plain_ms_per_step": 1e3 * statistics.median(plain_s),
        "ratio_median": statistics.median(ratios),
        "ratio_min": min(ratios),
        "ratio_max": max(ratios),
        "reps": reps,
    }


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
            f"{r['secure_ms_per_step']:.2f} ms secure vs {r['plain_ms_per_step']:.2f} ms plain "
            f"({r['ratio_median']:.2f}×, range {r['ratio_min']:.2f}–{r['ratio_max']:.2f})"
        )


if __name__ == "__main__":
    main()
