"""`fedkd compare` end to end on a tiny config: identical partitions, files written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fedkd.cli import app
from fedkd.data.federated import DataSpec, build_federated_data


@pytest.mark.integration
def test_compare_writes_json_markdown_and_plot(tmp_path: Path) -> None:
    config = tmp_path / "tiny.toml"
    config.write_text(
        "\n".join(
            [
                'dataset = "heart"',
                "num-clients = 4",
                'partitioner = "natural"',
                "num-server-rounds = 1",
                'model = "mlp-s"',
                f'output-dir = "{tmp_path}"',
            ]
        )
    )
    result = CliRunner().invoke(
        app,
        [
            "compare",
            str(config),
            "--strategies",
            "local,knfu+include-self=false",
            "--seeds",
            "0",
            "--name",
            "cmp",
        ],
    )
    assert result.exit_code == 0, result.output
    out = tmp_path / "cmp"
    report = json.loads((out / "comparison.json").read_text())
    assert set(report["strategies"]) == {"local", "knfu+include-self=false"}
    runs = report["runs"]
    # Same data for both: each hospital is scored on its own held-out records, no more.
    sizes = [r["local_test_examples_total"] for runs_ in runs.values() for r in runs_]
    hospitals = build_federated_data(DataSpec("heart", 4, "natural", seed=0)).clients
    assert sizes == [sum(len(h.test) for h in hospitals)] * 2
    assert runs["knfu+include-self=false"][0]["strategy_params"]["include_self"] is False
    assert runs["local"][0]["bytes_up_per_client_round"] < 1000  # nothing but a status
    assert (out / "comparison.png").stat().st_size > 0
    assert "| local |" in (out / "comparison.md").read_text()
