"""What every BENCHMARKS.md table shares: where results and runs go, the table itself, the
counting of the runs behind it, the figures' formatting, and running and rendering tables.

The tables live one to a module under ``simulations/tables/``; ``simulations/benchmarks.py``
lists them in BENCHMARKS.md's order and is the command line.  Helpers and settings that more
than one table uses are here, so a table module holds only what is its own.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "simulations" / "results" / "bench"
RUNS = ROOT / "runs" / "bench-tables"


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
    runs: int = 0
    """Simulations (and timed processes) the table's figures come from."""
    run_seconds: float = 0.0
    """Their own wall times, summed: the table's compute, however many invocations (runs
    are reused, so an invocation may compute only what an interrupted one left)."""
    data: dict[str, Any] = field(default_factory=dict)
    """Machine-readable results other tables build on (the tuning's chosen settings)."""

    def markdown(self) -> str:
        when = f"{self.date}, longest invocation {self.wall_s:,.0f} s"
        if self.runs:  # tables stored before runs were counted have no such figure
            when += f"; {self.runs} runs, {self.run_seconds:,.0f} s of their own wall time"
        lines = [f"## {self.title}", "", f"`{self.command}` — {when}", ""]
        lines.append("| " + " | ".join(self.columns) + " |")
        lines.append("|" + "---|" * len(self.columns))
        lines += ["| " + " | ".join(row) + " |" for row in self.rows]
        lines += ["", f"**{self.headline}**", ""]
        lines += [f"- {note}" for note in self.notes]
        return "\n".join(lines).rstrip() + "\n"


@dataclass(frozen=True)
class Settings:
    """What a table is built for: the tiny smoke setting or the real one, where its runs go,
    and where the stored tables it builds on are."""

    smoke: bool
    runs: Path
    results: Path = RESULTS


SPENT = {"runs": 0, "seconds": 0.0}
"""What the table being computed has used (reset by :func:`run_table`)."""


def compare(*args: Any, **kwargs: Any) -> Any:
    """``fedkd.compare``, counting the runs behind the table and their own wall times."""
    import fedkd

    got = fedkd.compare(*args, **kwargs)
    for runs in got.runs.values():
        for run in runs:
            spend(float(run.summary.get("wall_s", 0.0)))
    return got


def spend(seconds: float) -> None:
    """Count one run (or timed process) behind the table, with its own wall time."""
    SPENT["runs"] += 1
    SPENT["seconds"] += seconds


def mean_std(values: Sequence[float], fmt: str = "{:.3f}") -> str:
    """Mean ± sample standard deviation over seeds; the value alone for one seed."""
    if not values:
        return "—"
    if len(values) == 1:
        return fmt.format(values[0])
    return f"{fmt.format(statistics.fmean(values))} ± {fmt.format(statistics.stdev(values))}"


def tie_or_gap(a: Sequence[float], b: Sequence[float]) -> str:
    """A difference inside the seeds' spread is a tie."""
    if len(a) < 2 or len(b) < 2:
        return "n/a"
    gap = statistics.fmean(a) - statistics.fmean(b)
    spread = max(statistics.stdev(a), statistics.stdev(b))
    return "tie" if abs(gap) <= spread else f"{gap:+.3f}"


def alma_and_global(result: Any) -> tuple[float, float]:
    """A run's final ALMA and global accuracy (NaN where the run has none)."""
    alma, glob = result.alma, result.global_acc
    return float("nan" if alma is None else alma), float("nan" if glob is None else glob)


def timed(args: list[str], env: dict[str, str] | None = None) -> tuple[float, str]:
    """Process wall time (start to exit) and stdout of a command."""
    import subprocess

    started = time.perf_counter()
    done = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, check=True, env=env)
    return time.perf_counter() - started, done.stdout


PRE_TUNING_DEFAULTS: dict[str, Any] = {
    "distill-temperature": 2.0,
    "local-epochs": 1,
    "distill-epochs": 2,
    "lr": 0.05,
    "batch-size": 64,
}
"""The round's hyperparameters before the tuning table's sweep, whatever the configs say now:
the sweep's baseline, and the one protocol of the tables that compare strategies or
implementations rather than settings."""

BENCH_SCALE: dict[str, Any] = {
    "num-server-rounds": 5,
    "max-train-per-client": 1000,
    "global-test-size": 2000,
}
"""What fits the CNN tables into their budget on 2 CPU cores (a cnn-s run with every local
record and the whole test set takes about 6 minutes at 10 rounds)."""
BIGGER_MACHINE = (
    "A bigger machine would add: every local record (about 5,900 per MNIST client), 10 or "
    "more rounds, the whole 10,000-image test set, and a third seed."
)
"""The CNN tables' note on what their scale leaves out."""


def bytes_to_target(result: Any, target: float) -> tuple[int | None, int | None]:
    """Flower-message bytes, both directions, summed over clients and rounds up to the first
    round whose mean global accuracy reaches ``target``; and that round (None: never)."""
    by_round: dict[int, list[dict[str, Any]]] = {}
    for row in result.metrics:
        by_round.setdefault(row["round"], []).append(row)
    spent = 0
    for round_ in sorted(by_round):
        rows = by_round[round_]
        spent += sum(r["flower_bytes_up"] + r["flower_bytes_down"] for r in rows)
        accs = [r["global_accuracy"] for r in rows if r["global_accuracy"] is not None]
        if round_ >= 1 and accs and statistics.fmean(accs) >= target:
            return spent, round_
    return None, None


def machine() -> dict[str, str]:
    """The cores, CPU and versions BENCHMARKS.md names as the machine it ran on."""
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


def run_table(
    tables: Mapping[str, Callable[[Settings], Table]],
    name: str,
    *,
    smoke: bool,
    results: Path = RESULTS,
    runs: Path = RUNS,
) -> Table:
    """Build the table ``name`` of ``tables`` and store it as ``results/<name>.json``
    (``<name>.smoke.json`` on the tiny setting), with its date, wall time and the runs it
    counted."""
    if name not in tables:
        raise typer.BadParameter(f"unknown table {name!r}; known: {sorted(tables)}")
    started = time.perf_counter()
    SPENT.update(runs=0, seconds=0.0)
    settings = Settings(smoke=smoke, runs=runs / ("smoke" if smoke else "full"), results=results)
    table = tables[name](settings)
    table.wall_s = time.perf_counter() - started
    table.date = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    table.smoke = smoke
    table.runs, table.run_seconds = int(SPENT["runs"]), float(SPENT["seconds"])
    results.mkdir(parents=True, exist_ok=True)
    path = results / f"{name}{'.smoke' if smoke else ''}.json"
    if path.exists():
        # An invocation shorter than its runs' own wall time reused runs: it keeps the wall
        # time and date of the invocation that computed them (the longest of the command).
        earlier = json.loads(path.read_text())
        reused = table.wall_s < table.run_seconds
        if reused and earlier.get("command") == table.command and earlier["wall_s"] > table.wall_s:
            table.wall_s, table.date = earlier["wall_s"], earlier["date"]
    path.write_text(json.dumps(asdict(table), indent=2))
    return table


def render(names: Iterable[str], results: Path = RESULTS) -> str:
    """BENCHMARKS.md: the machine, then the tables ``names`` in order from their stored
    results, each one not measured yet with the command that measures it."""
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
    for name in names:
        path = results / f"{name}.json"
        if path.exists():
            tables.append(Table(**json.loads(path.read_text())).markdown())
        else:
            tables.append(f"## {name}\n\nNot measured yet: `make bench TABLE={name}`.\n")
    return "\n".join(head) + "\n" + "\n".join(tables)
