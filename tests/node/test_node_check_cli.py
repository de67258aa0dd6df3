"""``fedkd node check``: what a hospital runs before joining, on its own machine."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from fedkd.cli import app
from fedkd.data.heart_export import export_heart_hospitals


def test_node_check_passes_a_good_node_and_names_every_problem_of_a_bad_one(
    tmp_path: Path,
) -> None:
    exported = export_heart_hospitals(tmp_path)
    runner = CliRunner()
    good = runner.invoke(app, ["node", "check", str(exported.hospitals[1].node_config)])
    assert good.exit_code == 0, good.output
    assert "hungary is ready: 146 training records" in " ".join(good.output.split())
    assert "no privacy-nominal-records" in good.output

    table = exported.hospitals[1].csv
    lines = table.read_text().splitlines()
    lines[3] = lines[3].replace(lines[3].split(",")[0], "sixty", 1)
    table.write_text("\n".join(lines) + "\n")
    bad = runner.invoke(app, ["node", "check", str(exported.hospitals[1].node_config)])
    assert bad.exit_code == 1
    assert "row 3, column 'age': 'sixty' is not a number" in " ".join(bad.output.split())
    missing = runner.invoke(app, ["node", "check", str(tmp_path / "nowhere.toml")])
    assert missing.exit_code == 1 and "does not exist" in " ".join(missing.output.split())
