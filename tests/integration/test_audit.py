"""The audit can be trusted only if it sees a deliberately broken mechanism and sees
nothing where nothing was inserted: its positive and negative controls, end to end."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from fedkd.api import RunResult
from fedkd.audit.run import AuditSettings, audit
from fedkd.cli import app
from fedkd.privacy.guard import CONTROL_MECHANISM
from fedkd.privacy.ledger import ReadOnlyLedger
from tests.browser import render

ROOT = Path(__file__).resolve().parents[2]
DIGITS = ROOT / "simulations" / "digits.toml"


def _strict(path: Path) -> Any:
    def refuse(constant: str) -> None:
        raise AssertionError(f"{constant} in {path}")

    return json.loads(path.read_text(), parse_constant=refuse)


@pytest.mark.integration
def test_the_negative_control_finds_nothing(tmp_path: Path) -> None:
    outcome = audit(
        DIGITS,
        ["plain"],
        AuditSettings(candidates=500, control="negative", shadows=4),
        tmp_path / "audit",
        overrides={"num-server-rounds": 3, "output-dir": str(tmp_path)},
        report=True,
    )
    record = _strict(outcome.json_path)
    assert record["threat_model"].startswith("Threat model.")
    assert record["canaries"]["inserted"] == 0
    views = record["configurations"]["plain"]["views"]
    assert set(views) == {"server", "peer", "model-holder"}
    for view in views.values():
        assert view["eps_lower_bound"] == 0.0  # the interval [0, ceiling] includes 0
        assert view["eps_lower_bound_ceiling"] > 4
        assert 0.45 <= view["mia_auc"] <= 0.55
        assert not view["exposure_above_references"]
        for kind, detail in view["by_kind"].items():
            assert 0.45 <= detail["mia_auc"] <= 0.55, (kind, detail)
            assert not detail["above_references"]
        # LiRA's shadows inserted the canaries; the audited run did not.
        lira = view["lira"]
        assert lira["shadows"] == 4 and lira["global_variance"] is True
        assert 0.4 <= lira["online"]["auc"] <= 0.6
    assert "| server | ood |" in outcome.markdown_path.read_text()
    # The report renders in a real browser with no console errors.
    assert outcome.report_path is not None
    shown = render(outcome.report_path, tmp_path / "browser")
    assert shown.console == [] and "What was found." in shown.dom
    assert shown.dom.count("data:image/png;base64,") == 2


@pytest.mark.integration
def test_the_positive_control_breaks_the_claim_and_exits_non_zero(tmp_path: Path) -> None:
    """DP noise silently off while the run claims ε ≈ 1: the audit must say so."""
    result = CliRunner().invoke(
        app,
        [
            "audit", str(DIGITS), "--control", "positive", "--candidates", "500",
            "--compare", "dp+dp-target-epsilon=1", "--name", "positive", "--report",
            "--set", f"output-dir={tmp_path}", "--set", "num-server-rounds=5",
            "--set", "local-epochs=8", "--set", "dp-max-grad-norm=20",
        ],
    )  # fmt: skip
    assert result.exit_code == 3, result.output
    assert "BROKEN PRIVACY GUARANTEE" in result.output
    record = _strict(tmp_path / "positive" / "audit.json")
    config = record["configurations"]["dp+dp-target-epsilon=1"]
    assert config["eps_claimed"] is not None and config["eps_claimed"] <= 1.0
    holder = config["views"]["model-holder"]
    assert holder["eps_lower_bound"] > config["eps_claimed"]
    assert record["broken_guarantees"] == {"dp+dp-target-epsilon=1": ["model-holder"]}
    # The sabotaged node never claims a guarantee: every ledger row, the summary and the
    # report say so, and the claim tested is the nominal one its rows pretend to.
    assert config["control"] == CONTROL_MECHANISM
    run = RunResult.load(Path(config["run_dir"]))
    target = next(node for node in run.nodes if node["audit-control-noise-off"])
    ledger = Path(str(target["state-dir"])) / f"{target['name']}.ledger.db"
    rows = ReadOnlyLedger.read(ledger).rows()
    assert rows and all(r.mechanism == CONTROL_MECHANISM and r.epsilon is None for r in rows)
    assert run.summary["privacy"]["controls"] == [target["name"]]
    assert run.summary["privacy"]["nodes"]
    assert all(
        n.get("epsilon") is None
        for n in run.summary["privacy"]["nodes"].values()
        if n["name"] == target["name"]
    )
    assert CONTROL_MECHANISM in (tmp_path / "positive" / "report.html").read_text()
