"""`make bench TABLE=ray-cluster`: the same simulation beyond one machine.

The simulation in its own Ray (one process tree, every core) and joining a two-node Ray
cluster (a head and a worker started as separate `ray start` processes, one CPU each:
simulations/ray_cluster.py), named by RAY_ADDRESS.
"""

from __future__ import annotations

import json
import os
import sys
import time

from bench_runner import PRE_TUNING_DEFAULTS, ROOT, Settings, Table, mean_std, spend, timed


def build(s: Settings) -> Table:
    """The table from its runs (complete ones are reused), or its code path on the smoke
    setting's tiny one."""
    sys.path.insert(0, str(ROOT / "simulations"))
    from ray_cluster import local_cluster

    python = sys.executable
    if s.smoke:
        config, sets = "simulations/digits.toml", ["num-clients=4", "num-server-rounds=2"]
    else:
        config = "simulations/mnist.toml"
        sets = ["dirichlet-alpha=0.1", "num-server-rounds=5", "strategy=mean",
                *(f"{k}={v}" for k, v in PRE_TUNING_DEFAULTS.items())]  # fmt: skip
    out = s.runs / "ray-cluster"
    extra = [a for kv in [*sets, "seed=0", f"output-dir={out}"] for a in ("--set", kv)]
    rows, almas = [], []
    for where in ("its own Ray (one machine, 2 CPUs)", "a 2-node Ray cluster (1 CPU each)"):
        name = "own" if where.startswith("its") else "cluster"
        args = [python, "-m", "fedkd.cli", "simulate", config, "--name", name, "--overwrite",
                *extra]  # fmt: skip
        if name == "own":
            wall, _ = timed(args)
            started = 0.0
        else:
            began = time.perf_counter()
            with local_cluster(nodes=2, cpus_per_node=1) as cluster:
                started = time.perf_counter() - began
                wall, _ = timed(args, env={**os.environ, "RAY_ADDRESS": cluster.address})
        spend(wall)
        summary = json.loads((out / name / "summary.json").read_text())
        rounds = summary["round_seconds"]
        training = [rounds[str(r)] for r in range(1, int(summary["rounds"]) + 1)]
        almas.append(float(summary["alma"]))
        rows.append([
            where, f"{started:.1f} s" if started else "—", f"{wall:.1f} s",
            f"{training[0]:.2f} s", mean_std(training[1:], "{:.2f} s"), f"{summary['alma']:.4f}",
        ])  # fmt: skip
    same = "identical ALMA" if almas[0] == almas[1] else f"ALMA {almas[0]:.4f} vs {almas[1]:.4f}"
    return Table(
        name="ray-cluster",
        title="Beyond one machine: the same simulation on a two-node Ray cluster",
        command="make bench TABLE=ray-cluster  # MNIST mean, α = 0.1, 10 clients × 5 rounds",
        columns=[
            "Ray",
            "cluster start",
            "process wall time",
            "first round",
            "later rounds (each)",
            "ALMA",
        ],
        rows=rows,
        headline=f"per later round {rows[0][4]} in its own Ray vs {rows[1][4]} on the "
        f"two-node cluster; {same}",
        notes=[
            "On a real cluster: `ray start --head --port=6379 --num-cpus=N` on the head, "
            "`ray start --address=<head>:6379 --num-cpus=N` on every other machine (fedkd "
            "installed, the same checkout path), then `RAY_ADDRESS=<head>:6379 fedkd "
            "simulate …` on the head; Flower's engine sizes its actor pool from the "
            "cluster's CPUs. Without RAY_ADDRESS a run always starts its own Ray.",
            "Both nodes share this machine's 2 cores here: the comparison shows the "
            "cluster path's own cost (actors on two raylets, messages through the head), "
            "not more compute. Every node's work is seeded by the run, so the results "
            "match the single-machine run.",
        ],
    )
