"""Small model zoo: every model is Opacus-compatible (GroupNorm, no BatchNorm)."""

from fedkd.models import cnn, mlp
from fedkd.models.registry import MODEL_REGISTRY, ModelSpec, build_model, register_model

__all__ = ["MODEL_REGISTRY", "ModelSpec", "build_model", "cnn", "mlp", "register_model"]
