"""`make bench TABLE=poisoned`: 2 of 10 MNIST clients malicious (α = 0.5), and what the
honest ones keep, per robust strategy and attack.

Attackers release valid probability rows (fedkd/node/adversary.py); the mimic attacker copies
client 0's training label profile.  Every strategy runs on the pre-tuning protocol, the same
for all.
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from bench_runner import PRE_TUNING_DEFAULTS, ROOT, Settings, Table, compare, mean_std, tie_or_gap

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


def build(s: Settings) -> Table:
    """The table from its runs (complete ones are reused), or its code path on the smoke
    setting's tiny one."""
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
