"""Sabotage switches only where they belong, and a lifetime budget on every real node.

A careless (or coerced) operator tries the audit's noise-off switch and the poisoning
switch on a hospital's CSV node, and starts a hospital's node without a lifetime budget:
each is refused with one line at ``fedkd node check`` and when the node starts, before
any record is read or anything is sent.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from fedkd.cli import app
from fedkd.data.heart_export import export_heart_hospitals
from fedkd.node import parse_node_config
from fedkd.node.config import lifetime_budget_note

BUDGET = {"privacy-max-epsilon": 5.0, "privacy-max-delta": 1e-5}


def _csv_node(tmp_path: Path, **extra: object) -> dict[str, object]:
    hospital = export_heart_hospitals(tmp_path).hospitals[0]
    return {"config": str(hospital.node_config), **extra}


def _check(config_text: str, tmp_path: Path) -> tuple[int, str]:
    path = tmp_path / "node.toml"
    path.write_text(config_text)
    result = CliRunner().invoke(app, ["node", "check", str(path)])
    return result.exit_code, " ".join(result.output.split())


@pytest.mark.parametrize(
    ("switch", "refusal"),
    [
        ({"audit-control-noise-off": True}, "audit-control-noise-off is the audit's positive"),
        ({"adversary": "label-flip"}, "adversary is only for simulated nodes"),
        ({"reproducible-dp": True}, "reproducible-dp is only for simulated data"),
    ],
)
def test_sabotage_switches_are_refused_on_a_csv_node(
    tmp_path: Path, switch: dict[str, object], refusal: str
) -> None:
    with pytest.raises(ValueError, match=refusal):
        parse_node_config(_csv_node(tmp_path, **switch))
    exported = export_heart_hospitals(tmp_path / "again").hospitals[0].node_config
    text = exported.read_text() + "".join(
        f"{k} = {str(v).lower() if isinstance(v, bool) else repr(v)}\n" for k, v in switch.items()
    )
    code, output = _check(text, exported.parent)
    assert code == 1 and refusal in output


def test_noise_off_is_refused_outside_the_audits_canaries_and_kept_inside() -> None:
    with pytest.raises(ValueError, match="audit-control-noise-off"):
        parse_node_config({"data": "partition", "audit-control-noise-off": True})
    with pytest.raises(ValueError, match="audit-control-noise-off"):
        parse_node_config(
            {"data": "with-canaries", "data-base": "csv", "audit-control-noise-off": True,
             **BUDGET}
        )  # fmt: skip
    audit = parse_node_config(
        {"data": "with-canaries", "data-base": "partition", "data-canaries": "c.npz",
         "audit-control-noise-off": True}
    )  # fmt: skip
    assert audit.audit_control_noise_off and audit.simulated


@pytest.mark.parametrize("missing", ["privacy-max-epsilon", "privacy-max-delta"])
def test_a_csv_node_without_a_lifetime_budget_refuses_to_start(
    tmp_path: Path, missing: str
) -> None:
    exported = export_heart_hospitals(tmp_path).hospitals[0].node_config
    text = "".join(
        line + "\n" for line in exported.read_text().splitlines() if not line.startswith(missing)
    )
    code, output = _check(text, exported.parent)
    assert code == 1
    assert "declares no lifetime budget: set privacy-max-epsilon and privacy-max-delta" in output
    # "0 means no cap" does not count as a budget either.
    no_cap = text + ("" if missing == "privacy-max-delta" else "privacy-max-epsilon = 0\n")
    if missing == "privacy-max-epsilon":
        code, output = _check(no_cap, exported.parent)
        assert code == 1 and "declares no lifetime budget" in output


def test_a_simulated_node_without_a_budget_is_warned_about() -> None:
    assert "no lifetime budget" in lifetime_budget_note(parse_node_config({}))
    assert lifetime_budget_note(parse_node_config({"privacy-max-epsilon": 8.0})) == ""
    assert np.isinf(parse_node_config({}).policy.max_epsilon)
