"""The layers keep their word, read from the source (nothing is imported).

Each rule names the boundary that stops a whole class of leaks: a strategy that learns
the wire format, core code that depends on the audit it should only feed, Flower spread
past its glue, a lower floor reaching into a higher one without saying why.
"""

from __future__ import annotations

import ast
from functools import cache
from types import ModuleType

from tests.simulation_scripts import load_script

ALLOWED_BACK_UP: dict[tuple[str, str], str] = {}
"""Every import from a room to a higher floor, with the reason it is allowed."""


@cache
def _metrics() -> ModuleType:
    return load_script("code_metrics")


@cache
def _imports() -> list[tuple[str, str, bool]]:
    """(importing module, imported module, inside a function) for the whole codebase."""
    metrics = _metrics()
    found = []
    for path, text in metrics._sources(None).items():
        module = metrics.module_name(path)
        for imported, in_function in metrics.imported_modules(ast.parse(text)):
            found.append((module, imported, in_function))
    return found


@cache
def _room(module: str) -> str | None:
    room: str | None = _metrics().room_of(module)
    return room


def _importers_of(prefix: str) -> set[str]:
    return {
        module
        for module, imported, _ in _imports()
        if imported == prefix or imported.startswith(prefix + ".")
    }


def test_fusion_knows_nothing_of_the_wire_the_coordinator_or_the_node() -> None:
    leaks = {
        (module, imported)
        for module, imported, _ in _imports()
        if _room(module) == "fusion" and _room(imported) in ("wire", "coordinator", "node")
    }
    assert leaks == set()


def test_only_the_audit_and_the_cli_import_audit_code() -> None:
    outside = {m for m in _importers_of("fedkd.audit") if _room(m) not in ("audit", "cli")}
    assert outside == set()


def test_flower_is_imported_only_by_its_glue_and_the_two_flower_apps() -> None:
    flower_users = _importers_of("flwr")
    allowed = {m for m in flower_users if _room(m) == "flower_glue"} | {"server.app", "client.app"}
    assert flower_users - allowed == set()
    assert _importers_of("flwr_datasets") <= {"fedkd.data.partition"}


def test_no_room_reaches_a_higher_floor_without_a_stated_reason() -> None:
    floors = _metrics().FLOORS
    floor = {room: level for level, rooms in enumerate(floors) for room in rooms}
    back_up = {
        (_room(module), _room(imported))
        for module, imported, _ in _imports()
        if _room(imported) is not None and floor[str(_room(imported))] > floor[str(_room(module))]
    }
    assert back_up <= set(ALLOWED_BACK_UP), f"unexplained: {sorted(back_up - set(ALLOWED_BACK_UP))}"


def test_every_room_sits_on_a_floor() -> None:
    floors = _metrics().FLOORS
    placed = {room for rooms in floors for room in rooms}
    rooms = {_room(module) for module, _, _ in _imports()} - {None}
    assert rooms <= placed
