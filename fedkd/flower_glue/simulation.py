"""Run the fedkd ServerApp and ClientApp on Flower's simulation engine, in this process.

``flwr run .`` drives the module-level apps through a local SuperLink; this entry point
builds the same apps around a resolved config instead (``fedkd simulate``, the Python
API), so nothing depends on a checkout's pyproject.toml.  The server's side gets the run
config; each simulated node gets its own node config (data provider, model, privacy
policy, state directory), which the server never sees, as each node's operator would
have written it.

Everything this sets up for a run (environment variables for Flower and Ray, the
``flwr`` logger's level, the SIGINT and SIGTERM handlers) is put back when the run ends.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from fedkd.config import ConfigValue, RunConfig, parse_run_config
from fedkd.interrupt import RunFailed, StopEvent, interrupted
from fedkd.run_directory import RunDirectory

if TYPE_CHECKING:
    from flwr.app import Context
    from flwr.clientapp import ClientApp
    from flwr.serverapp import ServerApp

    from fedkd.node.config import NodeConfig

log = logging.getLogger("fedkd.simulation")

FLOWER_ENV = {
    "FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION": "1",
    "FLWR_TELEMETRY_ENABLED": "0",
    "FLWR_DISABLE_UPDATE_CHECK": "1",
    "RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO": "0",
    "HF_DATASETS_OFFLINE": "1",
    "HF_HUB_OFFLINE": "1",
    "RAY_DEDUP_LOGS": "0",
    "TQDM_DISABLE": "1",
    # Flower sets these two when it is first imported; a run sets them every time, as the
    # Python API puts the environment back after each call.
    "GRPC_VERBOSITY": "error",
    "RAY_ENABLE_UV_RUN_RUNTIME_ENV": "0",
    # Ray's C++ crash handler would take SIGTERM from the run's own handler (it aborts
    # the process, leaving the run in .staging/): SIGTERM stops a run as Ctrl-C does.
    "RAY_DISABLE_FAILURE_SIGNAL_HANDLER": "1",
}
INTERRUPTED_EXIT = 130

ClientAppFactory = Callable[
    [Callable[["Context"], "NodeConfig"], Callable[["Context"], RunConfig]], "ClientApp"
]
"""Builds a ClientApp from where it takes its node and run configs (tests inject faults)."""


@dataclass(frozen=True)
class SimulatedNodes:
    """Each simulated node's own config, by the partition id Flower gives its node.

    A picklable callable: Ray ships the ClientApp, and this with it, to its workers.
    """

    flats: tuple[dict[str, ConfigValue], ...]

    def __call__(self, context: Context) -> NodeConfig:
        from fedkd.node.config import parse_node_config

        return parse_node_config(self.flats[int(context.node_config["partition-id"])])


@dataclass(frozen=True)
class FixedRunConfig:
    """The run config the simulation was started with (what ``flwr run`` would carry)."""

    flat: dict[str, ConfigValue]

    def __call__(self, context: Context) -> RunConfig:
        return parse_run_config(self.flat)


def simulated_nodes(
    cfg: RunConfig, token: str, node_sections: Mapping[str, Any] | None = None
) -> list[NodeConfig]:
    """Every simulated node's own configuration (``[node]`` tables applied)."""
    from fedkd.simulated_nodes import check_sections, simulated_node_config, simulated_state_dir

    sections = dict(node_sections or {})
    check_sections(sections, cfg.num_clients)
    state_dir = str(simulated_state_dir(cfg, token=token))
    return [
        simulated_node_config(cfg, pid, state_dir=state_dir, sections=sections)
        for pid in range(cfg.num_clients)
    ]


def _warn_without_budget(nodes: list[NodeConfig]) -> None:
    """One line for the simulated nodes without a lifetime budget (real ones refuse)."""
    from fedkd.node.config import lifetime_budget_note

    unbudgeted = [node for node in nodes if lifetime_budget_note(node)]
    if unbudgeted:
        log.warning(
            "%d simulated node(s) have no lifetime budget (privacy-max-epsilon): their "
            "stores' ε is unbounded; a node on real data refuses to start without one",
            len(unbudgeted),
        )


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
    client_app: ClientAppFactory | None = None,
    stop: threading.Event | None = None,
) -> Path:
    """Simulate ``cfg.num_clients`` SuperNodes; return the complete run's directory.

    ``node_sections`` is the simulation file's ``[node]`` table (the nodes' own configs);
    ``client_app`` replaces fedkd's ClientApp (tests use it to inject faulty clients);
    setting ``stop`` ends the run early (:class:`RunInterrupted`).  A run that does not
    complete is moved to ``<output-dir>/incomplete/`` and the exception raised; the run
    directory of a complete run appears whole or not at all.
    """
    from fedkd.simulated_nodes import simulated_state_dir

    output_dir = Path(cfg.output_dir).expanduser().resolve()
    directory = RunDirectory.open(
        output_dir,
        cfg.run_name,
        overwrite=cfg.overwrite,
        fingerprint=cfg.fingerprint() if cfg.resume else None,
    )
    with _stopped_by_signals(stop, on_abort=directory.abandon) as signals:
        try:
            nodes = simulated_nodes(cfg, directory.token, node_sections)
            _warn_without_budget(nodes)
            fresh_dir = simulated_state_dir(cfg, token=directory.token)
            born_with_the_run = any(n.state_dir == str(fresh_dir) for n in nodes)
            if cfg.privacy_registry and born_with_the_run:
                raise ValueError(
                    "privacy-registry remembers node ledgers across runs, but simulated nodes "
                    "get fresh ledgers every run unless [node] state-dir names where they persist"
                )
            if born_with_the_run:
                # Nodes born with the run are new hospitals each run: the server's record of
                # them is born with it too (nodes that persist use the shared default registry).
                registry = str(fresh_dir / "server-registry.db")
                cfg = dataclasses.replace(cfg, privacy_registry=registry)
            write_node_configs(nodes, directory.staging / "node-configs")
            with _flower_environment(), _ray_leaves_sigterm_alone():
                _run_flower_simulation(
                    cfg,
                    directory,
                    nodes,
                    client_app,
                    num_cpus_per_client,
                    num_gpus_per_client,
                    signals.event,
                )
            _note_nodes(cfg, directory.staging, nodes)
        except RunFailed as exc:
            with signals.finishing():
                where = directory.set_aside(str(exc))
            hint = _node_log_hint(nodes)
            raise RunFailed(f"{exc}{hint}; what the run had is in {where}") from exc
        except BaseException as exc:
            with signals.finishing():
                if directory.staging.exists():
                    directory.set_aside(f"{type(exc).__name__}: {exc}")
            raise
        with signals.finishing():
            return directory.publish()


def _node_log_hint(nodes: list[NodeConfig]) -> str:
    """The last line of the first simulated node's own log (its operator can read it)."""
    for node in nodes:
        try:
            lines = node.log_path.read_text().strip().splitlines()
        except OSError:
            continue
        if lines:
            return f"; {node.name}'s log ({node.log_path}) ends: {lines[-1]}"
    return ""


def _note_nodes(cfg: RunConfig, run_dir: Path, nodes: list[NodeConfig]) -> None:
    """What the simulated nodes were, and what their operators read from their own logs."""
    flats = [node.to_flat() for node in nodes]
    (run_dir / "nodes.json").write_text(json.dumps(flats, indent=2, sort_keys=True))
    _note_reproducible_nodes(run_dir, nodes)
    if cfg.dp:
        from fedkd.results import merge_node_logs

        # The operator of every simulated node reads their local logs from the shared disk
        # (local metrics never crossed the wire); the server process never opens them.
        merge_node_logs(cfg, run_dir, nodes)


def _note_reproducible_nodes(run_dir: Path, nodes: list[NodeConfig]) -> None:
    """Say in the summary which nodes seeded their DP randomness from the run seed."""
    names = [node.name for node in nodes if node.reproducible_dp]
    summary_path = run_dir / "summary.json"
    if not names or not summary_path.exists():
        return
    from fedkd.privacy.guard import REPRODUCIBLE_RANDOMNESS  # imports torch: only when needed

    summary = json.loads(summary_path.read_text())
    summary["reproducible_dp"] = {"nodes": names, "note": REPRODUCIBLE_RANDOMNESS}
    summary_path.write_text(json.dumps(summary, indent=2, sort_keys=True))


@contextlib.contextmanager
def _flower_environment() -> Iterator[None]:
    """Offline, quiet Flower and Ray for the run; the environment restored afterwards.

    Ray's workers import the ClientApp's modules: the working directory goes on their
    PYTHONPATH, so plugins and fault-injecting apps defined beside a script import there.
    """
    import flwr.simulation  # noqa: F401  (Flower sets its logger's level on import)

    # Ray's start-up sets variables of its own (PYTHONBREAKPOINT, RAY_USAGE_STATS_ENABLED…):
    # the whole environment is put back, not only what fedkd set.
    saved = dict(os.environ)
    flwr_logger = logging.getLogger("flwr")
    saved_level = flwr_logger.level
    quiet = _DropDeprecationNotice()
    try:
        for key, value in FLOWER_ENV.items():
            os.environ.setdefault(key, value)
        # Without an address Ray joins the cluster the last `ray start` on this machine
        # recorded, even one long stopped (then it hangs): a run starts its own Ray unless
        # RAY_ADDRESS names a cluster to join.
        if not os.environ.get("RAY_ADDRESS"):
            os.environ["RAY_ADDRESS"] = "local"
        paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
        os.environ["PYTHONPATH"] = os.pathsep.join(dict.fromkeys([os.getcwd(), *paths]))
        flwr_logger.setLevel(logging.WARNING)
        flwr_logger.addFilter(quiet)
        yield
    finally:
        flwr_logger.removeFilter(quiet)
        flwr_logger.setLevel(saved_level)
        for key in set(os.environ) - set(saved):
            del os.environ[key]
        for key, value in saved.items():
            if os.environ.get(key) != value:
                os.environ[key] = value


class _DropDeprecationNotice(logging.Filter):
    """Flower marks its Python simulation entry point deprecated in favour of ``flwr run``;
    fedkd calls it on purpose (one process, a resolved config), so the notice is noise."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "DEPRECATED" not in record.getMessage()


class _Signals:
    """SIGINT (Ctrl-C) and SIGTERM during a run: the first asks the run to stop (it
    stops between polls and writes what it had); a second ends the process at once,
    after ``on_abort`` has set the run aside as incomplete.  While the run is being put
    away (published or set aside), a second one waits until that is done."""

    def __init__(self, event: threading.Event, on_abort: Callable[[str], Path | None]) -> None:
        self.event = event
        self.on_abort = on_abort
        self._finishing = False
        self._pending = ""

    def handle(self, signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if not self.event.is_set():
            again = "Ctrl-C" if signum == signal.SIGINT else name
            print(
                f"\ninterrupted ({name}): stopping the run ({again} again to stop at once)",
                file=sys.stderr,
                flush=True,
            )
            if isinstance(self.event, StopEvent):
                self.event.set_for(name)
            else:
                self.event.set()
        elif self._finishing:
            self._pending = name
        else:
            self._abort(name)

    @contextlib.contextmanager
    def finishing(self) -> Iterator[None]:
        """Putting the run away (a rename or two): a second signal waits for it."""
        self._finishing = True
        try:
            yield
        finally:
            self._finishing = False
            if self._pending:
                self._abort(self._pending)

    def _abort(self, name: str) -> None:
        print(f"\ninterrupted again ({name}): stopping now", file=sys.stderr, flush=True)
        try:
            where = self.on_abort(f"stopped at once by a second {name}")
            if where is not None:
                print(f"what the run had is in {where}", file=sys.stderr, flush=True)
        except Exception as exc:  # exiting regardless: say why nothing was kept
            print(f"could not set the run aside: {exc}", file=sys.stderr, flush=True)
        _shutdown_ray()
        os._exit(INTERRUPTED_EXIT)


@contextlib.contextmanager
def _stopped_by_signals(
    stop: threading.Event | None, *, on_abort: Callable[[str], Path | None]
) -> Iterator[_Signals]:
    """SIGINT and SIGTERM handled as :class:`_Signals` says for the duration; the
    previous handlers are put back afterwards.

    Only the main thread can own a signal: elsewhere (a worker thread of a notebook's
    kernel) the run can still be stopped through ``stop``.
    """
    signals = _Signals(stop or StopEvent(), on_abort)
    if threading.current_thread() is not threading.main_thread():
        yield signals
        return
    previous = {sig: signal.signal(sig, signals.handle) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield signals
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextlib.contextmanager
def _ray_leaves_sigterm_alone() -> Iterator[None]:
    """``ray.init`` in the main thread puts its own SIGTERM handler in place of the run's
    (one that exits mid-run: Flower hangs, the run stays in ``.staging/``); for the run,
    Ray's request to set one is ignored.  Ray's processes are stopped either way: when
    the run ends, or by the run's handler on a second signal.  (Entered after
    :func:`_flower_environment`, as Ray reads ``RAY_DISABLE_FAILURE_SIGNAL_HANDLER`` when
    it is first imported.)"""
    try:
        import ray._private.utils as ray_utils
    except ImportError:  # no Ray: nothing to keep away
        yield
        return
    original = getattr(ray_utils, "set_sigterm_handler", None)
    if original is None:
        yield
        return
    ray_utils.set_sigterm_handler = _ignore_sigterm_handler
    try:
        yield
    finally:
        ray_utils.set_sigterm_handler = original


def _ignore_sigterm_handler(handler: object) -> None:
    """Stands in for Ray's ``set_sigterm_handler`` while a run owns SIGTERM."""


def _shutdown_ray() -> None:
    """Stop the Ray processes this run started (raylet, GCS, workers) by their ids (none
    when this process never imported Ray)."""
    ray = sys.modules.get("ray")
    if ray is not None:
        with contextlib.suppress(Exception):
            ray.shutdown()


def server_app_for(
    cfg: RunConfig,
    directory: RunDirectory,
    stop: threading.Event | None,
    roster: Mapping[str, int] | None = None,
) -> ServerApp:
    """fedkd's ServerApp bound to ``cfg``, writing into ``directory``'s staging folder;
    ``roster`` is the simulated nodes' names and partitions (who may take part)."""
    from flwr.serverapp import Grid, ServerApp

    from server.app import run_federation

    built = ServerApp()

    @built.main()
    def main(grid: Grid, context: Context) -> None:
        run_federation(
            grid, cfg, run_id=str(context.run_id), directory=directory, stop=stop, roster=roster
        )

    return built


def _run_flower_simulation(
    cfg: RunConfig,
    directory: RunDirectory,
    nodes: list[NodeConfig],
    client_app: ClientAppFactory | None,
    num_cpus_per_client: float,
    num_gpus_per_client: float,
    stop: threading.Event,
) -> None:
    from flwr.simulation import run_simulation as flower_run_simulation

    from client.app import client_app as fedkd_client_app

    node_of = SimulatedNodes(tuple(node.to_flat() for node in nodes))
    run_of = FixedRunConfig(cfg.to_flat())
    build = client_app or fedkd_client_app
    flower_run_simulation(
        server_app=server_app_for(
            cfg, directory, stop, roster={n.name: n.partition_id for n in nodes}
        ),
        client_app=build(node_of, run_of),
        num_supernodes=cfg.num_clients,
        backend_config={
            "client_resources": {"num_cpus": num_cpus_per_client, "num_gpus": num_gpus_per_client},
            "init_args": {"logging_level": "ERROR", "log_to_driver": True},
        },
    )
    if stop.is_set():
        # The ServerApp stopped between polls and wrote what it had; say so to the caller
        # even if Flower swallowed the exception on its way out of the server thread.
        raise interrupted(stop)
