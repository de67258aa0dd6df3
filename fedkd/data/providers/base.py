"""A node's private data: what a provider gives, and how a provider is found by name.

A node names its provider in its *own* configuration (``data = "csv"``, ``data-path =
...``); the server never sees either.  A provider reads and validates its records on the
node and returns a :class:`PrivateData`; anything wrong with them raises
:class:`DataValidationError`, whose problems stay in the node's local log.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from typing import ClassVar, TypeVar

from fedkd.data.private import PrivateData
from fedkd.data.public import PublicData
from fedkd.plugins import Param, dataclass_params

PROVIDER_REGISTRY: dict[str, type[PrivateDataProvider]] = {}
_P = TypeVar("_P", bound="type[PrivateDataProvider]")


class DataValidationError(ValueError):
    """The node's records cannot be used; ``problems`` lists each one, specifically."""

    def __init__(self, source: str, problems: list[str] | tuple[str, ...]) -> None:
        self.source = source
        self.problems = tuple(problems)
        listed = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{source}: {len(self.problems)} problem(s)\n{listed}")


class PrivateDataProvider(ABC):
    """Reads a node's private records.  Subclasses are frozen dataclasses of options."""

    name: ClassVar[str]
    wraps_provider: ClassVar[bool] = False
    """True for a wrapper (``base`` + ``base_options``): options it does not declare go to
    its base provider."""

    @abstractmethod
    def load(self, public: PublicData) -> PrivateData:
        """Read, validate and split the records against the federation's ``public`` data.

        Raises
        ------
        DataValidationError
            Every problem found, each a specific line (column, row, value).
        """


def register_provider(cls: _P) -> _P:
    """Class decorator: register ``cls`` under ``cls.name``."""
    if cls.name in PROVIDER_REGISTRY:
        raise ValueError(f"data provider {cls.name!r} is already registered")
    PROVIDER_REGISTRY[cls.name] = cls
    return cls


def make_provider(name: str, options: Mapping[str, Param]) -> PrivateDataProvider:
    """The provider registered as ``name``, built from kebab- or snake-case ``options``.

    Raises
    ------
    ValueError
        Unknown provider (the known ones are listed), unknown option, or a wrong type.
    """
    if name not in PROVIDER_REGISTRY:
        raise ValueError(f"unknown data provider {name!r}; known: {sorted(PROVIDER_REGISTRY)}")
    cls = PROVIDER_REGISTRY[name]
    params = {key.replace("-", "_"): value for key, value in options.items()}
    if cls.wraps_provider:
        # A wrapper takes its own options; every other one is its base provider's.
        own = {f.name for f in dataclasses.fields(cls)} - {"base_options"}  # type: ignore[arg-type]
        passed = {k.replace("_", "-"): v for k, v in params.items() if k not in own}
        params = {k: v for k, v in params.items() if k in own}
        params["base_options"] = tuple(sorted(passed.items()))  # type: ignore[assignment]
    factory: Callable[..., PrivateDataProvider] = cls
    return factory(**dataclass_params(f"data provider {name}", cls, params))
