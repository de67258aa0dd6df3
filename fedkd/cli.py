"""``fedkd``: simulate, compare, fetch data."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from fedkd.config import (
    ConfigValue,
    RunConfig,
    load_simulation_file,
    parse_override,
    parse_run_config,
)

app = typer.Typer(help="Federated knowledge distillation on Flower.", no_args_is_help=True)
data_app = typer.Typer(help="Datasets that are not embedded.", no_args_is_help=True)
app.add_typer(data_app, name="data")
ledger_app = typer.Typer(help="A node's privacy ledger.", no_args_is_help=True)
app.add_typer(ledger_app, name="ledger")
node_app = typer.Typer(help="A node's own configuration and data.", no_args_is_help=True)
app.add_typer(node_app, name="node")
console = Console()

SetOption = Annotated[
    list[str] | None, typer.Option("--set", "-s", help="Override a config key: key=value")
]


def _overrides(items: list[str] | None) -> dict[str, ConfigValue]:
    try:
        return dict(parse_override(item) for item in items or [])
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc


def _load(
    config: Path, items: list[str] | None, **extra: ConfigValue
) -> tuple[RunConfig, dict[str, Any]]:
    """The run config and the simulated nodes' ``[node]`` table of a simulation file."""
    try:
        return load_simulation_file(config, {**_overrides(items), **extra})
    except (ValueError, FileNotFoundError) as exc:
        console.print(f"[red]config error:[/] {exc}", soft_wrap=True)
        raise typer.Exit(2) from exc


@app.command()
def simulate(
    config: Annotated[Path, typer.Argument(help="Run-config TOML (see simulations/)")],
    set_: SetOption = None,
    name: Annotated[str | None, typer.Option(help="Run name (folder under output-dir)")] = None,
) -> None:
    """Run one federated simulation on Flower's simulation engine."""
    cfg, nodes = _load(config, set_, **({"run-name": name} if name else {}))
    _preflight(cfg)
    from fedkd.flower_glue.simulation import run_simulation

    run_dir = run_simulation(cfg, node_sections=nodes)
    summary = json.loads((run_dir / "summary.json").read_text())
    console.print(
        f"[green]done[/] {cfg.strategy}: ALMA {summary['alma']:.4f}, "
        f"global {summary['global_acc']:.4f}, {summary['wall_s']:.1f} s → {run_dir}"
    )


def _preflight(cfg: RunConfig) -> None:
    """Check, before any simulation starts, that the run's public data can be had: an
    unknown dataset, missing files or an oversize transfer set is one line, exit 2."""
    from fedkd.data.public import load_public_data

    try:
        load_public_data(cfg.public_spec)
    except (ValueError, OSError) as exc:
        console.print(f"[red]data error:[/] {exc}", soft_wrap=True)
        raise typer.Exit(2) from exc


@app.command()
def compare(
    config: Annotated[Path, typer.Argument(help="Run-config TOML (see simulations/)")],
    strategies: Annotated[
        str,
        typer.Option(
            help="Comma-separated strategies; a variant adds its parameters after '+', "
            "e.g. knfu+include-self=false+top-m=3"
        ),
    ] = "local,mean,dsfl,knfu,fedavg",
    seeds: Annotated[str, typer.Option(help="Comma-separated seeds")] = "0",
    set_: SetOption = None,
    name: Annotated[str | None, typer.Option(help="Comparison name")] = None,
    reuse: Annotated[
        bool, typer.Option(help="Keep finished runs whose resolved config is identical")
    ] = False,
) -> None:
    """Run several strategies on identical partitions and seeds; write a comparison."""
    base, nodes = _load(config, set_)
    _preflight(base)
    from fedkd.flower_glue.simulation import run_simulation

    names = [s.strip() for s in strategies.split(",") if s.strip()]
    seed_list = [int(s) for s in seeds.split(",") if s.strip()]
    title = name or base.run_name
    out = Path(base.output_dir).expanduser().resolve() / title
    out.mkdir(parents=True, exist_ok=True)
    summaries: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
    for seed in seed_list:
        for strategy in names:
            run_name = f"{title}/{strategy}-seed{seed}"
            console.rule(f"{strategy} · seed {seed}")
            cfg, _ = _load(
                config,
                [*(set_ or []), *_variant_overrides(strategy)],
                strategy=strategy.split("+")[0],
                seed=seed,
                **{"run-name": run_name},
            )
            run_dir = out / f"{strategy}-seed{seed}"
            if not (reuse and _finished_with(run_dir, cfg, nodes)):
                run_simulation(cfg, node_sections=nodes)
            summaries[strategy].append(json.loads((run_dir / "summary.json").read_text()))
    _write_comparison(out, title, summaries, base, seed_list)


def _finished_with(run_dir: Path, cfg: RunConfig, nodes: dict[str, Any]) -> bool:
    """Whether ``run_dir`` holds a finished run of exactly ``cfg`` and these nodes."""
    from fedkd.flower_glue.simulation import simulated_nodes
    from fedkd.fusion import param_owner

    try:
        done = parse_run_config(json.loads((run_dir / "config.json").read_text()))
        (run_dir / "summary.json").read_text()
        done_nodes = json.loads((run_dir / "nodes.json").read_text())
    except (OSError, ValueError):
        return False

    # Parameters of strategies other than the run's own cannot change its result.
    def relevant(flat: dict[str, Any]) -> dict[str, Any]:
        return {
            k: v
            for k, v in flat.items()
            if (owner := param_owner(k)) is None or owner[0] == cfg.strategy
        }

    wanted_nodes = [n.to_flat() for n in simulated_nodes(cfg, run_dir, nodes)]
    same_nodes = done_nodes == json.loads(json.dumps(wanted_nodes))
    return same_nodes and relevant(done.to_flat()) == relevant(cfg.to_flat())


def _variant_overrides(token: str) -> list[str]:
    """``knfu+top-m=3+dp-target-epsilon=1`` → ``["knfu-top-m=3", "dp-target-epsilon=1"]``.

    A parameter named like a run-config key (``dp``, ``dp-target-epsilon``, ``lr``…) sets
    that key; any other is the strategy's own (``top-m`` → ``knfu-top-m``).
    """
    from fedkd.config import RUN_CONFIG_KEYS

    name, *params = token.split("+")
    overrides = []
    for param in params:
        key, sep, _ = param.partition("=")
        if not sep:
            raise typer.BadParameter(f"variant parameter {param!r} in {token!r} is not key=value")
        overrides.append(param if key in RUN_CONFIG_KEYS else f"{name}-{param}")
    return overrides


def _write_comparison(
    out: Path,
    title: str,
    summaries: dict[str, list[dict[str, Any]]],
    base: RunConfig,
    seeds: list[int],
) -> None:
    from fedkd.reporting.compare import aggregate, markdown_table, plot_comparison

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
            s: {k: dataclasses.asdict(v) for k, v in m.items()} for s, m in stats.items()
        },
        "runs": summaries,
    }
    (out / "comparison.json").write_text(json.dumps(payload, indent=2, sort_keys=True))
    table = markdown_table(stats, title=f"{title}: {base.dataset}, {base.num_clients} clients")
    (out / "comparison.md").write_text(table)
    plot_comparison(stats, out / "comparison.png", title=title)
    console.print(table)
    console.print(f"[green]comparison written to[/] {out}")


@data_app.command("fetch")
def data_fetch(
    name: Annotated[str, typer.Argument(help="mnist or fashion-mnist")],
    data_dir: Annotated[Path | None, typer.Option(help="Default: $FEDKD_DATA")] = None,
) -> None:
    """Download a dataset's idx files, or say exactly where to put them."""
    from fedkd.data.fetch import fetch_dataset
    from fedkd.data.sources import DatasetNotFoundError, default_data_dir

    try:
        path = fetch_dataset(
            name,
            data_dir=data_dir or default_data_dir(),
            log=lambda line: console.print(line, markup=False),
        )
    except DatasetNotFoundError as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(1) from exc
    console.print(f"[green]{name} ready in[/] {path}")


@data_app.command("heart-hospitals")
def data_heart_hospitals(
    out: Annotated[Path, typer.Argument(help="Folder to write the example files into")],
    seed: Annotated[int, typer.Option(help="The simulation seed whose splits they hold")] = 0,
) -> None:
    """The UCI Heart Disease hospitals as four CSVs with one schema, node configs, a
    public bundle, and a simulation config that runs them."""
    from fedkd.data.heart_export import export_heart_hospitals

    written = export_heart_hospitals(out, seed=seed)
    for hospital in written.hospitals:
        console.print(f"{hospital.hospital}: {hospital.csv}  (node config {hospital.node_config})")
    console.print(f"schema {written.schema}\npublic data {written.public}")
    console.print(f"[green]run them:[/] fedkd simulate {written.simulation}")


@node_app.command("check")
def node_check(
    config: Annotated[Path, typer.Argument(help="The node's config TOML")],
    run: Annotated[
        Path | None, typer.Option(help="A run config naming the public data, if the node's doesn't")
    ] = None,
) -> None:
    """Validate a node before it joins: its config, policy, data and ledger.  Problems are
    printed here (on the node); nothing is sent anywhere."""
    from fedkd.data.providers import DataValidationError
    from fedkd.node import ClientNode, parse_node_config
    from fedkd.privacy.ledger import Ledger, LedgerError

    try:
        node_cfg = parse_node_config({"config": str(config)})
        run_cfg = _load(run, None)[0] if run else parse_run_config({})
        node = ClientNode(node_cfg, run_cfg, node_id=0)
        private = node.check()
    except DataValidationError as exc:
        console.print(f"[red]{node_cfg.name}: the data cannot be used[/]\n{exc}", markup=False)
        raise typer.Exit(1) from exc
    except (ValueError, OSError) as exc:
        console.print(f"[red]node check failed:[/] {exc}")
        raise typer.Exit(1) from exc
    console.print(
        f"[green]{node_cfg.name} is ready[/]: {len(private.train)} training records, "
        f"local test {len(private.test)} ({private.own_test} own, {private.topped_up} public), "
        f"data digest {private.digest[:19]}…"
    )
    policy = node_cfg.policy
    console.print(f"privacy policy: {policy.to_json()}", markup=False)
    if not policy.nominal_records:
        console.print(
            "[yellow]no privacy-nominal-records:[/] under DP, q and the number of steps will "
            "follow the actual record count (and reveal it to within a batch); publish a "
            "round count instead"
        )
    if node_cfg.ledger_path.exists():
        try:
            head = Ledger.open(node_cfg.ledger_path).head()
        except LedgerError as exc:
            console.print(f"[red]ledger {node_cfg.ledger_path}: {exc}[/]")
            raise typer.Exit(1) from exc
        console.print(f"ledger {node_cfg.ledger_path}: verified, head {head[:12]}…")
    else:
        console.print(f"ledger {node_cfg.ledger_path}: none yet (created on first release)")


LedgerPath = Annotated[Path, typer.Argument(help="A node's ledger file (node-<id>.ledger.db)")]


def _open_ledger(path: Path) -> list[Any]:
    """The verified rows of the ledger at ``path``, read-only (the file is never changed)."""
    from fedkd.privacy.ledger import LedgerError, ReadOnlyLedger

    if not path.exists():
        console.print(f"[red]no ledger at {path}[/]", soft_wrap=True)
        raise typer.Exit(1)
    try:
        return ReadOnlyLedger.read(path).rows()
    except LedgerError as exc:
        console.print(f"[red]ledger failed verification:[/] {exc}", soft_wrap=True)
        raise typer.Exit(1) from exc


@ledger_app.command("show")
def ledger_show(path: LedgerPath) -> None:
    """Verify the hash chain and print every release."""
    from rich.table import Table

    rows = _open_ledger(path)
    console.print(f"{len(rows)} releases, chain verified: {path}", soft_wrap=True)
    table = Table()
    for column in ("seq", "run", "round", "mechanism", "σ", "q", "steps", "ε", "δ", "payload"):
        table.add_column(column, justify="right" if column not in ("run", "mechanism") else "left")
    for row in rows:
        table.add_row(
            str(row.seq),
            row.run_id[:12],
            str(row.round),
            row.mechanism,
            f"{row.noise_multiplier:.4g}",
            f"{row.sample_rate:.4g}",
            str(row.steps),
            "—" if row.epsilon is None else f"{row.epsilon:.4f}",
            f"{row.delta:.0e}",
            row.payload_sha256[:12],
        )
    console.print(table)
    if rows:
        console.print(f"head {rows[-1].row_hash}")


@ledger_app.command("export")
def ledger_export(
    path: LedgerPath,
    fmt: Annotated[str, typer.Option("--format", help="csv or json")] = "csv",
    out: Annotated[Path | None, typer.Option(help="Write here instead of stdout")] = None,
) -> None:
    """Export every verified row, with its hashes and the fields it sent."""
    from fedkd.privacy.ledger import rows_to_csv, rows_to_json

    if fmt not in ("csv", "json"):
        raise typer.BadParameter(f"--format must be csv or json, got {fmt!r}")
    rows = _open_ledger(path)
    text = rows_to_csv(rows) if fmt == "csv" else rows_to_json(rows) + "\n"
    if out is None:
        typer.echo(text, nl=False)
    else:
        out.write_text(text)
        console.print(f"{len(rows)} rows written to {out}")


@ledger_app.command("registry")
def ledger_registry(
    path: Annotated[Path, typer.Argument(help="The server's privacy-registry file")],
    node: Annotated[str | None, typer.Option(help="Only this node's (by name)")] = None,
) -> None:
    """Print what the server recorded of each node's ledger, run by run."""
    from rich.table import Table

    from fedkd.privacy.node_registry import NodeRegistry, RegistryError

    if not path.exists():
        console.print(f"[red]no registry at {path}[/]", soft_wrap=True)
        raise typer.Exit(1)
    try:
        observations = NodeRegistry.open(path).observations(node)
    except RegistryError as exc:
        console.print(f"[red]{exc}[/]", soft_wrap=True)
        raise typer.Exit(1) from exc
    table = Table()
    for column in ("node", "run", "round", "ε", "ledger head", "recorded"):
        table.add_column(column, justify="right" if column in ("round", "ε") else "left")
    for o in observations:
        eps = "—" if o.epsilon is None else f"{o.epsilon:.4f}"
        table.add_row(o.node, o.run_id[:12], str(o.round), eps, o.ledger_head[:12], o.recorded_at)
    console.print(f"{len(observations)} observations in {path}", soft_wrap=True)
    console.print(table)


if __name__ == "__main__":
    app()
