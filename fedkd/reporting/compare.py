"""Aggregate runs of several strategies over seeds into mean ± std and a Markdown table.

A difference is called a tie when it is smaller than the spread: |m_a − m_b| ≤ max(s_a, s_b)
with s the sample standard deviation over seeds.  With one seed there is no spread, so
every difference stands and the table says the comparison is single-seed.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

METRICS = (
    ("alma", "ALMA", True),
    ("global_acc", "global acc", True),
    ("bytes_up_per_client_round", "bytes up / client-round", False),
    ("bytes_down_per_client_round", "bytes down / client-round", False),
    ("flower_bytes_up_per_client_round", "Flower msg up", False),
    ("flower_bytes_down_per_client_round", "Flower msg down", False),
)


@dataclass(frozen=True)
class Stat:
    mean: float
    std: float
    n: int

    def ties(self, other: Stat) -> bool:
        return abs(self.mean - other.mean) <= max(self.std, other.std)


def stat(values: Sequence[float]) -> Stat:
    if not values:
        return Stat(float("nan"), float("nan"), 0)
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return Stat(statistics.fmean(values), std, len(values))


def aggregate(summaries: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, Stat]]:
    """``{strategy: [summary per seed]}`` → ``{strategy: {metric: Stat}}``."""
    return {
        strategy: {
            key: stat([s[key] for s in runs if s.get(key) is not None]) for key, _, _ in METRICS
        }
        for strategy, runs in summaries.items()
    }


def _fmt(key: str, s: Stat) -> str:
    if s.n == 0:
        return "—"
    if "bytes" in key:
        return f"{s.mean:,.0f}"
    return f"{s.mean:.3f} ± {s.std:.3f}"


def markdown_table(stats: dict[str, dict[str, Stat]], *, title: str) -> str:
    """Rows per strategy; accuracy cells marked **best** or ≈ (a tie with the best)."""
    lines = [f"### {title}", ""]
    header = ["strategy", *(label for _, label, _ in METRICS)]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    best: dict[str, str] = {}
    for key, _, higher in METRICS:
        candidates = [k for k in stats if stats[k][key].n]
        if candidates and higher:
            best[key] = max(candidates, key=lambda k: stats[k][key].mean)
    for strategy, metrics in stats.items():
        cells = [strategy]
        for key, _, _ in METRICS:
            cell = _fmt(key, metrics[key])
            if key in best and metrics[key].n:
                top = stats[best[key]][key]
                if strategy == best[key]:
                    cell = f"**{cell}**"
                elif metrics[key].ties(top) and metrics[key].n > 1:
                    cell = f"{cell} ≈"
            cells.append(cell)
        lines.append("| " + " | ".join(cells) + " |")
    seeds = max((m["alma"].n for m in stats.values()), default=0)
    lines += _traffic_ratios(stats)
    lines += [
        "",
        f"mean ± sample std over {seeds} seed(s); **bold** = best mean, "
        "≈ = within the spread of the best (a tie).",
    ]
    if seeds < 2:
        lines.append("Single seed: no spread, so no difference can be called a tie or a win.")
    return "\n".join(lines) + "\n"


def _traffic_ratios(stats: dict[str, dict[str, Stat]]) -> list[str]:
    """Up+down Flower-message bytes of each strategy relative to weight averaging."""
    key_up, key_down = "flower_bytes_up_per_client_round", "flower_bytes_down_per_client_round"
    if "fedavg" not in stats or not stats["fedavg"][key_up].n:
        return []
    reference = stats["fedavg"][key_up].mean + stats["fedavg"][key_down].mean
    parts = []
    for name, metrics in stats.items():
        if name == "fedavg" or not metrics[key_up].n:
            continue
        total = metrics[key_up].mean + metrics[key_down].mean
        parts.append(f"{name} {total / reference:.3f}×" if total else f"{name} 0×")
    return [
        "",
        "Traffic per client-round (Flower messages, up + down) relative to fedavg: "
        + ", ".join(parts)
        + ".",
    ]


def plot_comparison(stats: dict[str, dict[str, Stat]], path: Path, *, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(stats)
    fig, ax = plt.subplots(figsize=(max(5, 1.2 * len(names)), 4))
    width = 0.38
    for offset, (key, label) in enumerate((("alma", "ALMA"), ("global_acc", "global acc"))):
        xs = [i + (offset - 0.5) * width for i in range(len(names))]
        ax.bar(
            xs,
            [stats[n][key].mean for n in names],
            width,
            yerr=[stats[n][key].std for n in names],
            capsize=3,
            label=label,
        )
    ax.set_xticks(range(len(names)), names)
    ax.set(ylabel="accuracy", title=title, ylim=(0, 1))
    ax.grid(axis="y", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
