"""`make bench TABLE=tuning`: the protocol tuned fairly, every strategy given the same sweep
(MNIST, α = 0.1, tuning seeds only).

One coordinate at a time from the pre-tuning defaults.  Each strategy keeps the best of: the
defaults, each coordinate's best value alone, and all of them combined (coordinates interact:
a combination of individually best values can lose to one of them alone).  The CNN tables run
each strategy with the settings chosen here (:func:`tuned_settings`).
"""

from __future__ import annotations

import functools
import json
import statistics
from collections.abc import Callable
from typing import Any

import typer
from bench_runner import (
    PRE_TUNING_DEFAULTS,
    ROOT,
    Settings,
    Table,
    alma_and_global,
    compare,
    mean_std,
)

TUNING_SEEDS = [100, 101]
"""Tuning seeds: never the reporting seeds (0, 1, 2)."""

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


def build(s: Settings) -> Table:
    """The table from its runs (complete ones are reused), or its code path on the smoke
    setting's tiny one."""
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
            memo[(name, changed)] = [alma_and_global(r) for r in got.runs[name]]
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
