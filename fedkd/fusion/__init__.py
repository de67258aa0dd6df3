"""Server-side fusion strategies: one file each, found by name in ``FUSION_REGISTRY``."""

from fedkd.fusion import dsfl, fedavg, knfu, local, mean, median, trimmed_mean
from fedkd.fusion.base import FusionInput, FusionResult, FusionStrategy
from fedkd.fusion.registry import FUSION_REGISTRY, make_fusion, register_fusion

__all__ = [
    "FUSION_REGISTRY",
    "FusionInput",
    "FusionResult",
    "FusionStrategy",
    "dsfl",
    "fedavg",
    "knfu",
    "local",
    "make_fusion",
    "mean",
    "median",
    "register_fusion",
    "trimmed_mean",
]
