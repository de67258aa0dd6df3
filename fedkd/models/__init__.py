"""Small model zoo: every model is Opacus-compatible (GroupNorm, no BatchNorm).

A built-in architecture is one file here that calls ``register_model("name")``: importing
this package imports every module in it.  Plugins add architectures through the entry
point group ``fedkd.models`` (imported here, so Ray workers and SuperNodes that import
fedkd see them too).
"""

import sys

from fedkd.models.registry import MODEL_REGISTRY, ModelSpec, build_model, register_model
from fedkd.plugins import import_package_modules, load_entry_points

import_package_modules(sys.modules[__name__])
load_entry_points("fedkd.models")

__all__ = ["MODEL_REGISTRY", "ModelSpec", "build_model", "register_model"]
