"""`make bench TABLE=cnn-accuracy`: accuracy with CNNs and mixed architectures.

``cnn-s`` on MNIST and Fashion-MNIST, α ∈ {0.1, 1.0}; the distillation strategies also with
half the clients on an MLP (fedavg cannot average different architectures); and local against
knfu with every local record, the regime where KnFu reports that local training can win.
Every strategy runs with its own settings from the tuning table.
"""

from __future__ import annotations

import statistics
from typing import Any

from bench_runner import (
    BENCH_SCALE,
    BIGGER_MACHINE,
    ROOT,
    Settings,
    Table,
    alma_and_global,
    bytes_to_target,
    compare,
    mean_std,
)

from tables.tuning import tuned_protocol, tuned_settings

ACCURACY_STRATEGIES = ("local", "mean", "dsfl", "knfu", "fedavg")


def build(s: Settings) -> Table:
    """The table from its runs (complete ones are reused), or its code path on the smoke
    setting's tiny one."""
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
            0.95 * statistics.fmean(alma_and_global(r)[1] for r in reference)
            if reference
            else float("nan")
        )
        for (architecture, name), runs in cell.items():
            values = [alma_and_global(r) for r in runs]
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
