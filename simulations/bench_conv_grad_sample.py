"""Per-sample Conv2d gradients: Opacus's unfold sampler against the grouped kernel.

For each layer shape (the conv layers of fedkd's CNNs on MNIST- and CIFAR-sized inputs,
plus wider ones), both samplers compute the same per-sample gradients for one batch; they
run interleaved, and the median time of each and their ratio are reported.  The shapes
where the grouped kernel is slower are why ``conv_grad_sample.uses_grouped_kernel`` keeps
Opacus's sampler there.

Usage: python simulations/bench_conv_grad_sample.py [--batch 256] [--reps 15]
           [--out simulations/results/conv_grad_sample.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import torch
from opacus.grad_sample.conv import compute_conv_grad_sample
from torch import nn

from fedkd.privacy.conv_grad_sample import conv2d_grad_sample, uses_grouped_kernel

# (in channels, out channels, input size, kernel, stride, padding)
SHAPES = [
    (1, 16, 28, 3, 1, 1),
    (1, 32, 28, 3, 1, 1),
    (3, 16, 32, 3, 1, 1),
    (1, 16, 28, 8, 2, 3),
    (8, 16, 28, 3, 1, 1),
    (16, 32, 14, 3, 1, 1),
    (32, 64, 14, 3, 1, 1),
    (32, 32, 14, 3, 1, 1),
    (64, 32, 14, 3, 1, 1),
    (16, 32, 16, 3, 1, 1),
    (32, 64, 16, 3, 1, 1),
    (16, 32, 13, 4, 2, 0),
    (64, 64, 7, 3, 1, 1),
    (64, 128, 7, 3, 1, 1),
    (64, 128, 8, 3, 1, 1),
]


def _median_ms(fn: Callable[[], object], reps: int) -> float:
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--reps", type=int, default=15)
    parser.add_argument(
        "--out", type=Path, default=Path("simulations/results/conv_grad_sample.json")
    )
    args = parser.parse_args()
    rows = []
    print(f"batch {args.batch}, {torch.get_num_threads()} threads, median of {args.reps} (ms)")
    for c_in, c_out, size, kernel, stride, padding in SHAPES:
        torch.manual_seed(0)
        layer = nn.Conv2d(c_in, c_out, kernel, stride, padding)
        x = torch.randn(args.batch, c_in, size, size)
        grad_out = torch.randn_like(layer(x)).detach()

        unfold = partial(compute_conv_grad_sample, layer, [x], grad_out)
        grouped = partial(
            torch.nn.grad.conv2d_weight,
            x.reshape(1, -1, size, size),
            (args.batch * c_out, c_in, kernel, kernel),
            grad_out.reshape(1, -1, *grad_out.shape[2:]),
            stride=stride,
            padding=padding,
            groups=args.batch,
        )
        unfold(), grouped()  # warm-up
        t_unfold, t_grouped = [], []
        for _ in range(args.reps):
            t_unfold.append(_median_ms(unfold, 1))
            t_grouped.append(_median_ms(grouped, 1))
        chosen = "grouped" if uses_grouped_kernel(layer, x, grad_out) else "unfold"
        got = conv2d_grad_sample(layer, [x], grad_out)[layer.weight]
        ref = compute_conv_grad_sample(layer, [x], grad_out)[layer.weight]
        row = {
            "shape": {"in": c_in, "out": c_out, "size": size, "kernel": kernel, "stride": stride},
            "output_positions": grad_out.shape[2] * grad_out.shape[3],
            "unfold_ms": statistics.median(t_unfold),
            "grouped_ms": statistics.median(t_grouped),
            "chosen": chosen,
            "max_abs_diff": float((got - ref).abs().max()),
        }
        rows.append(row)
        speedup = row["unfold_ms"] / row["grouped_ms"]  # type: ignore[operator]
        print(
            f"  {c_in:3d}→{c_out:<3d} {size:2d}×{size:<2d} k{kernel} s{stride}: "
            f"unfold {row['unfold_ms']:7.2f}  grouped {row['grouped_ms']:7.2f}  "
            f"({speedup:4.2f}×)  chosen: {chosen}"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    payload = {"batch": args.batch, "threads": torch.get_num_threads(), "rows": rows}
    args.out.write_text(json.dumps(payload, indent=2))
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
