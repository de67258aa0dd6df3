"""Where a DP-SGD epoch's extra time goes: operator self-times, DP against non-DP.

One epoch of each on the same records and model (the throughput benchmark's setting:
MNIST-shaped records, logical batch 256, σ = 1, C = 1), after one warm-up epoch each,
under torch.profiler; prints the operators whose self-time differs most.  A profile, not
a benchmark: use simulations/bench_dp_throughput.py for ratios.

Usage: python simulations/profile_dp_epoch.py [--model cnn-s] [--mode output-grads]
           [--records 6000] [--batch 256] [--top 15]
"""

from __future__ import annotations

import argparse
from collections import defaultdict

from bench_dp_throughput import one_epoch, synthetic_records
from torch.profiler import ProfilerActivity, profile


def _epoch(model_name: str, mode: str, records: int, batch: int) -> None:
    x, y = synthetic_records(records)
    one_epoch(model_name, mode, x, y, "cpu", batch, physical=512)


def self_times_ms(model_name: str, mode: str, records: int, batch: int) -> dict[str, float]:
    """Each operator's total self CPU time (ms) over one profiled epoch."""
    _epoch(model_name, mode, records, batch)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        _epoch(model_name, mode, records, batch)
    times: dict[str, float] = defaultdict(float)
    for event in prof.key_averages():
        times[event.key] += event.self_cpu_time_total / 1e3
    return dict(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="cnn-s")
    parser.add_argument("--mode", default="output-grads")
    parser.add_argument("--records", type=int, default=6000)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args()
    dp = self_times_ms(args.model, args.mode, args.records, args.batch)
    plain = self_times_ms(args.model, "none", args.records, args.batch)
    print(
        f"{args.model}, one epoch of {args.records:,} records, batch {args.batch}: "
        f"{args.mode} {sum(dp.values()):,.0f} ms, non-DP {sum(plain.values()):,.0f} ms "
        "(operators' self CPU time)"
    )
    names = sorted(set(dp) | set(plain), key=lambda n: -abs(dp.get(n, 0) - plain.get(n, 0)))
    print(f"{'operator':50s} {args.mode:>12s} {'non-DP':>9s} {'extra':>9s}")
    for name in names[: args.top]:
        extra = dp.get(name, 0.0) - plain.get(name, 0.0)
        ours, theirs = dp.get(name, 0.0), plain.get(name, 0.0)
        print(f"{name[:50]:50s} {ours:10.1f}ms {theirs:7.1f}ms {extra:+8.1f}ms")


if __name__ == "__main__":
    main()
