"""Server-side fusion strategies: one file each, found by name in ``FUSION_REGISTRY``.

Importing this package imports every strategy module, which fills the registry.
"""

from fedkd.fusion import dsfl, fedavg, knfu, local, mean, median, trimmed_mean
from fedkd.fusion.base import FusionInput, FusionResult, FusionStrategy
from fedkd.fusion.fedavg import fedavg_weights
from fedkd.fusion.registry import FUSION_REGISTRY, make_fusion, register_fusion

__all__ = [
    "FUSION_REGISTRY",
    "FusionInput",
    "FusionResult",
    "FusionStrategy",
    "dsfl",
    "fedavg",
    "fedavg_weights",
    "knfu",
    "local",
    "make_fusion",
    "mean",
    "median",
    "register_fusion",
    "trimmed_mean",
]
