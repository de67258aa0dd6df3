"""What the server received: each node's released soft labels, round by round.

A curious server keeps every release; with ``record-releases = true`` fedkd's server does
so openly, writing ``<run>/releases/<node name>.npz``, which the audit's server view
reads.  Recorded as received (after dequantisation and row renormalisation), before any
strategy decides whether to use them.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Release:
    round: int
    anchors: np.ndarray
    soft_labels: np.ndarray


@dataclass
class ReleaseLog:
    by_node: dict[str, list[Release]] = field(default_factory=lambda: defaultdict(list))

    def record(self, node: str, round_: int, anchors: np.ndarray, soft_labels: np.ndarray) -> None:
        self.by_node[node].append(
            Release(round_, np.asarray(anchors, np.int64).copy(), np.asarray(soft_labels).copy())
        )

    def save(self, folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        for node, releases in self.by_node.items():
            arrays: dict[str, np.ndarray] = {}
            for release in releases:
                arrays[f"r{release.round}_anchors"] = release.anchors
                arrays[f"r{release.round}_labels"] = release.soft_labels.astype(np.float32)
            np.savez_compressed(folder / f"{node}.npz", **arrays)  # type: ignore[arg-type]
        return folder


def load_releases(path: Path) -> list[Release]:
    """One node's releases, in round order."""
    with np.load(path, allow_pickle=False) as f:
        rounds = sorted({int(k[1:].split("_")[0]) for k in f.files})
        return [Release(r, f[f"r{r}_anchors"], f[f"r{r}_labels"]) for r in rounds]
