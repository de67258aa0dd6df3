"""The local loops' settings: plain data, no torch (configs are parsed without it)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class OptimiserConfig:
    """Plain SGD-with-momentum settings for the local loops."""

    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 0.0
    batch_size: int = 32


@dataclass(frozen=True)
class DistillConfig:
    """How to distil toward fused targets: ``kl_weight · L_KD + ce_weight · CE``."""

    temperature: float = 2.0
    epochs: int = 1
    kl_weight: float = 1.0
    ce_weight: float = 1.0

    def __post_init__(self) -> None:
        if self.temperature <= 0:
            raise ValueError(f"distill temperature must be > 0, got {self.temperature}")
        if self.kl_weight < 0 or self.ce_weight < 0:
            raise ValueError(
                f"loss weights must be >= 0, got kl={self.kl_weight}, ce={self.ce_weight}"
            )
