"""A strategy shipped by another package, found through the ``fedkd.fusion`` entry point."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fedkd.fusion import FusionResult, FusionStrategy, register_fusion


@register_fusion
@dataclass(frozen=True)
class FirstClient(FusionStrategy):
    """Everyone gets the first client's soft labels (a test double with a parameter)."""

    name = "plugin-first"
    sharpen: bool = False

    def _fuse(self, p: np.ndarray, w: np.ndarray) -> FusionResult:
        first = p[0] ** 2 if self.sharpen else p[0]
        first = first / first.sum(axis=1, keepdims=True)
        return FusionResult(targets=np.broadcast_to(first, p.shape).copy())
