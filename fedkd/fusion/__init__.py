"""Server-side strategies: one file each, found by name in ``FUSION_REGISTRY``.

Importing this package imports every module in it and every ``fedkd.fusion`` entry
point, which fills the registry: adding a strategy is adding one file.
"""

import sys

from fedkd.fusion.base import (
    Aggregate,
    Contribution,
    FusionInput,
    FusionResult,
    FusionStrategy,
    Instruction,
    Knowledge,
    ModelState,
    Release,
    Strategy,
)
from fedkd.fusion.fedavg import fedavg_weights
from fedkd.fusion.registry import FUSION_REGISTRY, make_fusion, param_owner, register_fusion
from fedkd.plugins import import_package_modules, load_entry_points

import_package_modules(sys.modules[__name__])
load_entry_points("fedkd.fusion")

__all__ = [
    "FUSION_REGISTRY",
    "Aggregate",
    "Contribution",
    "FusionInput",
    "FusionResult",
    "FusionStrategy",
    "Instruction",
    "Knowledge",
    "ModelState",
    "Release",
    "Strategy",
    "fedavg_weights",
    "make_fusion",
    "param_owner",
    "register_fusion",
]
