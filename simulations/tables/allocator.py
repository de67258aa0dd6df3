"""`make bench TABLE=allocator`: training throughput with glibc's default malloc thresholds
against fedkd's (fedkd/allocator.py: freed memory kept for reuse), non-DP and DP, in paired
processes.
"""

from __future__ import annotations

import json
import statistics
import sys

from bench_runner import ROOT, Settings, Table, spend, timed


def build(s: Settings) -> Table:
    """The table from its runs (complete ones are reused), or its code path on the smoke
    setting's tiny one."""
    models, reps, records = (["cnn-s"], 1, 512) if s.smoke else (["cnn-s", "mlp-m"], 15, 6000)
    script = str(ROOT / "simulations" / "bench_dp_throughput.py")
    out = s.runs / "allocator"
    out.mkdir(parents=True, exist_ok=True)
    speeds: dict[tuple[str, str, str], list[float]] = {}
    for rep in range(reps):
        order = ("defaults", "kept") if rep % 2 == 0 else ("kept", "defaults")
        for setting in order:
            path = out / f"{setting}-{rep}.json"
            args = [sys.executable, script, "--models", ",".join(models), "--reps", "1",
                    "--modes", "output-grads", "--records", str(records),
                    "--out", str(path)]  # fmt: skip
            if setting == "defaults":
                args.append("--malloc-defaults")
            wall, _ = timed(args)
            spend(wall)
            for model, got in json.loads(path.read_text())["models"].items():
                for mode, value in got["samples_per_s_median"].items():
                    speeds.setdefault((model, mode, setting), []).append(value)
    rows = []
    for model in models:
        for mode, label in (("none", "non-DP"), ("output-grads", "DP-SGD, output-grads")):
            before, after = speeds[(model, mode, "defaults")], speeds[(model, mode, "kept")]
            gains = [a / b for a, b in zip(after, before, strict=True)]
            before_s, after_s = statistics.median(before), statistics.median(after)
            rows.append([
                model, label, f"{before_s:,.0f}", f"{after_s:,.0f}",
                f"{statistics.median(gains):.2f}× [{min(gains):.2f}–{max(gains):.2f}]",
            ])  # fmt: skip
    return Table(
        name="allocator",
        title="Training throughput: glibc's malloc defaults against freed memory kept",
        command="make bench TABLE=allocator  # simulations/bench_dp_throughput.py, paired",
        columns=[
            "model",
            "training",
            "samples/s, glibc defaults",
            "samples/s, freed memory kept",
            "speed-up",
        ],
        rows=rows,
        headline="; ".join(f"{r[0]} {r[1]} {r[4].split(' ')[0]}" for r in rows),
        notes=[
            f"{reps} repetitions; each runs `bench_dp_throughput.py --reps 1 --modes "
            "output-grads` once with `--malloc-defaults` and once without, in alternating "
            "order, and the speed-up is taken within the repetition (median [range]). "
            f"{records:,} MNIST-shaped records, logical batch 256.",
            "fedkd's nodes keep freed memory (fedkd/allocator.py: mallopt's mmap threshold "
            "32 MiB, trim threshold 256 MiB) because each step otherwise faults its "
            "temporaries' pages in again, which a virtual machine that reports freed pages "
            "to its host (as this one does) makes dear. FEDKD_KEEP_FREED_MEMORY=0 turns it "
            "off.",
        ],
    )
