"""``fedavg``: weight averaging, the reference point, not a distillation strategy.

McMahan, Moore, Ramage, Hampson, Agüera y Arcas, "Communication-Efficient Learning of Deep
Networks from Decentralized Data", AISTATS 2017, arXiv:1602.05629::

    θ = Σ_j (n_j / Σ_i n_i) θ_j        (homogeneous architectures only)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from fedkd.fusion.base import FusionResult, FusionStrategy
from fedkd.fusion.registry import register_fusion


def fedavg_weights(
    state_dicts: Sequence[Mapping[str, np.ndarray]], weights: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """Weighted average of model weights, key by key."""
    if not state_dicts:
        raise ValueError("fedavg needs at least one model")
    w = np.full(len(state_dicts), 1.0) if weights is None else np.asarray(weights, np.float64)
    if w.shape != (len(state_dicts),) or np.any(w < 0) or w.sum() <= 0:
        raise ValueError(f"fedavg weights must be {len(state_dicts)} nonnegative values, got {w}")
    w = w / w.sum()
    keys = list(state_dicts[0])
    for i, sd in enumerate(state_dicts[1:], start=1):
        if list(sd) != keys:
            raise ValueError(f"model {i} has keys {sorted(set(sd) ^ set(keys))} the first lacks")
    averaged: dict[str, np.ndarray] = {}
    for key in keys:
        shapes = {np.shape(sd[key]) for sd in state_dicts}
        if len(shapes) != 1:
            raise ValueError(f"tensor {key!r} has different shapes across models: {shapes}")
        stacked = np.stack([np.asarray(sd[key], dtype=np.float64) for sd in state_dicts])
        averaged[key] = np.tensordot(w, stacked, axes=1).astype(
            np.asarray(state_dicts[0][key]).dtype
        )
    return averaged


@register_fusion
@dataclass(frozen=True)
class FedAvg(FusionStrategy):
    """Marker so configs can name ``fedavg``; it averages weights, not soft labels."""

    name = "fedavg"
    exchanges_knowledge = False
    weight_averaging = True

    def _fuse(self, p: np.ndarray, w: np.ndarray) -> FusionResult:
        raise ValueError("fedavg averages model weights (fedavg_weights), not soft labels")
