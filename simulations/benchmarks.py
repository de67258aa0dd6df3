"""`make bench`: the tables of BENCHMARKS.md, each regenerated from real runs.

    python simulations/benchmarks.py run poisoned          # one table (make bench TABLE=…)
    python simulations/benchmarks.py run poisoned --smoke  # its code path on a tiny setting
    python simulations/benchmarks.py render                # BENCHMARKS.md from the results

Each table writes ``simulations/results/bench/<table>.json`` (rows, the exact command,
the date and its wall time); ``render`` assembles BENCHMARKS.md with the machine it ran
on.  Runs go under ``runs/bench-tables/`` and are reused when complete (``--reuse``
semantics of ``fedkd compare``), so an interrupted table resumes where it stopped.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "simulations" / "results" / "bench"
RUNS = ROOT / "runs" / "bench-tables"
app = typer.Typer(help=__doc__, no_args_is_help=True)


@dataclass
class Table:
    """One benchmark table as BENCHMARKS.md shows it."""

    name: str
    title: str
    command: str
    columns: list[str]
    rows: list[list[str]]
    headline: str
    notes: list[str] = field(default_factory=list)
    wall_s: float = 0.0
    date: str = ""
    smoke: bool = False

    def markdown(self) -> str:
        lines = [f"## {self.title}", "", f"`{self.command}` — {self.date}, {self.wall_s:.0f} s", ""]
        lines.append("| " + " | ".join(self.columns) + " |")
        lines.append("|" + "---|" * len(self.columns))
        lines += ["| " + " | ".join(row) + " |" for row in self.rows]
        lines += ["", f"**{self.headline}**", ""]
        lines += [f"- {note}" for note in self.notes]
        return "\n".join(lines).rstrip() + "\n"


@dataclass(frozen=True)
class Settings:
    smoke: bool
    runs: Path


def mean_std(values: Sequence[float]) -> str:
    if not values:
        return "—"
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.fmean(values):.3f} ± {statistics.stdev(values):.3f}"


def tie_or_gap(a: Sequence[float], b: Sequence[float]) -> str:
    """A difference inside the seeds' spread is a tie."""
    if len(a) < 2 or len(b) < 2:
        return "n/a"
    gap = statistics.fmean(a) - statistics.fmean(b)
    spread = max(statistics.stdev(a), statistics.stdev(b))
    return "tie" if abs(gap) <= spread else f"{gap:+.3f}"


# --- poisoned clients -----------------------------------------------------------------------

ROBUST = ("mean", "knfu", "median", "trimmed-mean")


def _label_profile(cfg: Any, partition: int, state: Path) -> list[float]:
    """The class mix of a simulated node's training labels (what the mimic attacker knows)."""
    import numpy as np

    from fedkd.node import ClientNode
    from fedkd.node.simulated import simulated_node_config

    node = simulated_node_config(cfg, partition, state_dir=str(state))
    labels = ClientNode(node, cfg, node_id=0).check().train.y
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=10)
    return [float(c) / float(counts.sum()) for c in counts]


def _honest(result: Any, attackers: set[int]) -> tuple[float, float, float]:
    """Honest clients' ALMA and global accuracy in the last round, and the target's (0)."""
    last = result.config.num_server_rounds
    rows = [r for r in result.metrics if r["round"] == last and r["partition_id"] is not None]
    honest = [r for r in rows if r["partition_id"] not in attackers]
    local = [r["local_accuracy"] for r in honest if r["local_accuracy"] is not None]
    glob = [r["global_accuracy"] for r in honest if r["global_accuracy"] is not None]
    target = [r["local_accuracy"] for r in honest if r["partition_id"] == 0]
    return statistics.fmean(local), statistics.fmean(glob), target[0] if target else float("nan")


def poisoned(s: Settings) -> Table:
    """2 of 10 MNIST clients malicious (α = 0.5): what the honest ones keep, per strategy."""
    import fedkd
    from fedkd.api import load_config
    from fedkd.node.adversary import ATTACKS

    if s.smoke:
        config, seeds, over = "simulations/digits.toml", [0], {"num-clients": 4,
                                                               "num-server-rounds": 1}  # fmt: skip
    else:
        config, seeds, over = "simulations/mnist.toml", [0, 1], {"dirichlet-alpha": 0.5}
    over = {**over, "output-dir": str(s.runs / "poisoned")}
    cfg, _ = load_config(ROOT / config, over)
    attackers = {cfg.num_clients - 2, cfg.num_clients - 1}
    profile = _label_profile(cfg, 0, s.runs / "profile-state")
    # The smoke setting runs one robust and one plain strategy against the subtlest attack.
    strategies = ("mean", "median") if s.smoke else ROBUST
    attacks = ("clean", "mimic") if s.smoke else ("clean", *ATTACKS)
    results: dict[tuple[str, str], list[tuple[float, float, float]]] = {}
    for attack in attacks:
        nodes: dict[str, Any] = {}
        if attack != "clean":
            spec = {"adversary": attack, "adversary-profile": " ".join(f"{p:.6f}" for p in profile)}
            nodes = {str(p): spec for p in sorted(attackers)}
        comparison = fedkd.compare(
            ROOT / config, list(strategies), seeds, name=attack, reuse=True, nodes=nodes, **over
        )
        for strategy, runs in comparison.runs.items():
            results[(attack, strategy)] = [_honest(r, attackers) for r in runs]
    rows, collapsed = [], []
    for strategy in strategies:
        clean = results[("clean", strategy)]
        for attack in attacks:
            got = results[(attack, strategy)]
            alma = [g[0] for g in got]
            drop = statistics.fmean(c[0] for c in clean) - statistics.fmean(alma)
            if drop > 0.1:
                collapsed.append(f"{strategy} under {attack} ({drop:+.3f} ALMA lost)")
            rows.append([
                strategy, attack, mean_std(alma), mean_std([g[1] for g in got]),
                mean_std([g[2] for g in got]),
                "—" if attack == "clean" else tie_or_gap(alma, [c[0] for c in clean]),
            ])  # fmt: skip
    headline = (
        "collapses (honest ALMA down > 0.1): " + "; ".join(collapsed)
        if collapsed
        else "no strategy lost more than 0.1 honest ALMA under any attack"
    )
    return Table(
        name="poisoned",
        title="Poisoned clients: 2 of 10 malicious, MNIST α = 0.5",
        command=f"make bench TABLE=poisoned  # {config}, seeds {seeds}",
        columns=[
            "strategy",
            "attack",
            "honest ALMA",
            "honest global acc.",
            "target (client 0) local acc.",
            "ALMA vs clean",
        ],
        rows=rows,
        headline=headline,
        notes=[
            "Attackers release valid probability rows (fedkd/node/adversary.py); the mimic "
            "attacker copies client 0's training label profile to win KnFu weight for it.",
            "ALMA vs clean: the difference in honest ALMA, 'tie' when inside the seeds' spread.",
        ],
    )


TABLES: dict[str, Callable[[Settings], Table]] = {"poisoned": poisoned}


# --- driver ---------------------------------------------------------------------------------


def machine() -> dict[str, str]:
    import flwr
    import torch

    model = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cores": str(os.cpu_count()),
        "cpu": model,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "flwr": flwr.__version__ if hasattr(flwr, "__version__") else "unknown",
    }


def run_table(name: str, *, smoke: bool, results: Path = RESULTS, runs: Path = RUNS) -> Table:
    if name not in TABLES:
        raise typer.BadParameter(f"unknown table {name!r}; known: {sorted(TABLES)}")
    started = time.perf_counter()
    table = TABLES[name](Settings(smoke=smoke, runs=runs / ("smoke" if smoke else "full")))
    table.wall_s = time.perf_counter() - started
    table.date = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    table.smoke = smoke
    results.mkdir(parents=True, exist_ok=True)
    suffix = ".smoke.json" if smoke else ".json"
    (results / f"{name}{suffix}").write_text(json.dumps(asdict(table), indent=2))
    return table


def render(results: Path = RESULTS) -> str:
    info = machine()
    head = [
        "# Benchmarks",
        "",
        "Every table is regenerated by `make bench` (one table: `make bench TABLE=name`) from "
        "real runs; means ± std over seeds, a difference inside the spread is a tie.",
        "",
        f"Machine: {info['cores']} cores, {info['cpu']}; Python {info['python']}, "
        f"torch {info['torch']}, flwr {info['flwr']}.",
        "",
    ]
    tables = []
    for name in TABLES:
        path = results / f"{name}.json"
        if path.exists():
            tables.append(Table(**json.loads(path.read_text())).markdown())
        else:
            tables.append(f"## {name}\n\nNot measured yet: `make bench TABLE={name}`.\n")
    return "\n".join(head) + "\n" + "\n".join(tables)


@app.command("run")
def run_command(
    names: list[str], smoke: bool = typer.Option(False, help="Tiny setting: the code path only")
) -> None:
    """Run tables (``all`` for every one) and rewrite BENCHMARKS.md."""
    chosen = list(TABLES) if names == ["all"] else names
    for name in chosen:
        table = run_table(name, smoke=smoke)
        print(table.markdown())
    if not smoke:
        (ROOT / "BENCHMARKS.md").write_text(render())


@app.command("tables")
def tables_command() -> None:
    """Print the table names."""
    print(" ".join(TABLES))


@app.command("render")
def render_command() -> None:
    """Rewrite BENCHMARKS.md from the stored results."""
    (ROOT / "BENCHMARKS.md").write_text(render())


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    app()
