"""The client node: its own data, model and privacy policy (no Flower in sight).

:class:`ClientNode` (which trains, so imports torch) loads on first use: a process that
only reads or writes node configs (a simulation's launcher, the server) never imports it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fedkd.node.config import NodeConfig, parse_node_config

if TYPE_CHECKING:
    from fedkd.node.client_node import ClientNode

__all__ = [
    "ClientNode",
    "NodeConfig",
    "parse_node_config",
]


def __getattr__(name: str) -> Any:
    if name == "ClientNode":
        from fedkd.node.client_node import ClientNode

        return ClientNode
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
