"""Name → strategy registry: a new strategy is one file with a ``@register_fusion`` class.

Parameters arrive from TOML/CLI config as ``float | int | bool | str``; ``make_fusion``
checks each against the type of the field's default, so ``top_m = 2.5`` or
``include_self = "no"`` fail here with the parameter's name instead of deep in numpy.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from fedkd.fusion.base import Strategy
from fedkd.plugins import Param, dataclass_params

FUSION_REGISTRY: dict[str, type[Strategy]] = {}

_S = TypeVar("_S", bound=type[Strategy])


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


def make_fusion(name: str, **params: Param) -> Strategy:
    """Instantiate the strategy registered as ``name``.

    Parameters
    ----------
    name
        A key of ``FUSION_REGISTRY``.
    **params
        The strategy's dataclass fields; an int is accepted for a float field.

    Returns
    -------
    Strategy

    Raises
    ------
    ValueError
        Unknown ``name`` (the message lists the known ones), unknown parameter, a parameter
        of the wrong type, or a value the strategy's ``__post_init__`` rejects.
    """
    if name not in FUSION_REGISTRY:
        raise ValueError(f"unknown fusion strategy {name!r}; known: {sorted(FUSION_REGISTRY)}")
    cls = FUSION_REGISTRY[name]
    factory: Callable[..., Strategy] = cls
    return factory(**dataclass_params(name, cls, dict(params)))


def param_owner(key: str) -> tuple[str, str] | None:
    """``("knfu", "top_m")`` for the run-config key ``knfu-top-m``; None if no strategy owns it.

    The longest registered name wins, so ``trimmed-mean-…`` never goes to ``mean``.
    """
    owners = [name for name in FUSION_REGISTRY if key.startswith(f"{name}-")]
    if not owners:
        return None
    name = max(owners, key=len)
    return name, key[len(name) + 1 :].replace("-", "_")
