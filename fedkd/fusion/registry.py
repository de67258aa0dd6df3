"""Name → strategy registry: a new strategy is one file plus one ``@register_fusion``.

Parameters arrive from TOML/CLI config as ``float | int | bool | str``; ``make_fusion``
checks each against the type of the field's default, so ``top_m = 2.5`` or
``include_self = "no"`` fail here with the parameter's name instead of deep in numpy.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TypeVar

from fedkd.fusion.base import FusionStrategy

Param = float | int | bool | str
FUSION_REGISTRY: dict[str, type[FusionStrategy]] = {}

_S = TypeVar("_S", bound=type[FusionStrategy])


def register_fusion(cls: _S) -> _S:
    """Class decorator: register ``cls`` under ``cls.name``.

    Raises
    ------
    ValueError
        If another strategy already holds the name.
    """
    if cls.name in FUSION_REGISTRY:
        raise ValueError(f"fusion strategy {cls.name!r} is already registered")
    FUSION_REGISTRY[cls.name] = cls
    return cls


def make_fusion(name: str, **params: Param) -> FusionStrategy:
    """Instantiate the strategy registered as ``name``.

    Parameters
    ----------
    name
        A key of ``FUSION_REGISTRY``.
    **params
        The strategy's dataclass fields; an int is accepted for a float field.

    Returns
    -------
    FusionStrategy

    Raises
    ------
    ValueError
        Unknown ``name`` (the message lists the known ones), unknown parameter, a parameter
        of the wrong type, or a value the strategy's ``__post_init__`` rejects.
    """
    if name not in FUSION_REGISTRY:
        raise ValueError(f"unknown fusion strategy {name!r}; known: {sorted(FUSION_REGISTRY)}")
    cls = FUSION_REGISTRY[name]
    fields: dict[str, dataclasses.Field[object]] = (
        {f.name: f for f in dataclasses.fields(cls)} if dataclasses.is_dataclass(cls) else {}
    )
    unknown = sorted(set(params) - set(fields))
    if unknown:
        raise ValueError(f"{name} has no parameter(s) {unknown}; known: {sorted(fields)}")
    checked = {key: _typed(name, key, fields[key].default, value) for key, value in params.items()}
    factory: Callable[..., FusionStrategy] = cls
    return factory(**checked)


def _typed(strategy: str, key: str, default: object, value: Param) -> Param:
    if default is dataclasses.MISSING:
        return value
    # bool is a subclass of int, so it is tested first and never passes for a number.
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(default, float):
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        if ok:
            return float(value)
    else:
        ok = isinstance(value, type(default))
    if not ok:
        raise ValueError(
            f"{strategy} parameter {key} must be {type(default).__name__}, "
            f"got {value!r} ({type(value).__name__})"
        )
    return value
