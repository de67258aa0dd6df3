"""Seeded soft-label inputs shared by the fusion tests (the naive references live per file)."""

from __future__ import annotations

import numpy as np

from fedkd.fusion import FusionInput, make_fusion

# K = 1 included on purpose: every strategy must degrade to "your own labels".
SHAPES: list[tuple[int, int, int]] = [(1, 4, 3), (2, 5, 2), (3, 7, 5), (6, 12, 10)]


def soft_labels(shape: tuple[int, int, int], seed: int = 0, sparse: bool = False) -> np.ndarray:
    """Random ``(K, T, C)`` soft labels; clients get skewed label priors so they differ.

    ``sparse`` keeps only the top 2 entries of each row, like a top-k payload, so exact
    zeros reach the strategies.
    """
    rng = np.random.default_rng(seed)
    k, t, c = shape
    prior = rng.dirichlet(np.full(c, 0.5), size=k)
    p = np.stack([rng.dirichlet(1 + 20 * prior[j], size=t) for j in range(k)])
    if sparse and c > 2:
        cutoff = np.sort(p, axis=2)[:, :, -2:-1]
        p = np.where(p >= cutoff, p, 0.0)
        p /= p.sum(axis=2, keepdims=True)
    return p


def fuse(
    name: str, p: np.ndarray, weights: np.ndarray | None = None, **params: float | int | bool | str
) -> np.ndarray:
    """Targets of strategy ``name`` on ``p``."""
    return make_fusion(name, **params).fuse(FusionInput(p, weights)).targets
