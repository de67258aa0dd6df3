"""The simulation's launcher and the server import neither torch nor Opacus.

A simulation's main process only starts Ray, serves the rounds and fuses arrays; torch
and Opacus together take seconds to import, which every run of ``fedkd simulate`` would
pay before its first round (measured: about 2.5 s of a 40 s MNIST run).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

LAUNCHER_MODULES = (
    "fedkd.cli",
    "fedkd.api",
    "fedkd.flower_glue.simulation",
    "fedkd.simulated_nodes",
    "fedkd.results",
    "server.app",
    "client.app",
)


def test_the_launcher_and_the_server_import_no_torch() -> None:
    probe = (
        "import importlib, sys\n"
        f"for name in {LAUNCHER_MODULES!r}:\n"
        "    importlib.import_module(name)\n"
        "print(sorted(m for m in ('torch', 'opacus') if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]", done.stdout


def test_the_client_node_is_still_importable_from_the_package() -> None:
    from fedkd.node import ClientNode
    from fedkd.node.client_node import ClientNode as Direct

    assert ClientNode is Direct
