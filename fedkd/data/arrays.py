"""Features and labels travelling together."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class LabelledArrays:
    """``x``: float32 ``(N, *input_shape)``; ``y``: int64 ``(N,)``."""

    x: np.ndarray
    y: np.ndarray

    def __post_init__(self) -> None:
        if self.x.dtype != np.float32:
            raise ValueError(f"x must be float32, got {self.x.dtype}")
        if self.y.dtype != np.int64 or self.y.ndim != 1:
            raise ValueError(f"y must be 1-D int64, got {self.y.dtype} with shape {self.y.shape}")
        if len(self.x) != len(self.y):
            raise ValueError(f"x has {len(self.x)} rows but y has {len(self.y)}")

    def __len__(self) -> int:
        return len(self.y)

    def subset(self, idx: np.ndarray) -> LabelledArrays:
        return LabelledArrays(self.x[idx], self.y[idx])
