"""bench-smoke: every BENCHMARKS.md table's code path on a tiny setting, and the page."""

from __future__ import annotations

import json
import multiprocessing
import os
import re
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from types import ModuleType

import pytest

from tests.simulation_scripts import load_script


def _benchmarks() -> ModuleType:
    """simulations/benchmarks.py, which also puts simulations/ on sys.path: bench_runner and
    the tables import as the script imports them (one bench_runner, one count of runs)."""
    return load_script("benchmarks")


def _run_smoke_table(name: str, folder: Path) -> list[list[str]]:
    """One table on its tiny setting; its rows (runs in a worker process, see below).

    Its runs start a Ray of their own: Flower sizes a run's actor pool to the whole
    cluster, so two runs joining the session's shared cluster at once would each wait
    for the actors the other holds."""
    os.environ.pop("RAY_ADDRESS", None)
    bench = _benchmarks()
    from bench_runner import run_table

    table = run_table(bench.TABLES, name, smoke=True, results=folder / "results", runs=folder)
    return list(table.rows)


SUBPROCESS_TABLES = ("plain-loops", "overhead", "scale", "ray-cluster", "allocator")
"""Tables whose runs are processes of their own, timed from outside: the smoke runs them
in worker processes beside the others (a run mostly waits on Ray's start-up)."""

PARTS = {
    "part 1": (
        "tuning",
        "cnn-accuracy",
        "communication",
        "plain-loops",
        "poisoned",
        "dp-client",
        "dp-central",
        "dp-heart",
    ),
    "part 2": (
        "overhead",
        "scale",
        "ray-cluster",
        "dp-utility",
        "dp-throughput",
        "allocator",
        "dp-federated",
        "dp-defaults",
    ),
}
"""BENCHMARKS.md's two halves, one smoke each, each within two minutes on 2 cores."""


def test_every_table_belongs_to_one_smoke() -> None:
    bench = _benchmarks()
    assert sorted(t for part in PARTS.values() for t in part) == sorted(bench.TABLES)
    assert set(SUBPROCESS_TABLES) <= set(bench.TABLES)


@pytest.mark.integration
@pytest.mark.parametrize("part", sorted(PARTS))
def test_every_table_runs_on_a_tiny_setting_and_renders(part: str, tmp_path: Path) -> None:
    bench = _benchmarks()
    from bench_runner import render, run_table

    tables = PARTS[part]
    beside_tables = [name for name in tables if name in SUBPROCESS_TABLES]
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
        beside = {name: pool.submit(_run_smoke_table, name, tmp_path) for name in beside_tables}
        rows = {
            name: list(run_table(bench.TABLES, name, smoke=True, results=tmp_path / "results",
                                 runs=tmp_path).rows)
            for name in tables
            if name not in SUBPROCESS_TABLES
        }  # fmt: skip
        rows.update({name: done.result() for name, done in beside.items()})
    for name in tables:
        stored = json.loads((tmp_path / "results" / f"{name}.smoke.json").read_text())
        assert stored["smoke"] is True and stored["wall_s"] > 0 and stored["rows"]
        assert stored["rows"] == rows[name]
        # The runs behind the figures are counted, with their own wall times.
        assert stored["runs"] >= 1 and stored["run_seconds"] > 0
        for row in stored["rows"]:
            assert len(row) == len(stored["columns"])
            # Every measured cell holds a number (an accuracy, a ratio, bytes or a time).
            assert any(re.search(r"\d", cell) for cell in row[2:])
        assert stored["headline"] and stored["command"].startswith("make bench TABLE=")
    # The page names the machine and, for a table not yet measured, how to measure it.
    page = render(bench.TABLES, tmp_path / "results")
    assert re.search(r"Machine: \d+ cores", page) and "torch " in page and "flwr 1.41" in page
    missing = next(name for name in bench.TABLES if name not in tables)
    assert f"Not measured yet: `make bench TABLE={missing}`" in page
