"""PNG plots of one run: accuracy per round and bytes per round."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def _per_round(rows: list[dict[str, Any]], key: str) -> tuple[list[int], list[float]]:
    buckets: dict[int, list[float]] = defaultdict(list)
    for r in rows:
        if r[key] is not None:
            buckets[r["round"]].append(float(r[key]))
    rounds = sorted(buckets)
    return rounds, [sum(buckets[k]) / len(buckets[k]) for k in rounds]


def plot_run(rows: list[dict[str, Any]], out_dir: Path, *, title: str) -> None:
    fig, ax = plt.subplots(figsize=(6, 4))
    for key, label in (("local_accuracy", "ALMA (local test)"), ("global_accuracy", "global")):
        x, y = _per_round(rows, key)
        ax.plot(x, y, marker="o", label=label)
    ax.set(xlabel="round", ylabel="accuracy (mean over clients)", title=title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out_dir / "accuracy.png", dpi=120)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 4))
    for key, label in (
        ("bytes_up", "fedkd up"),
        ("bytes_down", "fedkd down"),
        ("flower_bytes_up", "Flower message up"),
        ("flower_bytes_down", "Flower message down"),
    ):
        x, y = _per_round([r for r in rows if r["round"] >= 1], key)
        ax.plot(x, y, marker="o", label=label)
    ax.set(xlabel="round", ylabel="bytes per client", title=title)
    ax.set_yscale("symlog")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out_dir / "bytes.png", dpi=120)
    plt.close(fig)

    if any(r["epsilon"] is not None for r in rows):
        plot_epsilon(rows, out_dir / "epsilon.png", title=title)


def plot_epsilon(rows: list[dict[str, Any]], path: Path, *, title: str) -> None:
    """Cumulative ε of every client per round (one line each), from the accountant."""
    by_node: dict[int, list[tuple[int, float]]] = defaultdict(list)
    for r in rows:
        if r["epsilon"] is not None:
            by_node[r["node_id"]].append((r["round"], float(r["epsilon"])))
    fig, ax = plt.subplots(figsize=(6, 4))
    for _, points in sorted(by_node.items()):
        points.sort()
        ax.plot([p[0] for p in points], [p[1] for p in points], marker=".", alpha=0.7)
    ax.set(xlabel="round", ylabel="cumulative ε (per client)", title=f"{title}: privacy spend")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
