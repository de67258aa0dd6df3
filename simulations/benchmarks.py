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

import functools
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

from fedkd.privacy.modes import GRAD_SAMPLE_MODES

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
    SPENT["runs"] += 1
    SPENT["seconds"] += seconds


def mean_std(values: Sequence[float], fmt: str = "{:.3f}") -> str:
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


# --- poisoned clients -----------------------------------------------------------------------

ROBUST = ("mean", "knfu", "median", "trimmed-mean")


def _label_profile(cfg: Any, partition: int, state: Path) -> list[float]:
    """The class mix of a simulated node's training labels (what the mimic attacker knows)."""
    import numpy as np

    from fedkd.node import ClientNode
    from fedkd.simulated_nodes import simulated_node_config

    node = simulated_node_config(cfg, partition, state_dir=str(state))
    labels = ClientNode(node, cfg.protocol(), node_id=0).check().train.y
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
    from fedkd.api import load_config
    from fedkd.node.adversary import ATTACKS

    if s.smoke:
        config, seeds, over = "simulations/digits.toml", [0], {"num-clients": 4,
                                                               "num-server-rounds": 1}  # fmt: skip
    else:
        config, seeds = "simulations/mnist.toml", [0, 1]
        over = {"dirichlet-alpha": 0.5, **PRE_TUNING_DEFAULTS}
    over = {**over, "output-dir": str(s.runs / "poisoned")}
    cfg, _ = load_config(ROOT / config, over)
    attackers = {cfg.num_clients - 2, cfg.num_clients - 1}
    profile = _label_profile(cfg, 0, s.runs / "profile-state")
    # The smoke setting runs one strategy, clean and against the subtlest attack.
    strategies = ("median",) if s.smoke else ROBUST
    attacks = ("clean", "mimic") if s.smoke else ("clean", *ATTACKS)
    results: dict[tuple[str, str], list[tuple[float, float, float]]] = {}
    for attack in attacks:
        nodes: dict[str, Any] = {}
        if attack != "clean":
            spec = {"adversary": attack, "adversary-profile": " ".join(f"{p:.6f}" for p in profile)}
            nodes = {str(p): spec for p in sorted(attackers)}
        comparison = compare(
            ROOT / config,
            list(strategies),
            seeds,
            name=attack,
            reuse=True,
            overwrite=True,
            nodes=nodes,
            **over,
        )
        for strategy, runs in comparison.runs.items():
            results[(attack, strategy)] = [_honest(r, attackers) for r in runs]
    rows, collapsed, worst = [], [], {}
    for strategy in strategies:
        clean = results[("clean", strategy)]
        for attack in attacks:
            got = results[(attack, strategy)]
            alma, glob = [g[0] for g in got], [g[1] for g in got]
            drop = statistics.fmean(c[0] for c in clean) - statistics.fmean(alma)
            if drop > 0.1:
                collapsed.append(f"{strategy} under {attack} ({drop:+.3f} ALMA lost)")
            glob_drop = statistics.fmean(c[1] for c in clean) - statistics.fmean(glob)
            if attack != "clean" and glob_drop > worst.get(strategy, ("", -1.0))[1]:
                worst[strategy] = (attack, glob_drop)
            rows.append([
                strategy, attack, mean_std(alma), mean_std(glob), mean_std([g[2] for g in got]),
                "—" if attack == "clean" else tie_or_gap(alma, [c[0] for c in clean]),
                "—" if attack == "clean" else tie_or_gap(glob, [c[1] for c in clean]),
            ])  # fmt: skip
    headline = (
        "collapses (honest ALMA down > 0.1): " + "; ".join(collapsed)
        if collapsed
        else "no strategy lost more than 0.1 honest ALMA under any attack"
    )
    headline += "; largest honest global-accuracy loss: " + ", ".join(
        f"{k} {v[1]:.3f} ({v[0]})" for k, v in worst.items()
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
            "global vs clean",
        ],
        rows=rows,
        headline=headline,
        notes=[
            "Attackers release valid probability rows (fedkd/node/adversary.py); the mimic "
            "attacker copies client 0's training label profile to win KnFu weight for it.",
            "vs clean: the difference to the clean run, 'tie' when inside the seeds' spread.",
            f"Every strategy on the pre-tuning protocol {PRE_TUNING_DEFAULTS}, the same for "
            "all, as measured before the tuning table.",
        ],
    )


# --- accuracy with CNNs and mixed architectures -------------------------------------------

ACCURACY_STRATEGIES = ("local", "mean", "dsfl", "knfu", "fedavg")


def _alma_and_global(result: Any) -> tuple[float, float]:
    alma, glob = result.alma, result.global_acc
    return float("nan" if alma is None else alma), float("nan" if glob is None else glob)


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


def cnn_accuracy(s: Settings) -> Table:
    """``cnn-s`` on MNIST and Fashion-MNIST, α ∈ {0.1, 1.0}; the distillation strategies
    also with half the clients on an MLP (fedavg cannot average different architectures);
    and local against knfu with every local record, the regime where KnFu reports that
    local training can win.  Every strategy runs with its own settings from the tuning
    table."""

    tuned = tuned_settings(s)
    few = f"{BENCH_SCALE['max-train-per-client']:,}"
    if s.smoke:
        seeds = [0]
        base: dict[str, Any] = {"num-clients": 4, "num-server-rounds": 1}
        # The mixed setting alone: the same loop, one run.
        cells = [("digits", 1.0, "all", ("mean",), True, False)]
    else:
        seeds, base = [0, 1], dict(BENCH_SCALE)
        cells = [
            (dataset, alpha, few, ACCURACY_STRATEGIES, True, True)
            for dataset in ("mnist", "fashion-mnist")
            for alpha in (0.1, 1.0)
        ]
        cells.append(("mnist", 0.1, "all", ("local", "knfu"), False, True))
    config = ROOT / "simulations" / ("digits.toml" if s.smoke else "mnist.toml")
    rows = []
    for dataset, alpha, records, strategies, with_mixed, with_cnn in cells:
        over = {**base, "dataset": dataset, "dirichlet-alpha": alpha, "model": "cnn-s",
                "output-dir": str(s.runs / "cnn-accuracy")}  # fmt: skip
        if records == "all":
            over["max-train-per-client"] = 0
        clients = int(over.get("num-clients", 10))
        mixed = ",".join(f"{p}:mlp-m" for p in range(1, clients, 2))
        settings = []
        if with_cnn:
            settings.append(("cnn-s", strategies, {}))
        if with_mixed:
            fusing = [n for n in strategies if n != "fedavg"]
            settings.append(("half cnn-s, half mlp-m", fusing, {"client-models": mixed}))
        cell: dict[tuple[str, str], list[Any]] = {}
        for architecture, names, extra in settings:
            for name in names:
                kind = "mixed" if extra else "cnn"
                protocol = tuned_protocol(tuned, name)
                got = compare(
                    config,
                    [name],
                    seeds,
                    name=f"{dataset}-a{alpha}-{records}-{kind}-{name}",
                    reuse=True,
                    overwrite=True,
                    **{**over, **protocol, **extra},
                )
                cell[(architecture, name)] = got.runs[name]
        # The round to target as in the communication table: 95% of fedavg's final global
        # accuracy, here fedavg's with cnn-s in the same cell.
        reference = cell.get(("cnn-s", "fedavg"))
        target = (
            0.95 * statistics.fmean(_alma_and_global(r)[1] for r in reference)
            if reference
            else float("nan")
        )
        for (architecture, name), runs in cell.items():
            values = [_alma_and_global(r) for r in runs]
            reached = [bytes_to_target(r, target)[1] for r in runs]
            hits = [float(r) for r in reached if r is not None]
            when = mean_std(hits, "{:.1f}") if hits else "never"
            if hits and len(hits) < len(runs):
                when += f" ({len(runs) - len(hits)} seed(s) never)"
            rows.append([
                dataset, str(alpha), records, architecture, name,
                mean_std([v[0] for v in values]), mean_std([v[1] for v in values]),
                when if reference else "—",
            ])  # fmt: skip
    best: dict[tuple[str, ...], tuple[str, float]] = {}
    for row in rows:
        key, value = (row[0], row[1], row[2], row[3]), float(row[5].split(" ")[0])
        if key not in best or value > best[key][1]:
            best[key] = (row[4], value)
    headline = "; ".join(
        f"{d} α={a} {r} records {arch}: {w[0]} ({w[1]:.3f})" for (d, a, r, arch), w in best.items()
    )
    return Table(
        name="cnn-accuracy",
        title="Accuracy with CNNs and mixed architectures (10 clients)",
        command=f"make bench TABLE=cnn-accuracy  # seeds {seeds}",
        columns=[
            "dataset",
            "α",
            "training records per client",
            "clients' models",
            "strategy",
            "ALMA",
            "global acc.",
            "round reaching 95% of fedavg's final global acc.",
        ],
        rows=rows,
        headline="best ALMA per setting — " + headline,
        notes=[
            f"Scale: {base}; 'all' rows keep every local record.",
            "Partitions: flwr-datasets' DirichletPartitioner with self_balancing=True (a "
            "client already above the average size gets no more samples), which makes "
            "classes owned by a single client far more common at α = 0.1 than an "
            "unbalanced per-class split.",
            "Each strategy runs with its settings chosen by the tuning table (MNIST, MLP, "
            f"α = 0.1, tuning seeds): {tuned or 'defaults (smoke)'}.",
            "Global accuracy: on a fixed subset of the public test set (global-test-size), "
            "the same images for every run. Round to target: the first round whose mean "
            "global accuracy over the clients reaches 95% of fedavg's final global accuracy "
            "(cnn-s) in the same dataset, α and records per client.",
            "fedavg is absent from the mixed rows: it averages weights, which needs one "
            "architecture.",
            BIGGER_MACHINE,
        ],
    )


# --- communication to a fixed accuracy -----------------------------------------------------

COMMUNICATION_VARIANTS = (
    "mean", "dsfl", "knfu", "knfu+payload-dtype=fp16", "knfu+payload-dtype=int8",
    "knfu+release-top-k=3", "knfu+anchors-per-round=250",
    "knfu+payload-dtype=int8+anchors-per-round=250",
    "knfu+payload-dtype=int8+release-top-k=3+anchors-per-round=250",
)  # fmt: skip
"""In the table's order; computed knfu and its full compression first (an interrupted
table has its two headline figures)."""
COMPUTE_FIRST = ("knfu", "knfu+payload-dtype=int8+release-top-k=3+anchors-per-round=250")


BYTES = "{:,.0f} B"


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


def communication(s: Settings) -> Table:
    """Bytes to reach 95% of fedavg's final global accuracy with the FedAvg paper's CNN."""

    config = ROOT / "simulations" / ("digits.toml" if s.smoke else "mnist.toml")
    if s.smoke:
        seeds, variants = [0], ("knfu+payload-dtype=int8",)
        over: dict[str, Any] = {"num-clients": 4, "num-server-rounds": 2, "model": "cnn-s"}
    else:
        seeds, variants = [0, 1], COMMUNICATION_VARIANTS
        # The FedAvg CNN on 2 CPU cores: the CNN tables' scale keeps a run within minutes;
        # the target is relative to fedavg in this same setting.
        over = {"model": "cnn-fedavg", **BENCH_SCALE}
    over = {**over, "dirichlet-alpha": 0.5, "output-dir": str(s.runs / "communication")}
    tuned = tuned_settings(s)

    reference = compare(
        config, ["fedavg"], seeds, name="fedavg", reuse=True, overwrite=True,
        **{**over, **tuned_protocol(tuned, "fedavg")},
    )  # fmt: skip
    finals = [_alma_and_global(r)[1] for r in reference.runs["fedavg"]]
    target = 0.95 * statistics.fmean(finals)
    fedavg_bytes = [bytes_to_target(r, target)[0] for r in reference.runs["fedavg"]]
    reached = [b for b in fedavg_bytes if b is not None]
    fedavg_mean = statistics.fmean(reached) if reached else float("nan")
    rows = [["fedavg", mean_std([float(b) for b in reached], BYTES) if reached else "never",
             mean_std([float(r) for r in (bytes_to_target(x, target)[1] for x in
                        reference.runs["fedavg"]) if r is not None]),
             "1×", mean_std(finals), "—"]]  # fmt: skip
    got: dict[str, list[Any]] = {}
    for variant in sorted(variants, key=lambda v: v not in COMPUTE_FIRST):
        got[variant] = compare(
            config, [variant], seeds, name=variant.replace("+", "-"), reuse=True,
            overwrite=True, **{**over, **tuned_protocol(tuned, variant)},
        ).runs[variant]  # fmt: skip
    got = {variant: got[variant] for variant in variants}
    knfu_alma = [_alma_and_global(r)[0] for r in got.get("knfu", ())]
    ratios, within_a_point = {}, []
    for name, runs in got.items():
        spent = [bytes_to_target(r, target) for r in runs]
        hits = [float(b) for b, _ in spent if b is not None]
        almas = [_alma_and_global(r)[0] for r in runs]
        if knfu_alma and statistics.fmean(almas) >= statistics.fmean(knfu_alma) - 0.01:
            within_a_point.append(name)
        ratio = fedavg_mean / statistics.fmean(hits) if hits else float("nan")
        ratios[name] = ratio
        missed = "" if len(hits) == len(runs) else f" ({len(runs) - len(hits)} seed(s) never)"
        rows.append([
            name,
            mean_std(hits, BYTES) + missed if hits else "never",
            mean_std([float(r) for _, r in spent if r is not None]) if hits else "—",
            f"{ratio:.0f}×" if hits else "—",
            mean_std([_alma_and_global(r)[1] for r in runs]),
            tie_or_gap(almas, knfu_alma) if name != "knfu" and knfu_alma else "—",
        ])  # fmt: skip
    finite = [(v, k) for k, v in ratios.items() if v == v]
    best = max(finite) if finite else (float("nan"), "none reached the target")
    uncompressed = [
        (ratios[k], k) for k in ("mean", "dsfl", "knfu") if k in ratios and ratios[k] == ratios[k]
    ]
    compressed = [(v, k) for v, k in finite if "+" in k and k in within_a_point]
    targets = (
        "Targets: ≥ 100× uncompressed — "
        + (", ".join(f"{k} {v:.0f}×" for v, k in uncompressed) or "none reached the target")
        + "; ≥ 1000× compressed at ≤ 1 point of ALMA lost — "
        + (f"best {max(compressed)[0]:.0f}× ({max(compressed)[1]})" if compressed else "none")
        + (" (met)." if compressed and max(compressed)[0] >= 1000 else " (not met).")
    )
    return Table(
        name="communication",
        title="Communication to a fixed accuracy: MNIST α = 0.5, 10 clients",
        command=f"make bench TABLE=communication  # seeds {seeds}",
        columns=[
            "strategy",
            "bytes to target (Flower messages, both ways)",
            "round reached",
            "fewer bytes than fedavg",
            "final global acc.",
            "ALMA vs knfu",
        ],
        rows=rows,
        headline=f"target {target:.3f} (95% of fedavg's {statistics.fmean(finals):.3f}); "
        f"best: {best[1]} with {best[0]:.0f}× fewer bytes than fedavg",
        notes=[
            "Every strategy trains the FedAvg paper's CNN (cnn-fedavg, 1,663,370 parameters) "
            f"at the scale {over}.",
            "Each strategy runs with its settings chosen by the tuning table: "
            f"{tuned or 'defaults (smoke)'}.",
            "Bytes are Flower message sizes (fedkd payload plus Flower's framing), up and "
            "down, summed over clients and rounds until the mean global accuracy first "
            "reaches the target.",
            targets,
            "What limits compression here: release-top-k rows travel dense (the wire has no "
            "sparse encoding), so top-k saves no bytes, and its truncated targets at "
            "temperature 4 collapse distillation; fewer anchors per round cost accuracy "
            "within 5 rounds. int8 quarters the bytes at no measured cost.",
            BIGGER_MACHINE,
        ],
    )


# --- the protocol tuned fairly -------------------------------------------------------------

TUNING_SEEDS = [100, 101]
"""Tuning seeds: never the reporting seeds (0, 1, 2)."""
PRE_TUNING_DEFAULTS: dict[str, Any] = {
    "distill-temperature": 2.0,
    "local-epochs": 1,
    "distill-epochs": 2,
    "lr": 0.05,
    "batch-size": 64,
}
"""The round's hyperparameters before this sweep: its baseline, whatever the configs say now."""
SWEEP: dict[str, tuple[Any, ...]] = {
    "distill-temperature": (2.0, 3.0, 4.0),
    "local-epochs": (1, 2),
    "distill-epochs": (1, 2),
    "lr": (0.02, 0.05, 0.1),
    "batch-size": (32, 64),
}
TUNED_STRATEGIES = ("local", "mean", "dsfl", "knfu", "fedavg")
NO_DISTILLATION = ("local", "fedavg")


def coordinate_sweep(
    current: dict[str, Any],
    sweep: dict[str, tuple[Any, ...]],
    objective: Callable[[dict[str, Any]], float],
) -> tuple[dict[str, Any], dict[str, Any]]:
    """One coordinate at a time from ``current``; returns (every coordinate's best value
    combined, the chosen settings).  The chosen settings are the best of ``current``, each
    coordinate's best alone, and the combination: coordinates interact, so a combination of
    individually best values can lose to one of them.  Ties keep the current value, so a
    change must earn its place."""
    best = dict(current)
    for key, values in sweep.items():
        ordered = sorted(values, key=lambda v: v != current[key])  # current value first
        best[key] = max(ordered, key=lambda v: objective({**current, key: v}))
    candidates = [dict(current), best]
    candidates += [{**current, k: v} for k, v in best.items() if v != current[k]]
    return best, max(candidates, key=objective)


def tuning(s: Settings) -> Table:
    """One coordinate at a time from the pre-tuning defaults, on tuning seeds, every strategy
    given the same sweep.  Each strategy keeps the best of: the defaults, each coordinate's
    best value alone, and all of them combined (coordinates interact: a combination of
    individually best values can lose to one of them alone)."""

    config = ROOT / "simulations" / ("digits.toml" if s.smoke else "mnist.toml")
    current = dict(PRE_TUNING_DEFAULTS)
    base: dict[str, Any] = {
        **current, "dirichlet-alpha": 0.1, "output-dir": str(s.runs / "tuning")
    }  # fmt: skip
    sweep, seeds, strategies = SWEEP, TUNING_SEEDS, TUNED_STRATEGIES
    if s.smoke:  # the sweep's code path on the default values alone: one run
        base.update({"num-clients": 4, "num-server-rounds": 1})
        sweep, seeds, strategies = {k: (v,) for k, v in current.items()}, [100], ("mean",)

    memo: dict[tuple[str, tuple[tuple[str, Any], ...]], list[tuple[float, float]]] = {}

    def score(name: str, settings: dict[str, Any]) -> list[tuple[float, float]]:
        """ALMA and global accuracy per tuning seed; one run per distinct setting."""
        changed = tuple(sorted((k, v) for k, v in settings.items() if v != current[k]))
        if (name, changed) not in memo:
            title = "-".join([name, *(f"{k}={v}" for k, v in changed)]) or name
            got = compare(
                config,
                [name],
                seeds,
                name=title,
                reuse=True,
                overwrite=True,
                **{**base, **dict(changed)},
            )
            memo[(name, changed)] = [_alma_and_global(r) for r in got.runs[name]]
        return memo[(name, changed)]

    def global_acc(settings: dict[str, Any], name: str) -> float:
        return statistics.fmean(g for _, g in score(name, settings))

    rows, chosen_by_strategy = [], {}
    for name in strategies:
        baseline = score(name, {})
        swept = {
            key: values
            for key, values in sweep.items()
            # Nothing to distil: a distillation key cannot change the run.
            if not (name in NO_DISTILLATION and key.startswith("distill-"))
        }
        best, chosen = coordinate_sweep(current, swept, functools.partial(global_acc, name=name))
        combined = score(name, best)
        tuned = score(name, chosen)
        changed = {k: v for k, v in chosen.items() if v != current[k]}
        chosen_by_strategy[name] = changed
        rows.append([
            name, mean_std([g for _, g in baseline]), mean_std([g for _, g in tuned]),
            mean_std([a for a, _ in baseline]), mean_std([a for a, _ in tuned]),
            ", ".join(f"{k}={v}" for k, v in changed.items()) or "defaults kept",
            mean_std([g for _, g in combined]),
        ])  # fmt: skip
    edges = [
        f"{name} {key}={value}"
        for name, changed in chosen_by_strategy.items()
        for key, value in changed.items()
        if len(sweep[key]) > 1 and value in (min(sweep[key]), max(sweep[key]))
    ]
    return Table(
        name="tuning",
        title="The protocol tuned fairly: MNIST α = 0.1, tuning seeds only",
        command=f"make bench TABLE=tuning  # seeds {seeds}",
        columns=[
            "strategy",
            "global acc. (defaults)",
            "global acc. (chosen)",
            "ALMA (defaults)",
            "ALMA (chosen)",
            "chosen",
            "global acc. (every coordinate's best combined)",
        ],
        rows=rows,
        headline="every strategy got the same sweep: "
        + "; ".join(f"{r[0]} {r[1].split()[0]} → {r[2].split()[0]}" for r in rows),
        notes=[
            f"Pre-tuning defaults: {current}. Sweep, one coordinate at a time from them: "
            f"{dict(sweep)}; each strategy keeps the best (mean global accuracy over the "
            "tuning seeds) of the defaults, each coordinate's best alone, and all combined. "
            "local and fedavg do not distil: the distill-* keys cannot change their runs and "
            "are not swept for them.",
            "Partitions: flwr-datasets' DirichletPartitioner with self_balancing=True.",
            "Chosen at the edge of the sweep (a wider sweep may find more): "
            + (", ".join(edges) or "none")
            + ".",
            "simulations/mnist.toml keeps the pre-tuning values (the other tables and "
            "scripts are pinned to them); the CNN tables run each strategy with its own "
            "chosen settings.",
        ],
        data={"chosen": chosen_by_strategy, "seeds": seeds},
    )


def tuned_protocol(tuned: dict[str, dict[str, Any]], variant: str) -> dict[str, Any]:
    """The round's settings for a strategy (``knfu+payload-dtype=int8``: knfu's) from the
    tuning table's choices; none (the config's own) when there are no choices (smoke)."""
    if not tuned:
        return {}
    return {**PRE_TUNING_DEFAULTS, **tuned.get(variant.split("+")[0], {})}


def tuned_settings(s: Settings) -> dict[str, dict[str, Any]]:
    """Each strategy's chosen settings from the tuning table (none in the smoke setting).

    Raises
    ------
    typer.BadParameter
        The tuning table has not been run: the other tables would compare untuned strategies.
    """
    if s.smoke:
        return {}
    path = s.results / "tuning.json"
    if not path.exists():
        raise typer.BadParameter(f"{path} missing: run `make bench TABLE=tuning` first")
    chosen: dict[str, dict[str, Any]] = json.loads(path.read_text())["data"]["chosen"]
    return chosen


# --- against plain loops ---------------------------------------------------------------------


def _timed(args: list[str], env: dict[str, str] | None = None) -> tuple[float, str]:
    """Process wall time (start to exit) and stdout of a command."""
    import subprocess

    started = time.perf_counter()
    done = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, check=True, env=env)
    return time.perf_counter() - started, done.stdout


LAST_ROUNDS = 3


def plain_loops(s: Settings) -> Table:
    """fedkd's ``mean`` and ``dsfl`` (Flower's simulation engine) against the same rounds
    written as plain PyTorch loops (simulations/plain_loops.py), and fedkd's ``fedavg``
    against Flower's own FedAvg strategy (simulations/flower_fedavg.py), on fedkd's exact
    split, as processes timed from start to exit."""
    python = sys.executable
    if s.smoke:
        config, seeds = "simulations/digits.toml", [0]
        sets = ["num-clients=4", "num-server-rounds=1"]
    else:
        config, seeds = "simulations/mnist.toml", [0, 1]
        sets = ["dirichlet-alpha=0.1", *(f"{k}={v}" for k, v in PRE_TUNING_DEFAULTS.items())]
    out = s.runs / "plain-loops"
    pairs = [("dsfl", "plain loop", "simulations/plain_loops.py", [])]
    if not s.smoke:
        pairs.insert(0, ("mean", "plain loop", "simulations/plain_loops.py", []))
    pairs.append(("fedavg", "Flower's FedAvg strategy", "simulations/flower_fedavg.py",
                  ["model=cnn-s"]))  # fmt: skip
    rows = []
    for strategy, label, script, more in pairs:
        extra = [a for kv in [*sets, *more] for a in ("--set", kv)]
        fedkd_runs, other_runs = [], []
        for seed in seeds:
            name = f"{strategy}-seed{seed}"
            args = [python, "-m", "fedkd.cli", "simulate", config, "--name", name, "--overwrite",
                    "--set", f"strategy={strategy}", "--set", f"seed={seed}",
                    "--set", f"output-dir={out}", *extra]  # fmt: skip
            wall, _ = _timed(args)
            spend(wall)
            summary = json.loads((out / name / "summary.json").read_text())
            per_round = [v for _, v in sorted((int(r), a) for r, a in
                                              summary["alma_per_round"].items())]  # fmt: skip
            fedkd_runs.append((summary["alma"], summary["global_acc"], wall,
                               statistics.fmean(per_round[-LAST_ROUNDS:])))  # fmt: skip
            other = [python, script, "--config", config, "--seed", str(seed), *extra]
            if script.endswith("plain_loops.py"):
                other += ["--strategy", strategy]
            wall, stdout = _timed(other)
            spend(wall)
            result = json.loads(stdout.strip().splitlines()[-1])
            tail = [r["alma"] for r in result["rounds"]][-LAST_ROUNDS:]
            other_runs.append((result["alma"], result["global_acc"], wall, statistics.fmean(tail)))
        for who, runs in (("fedkd (Flower simulation)", fedkd_runs), (label, other_runs)):
            rows.append([
                strategy + (" (cnn-s)" if more else ""), who, mean_std([r[0] for r in runs]),
                mean_std([r[1] for r in runs]), mean_std([r[2] for r in runs], "{:.1f} s"),
                "—" if runs is fedkd_runs else tie_or_gap([r[0] for r in runs],
                                                          [r[0] for r in fedkd_runs]),
                mean_std([r[3] for r in runs]),
                "—" if runs is fedkd_runs else tie_or_gap([r[3] for r in runs],
                                                          [r[3] for r in fedkd_runs]),
            ])  # fmt: skip
    return Table(
        name="plain-loops",
        title="Against plain PyTorch loops and Flower's FedAvg: MNIST α = 0.1, 10 clients",
        command=f"make bench TABLE=plain-loops  # seeds {seeds}",
        columns=[
            "strategy",
            "implementation",
            "ALMA",
            "global acc.",
            "process wall time",
            "ALMA vs fedkd",
            f"ALMA, mean of the last {LAST_ROUNDS} evaluations",
            "vs fedkd",
        ],
        rows=rows,
        headline="; ".join(
            f"{r[1]} − fedkd's {r[0]}: {r[5]} (last {LAST_ROUNDS}: {r[7]})"
            for r in rows
            if r[5] != "—"
        ),
        notes=[
            "The plain loop shares only fedkd's data split, model architectures and their "
            "initialisation; its batching randomness differs, so equal figures are a tie "
            "within the seeds' spread, not bit-identity.",
            "Process wall time: from the command's start to its exit (Ray start-up included "
            "for fedkd).",
            f"Both sides on the pre-tuning protocol {PRE_TUNING_DEFAULTS}: the comparison is "
            "of implementations, not of settings.",
            "At α = 0.1 weight averaging swings by tens of points from one round to the next "
            f"(client drift), so the last round's ALMA is a noisy draw; the mean of the last "
            f"{LAST_ROUNDS} evaluations compares the implementations more steadily.",
            "fedkd's fedavg and the Flower FedAvg script share the split, the model and its "
            "initialisation, SGD with the same learning rate, momentum and batch size, and "
            "the aggregation weights (training-set sizes); only each round's batch order "
            "differs. A gap between them outside a 2-seed spread, with both curves swinging "
            "by 0.1–0.2 from round to round, needs more seeds to call (a bigger machine: 5).",
        ],
    )


# --- framework overhead -----------------------------------------------------------------------


OVERHEAD_TARGET = 1.15


def _median_range(values: Sequence[float], fmt: str = "{:.1f} s") -> str:
    if len(values) == 1:
        return fmt.format(values[0])
    low, high = min(values), max(values)
    return f"{fmt.format(statistics.median(values))} [{fmt.format(low)}–{fmt.format(high)}]"


def overhead(s: Settings) -> Table:
    """A simulation's process wall time (start to exit: imports, Ray's start-up and
    shutdown, every round) against the same local work as a plain PyTorch loop in one
    process (simulations/plain_loops.py: the same distillation, evaluation, training and
    release on the same data and models), once single-threaded and once with torch using
    every core.  Repetitions alternate the three commands, and each ratio is taken
    within its repetition, so a slow spell on a shared machine hits both sides."""
    python, cores = sys.executable, os.cpu_count() or 1
    if s.smoke:
        reps = 1
        workloads = [("digits, 4 clients × 1 round", "simulations/digits.toml",
                      ["num-clients=4", "num-server-rounds=1"], False)]  # fmt: skip
    else:
        reps = 3
        pinned = [f"{k}={v}" for k, v in PRE_TUNING_DEFAULTS.items()]
        workloads = [
            ("MNIST mlp-m, α = 0.1, 10 clients × 20 rounds", "simulations/mnist.toml",
             ["dirichlet-alpha=0.1", "num-server-rounds=20", *pinned], True),
            ("demo: digits mlp-m, α = 0.3, 10 clients × 5 rounds", "simulations/demo.toml",
             [], False),
        ]  # fmt: skip
    out = s.runs / "overhead"
    rows, verdicts = [], []
    for label, config, sets, targeted in workloads:
        extra = [a for kv in sets for a in ("--set", kv)]
        fedkd_cmd = [python, "-m", "fedkd.cli", "simulate", config, "--name", "overhead",
                     "--overwrite", "--set", "strategy=mean", "--set", "seed=0",
                     "--set", f"output-dir={out}", *extra]  # fmt: skip
        plain_cmd = [python, "simulations/plain_loops.py", "--config", config, "--strategy",
                     "mean", "--seed", "0", *extra]  # fmt: skip
        fedkd_s, inside_s, single_s, multi_s, loop_s = [], [], [], [], []
        for _ in range(reps):
            wall, _ = _timed(fedkd_cmd)
            spend(wall)
            fedkd_s.append(wall)
            summary = json.loads((out / "overhead" / "summary.json").read_text())
            inside_s.append(float(summary["wall_s"]))
            for threads, into in ((1, single_s), (cores, multi_s)):
                wall, stdout = _timed([*plain_cmd, "--threads", str(threads)])
                spend(wall)
                into.append(wall)
                if threads == cores:
                    loop_s.append(float(json.loads(stdout.strip().splitlines()[-1])["loop_s"]))
        best = [min(a, b) for a, b in zip(single_s, multi_s, strict=True)]
        ratios = [f / b for f, b in zip(fedkd_s, best, strict=True)]
        to_single = [f / b for f, b in zip(fedkd_s, single_s, strict=True)]
        rows.append([
            label, _median_range(fedkd_s), _median_range(inside_s),
            _median_range([f - i for f, i in zip(fedkd_s, inside_s, strict=True)]),
            _median_range(single_s), _median_range(multi_s), _median_range(loop_s),
            _median_range(ratios, "{:.2f}×"), _median_range(to_single, "{:.2f}×"),
        ])  # fmt: skip
        if targeted:
            ratio = statistics.median(ratios)
            met = "met" if ratio <= OVERHEAD_TARGET else "not met"
            verdicts.append(f"{label}: {ratio:.2f}× the fastest plain loop (target "
                            f"≤ {OVERHEAD_TARGET}×: {met})")  # fmt: skip
    return Table(
        name="overhead",
        title="Framework overhead: a simulation's process against the same work as a plain loop",
        command=f"make bench TABLE=overhead  # {reps} repetitions, strategy mean, seed 0",
        columns=[
            "workload",
            "fedkd simulate, process",
            "of which the run itself (its wall_s)",
            "outside the run (imports, Ray start and stop, results)",
            "plain loop, 1 thread",
            f"plain loop, {cores} threads",
            f"plain loop's rounds alone ({cores} threads)",
            "fedkd ÷ fastest plain loop",
            "fedkd ÷ single-threaded loop",
        ],
        rows=rows,
        headline="; ".join(verdicts) or "; ".join(f"{r[0]}: {r[7]}" for r in rows),
        notes=[
            "Median [min–max] over the repetitions; ratios are taken within each repetition "
            "(the three commands run back to back), then their median.",
            f"fedkd runs {cores} single-threaded Ray actors (one CPU each) on {cores} cores; "
            "the plain loop runs the clients one after another in one process. The fastest "
            "of its two thread settings is the reference: a user's loop would use it.",
            "Both sides read the same cached partition (fedkd's partition cache: the first "
            "run of a split computes it, the rest read it).",
            "What the simulation pays that the loop does not: Ray's start (GCS, raylet, API "
            "server: about 4 s here) and shutdown (about 1.3 s), the actors' start-up and "
            "imports before the first reply, a message round trip per client and round "
            "(the server polls every 20 ms; Flower's simulation engine picks up new "
            "messages every 100 ms), and the wait at each round's end for the slowest "
            "client. Fixed costs amortise over rounds: a tiny workload (the demo) is "
            "dominated by them.",
        ],
    )


# --- scale ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Measured:
    """A process timed from start to exit, with its process tree's memory."""

    wall_s: float
    stdout: str
    peak_tree_mb: float
    """Largest sum over the process and all its descendants (Ray's GCS, raylet, workers)
    of their proportional set size: shared pages counted once across the tree."""
    peak_main_mb: float
    """Largest resident set of the process itself."""


def _measured(args: list[str], poll_s: float = 0.5) -> Measured:
    """Run ``args``; sample its process tree's memory every ``poll_s`` until it exits."""
    import subprocess

    import psutil

    started = time.perf_counter()
    with subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                          text=True) as child:  # fmt: skip
        root = psutil.Process(child.pid)
        peak_tree = peak_main = 0.0
        while child.poll() is None:
            total = 0.0
            try:
                peak_main = max(peak_main, root.memory_info().rss / 2**20)
                tree = [root, *root.children(recursive=True)]
            except psutil.Error:
                break
            for process in tree:
                try:
                    total += process.memory_full_info().pss / 2**20
                except psutil.Error:
                    continue  # a worker that exited between the listing and the read
            peak_tree = max(peak_tree, total)
            time.sleep(poll_s)
        stdout = child.stdout.read() if child.stdout else ""
        if child.wait() != 0:
            raise RuntimeError(f"{' '.join(args[:6])}… exited with {child.returncode}")
    return Measured(time.perf_counter() - started, stdout, peak_tree, peak_main)


def _synthetic_fusion_seconds(clients: int, anchors: int, classes: int, reps: int = 3) -> float:
    """Median seconds of knfu's fusion (its defaults) on random valid soft labels."""
    import numpy as np

    from fedkd.fusion import FusionInput, make_fusion

    rng = np.random.default_rng(0)
    labels = rng.dirichlet(np.full(classes, 0.3), size=(clients, anchors))
    knfu = make_fusion("knfu")
    times = []
    for _ in range(reps):
        started = time.perf_counter()
        knfu.fuse(FusionInput(labels))
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def scale(s: Settings) -> Table:
    """10 → 100 → 1,000 simulated clients on MNIST (iid, mlp-s, knfu): seconds per round,
    peak memory of the whole simulation, and the fusion step's share of a round."""
    python = sys.executable
    if s.smoke:
        config, rounds = "simulations/digits.toml", 1
        sizes = [(12, 3)]
        fusion_sizes, anchors = [12], 300
    else:
        config, rounds = "simulations/mnist.toml", 2
        sizes = [(10, 0), (100, 0), (1000, 10), (1000, 0)]
        fusion_sizes, anchors = [10, 100, 1000], 1000
    out = s.runs / "scale"
    rows, notes, shares, memory = [], [], [], []
    for clients, per_round in sizes:
        name = f"n{clients}-m{per_round or clients}"
        # All 1,000 asked: one training round is the measurement (each costs minutes).
        its_rounds = 1 if per_round == 0 and clients >= 1000 else rounds
        args = [python, "-m", "fedkd.cli", "simulate", config, "--name", name, "--overwrite",
                "--set", f"num-clients={clients}", "--set", f"clients-per-round={per_round}",
                "--set", "partitioner=iid", "--set", "model=mlp-s", "--set", "strategy=knfu",
                "--set", f"num-server-rounds={its_rounds}", "--set", "seed=0",
                "--set", f"output-dir={out}"]  # fmt: skip
        got = _measured(args)
        spend(got.wall_s)
        summary = json.loads((out / name / "summary.json").read_text())
        training = [summary["round_seconds"][str(r)] for r in range(1, its_rounds + 1)]
        fusion = [summary["fusion_seconds"][str(r)] for r in range(1, its_rounds + 1)]
        final = summary["round_seconds"][str(its_rounds + 1)]
        shares.append(max(f / t for f, t in zip(fusion, training, strict=True)))
        memory.append(got.peak_tree_mb)
        rows.append([
            f"{clients:,}", f"{per_round or clients:,}", f"{got.wall_s:.1f} s",
            f"{summary['wall_s']:.1f} s", " / ".join(f"{t:.1f}" for t in training) + " s",
            f"{final:.1f} s", f"{got.peak_tree_mb:,.0f} MB", f"{got.peak_main_mb:,.0f} MB",
            f"{max(fusion):.3f} s", f"{shares[-1]:.1%}",
            f"{summary['alma']:.3f}",
        ])  # fmt: skip
    synthetic = {k: _synthetic_fusion_seconds(k, anchors, 10) for k in fusion_sizes}
    notes.append(
        "knfu's fusion alone (its default per-sample variant) on synthetic valid soft labels, "
        f"{anchors} anchors × 10 classes, every client participating: "
        + ", ".join(f"K = {k:,}: {t:.3f} s" for k, t in synthetic.items())
        + ". It is two matrix products over the clients (O(K²·T·C)); the (K, K, T) array it "
        "used to build took 1.9 GB at K = 400, T = 500 and grew to ~24 GB at K = 1,000."
    )
    headline = (
        f"{max(c for c, _ in sizes):,} clients ran on {os.cpu_count()} cores; peak memory of "
        f"the whole simulation {max(memory):,.0f} MB; fusion ≤ {max(shares):.1%} of its round "
        f"(target ≤ 5%: {'met' if max(shares) <= 0.05 else 'not met'})"
    )
    return Table(
        name="scale",
        title="Scale: 10 → 100 → 1,000 simulated clients on one machine (MNIST, iid, mlp-s, knfu)",
        command=f"make bench TABLE=scale  # {rounds} training rounds, seed 0",
        columns=[
            "clients",
            "asked per round",
            "process wall time",
            "run's own wall time",
            "training rounds",
            "final evaluation (all clients)",
            "peak memory, whole tree (PSS)",
            "peak memory, main process (RSS)",
            "fusion (largest round)",
            "fusion's share of its round",
            "ALMA",
        ],
        rows=rows,
        headline=headline,
        notes=[
            "Beyond 100 clients, 10 are drawn afresh each round (`clients-per-round = 10`); "
            "the handshake and the final evaluation ask every client. The last row asks all "
            "1,000 in one training round.",
            "Memory: sampled every 0.5 s over the simulation's whole process tree (the "
            "main process, Ray's GCS, raylet and helpers, the ClientApp actors).",
            "ALMA is over every client at the final evaluation: with 10 of 1,000 asked in "
            "each of 2 rounds, at most 20 clients trained before it (the rest evaluate their "
            "initial model); the rows measure cost, not accuracy.",
            *notes,
        ],
    )


# --- beyond one machine ------------------------------------------------------------------------


def ray_cluster(s: Settings) -> Table:
    """The same simulation in its own Ray (one process tree, every core) and joining a
    two-node Ray cluster (a head and a worker started as separate `ray start` processes,
    one CPU each: simulations/ray_cluster.py), named by RAY_ADDRESS."""
    sys.path.insert(0, str(ROOT / "simulations"))
    from ray_cluster import local_cluster

    python = sys.executable
    if s.smoke:
        config, sets = "simulations/digits.toml", ["num-clients=4", "num-server-rounds=2"]
    else:
        config = "simulations/mnist.toml"
        sets = ["dirichlet-alpha=0.1", "num-server-rounds=5", "strategy=mean",
                *(f"{k}={v}" for k, v in PRE_TUNING_DEFAULTS.items())]  # fmt: skip
    out = s.runs / "ray-cluster"
    extra = [a for kv in [*sets, "seed=0", f"output-dir={out}"] for a in ("--set", kv)]
    rows, almas = [], []
    for where in ("its own Ray (one machine, 2 CPUs)", "a 2-node Ray cluster (1 CPU each)"):
        name = "own" if where.startswith("its") else "cluster"
        args = [python, "-m", "fedkd.cli", "simulate", config, "--name", name, "--overwrite",
                *extra]  # fmt: skip
        if name == "own":
            wall, _ = _timed(args)
            started = 0.0
        else:
            began = time.perf_counter()
            with local_cluster(nodes=2, cpus_per_node=1) as cluster:
                started = time.perf_counter() - began
                wall, _ = _timed(args, env={**os.environ, "RAY_ADDRESS": cluster.address})
        spend(wall)
        summary = json.loads((out / name / "summary.json").read_text())
        rounds = summary["round_seconds"]
        training = [rounds[str(r)] for r in range(1, int(summary["rounds"]) + 1)]
        almas.append(float(summary["alma"]))
        rows.append([
            where, f"{started:.1f} s" if started else "—", f"{wall:.1f} s",
            f"{training[0]:.2f} s", mean_std(training[1:], "{:.2f} s"), f"{summary['alma']:.4f}",
        ])  # fmt: skip
    same = "identical ALMA" if almas[0] == almas[1] else f"ALMA {almas[0]:.4f} vs {almas[1]:.4f}"
    return Table(
        name="ray-cluster",
        title="Beyond one machine: the same simulation on a two-node Ray cluster",
        command="make bench TABLE=ray-cluster  # MNIST mean, α = 0.1, 10 clients × 5 rounds",
        columns=[
            "Ray",
            "cluster start",
            "process wall time",
            "first round",
            "later rounds (each)",
            "ALMA",
        ],
        rows=rows,
        headline=f"per later round {rows[0][4]} in its own Ray vs {rows[1][4]} on the "
        f"two-node cluster; {same}",
        notes=[
            "On a real cluster: `ray start --head --port=6379 --num-cpus=N` on the head, "
            "`ray start --address=<head>:6379 --num-cpus=N` on every other machine (fedkd "
            "installed, the same checkout path), then `RAY_ADDRESS=<head>:6379 fedkd "
            "simulate …` on the head; Flower's engine sizes its actor pool from the "
            "cluster's CPUs. Without RAY_ADDRESS a run always starts its own Ray.",
            "Both nodes share this machine's 2 cores here: the comparison shows the "
            "cluster path's own cost (actors on two raylets, messages through the head), "
            "not more compute. Every node's work is seeded by the run, so the results "
            "match the single-machine run.",
        ],
    )


# --- DP-SGD training throughput ------------------------------------------------------------

DP_THROUGHPUT_TARGET = 0.85
GRAD_SAMPLE_COLUMNS = ("output-grads", *(m for m in GRAD_SAMPLE_MODES if m != "output-grads"))
"""fedkd's own mode first, then every other registered one (a new mode is a new column)."""


def dp_throughput(s: Settings) -> Table:
    """Local training samples/s of every grad-sample mode against non-DP training, for every
    default model (one process, repetitions interleaved, each ratio within a repetition),
    with what one step's secure noise costs next to a non-DP step."""
    sys.path.insert(0, str(ROOT / "simulations"))
    from bench_dp_throughput import measure, synthetic_records
    from bench_secure_noise import step_noise_seconds

    from fedkd.allocator import keep_freed_memory
    from fedkd.models import ModelSpec, build_model

    keep_freed_memory()  # as a node's process does (the allocator table measures what it does)
    if s.smoke:
        records, reps, cells = 512, 1, [("cnn-s", 256), ("mlp-m", 256)]
    else:  # every default model at a usual DP-SGD batch; the MLP also where noise amortises
        records, reps = 6000, 9
        cells = [
            ("scatnet-linear", 256), ("cnn-m", 256), ("cnn-s", 256), ("mlp-m", 256),
            ("mlp-m", 1024),
        ]  # fmt: skip
    x, y = synthetic_records(records)
    rows, measured = [], {}
    for model_name, batch in cells:
        started = time.perf_counter()
        got = measure(model_name, x, y, device="cpu", batch=batch, physical=512, reps=reps)
        spend(time.perf_counter() - started)
        model = build_model(model_name, ModelSpec(input_shape=(1, 28, 28), num_classes=10))
        params = [p.detach() for p in model.parameters()]
        noise_s = statistics.median(step_noise_seconds(params, "csprng") for _ in range(30))
        torch_noise_s = statistics.median(
            step_noise_seconds(params, "torch-secure") for _ in range(30)
        )
        non_dp = got["samples_per_s_median"]["none"]
        step_s = batch / non_dp
        ratio, every = got["ratio_to_non_dp"], got["ratio_to_non_dp_all"]
        default = got["default_mode"]
        measured[f"{model_name}@{batch}"] = {
            **got, "noise_s": noise_s, "torch_secure_noise_s": torch_noise_s,
            "non_dp_step_s": step_s,
        }  # fmt: skip
        rows.append([
            model_name, str(batch), f"{non_dp:,.0f}",
            *(f"{ratio[m]:.2f}× [{min(every[m]):.2f}–{max(every[m]):.2f}]"
              for m in GRAD_SAMPLE_COLUMNS),
            f"{default}: {ratio[default]:.2f}×",
            f"{1e3 * noise_s:.2f} ms ({1e3 * torch_noise_s:.2f} ms) vs {1e3 * step_s:.2f} ms",
            f"{step_s / (step_s + noise_s):.2f}×",
        ])  # fmt: skip
    at_256 = {
        name.split("@")[0]: got["ratio_to_non_dp"][got["default_mode"]]
        for name, got in measured.items()
        if name.endswith("@256")
    }
    met = [name for name, ratio in at_256.items() if ratio >= DP_THROUGHPUT_TARGET]
    headline = "default mode at logical batch 256: " + ", ".join(
        f"{name} {ratio:.2f}×" for name, ratio in at_256.items()
    )
    headline += (
        f"; target ≥ {DP_THROUGHPUT_TARGET}× met for every default model"
        if len(met) == len(at_256)
        else f"; target ≥ {DP_THROUGHPUT_TARGET}× met by {', '.join(met) or 'none'}"
    )
    return Table(
        name="dp-throughput",
        title="DP at CNN scale: DP-SGD training throughput per grad-sample mode",
        command="make bench TABLE=dp-throughput  # CPU; simulations/bench_dp_throughput.py",
        columns=[
            "model",
            "logical batch",
            "non-DP samples/s",
            *GRAD_SAMPLE_COLUMNS,
            "default",
            "CSPRNG noise (torch secure mode) vs non-DP step",
            "bound from the noise alone",
        ],
        rows=rows,
        headline=headline,
        notes=[
            f"One process, {records:,} MNIST-shaped records, {reps} repetitions; each "
            "repetition times one epoch of non-DP training and one of every mode back to "
            "back in rotating order, and a mode's ratio is taken within its repetition "
            "(median [range]). DP: Poisson sampling, BatchMemoryManager (physical ≤ 512), "
            "σ = 1, C = 1, the per-call set-up (make_private) inside the epoch, as in a round.",
            "output-grads is fedkd's mode (fedkd/privacy/output_grads.py): one backward pass "
            "without batched parameter gradients; Linear layers clipped from ‖g_i‖·‖a_i‖ "
            "without per-sample gradients and summed by one matrix product; Conv2d "
            "per-sample gradients by the grouped kernel. Its clipped sums equal Opacus's "
            "clipping of the hooks mode, and training equals hooks step for step "
            "(tests/privacy/test_output_grads.py).",
            "Noise: every step, for every parameter, whatever the batch, fedkd draws each "
            "noise value from its ChaCha20 CSPRNG (256-bit key from the OS) as a sum of four "
            "Box–Muller normals in float64 (fedkd/privacy/secure_noise.py, against "
            "floating-point attacks); in brackets the same step's noise from Opacus's secure "
            "mode on torch's generator (a sum of four torch.normal draws, not "
            "cryptographic: what fedkd used before). Where one step's noise is comparable "
            "to a non-DP step "
            "(the MLP: 159,010 parameters, a step of a 784-200-10 network is a few "
            "milliseconds) the last column bounds the ratio any clipping method can reach: "
            "non-DP step ÷ (non-DP step + noise). A larger logical batch amortises it.",
            "Where a CNN's DP epoch goes beyond the non-DP one: "
            "`python simulations/profile_dp_epoch.py --model cnn-s` (operators' self-times "
            "side by side): the per-sample gradients themselves (multiplies and batched "
            "matrix products), Opacus's GroupNorm sampler normalising its input again, and "
            "the per-sample norms and sums, against the weight gradients they replace.",
            "scatnet-linear: the scattering transform learns nothing and its features are "
            "cached per image (fedkd/models/scatnet.py), so every mode trains a GroupNorm and "
            "a linear layer on cached features; the first repetition's non-DP epoch filled "
            "that cache for every record, hence the top of its ranges (the median is taken "
            "over cached steps).",
        ],
        data=measured,
    )


def allocator(s: Settings) -> Table:
    """Training throughput with glibc's default malloc thresholds against fedkd's
    (fedkd/allocator.py: freed memory kept for reuse), non-DP and DP, in paired processes."""
    models, reps, records = (["cnn-s"], 1, 512) if s.smoke else (["cnn-s", "mlp-m"], 15, 6000)
    script = str(ROOT / "simulations" / "bench_dp_throughput.py")
    out = s.runs / "allocator"
    out.mkdir(parents=True, exist_ok=True)
    speeds: dict[tuple[str, str, str], list[float]] = {}
    for rep in range(reps):
        order = ("defaults", "kept") if rep % 2 == 0 else ("kept", "defaults")
        for setting in order:
            path = out / f"{setting}-{rep}.json"
            args = [sys.executable, script, "--models", ",".join(models), "--reps", "1",
                    "--modes", "output-grads", "--records", str(records),
                    "--out", str(path)]  # fmt: skip
            if setting == "defaults":
                args.append("--malloc-defaults")
            wall, _ = _timed(args)
            spend(wall)
            for model, got in json.loads(path.read_text())["models"].items():
                for mode, value in got["samples_per_s_median"].items():
                    speeds.setdefault((model, mode, setting), []).append(value)
    rows = []
    for model in models:
        for mode, label in (("none", "non-DP"), ("output-grads", "DP-SGD, output-grads")):
            before, after = speeds[(model, mode, "defaults")], speeds[(model, mode, "kept")]
            gains = [a / b for a, b in zip(after, before, strict=True)]
            before_s, after_s = statistics.median(before), statistics.median(after)
            rows.append([
                model, label, f"{before_s:,.0f}", f"{after_s:,.0f}",
                f"{statistics.median(gains):.2f}× [{min(gains):.2f}–{max(gains):.2f}]",
            ])  # fmt: skip
    return Table(
        name="allocator",
        title="Training throughput: glibc's malloc defaults against freed memory kept",
        command="make bench TABLE=allocator  # simulations/bench_dp_throughput.py, paired",
        columns=[
            "model",
            "training",
            "samples/s, glibc defaults",
            "samples/s, freed memory kept",
            "speed-up",
        ],
        rows=rows,
        headline="; ".join(f"{r[0]} {r[1]} {r[4].split(' ')[0]}" for r in rows),
        notes=[
            f"{reps} repetitions; each runs `bench_dp_throughput.py --reps 1 --modes "
            "output-grads` once with `--malloc-defaults` and once without, in alternating "
            "order, and the speed-up is taken within the repetition (median [range]). "
            f"{records:,} MNIST-shaped records, logical batch 256.",
            "fedkd's nodes keep freed memory (fedkd/allocator.py: mallopt's mmap threshold "
            "32 MiB, trim threshold 256 MiB) because each step otherwise faults its "
            "temporaries' pages in again, which a virtual machine that reports freed pages "
            "to its host (as this one does) makes dear. FEDKD_KEEP_FREED_MEMORY=0 turns it "
            "off.",
        ],
    )


TABLES: dict[str, Callable[[Settings], Table]] = {
    "tuning": tuning,  # first: the CNN tables run each strategy with its tuned settings
    "cnn-accuracy": cnn_accuracy,
    "communication": communication,
    "plain-loops": plain_loops,
    "poisoned": poisoned,
    "overhead": overhead,
    "scale": scale,
    "ray-cluster": ray_cluster,
    "dp-throughput": dp_throughput,
    "allocator": allocator,
    "dp-client": lambda s: _dp_table("dp_ablation", "client_table", s),
    "dp-federated": lambda s: _dp_table("dp_ablation", "federated_table", s),
    "dp-defaults": lambda s: _dp_table("dp_ablation", "defaults_table", s),
    "dp-central": lambda s: _dp_table("dp_utility", "central_table", s),
    "dp-utility": lambda s: _dp_table("dp_utility", "federated_table", s),
    "dp-heart": lambda s: _dp_table("dp_utility", "heart_table", s),
}


def _dp_table(module: str, part: str, s: Settings) -> Table:
    """A table whose rows and runners live in a module of their own under simulations/."""
    import importlib

    sys.path.insert(0, str(ROOT / "simulations"))
    table: dict[str, Any] = getattr(importlib.import_module(module), part)(s.smoke, s.runs)
    for seconds in table.pop("spent"):
        spend(seconds)
    return Table(**table)


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
    SPENT.update(runs=0, seconds=0.0)
    settings = Settings(smoke=smoke, runs=runs / ("smoke" if smoke else "full"), results=results)
    table = TABLES[name](settings)
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
