"""Simulated nodes for tests that drive rounds without Flower, as the simulation builds them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fedkd.config import RunConfig
from fedkd.data.federated import DataSpec, FederatedData, build_federated_data
from fedkd.data.providers import make_provider
from fedkd.data.providers.simulated_partition import SimulatedPartition
from fedkd.node import ClientNode, NodeConfig
from fedkd.privacy.guard import PrivacyPlan, plan_for
from fedkd.privacy.policy import resolve_privacy
from fedkd.privacy.recipe import training_plan
from fedkd.simulated_nodes import simulated_node_config
from fedkd.wire.types import ModelWeights


def state_dir(cfg: RunConfig) -> str:
    """Where a simulation of ``cfg`` keeps its nodes' state (ledgers, local logs, answered
    rounds): one folder per test, under this test session's own temporary folder, so no
    test sees another's — or an earlier session's — ledgers or cached replies."""
    import hashlib
    import os
    import tempfile

    test = os.environ.get("PYTEST_CURRENT_TEST", "").split(" ")[0]
    token = hashlib.sha256(test.encode()).hexdigest()[:10]
    # One root per test session, inherited by the processes a test spawns.
    root = os.environ.setdefault(
        "FEDKD_TEST_NODE_STATE", tempfile.mkdtemp(prefix="fedkd-node-harness-")
    )
    return str(Path(root) / f"{cfg.run_name}-{token}")


def federation(cfg: RunConfig) -> FederatedData:
    """The federation a simulation of ``cfg`` deals its nodes, built from the spec its
    nodes' own ``partition`` provider holds (the one place that spec is made)."""
    return build_federated_data(data_spec(cfg))


def data_spec(cfg: RunConfig) -> DataSpec:
    """The ``partition`` provider's dataset spec for a simulation of ``cfg``."""
    node = simulated_node_config(cfg, 0, state_dir=state_dir(cfg))
    provider = make_provider(node.data, dict(node.data_options))
    assert isinstance(provider, SimulatedPartition)
    return provider.spec


def node_config(cfg: RunConfig, pid: int, **section: Any) -> NodeConfig:
    """Node ``pid`` of a simulation of ``cfg``; ``section`` as a ``[node.<pid>]`` table."""
    sections = {str(pid): {k.replace("_", "-"): v for k, v in section.items()}}
    directory = str(section.get("state_dir", state_dir(cfg)))
    return simulated_node_config(cfg, pid, state_dir=directory, sections=sections)


def serve(
    cfg: RunConfig,
    pid: int,
    request: bytes,
    state: ModelWeights | None,
    *,
    node_id: int | None = None,
    train: bool = True,
    **section: Any,
) -> tuple[bytes, ModelWeights | None]:
    """Node ``pid`` serves one request (node id = ``pid`` unless given)."""
    node = ClientNode(
        node_config(cfg, pid, **section),
        cfg.protocol(),
        node_id=pid if node_id is None else node_id,
    )
    return node.handle(request, state, train=train)


def plan_of(cfg: RunConfig, num_records: int) -> PrivacyPlan:
    """The DP plan a node with no policy of its own makes for ``cfg``."""
    node = node_config(cfg, 0)
    privacy = resolve_privacy(node.policy, cfg.privacy_request)
    training = training_plan(cfg.private_training, node.policy.nominal_records or num_records)
    return plan_for(privacy, training, num_records)
