"""Run the fedkd ServerApp and ClientApp on Flower's simulation engine, in this process.

``flwr run .`` drives the same apps through a local SuperLink; this entry point exists so
``fedkd simulate`` / ``fedkd compare`` can pass a resolved config without touching the
tracked pyproject.toml and without a SuperLink process per run.  The run config reaches
the ServerApp and every ClientApp through Flower's own ``Run.override_config`` and the
app directory, exactly as under ``flwr run``.

The simulated nodes' own configurations (data provider, model, privacy policy, state
directory) are not part of the run config, which the server sees: this module writes one
node config file per simulated node, as each node's operator would, and points the
ClientApps at them through the environment (:data:`NODE_CONFIGS_ENV`).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fedkd.config import ConfigValue, RunConfig

if TYPE_CHECKING:
    from flwr.clientapp import ClientApp

    from fedkd.node.config import NodeConfig

PROJECT_DIR = Path(__file__).resolve().parents[2]
NODE_CONFIGS_ENV = "FEDKD_SIMULATED_NODE_CONFIGS"
"""Folder of ``node-<index>.json`` node configs; set for the ClientApps of a simulation."""

FLOWER_ENV = {
    "FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION": "1",
    "FLWR_TELEMETRY_ENABLED": "0",
    "FLWR_DISABLE_UPDATE_CHECK": "1",
    "RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO": "0",
    "HF_DATASETS_OFFLINE": "1",
    "HF_HUB_OFFLINE": "1",
    "RAY_DEDUP_LOGS": "0",
    "TQDM_DISABLE": "1",
}


def configure_environment() -> None:
    """Offline, quiet Flower: no runtime installs, no telemetry, no update checks."""
    for key, value in FLOWER_ENV.items():
        os.environ.setdefault(key, value)
    # Ray workers import the apps by module path; they need the project on sys.path.
    paths = os.environ.get("PYTHONPATH", "").split(os.pathsep)
    if str(PROJECT_DIR) not in paths:
        os.environ["PYTHONPATH"] = os.pathsep.join([str(PROJECT_DIR), *filter(None, paths)])


def fused_run_config(flat: dict[str, ConfigValue]) -> dict[str, ConfigValue]:
    """pyproject's ``[tool.flwr.app.config]`` with ``flat`` on top, as Flower fuses them."""
    from flwr.common.config import get_fused_config_from_dir

    fused: dict[str, ConfigValue] = get_fused_config_from_dir(PROJECT_DIR, dict(flat))
    return fused


def simulated_nodes(
    cfg: RunConfig, run_dir: Path, node_sections: Mapping[str, Any] | None = None
) -> list[NodeConfig]:
    """Every simulated node's own configuration (``[node]`` tables applied)."""
    from fedkd.node.simulated import check_sections, simulated_node_config, simulated_state_dir

    sections = dict(node_sections or {})
    check_sections(sections, cfg.num_clients)
    state_dir = str(simulated_state_dir(cfg))
    return [
        simulated_node_config(cfg, pid, state_dir=state_dir, sections=sections)
        for pid in range(cfg.num_clients)
    ]


def write_node_configs(nodes: list[NodeConfig], folder: Path) -> Path:
    """One ``node-<index>.json`` per node (what each node's operator would keep)."""
    folder.mkdir(parents=True, exist_ok=True)
    for node in nodes:
        text = json.dumps(node.to_flat(), indent=2, sort_keys=True, allow_nan=True)
        (folder / f"node-{node.partition_id}.json").write_text(text)
    return folder


def run_simulation(
    cfg: RunConfig,
    *,
    node_sections: Mapping[str, Any] | None = None,
    num_cpus_per_client: float = 1.0,
    num_gpus_per_client: float = 0.0,
    client_app: ClientApp | None = None,
) -> Path:
    """Simulate ``cfg.num_clients`` SuperNodes; return the run directory.

    ``node_sections`` is the simulation file's ``[node]`` table (the nodes' own configs);
    ``client_app`` replaces fedkd's ClientApp (tests use it to inject faulty clients).
    """
    configure_environment()
    run_dir = Path(cfg.output_dir).expanduser().resolve() / cfg.run_name
    nodes = simulated_nodes(cfg, run_dir, node_sections)
    from fedkd.node.simulated import simulated_state_dir

    fresh_dir = simulated_state_dir(cfg)
    fresh_state = str(fresh_dir)
    born_with_the_run = any(n.state_dir == fresh_state for n in nodes)
    if cfg.privacy_registry and born_with_the_run:
        raise ValueError(
            "privacy-registry remembers node ledgers across runs, but simulated nodes get "
            "fresh ledgers every run unless [node] state-dir names where they persist"
        )
    if born_with_the_run:
        # Nodes born with the run are new hospitals each run: the server's record of them
        # is born with it too (nodes that persist use the shared default registry).
        cfg = dataclasses.replace(cfg, privacy_registry=str(fresh_dir / "server-registry.db"))
    # Simulated nodes without a state-dir of their own are born with the run: they start
    # with empty stores.  (Nodes with a state-dir keep theirs across runs.)
    shutil.rmtree(fresh_dir, ignore_errors=True)
    config_dir = write_node_configs(nodes, run_dir / "node-configs")
    os.environ[NODE_CONFIGS_ENV] = str(config_dir)
    try:
        _run_flower_simulation(cfg, client_app, num_cpus_per_client, num_gpus_per_client)
    finally:
        os.environ.pop(NODE_CONFIGS_ENV, None)
    # What the simulated nodes were (comparisons reuse a run only for identical nodes).
    flats = [node.to_flat() for node in nodes]
    (run_dir / "nodes.json").write_text(json.dumps(flats, indent=2, sort_keys=True))
    _note_reproducible_nodes(run_dir, nodes)
    if cfg.dp:
        from fedkd.results import merge_node_logs

        # The operator of every simulated node reads their local logs from the shared disk
        # (local metrics never crossed the wire); the server process never opens them.
        merge_node_logs(cfg, run_dir, nodes)
    return run_dir


def _note_reproducible_nodes(run_dir: Path, nodes: list[NodeConfig]) -> None:
    """Say in the summary which nodes seeded their DP randomness from the run seed."""
    from fedkd.privacy.guard import REPRODUCIBLE_RANDOMNESS

    names = [node.name for node in nodes if node.reproducible_dp]
    summary_path = run_dir / "summary.json"
    if not names or not summary_path.exists():
        return
    summary = json.loads(summary_path.read_text())
    summary["reproducible_dp"] = {"nodes": names, "note": REPRODUCIBLE_RANDOMNESS}
    summary_path.write_text(json.dumps(summary, indent=2, sort_keys=True))


def _run_flower_simulation(
    cfg: RunConfig,
    client_app: ClientApp | None,
    num_cpus_per_client: float,
    num_gpus_per_client: float,
) -> None:
    from flwr.app import Context, RecordDict
    from flwr.common.constant import RUN_ID_NUM_BYTES, SUPERLINK_NODE_ID, TASK_ID_NUM_BYTES
    from flwr.server.superlink.linkstate.utils import generate_rand_int_from_bytes
    from flwr.simulation.run_simulation import _run_simulation
    from flwr.supercore.constant import NOOP_FEDERATION_ID
    from flwr.supercore.run import Run
    from flwr.supercore.task_identity import TaskIdentity
    from flwr.supercore.telemetry import EventType

    from client.app import app as default_client_app
    from server.app import app as server_app

    flat = cfg.to_flower()
    # The ServerApp sees exactly what every ClientApp sees: pyproject defaults + overrides.
    fused = fused_run_config(flat)
    run = Run.create_empty(run_id=generate_rand_int_from_bytes(RUN_ID_NUM_BYTES))
    run.primary_task_id = generate_rand_int_from_bytes(TASK_ID_NUM_BYTES)
    run.override_config = dict(flat)
    run.federation_id = NOOP_FEDERATION_ID
    TaskIdentity.task_id = 1
    TaskIdentity.run_id = run.run_id
    TaskIdentity.node_id = SUPERLINK_NODE_ID
    context = Context(
        run_id=run.run_id, node_id=0, node_config={}, state=RecordDict(), run_config=fused
    )
    logging.getLogger("flwr").setLevel(logging.WARNING)
    _run_simulation(
        num_supernodes=cfg.num_clients,
        exit_event=EventType.PYTHON_API_RUN_SIMULATION_LEAVE,
        client_app=client_app or default_client_app,
        server_app=server_app,
        backend_config={
            "client_resources": {"num_cpus": num_cpus_per_client, "num_gpus": num_gpus_per_client},
            "init_args": {"logging_level": "ERROR", "log_to_driver": True},
        },
        server_app_context=context,
        app_dir=str(PROJECT_DIR),
        run=run,
        # As under `flwr run`: node contexts get pyproject's config fused with the overrides.
        is_app=True,
    )
