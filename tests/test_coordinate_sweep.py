"""The benchmark tuning's selection rule (simulations/tables/tuning.py::coordinate_sweep)."""

from __future__ import annotations

from typing import Any

from tests.simulation_scripts import load_script


def _coordinate_sweep() -> Any:
    load_script("benchmarks")  # puts simulations/ on sys.path, where the tables package is
    from tables.tuning import coordinate_sweep

    return coordinate_sweep


def test_separable_objective_takes_every_coordinates_best() -> None:
    sweep = _coordinate_sweep()
    score = {("t", 2): 0.0, ("t", 4): 0.3, ("lr", 0.05): 0.0, ("lr", 0.1): 0.2}

    def objective(c: dict[str, Any]) -> float:
        return score[("t", c["t"])] + score[("lr", c["lr"])]

    best, chosen = sweep({"t": 2, "lr": 0.05}, {"t": (2, 4), "lr": (0.05, 0.1)}, objective)
    assert best == chosen == {"t": 4, "lr": 0.1}


def test_a_combination_that_loses_gives_way_to_the_best_single_change() -> None:
    """dsfl's case in the tuning table: each change helps alone, together they hurt."""
    sweep = _coordinate_sweep()
    values = {(2, 1): 0.673, (4, 1): 0.697, (2, 2): 0.730, (4, 2): 0.567}

    def objective(c: dict[str, Any]) -> float:
        return values[(c["t"], c["epochs"])]

    best, chosen = sweep({"t": 2, "epochs": 1}, {"t": (2, 4), "epochs": (1, 2)}, objective)
    assert best == {"t": 4, "epochs": 2}
    assert chosen == {"t": 2, "epochs": 2}


def test_no_change_that_does_not_strictly_win_is_taken() -> None:
    sweep = _coordinate_sweep()
    best, chosen = sweep({"t": 2, "lr": 0.05}, {"t": (2, 4), "lr": (0.02, 0.05)}, lambda c: 0.5)
    assert best == chosen == {"t": 2, "lr": 0.05}
