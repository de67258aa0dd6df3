"""The same results at two commits, run back to back and compared exactly.

    python simulations/reproduce.py both 71612de HEAD          # what a refactor must not change
    python simulations/reproduce.py both 71612de HEAD --smoke  # one seed, two strategies
    python simulations/reproduce.py run 71612de                # one commit's results, kept
    python simulations/reproduce.py compare 71612de HEAD       # two kept results, compared

For each commit: the strategy comparison on digits and on MNIST, Dirichlet α = 0.5, seeds
0, 1, 2, DP off (``make bench``'s tables), and one DP run on digits whose nodes' ledgers
are read back for ε.  Every number a run reports except timings must be equal at both
commits — accuracies, per-round and per-node figures, traffic — and so must each ledger's
σ, q, steps and ε (a DP run's noise is fresh randomness, so its accuracies are not
compared; its accounting is deterministic).

Each commit runs from a temporary ``git worktree`` with this checkout's virtual
environment, ``PYTHONPATH`` pointing at the worktree so the Ray workers and every process
a run starts load that commit's code.  Results go to ``runs/reproduce/<commit>/``; the
comparison is printed and written to ``runs/reproduce/<base>-vs-<head>.json``.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import typer

ROOT = Path(__file__).resolve().parents[1]
PYTHON = ROOT / ".venv" / "bin" / "python"
STRATEGIES = "local,mean,dsfl,knfu,median,trimmed-mean,fedavg"
SEEDS = "0,1,2"
NOT_RESULTS = frozenset(
    {"wall_s", "seconds", "fusion_seconds", "round_seconds", "phase_seconds", "started", "at"}
    | {"run_id", "node_id", "ledger_head", "registry"}
    | {"flower_bytes_up", "flower_bytes_down"}
    | {"flower_bytes_up_per_client_round", "flower_bytes_down_per_client_round"}
)
"""What differs between two runs of the same thing at one commit: clocks, the random ids
Flower and the run give (a Flower message's size varies with its varint-coded node id),
ledger heads (hashes over rows that carry their time), and the registry's path (under
each commit's own output folder).  Node ids as keys are replaced
by the node's partition."""

app = typer.Typer(help=__doc__, add_completion=False)


def _git(*args: str) -> str:
    done = subprocess.run(["git", *args], cwd=ROOT, check=True, capture_output=True, text=True)
    return done.stdout.strip()


def _commands(out: Path, *, smoke: bool) -> dict[str, list[str]]:
    """Name → fedkd CLI arguments, run in the commit's worktree."""
    strategies, seeds = ("knfu,fedavg", "0") if smoke else (STRATEGIES, SEEDS)
    runs: dict[str, list[str]] = {}
    for dataset in ("digits", "mnist"):
        runs[f"{dataset}-alpha0.5"] = [
            "compare", f"simulations/{dataset}.toml", "--strategies", strategies,
            "--seeds", seeds, "--set", "dirichlet-alpha=0.5", "--set", f"output-dir={out}",
            "--name", f"{dataset}-alpha0.5", "--overwrite",
        ]  # fmt: skip
    runs["digits-dp"] = [
        "simulate", "simulations/digits.toml", "--set", "dp-target-epsilon=3",
        "--set", "strategy=mean", "--set", f"output-dir={out}", "--set", "run-name=digits-dp",
        "--set", "num-server-rounds=3", "--overwrite",
    ]  # fmt: skip
    return runs


def run_commit(
    commit: str, *, smoke: bool, only: frozenset[str] = frozenset()
) -> tuple[Path, dict[str, float]]:
    """Every command at ``commit`` (or those named in ``only``); returns its output folder
    and each command's seconds."""
    sha = _git("rev-parse", "--short", commit)
    out = ROOT / "runs" / "reproduce" / sha
    seconds: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix=f"fedkd-{sha}-") as tmp:
        tree = Path(tmp) / "tree"
        _git("worktree", "add", "--detach", str(tree), sha)
        try:
            env = {**os.environ, "PYTHONPATH": str(tree)}
            for name, args in _commands(out, smoke=smoke).items():
                if only and name not in only:
                    continue
                started = time.perf_counter()
                subprocess.run(
                    [str(PYTHON), "-m", "fedkd.cli", *args], cwd=tree, env=env, check=True
                )
                seconds[name] = time.perf_counter() - started
        finally:
            _git("worktree", "remove", "--force", str(tree))
    return out, seconds


def _canonical(value: Any, partitions: dict[str, str]) -> Any:
    """``value`` without what differs between identical runs (:data:`NOT_RESULTS`), every
    Flower node id (as a key or a listed string) replaced by its partition."""
    if isinstance(value, dict):
        return {
            partitions.get(str(k), k): _canonical(v, partitions)
            for k, v in value.items()
            if k not in NOT_RESULTS
        }
    if isinstance(value, list):
        items = [_canonical(v, partitions) for v in value]
        named = items and all(isinstance(v, str) and v.startswith("partition-") for v in items)
        return sorted(items) if named else items
    if isinstance(value, str):
        return partitions.get(value, value)
    return value


def run_results(out: Path) -> dict[str, Any]:
    """Every run's summary and metric rows under ``out``, made comparable (see
    :func:`_canonical`; rows in (round, partition) order, as replies arrive in any)."""
    found: dict[str, Any] = {}
    for summary in sorted(out.rglob("summary.json")):
        run = summary.parent
        if "node-state" in run.parts:
            continue
        rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines() if x]
        partitions = {str(r["node_id"]): f"partition-{r['partition_id']}" for r in rows}
        rows.sort(key=lambda r: (r["round"], r["partition_id"]))
        name = str(run.relative_to(out))
        result = _canonical({"summary": json.loads(summary.read_text()), "rows": rows}, partitions)
        found[name] = _dp_view(result) if name.startswith("digits-dp") else result
    return found


def ledger_spend(out: Path) -> dict[str, Any]:
    """Each DP-run node's ledger: its releases (σ, q, steps) and their composed ε."""
    from fedkd.privacy.accounting import epsilon
    from fedkd.privacy.ledger import ReadOnlyLedger

    spend: dict[str, Any] = {}
    for path in sorted((out / "node-state").rglob("*.ledger.db")):
        if not path.parent.name.startswith("digits-dp"):
            continue
        history = ReadOnlyLedger.read(path).history()
        node = path.name.removesuffix(".ledger.db")
        spend[node] = {
            "releases": [[s.noise_multiplier, s.sample_rate, s.steps] for s in history],
            "epsilon": epsilon(history, delta=1e-5, accountant="prv"),
        }
    return spend


RUN_TO_RUN = {
    "bytes_up": 8.0,
    "bytes_down": 8.0,
    "bytes_up_per_client_round": 8.0,
    "bytes_down_per_client_round": 8.0,
    "train_loss": 1e-6,
    "local_loss": 1e-6,
    "global_loss": 1e-6,
}
"""How far a figure moves between two runs of one commit, measured (two runs of the base
commit): payloads carry Flower's run id, a random 64-bit number written in decimal, so
their sizes move by a few bytes; FedAvg sums the weights in the order replies arrive, so
float32 losses move in the seventh digit.  Accuracies never move."""


def run_to_run(difference: str) -> bool:
    """Whether ``difference`` (a line of :func:`differences`) is within :data:`RUN_TO_RUN`."""
    where, _, values = difference.partition(": ")
    key = where.rsplit("/", 1)[-1]
    base, _, head = values.partition(" at base, ")
    try:
        gap = abs(float(base) - float(head.removesuffix(" at head")))
    except ValueError:
        return False
    return key in RUN_TO_RUN and gap <= RUN_TO_RUN[key]


def _dp_view(result: dict[str, Any]) -> dict[str, Any]:
    """What a DP run must reproduce: its accounting (its noise is fresh randomness, so its
    accuracies are not compared)."""
    summary = result["summary"]
    return {
        "epsilon_max": summary.get("epsilon_max"),
        "privacy": summary.get("privacy"),
        "rows": [
            {k: r.get(k) for k in ("round", "partition_id", "epsilon", "status")}
            for r in result["rows"]
        ],
    }


def differences(base: Any, head: Any, where: str = "") -> list[str]:
    """Every place two result trees differ."""
    if isinstance(base, dict) and isinstance(head, dict):
        found = []
        for key in sorted(set(base) | set(head)):
            if key not in base or key not in head:
                found.append(f"{where}/{key}: only at {'head' if key in head else 'base'}")
            else:
                found += differences(base[key], head[key], f"{where}/{key}")
        return found
    if isinstance(base, list) and isinstance(head, list):
        if len(base) != len(head):
            return [f"{where}: {len(base)} items at base, {len(head)} at head"]
        pairs = enumerate(zip(base, head, strict=True))
        return [d for i, (a, b) in pairs for d in differences(a, b, f"{where}[{i}]")]
    both_nan = isinstance(base, float) and isinstance(head, float)
    same = base == head or (both_nan and math.isnan(base) and math.isnan(head))
    return [] if same else [f"{where}: {base!r} at base, {head!r} at head"]


def _headline(results: dict[str, Any]) -> list[tuple[str, float | None, float | None]]:
    return [
        (run, r["summary"].get("alma"), r["summary"].get("global_acc"))
        for run, r in sorted(results.items())
        if "summary" in r
    ]


def _kept(commit: str) -> Path:
    return ROOT / "runs" / "reproduce" / f"{_git('rev-parse', '--short', commit)}.json"


def _results(commit: str) -> dict[str, Any]:
    out = ROOT / "runs" / "reproduce" / _git("rev-parse", "--short", commit)
    kept: dict[str, Any] = json.loads(_kept(commit).read_text())
    return {**kept, "runs": run_results(out), "ledgers": ledger_spend(out)}


@app.command()
def run(
    commit: str = typer.Argument(..., help="the commit to run"),
    smoke: bool = typer.Option(False, help="one seed, two strategies"),
    only: str = typer.Option(
        "", help="comma-separated commands (digits-alpha0.5, mnist-alpha0.5, digits-dp)"
    ),
) -> None:
    """Run every command at ``commit`` and keep its results (timings removed); with
    ``--only``, those commands, and a comparison then covers those alone."""
    commit = _git("rev-parse", commit)  # once: HEAD may move while the runs go on
    chosen = frozenset(filter(None, only.split(",")))
    unknown = chosen - set(_commands(Path("."), smoke=smoke))
    if unknown:
        raise typer.BadParameter(f"no command named {sorted(unknown)}")
    out, seconds = run_commit(commit, smoke=smoke, only=chosen)
    kept = {
        "commit": commit, "smoke": smoke, "seconds": seconds,
        "only": sorted(chosen),
    }  # fmt: skip
    _kept(commit).write_text(json.dumps(kept, indent=1))
    typer.echo(f"{commit}: results in {out}")


@app.command()
def compare(
    base: str = typer.Argument(..., help="the earlier commit"),
    head: str = typer.Argument("HEAD", help="the later commit"),
) -> None:
    """Compare two commits' kept results; exit 1 if any reported number differs."""
    found_base, found_head = (_results(c) for c in (base, head))
    only = set(found_base.get("only") or []) | set(found_head.get("only") or [])
    if only:  # a partial run at either commit: compare what both ran
        for found in (found_base, found_head):
            found["runs"] = {k: v for k, v in found["runs"].items() if k.split("/")[0] in only}
            if "digits-dp" not in only:
                found["ledgers"] = {}
    every = differences(found_base["runs"], found_head["runs"], "runs")
    every += differences(found_base["ledgers"], found_head["ledgers"], "ledgers")
    found = [d for d in every if not run_to_run(d)]
    moved = [d for d in every if run_to_run(d)]
    report = {
        "base": found_base["commit"],
        "head": found_head["commit"],
        "runs_compared": len(found_base["runs"]),
        "ledgers_compared": len(found_base["ledgers"]),
        "differences": found,
        "within_run_to_run": len(moved),
        "within_run_to_run_examples": moved[:20],
        "headline": _headline(found_head["runs"]),
        "ledger_epsilon": {n: v["epsilon"] for n, v in found_head["ledgers"].items()},
        "seconds": {"base": found_base["seconds"], "head": found_head["seconds"]},
    }
    path = ROOT / "runs" / "reproduce" / f"{report['base'][:7]}-vs-{report['head'][:7]}.json"
    path.write_text(json.dumps(report, indent=2, default=str))
    for name, alma, global_acc in report["headline"]:
        typer.echo(f"{name}: ALMA {alma}, global {global_acc}")
    typer.echo(f"ledger ε (head): {report['ledger_epsilon']}")
    typer.echo(
        f"{report['runs_compared']} runs and {report['ledgers_compared']} ledgers compared; "
        f"{len(found)} differences; {len(moved)} within run-to-run variation ({path})"
    )
    for line in found[:40]:
        typer.echo(f"  {line}")
    sys.exit(1 if found or not report["runs_compared"] else 0)


@app.command()
def both(
    base: str = typer.Argument(..., help="the earlier commit"),
    head: str = typer.Argument("HEAD", help="the later commit"),
    smoke: bool = typer.Option(False, help="one seed, two strategies"),
) -> None:
    """Run both commits back to back, then compare them."""
    run(base, smoke=smoke)
    run(head, smoke=smoke)
    compare(base, head)


if __name__ == "__main__":
    app()
