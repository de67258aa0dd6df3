"""Small model zoo: every model is Opacus-compatible (GroupNorm, no BatchNorm).

Plugins add architectures through the entry point group ``fedkd.models`` (imported here,
so Ray workers and SuperNodes that import fedkd see them too).
"""

from fedkd.models import cnn, mlp, scatnet
from fedkd.models.registry import MODEL_REGISTRY, ModelSpec, build_model, register_model
from fedkd.plugins import load_entry_points

load_entry_points("fedkd.models")

__all__ = ["MODEL_REGISTRY", "ModelSpec", "build_model", "cnn", "mlp", "register_model", "scatnet"]
