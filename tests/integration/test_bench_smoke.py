"""bench-smoke: every BENCHMARKS.md table's code path on a tiny setting, and the page."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _benchmarks() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "benchmarks", ROOT / "simulations" / "benchmarks.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["benchmarks"] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.integration
def test_every_table_runs_on_a_tiny_setting_and_renders(tmp_path: Path) -> None:
    bench = _benchmarks()
    for name in bench.TABLES:
        table = bench.run_table(name, smoke=True, results=tmp_path / "results", runs=tmp_path)
        stored = json.loads((tmp_path / "results" / f"{name}.smoke.json").read_text())
        assert stored["smoke"] is True and stored["wall_s"] > 0 and stored["rows"]
        # The runs behind the figures are counted, with their own wall times.
        assert stored["runs"] >= 1 and stored["run_seconds"] > 0
        for row in table.rows:
            assert len(row) == len(table.columns)
            # Every measured cell holds a number (an accuracy, a ratio, bytes or a time).
            assert any(re.search(r"\d", cell) for cell in row[2:])
        assert table.headline and table.command.startswith("make bench TABLE=")
    # The page names the machine and, for a table not yet measured, how to measure it.
    page = bench.render(tmp_path / "results")
    assert re.search(r"Machine: \d+ cores", page) and "torch " in page and "flwr 1.41" in page
    assert "Not measured yet: `make bench TABLE=poisoned`" in page
