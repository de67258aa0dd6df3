"""What every fusion strategy shares: input checks, the result type, the interface.

``P ∈ R^{K×T×C}``: the soft labels of the K clients that replied validly, on T anchors
over C classes.  A strategy returns a personalised target ``F_k ∈ R^{T×C}`` per client.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

_ROW_TOLERANCE = 1e-3


@dataclass(frozen=True)
class FusionInput:
    """Soft labels of the valid clients and optional per-client weights (e.g. data sizes)."""

    soft_labels: np.ndarray
    weights: np.ndarray | None = None


@dataclass(frozen=True)
class FusionResult:
    """Targets ``(K, T, C)``; ``mixing`` is the K×K matrix when ``F_k = Σ_j M_kj P_j``."""

    targets: np.ndarray
    mixing: np.ndarray | None = None


class FusionStrategy(ABC):
    """Server-side fusion of soft labels into per-client targets."""

    name: ClassVar[str]
    personalised: ClassVar[bool] = False
    exchanges_knowledge: ClassVar[bool] = True
    weight_averaging: ClassVar[bool] = False

    def fuse(self, inputs: FusionInput) -> FusionResult:
        """Validate ``inputs``, then apply the strategy's formula."""
        p = _checked_soft_labels(inputs.soft_labels)
        w = _checked_weights(inputs.weights, p.shape[0])
        result = self._fuse(p, w)
        targets = np.clip(result.targets, 0.0, None)
        targets = targets / targets.sum(axis=2, keepdims=True)
        return FusionResult(targets=targets.astype(np.float32), mixing=result.mixing)

    @abstractmethod
    def _fuse(self, p: np.ndarray, w: np.ndarray) -> FusionResult:
        """``p``: float64 (K, T, C) with rows on the simplex; ``w``: (K,) summing to 1."""


def _checked_soft_labels(soft_labels: np.ndarray) -> np.ndarray:
    p = np.asarray(soft_labels, dtype=np.float64)
    if p.ndim != 3:
        raise ValueError(f"soft labels must be (clients, anchors, classes), got shape {p.shape}")
    if p.shape[0] < 1 or p.shape[2] < 1:
        raise ValueError(f"need at least one client and one class, got shape {p.shape}")
    if not np.all(np.isfinite(p)):
        raise ValueError("soft labels contain NaN or inf")
    if np.any(p < 0):
        raise ValueError(f"soft labels must be nonnegative, min is {p.min():.3g}")
    sums = p.sum(axis=2, keepdims=True)
    if p.shape[1] and np.max(np.abs(sums - 1.0)) > _ROW_TOLERANCE:
        raise ValueError(
            f"soft-label rows must sum to 1, max deviation {np.max(np.abs(sums - 1.0)):.3g}"
        )
    return p / np.where(sums > 0, sums, 1.0)


def _checked_weights(weights: np.ndarray | None, num_clients: int) -> np.ndarray:
    if weights is None:
        return np.full(num_clients, 1.0 / num_clients)
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (num_clients,):
        raise ValueError(f"weights must have shape ({num_clients},), got {w.shape}")
    if not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
        raise ValueError(f"weights must be finite, nonnegative, not all zero, got {w}")
    normalised: np.ndarray = w / w.sum()
    return normalised
