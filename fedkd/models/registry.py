"""Name → model-builder registry, so configs name architectures as plain strings."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn


@dataclass(frozen=True)
class ModelSpec:
    """What a builder needs to know about the task."""

    input_shape: tuple[int, ...]
    num_classes: int


ModelBuilder = Callable[[ModelSpec], nn.Module]
MODEL_REGISTRY: dict[str, ModelBuilder] = {}


def register_model(name: str) -> Callable[[ModelBuilder], ModelBuilder]:
    """Register ``builder`` under ``name`` (decorator)."""

    def decorator(builder: ModelBuilder) -> ModelBuilder:
        if name in MODEL_REGISTRY:
            raise ValueError(f"model {name!r} is already registered")
        MODEL_REGISTRY[name] = builder
        return builder

    return decorator


def build_model(name: str, spec: ModelSpec) -> nn.Module:
    """Instantiate the registered model ``name`` for ``spec``."""
    if name not in MODEL_REGISTRY:
        raise ValueError(f"unknown model {name!r}; known: {sorted(MODEL_REGISTRY)}")
    return MODEL_REGISTRY[name](spec)
