"""The node loads only what a node needs: never the server's settings, strategies or audit.

What a node imports is what a hospital's node host runs: a module of the server side
loaded here would put server decisions (strategy parameters, timeouts, output folders)
within reach of the code that touches private records.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

NODE_ROOMS = frozenset(
    {
        "fedkd",
        "fedkd.data",
        "fedkd.distill",
        "fedkd.known_names",
        "fedkd.models",
        "fedkd.node",
        "fedkd.plugins",
        "fedkd.privacy",
        "fedkd.version_check",
        "fedkd.wire",
    }
)
"""The fedkd packages and modules a node may load (each with its submodules)."""


def _loaded_by(module: str) -> list[str]:
    probe = (
        f"import sys, {module}\n"
        "print('\\n'.join(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('fedkd', 'server', 'client', 'flwr'))))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return done.stdout.split()


def _room(module: str) -> str:
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == "fedkd" else parts[0]


def test_the_node_loads_only_the_allowlisted_modules() -> None:
    loaded = _loaded_by("fedkd.node.client_node")
    assert "fedkd.node.client_node" in loaded
    outside = sorted(m for m in loaded if _room(m) not in NODE_ROOMS)
    assert outside == []


def test_the_server_settings_strategies_and_audit_are_not_among_them() -> None:
    loaded = set(_loaded_by("fedkd.node.client_node"))
    for server_side in ("fedkd.config", "fedkd.coordinator", "fedkd.fusion", "fedkd.audit"):
        assert not any(m == server_side or m.startswith(server_side + ".") for m in loaded)
    assert not any(m.startswith("flwr") for m in loaded)
