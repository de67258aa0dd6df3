"""Run the fedkd ServerApp and ClientApp on Flower's simulation engine, in this process.

``flwr run .`` drives the same apps through a local SuperLink; this entry point exists so
``fedkd simulate`` / ``fedkd compare`` can pass a resolved config without touching the
tracked pyproject.toml and without a SuperLink process per run.  The run config reaches
the ServerApp and every ClientApp through Flower's own ``Run.override_config`` and the
app directory, exactly as under ``flwr run``.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from fedkd.config import ConfigValue, RunConfig

if TYPE_CHECKING:
    from flwr.clientapp import ClientApp

PROJECT_DIR = Path(__file__).resolve().parents[2]

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


def run_simulation(
    cfg: RunConfig,
    *,
    num_cpus_per_client: float = 1.0,
    num_gpus_per_client: float = 0.0,
    client_app: ClientApp | None = None,
) -> Path:
    """Simulate ``cfg.num_clients`` SuperNodes; return the run directory.

    ``client_app`` replaces fedkd's ClientApp (tests use it to inject faulty clients).
    """
    configure_environment()
    run_dir = Path(cfg.output_dir).expanduser().resolve() / cfg.run_name
    if cfg.privacy_registry and not cfg.ledger_dir:
        raise ValueError(
            "privacy-registry remembers node ledgers across runs, but simulated nodes get "
            "fresh ledgers every run unless ledger-dir names where they persist"
        )
    if not cfg.ledger_dir:
        # Simulated nodes are born with the run: they start with empty ledgers.  (Real
        # nodes keep theirs across runs, under a ledger-dir of their own.)
        shutil.rmtree(run_dir / "nodes", ignore_errors=True)
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

    flat = cfg.to_flat()
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
    return run_dir
