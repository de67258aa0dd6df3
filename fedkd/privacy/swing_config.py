"""Swing release settings: plain data, no torch (configs are parsed without it)."""

from __future__ import annotations

import math
from dataclasses import dataclass

NOISE_LAWS = ("none", "gaussian", "laplace")


@dataclass(frozen=True)
class SwingConfig:
    """Temperatures, noise and truncation of a swing release."""

    base_temperature: float = 2.0
    max_temperature: float = 8.0
    noise: str = "gaussian"
    noise_scale: float = 0.0
    floor: float = 1e-6
    top_k: int = 0

    def __post_init__(self) -> None:
        if not 0 < self.base_temperature <= self.max_temperature < math.inf:
            raise ValueError(
                "temperatures must satisfy 0 < base <= max < inf, got "
                f"base={self.base_temperature}, max={self.max_temperature}"
            )
        if self.noise not in NOISE_LAWS:
            raise ValueError(f"noise must be one of {NOISE_LAWS}, got {self.noise!r}")
        if not 0 <= self.noise_scale < math.inf:
            raise ValueError(f"noise scale must be >= 0 and finite, got {self.noise_scale}")
        if not 0 < self.floor < 1:
            raise ValueError(f"floor must be in (0, 1), got {self.floor}")
        if self.top_k < 0:
            raise ValueError(f"top_k must be >= 0 (0 keeps all), got {self.top_k}")
