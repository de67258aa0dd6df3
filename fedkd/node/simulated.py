"""The node configuration of a simulated node: what its operator would have written.

By default a simulated node takes its share of the run's built-in dataset (the
``partition`` provider) and has no privacy policy of its own; a simulation config's
``[node]`` table changes that for every node, and ``[node.<index>]`` for one::

    [node]
    privacy-max-epsilon = 3.0
    [node.2]
    data = "csv"
    data-path = "hospitals/switzerland.csv"
    data-schema = "hospitals/heart.schema.toml"
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fedkd.config import RunConfig
from fedkd.node.config import DATA_PREFIX, NodeConfig, parse_node_config

NodeSections = Mapping[str, Any]
"""A simulation config's ``[node]`` table: shared keys, and one sub-table per node index."""


def simulated_state_dir(cfg: RunConfig, *, token: str) -> Path:
    """Where a simulation's nodes keep their stores unless their ``[node]`` table says:
    ``<output-dir>/node-state/<run-name>-<token>/``, beside the run, never inside it.

    Such nodes are new hospitals every run: ``token`` is the run's own, so every run
    starts them afresh and no run's ledgers are ever deleted or reused (nodes given a
    ``state-dir`` of their own keep their stores across runs).
    """
    return Path(cfg.output_dir).expanduser().resolve() / "node-state" / f"{cfg.run_name}-{token}"


def simulated_node_config(
    cfg: RunConfig, partition_id: int, *, state_dir: str, sections: NodeSections | None = None
) -> NodeConfig:
    """Node ``partition_id``'s configuration: the partition default, then ``sections``."""
    sections = sections or {}
    shared = {k: v for k, v in sections.items() if not isinstance(v, Mapping)}
    own = sections.get(str(partition_id), {})
    chosen = {**shared, **own}
    base: dict[str, Any] = {
        "name": f"node-{partition_id}",
        "partition-id": partition_id,
        "model": cfg.model_for(partition_id),
        "state-dir": state_dir,
        "device": cfg.device,
    }
    if chosen.get("data", "partition") == "partition":
        base.update(_partition_options(cfg, partition_id))
    return parse_node_config({**base, **chosen})


def check_sections(sections: NodeSections, num_clients: int) -> None:
    """Per-node sub-tables must name simulated nodes: ``[node.0]`` … ``[node.N-1]``."""
    for key, value in sections.items():
        if isinstance(value, Mapping) and not (key.isdigit() and int(key) < num_clients):
            raise ValueError(
                f"[node.{key}] names no simulated node (indices 0 … {num_clients - 1})"
            )


def _partition_options(cfg: RunConfig, partition_id: int) -> dict[str, Any]:
    options = {
        "dataset": cfg.dataset,
        "num-partitions": cfg.num_clients,
        "partition-id": partition_id,
        "partitioner": cfg.partitioner,
        "seed": cfg.seed,
        "dirichlet-alpha": cfg.dirichlet_alpha,
        "classes-per-client": cfg.classes_per_client,
        "transfer-size": cfg.transfer_size,
        "min-local-test": cfg.min_local_test,
        "max-train-per-client": cfg.max_train_per_client,
        "data-dir": cfg.data_dir,
    }
    return {"data": "partition", **{DATA_PREFIX + k: v for k, v in options.items()}}
