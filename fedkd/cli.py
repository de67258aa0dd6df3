"""``fedkd``: simulate, compare, fetch data."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from fedkd.config import (
    STRATEGY_PARAM_PREFIXES,
    ConfigValue,
    RunConfig,
    load_config_file,
    parse_override,
)

app = typer.Typer(help="Federated knowledge distillation on Flower.", no_args_is_help=True)
data_app = typer.Typer(help="Datasets that are not embedded.", no_args_is_help=True)
app.add_typer(data_app, name="data")
console = Console()

SetOption = Annotated[
    list[str] | None, typer.Option("--set", "-s", help="Override a config key: key=value")
]


def _overrides(items: list[str] | None) -> dict[str, ConfigValue]:
    try:
        return dict(parse_override(item) for item in items or [])
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc


def _load(config: Path, items: list[str] | None, **extra: ConfigValue) -> RunConfig:
    try:
        return load_config_file(config, {**_overrides(items), **extra})
    except (ValueError, FileNotFoundError) as exc:
        console.print(f"[red]config error:[/] {exc}")
        raise typer.Exit(2) from exc


@app.command()
def simulate(
    config: Annotated[Path, typer.Argument(help="Run-config TOML (see simulations/)")],
    set_: SetOption = None,
    name: Annotated[str | None, typer.Option(help="Run name (folder under output-dir)")] = None,
) -> None:
    """Run one federated simulation on Flower's simulation engine."""
    cfg = _load(config, set_, **({"run-name": name} if name else {}))
    from fedkd.flower_glue.simulation import run_simulation

    run_dir = run_simulation(cfg)
    summary = json.loads((run_dir / "summary.json").read_text())
    console.print(
        f"[green]done[/] {cfg.strategy}: ALMA {summary['alma']:.4f}, "
        f"global {summary['global_acc']:.4f}, {summary['wall_s']:.1f} s → {run_dir}"
    )


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
    base = _load(config, set_)
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
            cfg = _load(
                config,
                [*(set_ or []), *_variant_overrides(strategy)],
                strategy=strategy.split("+")[0],
                seed=seed,
                **{"run-name": run_name},
            )
            run_dir = out / f"{strategy}-seed{seed}"
            if not (reuse and _finished_with(run_dir, cfg)):
                run_simulation(cfg)
            summaries[strategy].append(json.loads((run_dir / "summary.json").read_text()))
    _write_comparison(out, title, summaries, base, seed_list)


def _finished_with(run_dir: Path, cfg: RunConfig) -> bool:
    """Whether ``run_dir`` holds a finished run of exactly ``cfg``."""
    try:
        done = json.loads((run_dir / "config.json").read_text())
        (run_dir / "summary.json").read_text()
    except (OSError, ValueError):
        return False
    from fedkd.flower_glue.simulation import fused_run_config

    # Both sides filled in with pyproject's defaults, as Flower does for a run; parameters
    # of strategies other than the run's own cannot change its result.
    def relevant(flat: dict[str, Any]) -> dict[str, Any]:
        own = f"{cfg.strategy}-"
        return {
            k: v
            for k, v in fused_run_config(flat).items()
            if not k.startswith(STRATEGY_PARAM_PREFIXES) or k.startswith(own)
        }

    return relevant(done) == relevant(json.loads(json.dumps(cfg.to_flat())))


def _variant_overrides(token: str) -> list[str]:
    """``knfu+top-m=3+include-self=false`` → ``["knfu-top-m=3", "knfu-include-self=false"]``."""
    name, *params = token.split("+")
    for param in params:
        if "=" not in param:
            raise typer.BadParameter(f"variant parameter {param!r} in {token!r} is not key=value")
    return [f"{name}-{param}" for param in params]


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


if __name__ == "__main__":
    app()
