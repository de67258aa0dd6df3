"""Mean ± std and ties in the comparison table."""

from __future__ import annotations

from fedkd.reporting.compare import aggregate, markdown_table, stat


def test_stat_and_ties() -> None:
    a, b = stat([0.90, 0.92, 0.94]), stat([0.91, 0.93, 0.89])
    assert round(a.mean, 6) == 0.92 and round(a.std, 6) == 0.02
    assert a.ties(b)
    assert not a.ties(stat([0.80, 0.81, 0.79]))


def test_table_marks_best_and_ties() -> None:
    runs = {
        "local": [{"alma": v, "global_acc": 0.5} for v in (0.80, 0.81, 0.79)],
        "mean": [{"alma": v, "global_acc": 0.9} for v in (0.90, 0.92, 0.94)],
        "knfu": [{"alma": v, "global_acc": 0.7} for v in (0.91, 0.93, 0.89)],
    }
    table = markdown_table(aggregate(runs), title="t")  # type: ignore[arg-type]
    rows = {line.split("|")[1].strip(): line for line in table.splitlines() if line.startswith("|")}
    assert "**0.920 ± 0.020**" in rows["mean"]
    assert "0.910 ± 0.020 ≈" in rows["knfu"]
    assert "≈" not in rows["local"].split("|")[2]
