"""The client node: its own data, model and privacy policy (no Flower in sight)."""

from fedkd.node.client_node import ClientNode
from fedkd.node.config import NodeConfig, parse_node_config
from fedkd.node.simulated import simulated_node_config, simulated_state_dir

__all__ = [
    "ClientNode",
    "NodeConfig",
    "parse_node_config",
    "simulated_node_config",
    "simulated_state_dir",
]
