"""`make bench`: the tables of BENCHMARKS.md, each regenerated from real runs.

    python simulations/benchmarks.py run poisoned          # one table (make bench TABLE=…)
    python simulations/benchmarks.py run poisoned --smoke  # its code path on a tiny setting
    python simulations/benchmarks.py render                # BENCHMARKS.md from the results

Each table writes ``simulations/results/bench/<table>.json`` (rows, the exact command,
the date and its wall time); ``render`` assembles BENCHMARKS.md with the machine it ran
on.  Runs go under ``runs/bench-tables/`` and are reused when complete (``--reuse``
semantics of ``fedkd compare``), so an interrupted table resumes where it stopped.

The tables are modules of ``simulations/tables/``; what they share, and the running and
rendering of a table, is ``simulations/bench_runner.py``.  This script holds the command
line and :data:`TABLES`, the tables in BENCHMARKS.md's order.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_runner import ROOT, Settings, Table, render, run_table, spend
from tables import (
    allocator,
    cnn_accuracy,
    communication,
    dp_throughput,
    overhead,
    plain_loops,
    poisoned,
    ray_cluster,
    scale,
    tuning,
)

app = typer.Typer(help=__doc__, no_args_is_help=True)


def _dp_table(module: str, part: str, s: Settings) -> Table:
    """A table whose rows and runners live in a module of their own under simulations/."""
    sys.path.insert(0, str(ROOT / "simulations"))
    table: dict[str, Any] = getattr(importlib.import_module(module), part)(s.smoke, s.runs)
    for seconds in table.pop("spent"):
        spend(seconds)
    return Table(**table)


TABLES: dict[str, Callable[[Settings], Table]] = {
    "tuning": tuning.build,  # first: the CNN tables run each strategy with its tuned settings
    "cnn-accuracy": cnn_accuracy.build,
    "communication": communication.build,
    "plain-loops": plain_loops.build,
    "poisoned": poisoned.build,
    "overhead": overhead.build,
    "scale": scale.build,
    "ray-cluster": ray_cluster.build,
    "dp-throughput": dp_throughput.build,
    "allocator": allocator.build,
    "dp-client": lambda s: _dp_table("dp_ablation", "client_table", s),
    "dp-federated": lambda s: _dp_table("dp_ablation", "federated_table", s),
    "dp-defaults": lambda s: _dp_table("dp_ablation", "defaults_table", s),
    "dp-central": lambda s: _dp_table("dp_utility", "central_table", s),
    "dp-utility": lambda s: _dp_table("dp_utility", "federated_table", s),
    "dp-heart": lambda s: _dp_table("dp_utility", "heart_table", s),
}
"""Every table in BENCHMARKS.md's order (``run all`` runs them in it)."""


@app.command("run")
def run_command(
    names: list[str], smoke: bool = typer.Option(False, help="Tiny setting: the code path only")
) -> None:
    """Run tables (``all`` for every one) and rewrite BENCHMARKS.md."""
    chosen = list(TABLES) if names == ["all"] else names
    for name in chosen:
        table = run_table(TABLES, name, smoke=smoke)
        print(table.markdown())
    if not smoke:
        (ROOT / "BENCHMARKS.md").write_text(render(TABLES))


@app.command("tables")
def tables_command() -> None:
    """Print the table names."""
    print(" ".join(TABLES))


@app.command("render")
def render_command() -> None:
    """Rewrite BENCHMARKS.md from the stored results."""
    (ROOT / "BENCHMARKS.md").write_text(render(TABLES))


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    app()
