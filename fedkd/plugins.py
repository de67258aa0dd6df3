"""Finding extension points: every module of a built-in package, then installed plugins.

A built-in strategy or data provider is one file in its package (found by
:func:`import_package_modules`); a plugin from another distribution registers through an
entry point (``[project.entry-points."fedkd.fusion"]`` or ``"fedkd.data_providers"``).
Both run on import of the registry's package, so Ray workers and SuperNodes, which import
the same packages, see the same registries.
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
import pkgutil
from importlib.metadata import entry_points
from types import ModuleType

log = logging.getLogger(__name__)

Param = float | int | bool | str


def import_package_modules(package: ModuleType) -> None:
    """Import every module directly inside ``package`` (registration happens on import)."""
    for info in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"{package.__name__}.{info.name}")


def load_entry_points(group: str) -> None:
    """Import every entry point of ``group``; a broken plugin is logged, never fatal."""
    for entry in entry_points(group=group):
        try:
            entry.load()
        except Exception:  # a third-party plugin must not take the platform down
            log.exception("plugin %s (%s) failed to load", entry.name, entry.value)


def typed_param(owner: str, key: str, default: object, value: Param) -> Param:
    """``value`` checked against the type of ``default`` (an int is accepted for a float).

    Raises
    ------
    ValueError
        The value's type does not match, naming ``owner`` and ``key``.
    """
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
            f"{owner} parameter {key} must be {type(default).__name__}, "
            f"got {value!r} ({type(value).__name__})"
        )
    return value


def dataclass_params(owner: str, cls: type, params: dict[str, Param]) -> dict[str, Param]:
    """``params`` checked against the fields of dataclass ``cls``; unknown names refused."""
    fields = {f.name: f for f in dataclasses.fields(cls)} if dataclasses.is_dataclass(cls) else {}
    unknown = sorted(set(params) - set(fields))
    if unknown:
        from fedkd.known_names import did_you_mean

        near = [f"{name!r}" for u in unknown if (name := did_you_mean(u, fields)) is not None]
        hint = f"did you mean {' or '.join(near)}? " if near else ""
        raise ValueError(f"{owner} has no parameter(s) {unknown}; {hint}known: {sorted(fields)}")
    return {key: typed_param(owner, key, fields[key].default, v) for key, v in params.items()}
