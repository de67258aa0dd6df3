"""Compare fresh comparison results with the means landed in RESULTS.md.

For a restructuring that must not change results: re-run tables with `fedkd compare`
(or `make bench`), then name them here; every strategy's ALMA and global-accuracy means
(rounded as RESULTS.md rounds them) are printed beside the landed ones with the
difference, and the exit status is 1 when any differs by more than ``--tolerance``.

Usage: python simulations/check_landed.py [--runs runs/bench] [--tolerance 0.005] TABLE...
       e.g. TABLE = digits-alpha0.1 mnist-alpha0.5
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "RESULTS.md"


def landed_means(text: str) -> dict[str, dict[str, tuple[float, float]]]:
    """``{table: {strategy: (ALMA mean, global mean)}}`` from RESULTS.md's tables."""
    tables: dict[str, dict[str, tuple[float, float]]] = {}
    current = None
    for line in text.splitlines():
        marker = re.match(r"<!-- runs/bench/(\S+) -->", line)
        if marker:
            current = marker.group(1)
            tables[current] = {}
        elif current and line.startswith("| ") and "±" in line:
            cells = [c.strip() for c in line.strip("|").split("|")]
            tables[current][cells[0]] = (_mean(cells[1]), _mean(cells[2]))
    return tables


def _mean(cell: str) -> float:
    return float(re.sub(r"[^0-9.]", "", cell.split("±")[0]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tables", nargs="+")
    parser.add_argument("--runs", type=Path, default=Path("runs/bench"))
    parser.add_argument("--tolerance", type=float, default=0.005)
    args = parser.parse_args()
    landed = landed_means(RESULTS.read_text())
    worst = 0.0
    for table in args.tables:
        fresh = json.loads((args.runs / table / "comparison.json").read_text())["strategies"]
        for strategy, stats in sorted(fresh.items()):
            alma, acc = round(stats["alma"]["mean"], 3), round(stats["global_acc"]["mean"], 3)
            was_alma, was_acc = landed[table][strategy]
            worst = max(worst, abs(alma - was_alma), abs(acc - was_acc))
            print(
                f"{table:20s} {strategy:13s} ALMA {alma:.3f} (landed {was_alma:.3f}, "
                f"Δ {alma - was_alma:+.3f})  global {acc:.3f} (landed {was_acc:.3f}, "
                f"Δ {acc - was_acc:+.3f})"
            )
    print(f"largest |Δ| of a mean: {worst:.3f} (tolerance {args.tolerance})")
    return 0 if worst <= args.tolerance + 1e-12 else 1


if __name__ == "__main__":
    sys.exit(main())
