"""The canary file: records an audit inserts into one target client's data, and the
never-inserted references drawn the same way, with the inclusion coin of each.

The audit draws and scores canaries (:mod:`fedkd.audit.canaries`); a node only reads this
file, through the ``with-canaries`` data provider, so the format lives with the data.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

KINDS = ("ood", "mislabelled")
"""Canary kinds, in the order the file's ``kind`` column indexes them."""


@dataclass(frozen=True)
class CanarySet:
    """Canary inputs and labels with their kind, role and inclusion coin."""

    x: np.ndarray
    y: np.ndarray
    kind: np.ndarray
    """Index into :data:`KINDS`."""
    candidate: np.ndarray
    """True for the ½-inclusion candidates, False for never-inserted references."""
    coin: np.ndarray
    """The ½-inclusion draw of each candidate (False for references): the membership the
    attacks are scored against."""
    inserted: np.ndarray
    """What went into the target's data: ``coin``, or nothing in a negative control."""
    repeats: int
    seed: int

    def __post_init__(self) -> None:
        n = len(self.x)
        for name in ("y", "kind", "candidate", "coin", "inserted"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"canary {name} has {len(getattr(self, name))} rows for {n}")
        if np.any(self.coin & ~self.candidate) or np.any(self.inserted & ~self.coin):
            raise ValueError("only candidates whose coin came up IN can be inserted")
        if self.repeats < 1:
            raise ValueError(f"repeats must be >= 1, got {self.repeats}")

    def of_kind(self, kind: str) -> np.ndarray:
        return np.asarray(self.kind == KINDS.index(kind))

    def inserted_rows(self) -> tuple[np.ndarray, np.ndarray]:
        """What goes into the target's training data: each inserted canary ``repeats``×."""
        idx = np.repeat(np.flatnonzero(self.inserted), self.repeats)
        return self.x[idx], self.y[idx]

    def save(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(
            path,
            x=self.x,
            y=self.y,
            kind=self.kind,
            candidate=self.candidate,
            coin=self.coin,
            inserted=self.inserted,
            repeats=np.array(self.repeats),
            seed=np.array(self.seed),
        )
        return path

    @classmethod
    def load(cls, path: Path) -> CanarySet:
        with np.load(path, allow_pickle=False) as f:
            return cls(
                x=f["x"].astype(np.float32),
                y=f["y"].astype(np.int64),
                kind=f["kind"].astype(np.int64),
                candidate=f["candidate"].astype(bool),
                coin=f["coin"].astype(bool),
                inserted=f["inserted"].astype(bool),
                repeats=int(f["repeats"]),
                seed=int(f["seed"]),
            )
