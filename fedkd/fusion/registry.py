"""Name → strategy registry: a new strategy is one file plus one ``@register_fusion``."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TypeVar

from fedkd.fusion.base import FusionStrategy

FUSION_REGISTRY: dict[str, type[FusionStrategy]] = {}
Param = float | int | bool | str


_S = TypeVar("_S", bound=type[FusionStrategy])


def register_fusion(cls: _S) -> _S:
    """Class decorator: register ``cls`` under ``cls.name``."""
    if cls.name in FUSION_REGISTRY:
        raise ValueError(f"fusion strategy {cls.name!r} is already registered")
    FUSION_REGISTRY[cls.name] = cls
    return cls


def make_fusion(name: str, **params: Param) -> FusionStrategy:
    """Instantiate strategy ``name`` with keyword parameters (its dataclass fields)."""
    if name not in FUSION_REGISTRY:
        raise ValueError(f"unknown fusion strategy {name!r}; known: {sorted(FUSION_REGISTRY)}")
    cls = FUSION_REGISTRY[name]
    known: set[str] = (
        {f.name for f in dataclasses.fields(cls)} if dataclasses.is_dataclass(cls) else set()
    )
    unknown = sorted(set(params) - known)
    if unknown:
        raise ValueError(f"{name} has no parameter(s) {unknown}; known: {sorted(known)}")
    factory: Callable[..., FusionStrategy] = cls
    return factory(**params)
