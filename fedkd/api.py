"""The Python API: run simulations and comparisons from a notebook or a script.

    >>> import fedkd
    >>> result = fedkd.simulate("simulations/demo.toml", strategy="mean", num_server_rounds=3)
    >>> result.alma, result.run_dir
    >>> table = fedkd.compare("simulations/demo.toml", ["local", "knfu"], seeds=[0, 1])

Keyword overrides are run-config keys with ``_`` for ``-`` (``num_server_rounds=3``).
Nothing here changes process-wide state that outlives the call (``os.environ`` is put
back as it was found, whatever the libraries a run imports set).  Errors that are the
caller's (config, data, paths) are ``ValueError`` or ``OSError`` raised before any
simulation starts; a value of the wrong type (``num_server_rounds='3'``) is also a
``TypeError``; an interrupted run raises :class:`fedkd.interrupt.RunInterrupted`
after writing what it had to ``<output-dir>/incomplete/``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import math
import os
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fedkd.config import (
    RUN_CONFIG_KEYS,
    ConfigTypeError,
    ConfigValue,
    RunConfig,
    load_simulation_file,
    parse_run_config,
)
from fedkd.config_registries import check_registered_names
from fedkd.results import RunResult as RunResult
from fedkd.run_directory import check_free, is_complete

if TYPE_CHECKING:
    from fedkd.node.config import NodeConfig
    from fedkd.reporting.compare import Stat

_BORN_WITH_THE_RUN = "/node-state/"
"""Part of every path a simulation chose for nodes born with their run."""

ConfigSource = str | os.PathLike[str] | RunConfig | Mapping[str, Any]
"""A simulation TOML file, a parsed :class:`RunConfig`, or a mapping of config keys
(kebab-case as in the files, or snake_case as keyword arguments)."""


@dataclass(frozen=True)
class Comparison:
    """Several strategies over the same seeds, partitions and nodes."""

    out_dir: Path
    runs: dict[str, tuple[RunResult, ...]]
    """Strategy (as given, variant parameters included) → one result per seed."""
    stats: dict[str, dict[str, Stat]]
    """Strategy → metric → mean ± std over seeds."""
    table: str
    """The Markdown table written to ``comparison.md``."""


def load_config(
    config: ConfigSource, overrides: Mapping[str, Any] | None = None
) -> tuple[RunConfig, dict[str, Any]]:
    """The run config and the simulated nodes' ``[node]`` table from any config source.

    Every value must have its key's type exactly (``num_server_rounds=3``, not ``'3'``
    or ``3.0``; a bool is not a number): :class:`fedkd.config.ConfigTypeError`, a
    ``TypeError`` and a ``ValueError``, names the key otherwise.
    """
    cfg, nodes = _load_unchecked(config, overrides)
    return check_registered_names(cfg), nodes


def _load_unchecked(
    config: ConfigSource, overrides: Mapping[str, Any] | None
) -> tuple[RunConfig, dict[str, Any]]:
    flat = {_key(k): v for k, v in (overrides or {}).items()}
    if isinstance(config, RunConfig):
        return parse_run_config({**config.to_flat(), **flat}, strict=True), {}
    if isinstance(config, Mapping):
        table = {_key(k): v for k, v in config.items()}
        nodes = _node_table(table.pop("node", {}))
        return parse_run_config({**table, **flat}, strict=True), nodes
    if not isinstance(config, str | os.PathLike):
        raise TypeError(
            "config must be a simulation TOML file's path, a RunConfig or a mapping of "
            f"config keys, got {config!r} ({type(config).__name__})"
        )
    path = Path(config)
    if not path.is_file():
        raise FileNotFoundError(f"no simulation config at {path}")
    return load_simulation_file(path, flat)


def _node_table(nodes: Any) -> dict[str, Any]:
    """The ``node`` entry of a mapping config (or ``nodes=``): a table of node config keys."""
    if not isinstance(nodes, Mapping):
        raise ConfigTypeError(
            f"node must be a mapping of node config keys (a [node] table), got {nodes!r} "
            f"({type(nodes).__name__})"
        )
    return dict(nodes)


def _key(name: object) -> str:
    """``num_server_rounds`` → ``num-server-rounds`` (the config checks that it exists)."""
    if not isinstance(name, str):
        raise ConfigTypeError(f"config keys are strings, got {name!r}")
    return name.replace("_", "-")


def preflight(cfg: RunConfig, sections: Mapping[str, Any] | None = None) -> None:
    """What can be checked before a simulation starts: the output folder can be written,
    the public data can be had (dataset known, files there and whole, labels in range,
    the transfer set fits), and the partition settings fit the dataset.  With the
    simulation's ``[node]`` ``sections``, every simulated node's config too: its data
    provider and options, its device, and the records the partition must deal out."""
    from fedkd.data.public import load_public_data

    check_output_dir(Path(cfg.output_dir))
    nodes = None
    if sections is not None:
        # The nodes' own configs first: they read no data, so a slip there is found at once.
        from fedkd.simulated_nodes import representative_nodes

        nodes = representative_nodes(cfg, sections, state_dir="preflight")
    public = load_public_data(cfg.public_spec)
    if cfg.partitioner == "pathological" and cfg.classes_per_client > public.num_classes:
        raise ValueError(
            f"classes-per-client must be <= {public.num_classes} (the classes of "
            f"{public.name}), got {cfg.classes_per_client}"
        )
    if nodes is None:
        return
    if any(_partitioned(node) for node in nodes):
        check_partition_fits(cfg)
    check_devices_available({node.device for node in nodes})


def _partitioned(node: NodeConfig) -> bool:
    """Whether the node's records are its share of the run's dataset."""
    from fedkd.node.config import CANARY_PROVIDER

    if node.data == CANARY_PROVIDER:
        return dict(node.data_options).get("base", "partition") == "partition"
    return node.data == "partition"


def check_partition_fits(cfg: RunConfig) -> None:
    """The dataset has the records ``cfg``'s partition deals out: at least
    :data:`~fedkd.data.partition.MIN_PARTITION_SIZE` per client, and for the natural
    partitioner one group (e.g. hospital) per client."""
    from fedkd.data.partition import MIN_PARTITION_SIZE

    name, records, groups = _records_to_deal(cfg.dataset, cfg.data_dir, cfg.transfer_size)
    need = cfg.num_clients * MIN_PARTITION_SIZE
    if need > records:
        raise ValueError(
            f"num-clients = {cfg.num_clients} needs {need} records ({MIN_PARTITION_SIZE} per "
            f"client) but {name} has {records} to deal out: use num-clients <= "
            f"{records // MIN_PARTITION_SIZE} or a larger dataset"
        )
    if cfg.partitioner == "natural":
        if groups is None:
            raise ValueError(
                f"partitioner = natural needs a dataset with natural groups; {name} has "
                "none (heart has its hospitals)"
            )
        if groups != cfg.num_clients:
            raise ValueError(
                f"num-clients must be {groups} with partitioner = natural on {name} "
                f"(one client per group), got {cfg.num_clients}"
            )


@functools.lru_cache(maxsize=8)
def _records_to_deal(
    dataset: str, data_dir: str, transfer_size: int
) -> tuple[str, int, int | None]:
    """The dataset's name, its records left for the clients once the transfer set is
    carved out, and its natural groups among them (None without groups)."""
    import numpy as np

    from fedkd.data.public import carve_transfer
    from fedkd.data.sources import load_source

    source = load_source(dataset, data_dir=Path(data_dir) if data_dir else None)
    _, private = carve_transfer(source, transfer_size)
    groups = None
    if source.train_groups is not None:
        groups = len(np.unique(source.train_groups[private]))
    return source.name, len(private), groups


def check_devices_available(devices: Iterable[str]) -> None:
    """The accelerators the simulated nodes ask for exist on this machine (where they
    run); ``auto`` and ``cpu`` always do (torch is imported only for another)."""
    wanted = sorted(set(devices) - {"auto", "cpu"})
    if not wanted:
        return
    import torch

    for device in wanted:
        if device.startswith("cuda"):
            count = torch.cuda.device_count() if torch.cuda.is_available() else 0
            index = int(device.partition(":")[2] or 0)
            if index >= count:
                have = f"{count} CUDA device(s)" if count else "no CUDA device"
                raise ValueError(
                    f"device {device!r} is not on this machine ({have}); "
                    'use device = "auto" (CUDA when there is one) or "cpu"'
                )
        elif device == "mps" and not torch.backends.mps.is_available():
            raise ValueError('device \'mps\' is not on this machine; use device = "auto" or "cpu"')


def check_output_dir(output_dir: Path) -> None:
    """``output_dir`` exists (created if need be) and a run can be written into it."""
    import tempfile

    path = output_dir.expanduser()
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise OSError(f"output-dir {path} cannot be written: {reason}") from None


def simulate(
    config: ConfigSource,
    /,
    *,
    nodes: Mapping[str, Any] | None = None,
    stop: threading.Event | None = None,
    **overrides: ConfigValue,
) -> RunResult:
    """Run one federated simulation; return its results.

    ``nodes`` replaces the config file's ``[node]`` table (the simulated nodes' own
    configs); ``stop``, when set from another thread, ends the run early.  The run is
    written to ``<output-dir>/<run-name>`` when complete; an existing run there is
    replaced only with ``overwrite=True``.
    """
    with environment_kept():
        cfg, sections = load_config(config, overrides)
        sections = _node_table(nodes) if nodes is not None else sections
        _check_stop(stop)
        preflight(cfg, sections)
        output_dir = Path(cfg.output_dir).expanduser().resolve()
        check_free(output_dir, cfg.run_name, overwrite=cfg.overwrite)
        from fedkd.flower_glue.simulation import run_simulation

        run_dir = run_simulation(cfg, node_sections=sections, stop=stop)
        return RunResult.load(run_dir)


@contextlib.contextmanager
def environment_kept() -> Iterator[None]:
    """``os.environ`` as it was found, whatever happened inside: the libraries a run
    imports set variables of their own on import (Flower ``GRPC_VERBOSITY`` and
    ``RAY_ENABLE_UV_RUN_RUNTIME_ENV``, scikit-learn and joblib ``KMP_*``)."""
    saved = dict(os.environ)
    try:
        yield
    finally:
        for key in set(os.environ) - set(saved):
            del os.environ[key]
        for key, value in saved.items():
            if os.environ.get(key) != value:
                os.environ[key] = value


def _check_stop(stop: object) -> None:
    if stop is not None and not isinstance(stop, threading.Event):
        raise TypeError(f"stop must be a threading.Event or None, got {type(stop).__name__}")


def compare(
    config: ConfigSource,
    strategies: Sequence[str] | str,
    seeds: Iterable[int] | str = (0,),
    *,
    name: str | None = None,
    reuse: bool = False,
    nodes: Mapping[str, Any] | None = None,
    stop: threading.Event | None = None,
    **overrides: ConfigValue,
) -> Comparison:
    """Run every strategy on every seed, on identical partitions; write a comparison.

    A strategy may carry variant parameters after ``+`` (``knfu+top-m=3``, or a run
    config key such as ``knfu+payload-dtype=int8``).  With ``reuse``, complete runs whose
    config and nodes are identical are kept instead of run again.  Every run's config is
    checked before the first one starts.
    """
    with environment_kept():
        base, sections = load_config(config, overrides)
        sections = _node_table(nodes) if nodes is not None else sections
        names = _strategy_list(strategies)
        seed_list = _seed_list(seeds)
        if name is not None and not isinstance(name, str):
            raise TypeError(f"name must be a string or None, got {name!r}")
        if not isinstance(reuse, bool):
            raise TypeError(f"reuse must be True or False, got {reuse!r}")
        _check_stop(stop)
        title = name or base.run_name
        out = Path(base.output_dir).expanduser().resolve() / title
        planned = _plan(base, title, out, names, seed_list, overrides, config)
        for cfg in planned.values():
            preflight(cfg, sections)
        to_run = []
        for key, cfg in planned.items():
            if not (reuse and _finished_with(out / cfg.run_name, cfg, sections)):
                check_free(out, cfg.run_name, overwrite=cfg.overwrite)
                to_run.append(key)
        from fedkd.flower_glue.simulation import run_simulation

        for key in to_run:
            cfg = dataclasses.replace(planned[key], overwrite=True)
            _rule(f"{key[0]} · seed {key[1]}")
            run_simulation(cfg, node_sections=sections, stop=stop)
        runs = {
            s: tuple(RunResult.load(out / planned[(s, seed)].run_name) for seed in seed_list)
            for s in names
        }
        return _write_comparison(out, title, runs, base, seed_list)


def _plan(
    base: RunConfig,
    title: str,
    out: Path,
    names: list[str],
    seeds: list[int],
    overrides: Mapping[str, Any],
    config: ConfigSource,
) -> dict[tuple[str, int], RunConfig]:
    """Every run's config, parsed (and so checked) before the first run starts."""
    if "/" in title or title in (".", ".."):
        raise ValueError(f"comparison name {title!r} must be one folder name (no '/')")
    planned = {}
    for seed in seeds:
        for strategy in names:
            variant = variant_overrides(strategy)
            cfg, _ = load_config(
                config,
                {
                    **overrides,
                    **variant,
                    "strategy": strategy.split("+")[0],
                    "seed": seed,
                    "output-dir": str(out),
                    "run-name": f"{strategy}-seed{seed}",
                },
            )
            planned[(strategy, seed)] = cfg
    return planned


def variant_overrides(token: str) -> dict[str, ConfigValue]:
    """``knfu+top-m=3+dp-target-epsilon=1`` → ``{"knfu-top-m": 3, "dp-target-epsilon": 1}``.

    A parameter named like a run-config key (``dp``, ``dp-target-epsilon``, ``lr``…) sets
    that key; any other is the strategy's own (``top-m`` → ``knfu-top-m``).
    """
    from fedkd.config import text_override

    name, *params = token.split("+")
    overrides: dict[str, ConfigValue] = {}
    for param in params:
        key, value = text_override(param)
        if not param.partition("=")[1]:
            raise ValueError(f"variant parameter {param!r} in {token!r} is not key=value")
        overrides[key if key in RUN_CONFIG_KEYS else f"{name}-{key}"] = value
    return overrides


def _strategy_list(strategies: Sequence[str] | str) -> list[str]:
    if isinstance(strategies, str):
        given = strategies.split(",")
    elif isinstance(strategies, Sequence) and all(isinstance(s, str) for s in strategies):
        given = list(strategies)
    else:
        raise TypeError(
            "strategies must be a list of strategy names such as ['local', 'knfu'] or a "
            f"string 'local,knfu', got {strategies!r}"
        )
    names = [s.strip() for s in given if s.strip()]
    if not names:
        raise ValueError("no strategies given: name at least one, e.g. local,mean,knfu")
    if len(set(names)) != len(names):
        raise ValueError(f"strategies {names} name one strategy twice")
    return names


def _seed_list(seeds: Iterable[int] | str) -> list[int]:
    """``[0, 1, 2]`` (whole numbers, not bools) or the CLI's text ``"0,1,2"``."""
    if isinstance(seeds, str):
        given: list[object] = []
        for text in (t.strip() for t in seeds.split(",")):
            if not text:
                continue
            try:
                given.append(int(text))
            except ValueError:
                raise ValueError(
                    f"seed {text!r} is not a whole number (e.g. --seeds 0,1,2)"
                ) from None
    elif isinstance(seeds, Iterable) and not isinstance(seeds, bytes | Mapping):
        given = list(seeds)
    else:
        raise TypeError(
            f"seeds must be a list of whole numbers such as [0, 1, 2] (or the text "
            f"'0,1,2'), got {seeds!r} ({type(seeds).__name__})"
        )
    out = []
    for seed in given:
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise TypeError(
                f"seeds must be whole numbers such as [0, 1, 2], got {seed!r} "
                f"({type(seed).__name__}) in {seeds!r}"
            )
        if seed < 0:
            raise ValueError(f"seed {seed} must be >= 0")
        out.append(seed)
    if not out:
        raise ValueError("no seeds given, e.g. 0,1,2")
    if len(set(out)) != len(out):
        raise ValueError(f"seeds {out} repeat a seed")
    return out


def _finished_with(run_dir: Path, cfg: RunConfig, sections: Mapping[str, Any]) -> bool:
    """Whether ``run_dir`` holds a complete run of exactly ``cfg`` and these nodes."""
    from fedkd.flower_glue.simulation import simulated_nodes
    from fedkd.fusion import param_owner

    if not is_complete(run_dir):
        return False
    try:
        done = parse_run_config(json.loads((run_dir / "config.json").read_text()))
        done_nodes = json.loads((run_dir / "nodes.json").read_text())
    except (OSError, ValueError):
        return False

    # Parameters of strategies other than the run's own cannot change its result, nor
    # can whether the run was allowed to replace an earlier one, nor the registry of
    # nodes born with the run (a per-run file the simulation chose).
    def relevant(flat: dict[str, Any]) -> dict[str, Any]:
        return {
            k: "" if k == "privacy-registry" and _BORN_WITH_THE_RUN in str(v) else v
            for k, v in flat.items()
            if k != "overwrite" and ((owner := param_owner(k)) is None or owner[0] == cfg.strategy)
        }

    wanted = [n.to_flat() for n in simulated_nodes(cfg, "reuse-check", sections)]
    return _same_nodes(done_nodes, wanted) and relevant(done.to_flat()) == relevant(cfg.to_flat())


def _same_nodes(done: list[dict[str, Any]], wanted: list[dict[str, Any]]) -> bool:
    """Equal node configs, except the per-run state dir of nodes born with their run."""

    def comparable(node: Mapping[str, Any]) -> dict[str, Any]:
        flat = dict(node)
        if _BORN_WITH_THE_RUN in str(flat.get("state-dir", "")):
            flat.pop("state-dir")
        return flat

    wanted_json = json.loads(json.dumps(wanted))
    return [comparable(n) for n in done] == [comparable(n) for n in wanted_json]


def _write_comparison(
    out: Path,
    title: str,
    runs: dict[str, tuple[RunResult, ...]],
    base: RunConfig,
    seeds: list[int],
) -> Comparison:
    from fedkd.reporting.compare import aggregate, markdown_table, plot_comparison

    summaries = {s: [r.summary for r in results] for s, results in runs.items()}
    stats = aggregate(summaries)
    payload = {
        "name": title,
        "dataset": base.dataset,
        "partitioner": base.partitioner,
        "dirichlet_alpha": base.dirichlet_alpha,
        "num_clients": base.num_clients,
        "rounds": base.num_server_rounds,
        "seeds": seeds,
        "strategies": {
            s: {k: _finite_fields(dataclasses.asdict(v)) for k, v in m.items()}
            for s, m in stats.items()
        },
        "runs": summaries,
    }
    text = json.dumps(payload, indent=2, sort_keys=True, allow_nan=False)
    _write_atomically(out / "comparison.json", text)
    table = markdown_table(stats, title=f"{title}: {base.dataset}, {base.num_clients} clients")
    _write_atomically(out / "comparison.md", table)
    plot_comparison(stats, out / "comparison.png", title=title)
    return Comparison(out_dir=out, runs=runs, stats=stats, table=table)


def _finite_fields(fields: dict[str, Any]) -> dict[str, Any]:
    """NaN (a metric no seed reported) as null: JSON has no NaN."""
    return {
        k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in fields.items()
    }


def _write_atomically(path: Path, text: str) -> None:
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text)
    os.replace(partial, path)


def _rule(text: str) -> None:
    from rich.console import Console

    Console(stderr=True).rule(text)
