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
from fedkd.known_names import unknown_name
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
    for key in ("data", "data-base"):  # a wrapper's base provider is named by data-base
        if key in chosen or key == "data":
            check_provider_name(f"node-{partition_id}", chosen.get(key, "partition"), key=key)
    base: dict[str, Any] = {
        "name": f"node-{partition_id}",
        "partition-id": partition_id,
        "model": cfg.model_for(partition_id),
        "state-dir": state_dir,
        "device": cfg.device,
    }
    if chosen.get("data", "partition") == "partition":
        base.update(_partition_options(cfg, partition_id))
    try:
        node = parse_node_config({**base, **chosen})
    except ValueError as exc:
        name = str(chosen.get("name", base["name"]))
        raise ValueError(str(exc) if name in str(exc) else f"{name}: {exc}") from None
    check_data_provider(node)
    return node


def check_provider_name(node_name: str, data: object, *, key: str = "data") -> None:
    """``data`` names a registered data provider (checked first: what else a node needs,
    a lifetime budget for real data say, depends on it)."""
    from fedkd.data.providers import PROVIDER_REGISTRY

    if data not in PROVIDER_REGISTRY:
        unknown = unknown_name("data provider", data, PROVIDER_REGISTRY)
        raise ValueError(f"{node_name}: {key}: {unknown}")


def check_data_provider(node: NodeConfig) -> None:
    """The node's ``data`` names a registered provider that takes its ``data-`` options,
    and so does the base of a wrapper (``with-canaries``): checked before a simulation
    starts (no record is read), not in every simulated node.
    """
    import dataclasses

    from fedkd.data.providers import make_provider

    name, options = node.data, dict(node.data_options)
    key = "data"
    for _ in range(4):  # a wrapper of a wrapper at most
        check_provider_name(node.name, name, key=key)
        try:
            provider = make_provider(name, options)
        except ValueError as exc:
            raise ValueError(f"{node.name}: {exc}") from None
        if not (provider.wraps_provider and dataclasses.is_dataclass(provider)):
            return
        fields = {f.name: getattr(provider, f.name) for f in dataclasses.fields(provider)}
        name, options, key = fields["base"], dict(fields["base_options"]), "data-base"


def check_sections(sections: NodeSections, num_clients: int) -> None:
    """Per-node sub-tables must name simulated nodes: ``[node.0]`` … ``[node.N-1]``."""
    for key, value in sections.items():
        if isinstance(value, Mapping) and not (key.isdigit() and int(key) < num_clients):
            raise ValueError(
                f"[node.{key}] names no simulated node (indices 0 … {num_clients - 1})"
            )


def representative_nodes(
    cfg: RunConfig, sections: NodeSections, *, state_dir: str
) -> list[NodeConfig]:
    """One node config per distinct ``[node]`` table: every node with a table of its
    own, and the first without one (the others differ from it only in their index), so a
    simulation's nodes are checked in time independent of how many there are."""
    check_sections(sections, cfg.num_clients)
    own = sorted(int(k) for k, v in sections.items() if isinstance(v, Mapping))
    plain = next((pid for pid in range(cfg.num_clients) if pid not in set(own)), None)
    pids = sorted({*own, *([] if plain is None else [plain])})
    return [simulated_node_config(cfg, pid, state_dir=state_dir, sections=sections) for pid in pids]


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
        "local-test-fraction": cfg.local_test_fraction,
        "max-train-per-client": cfg.max_train_per_client,
        "data-dir": cfg.data_dir,
    }
    return {"data": "partition", **{DATA_PREFIX + k: v for k, v in options.items()}}
