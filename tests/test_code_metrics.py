"""The code-shape metrics: imports found where they hide, rooms and circles counted right."""

from __future__ import annotations

import ast

from tests.simulation_scripts import load_script

SOURCE = """
import os
from fedkd.config import RunConfig
from fedkd import api, __version__
from . import sibling

def late():
    from fedkd.audit.run import audit_run
    import fedkd.privacy.accountant
"""


def test_every_absolute_import_is_found_with_whether_a_function_hides_it() -> None:
    metrics = load_script("code_metrics")
    found = metrics.imported_modules(ast.parse(SOURCE))
    assert found == [
        ("os", False),
        ("fedkd.config", False),
        ("fedkd.api", False),
        ("fedkd.__version__", False),
        ("fedkd.audit.run", True),
        ("fedkd.privacy.accountant", True),
    ]


def test_rooms_are_first_level_modules_and_the_two_apps() -> None:
    metrics = load_script("code_metrics")
    assert metrics.room_of("fedkd.node.client_node") == "node"
    assert metrics.room_of("fedkd") == "fedkd"
    assert metrics.room_of("server.app") == "server"
    assert metrics.room_of("torch.nn") is None


def test_circles_are_the_strongly_connected_rooms() -> None:
    metrics = load_script("code_metrics")
    edges = {("a", "b"), ("b", "c"), ("c", "a"), ("c", "d"), ("d", "e")}
    assert metrics._circles(edges) == [["a", "b", "c"]]
    assert metrics._circles({("a", "b"), ("b", "c")}) == []


def test_the_working_tree_puts_every_room_on_a_floor() -> None:
    metrics = load_script("code_metrics").measure()
    assert metrics.rooms >= 20
    assert metrics.run_config_fields > 0
    assert metrics.largest_function["ClientNode"][1] > 0
