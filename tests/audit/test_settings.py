"""Audit settings and configuration presets refuse what would make the numbers meaningless."""

from __future__ import annotations

import pytest

from fedkd.audit.presets import PRESETS, preset_overrides
from fedkd.audit.run import AuditSettings, _node_sections
from fedkd.config import parse_run_config


def test_presets_compose_and_take_overrides() -> None:
    assert preset_overrides("swing+dp") == {**PRESETS["swing"], **PRESETS["dp"]}
    assert preset_overrides("dp+dp-target-epsilon=1")["dp-target-epsilon"] == 1
    with pytest.raises(ValueError, match="neither a preset"):
        preset_overrides("swign")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"references": 999}, "references must be >= 1000"),
        ({"peer": 0}, "peer must be another node"),
        ({"kinds": ("ood", "words")}, "unknown canary kind 'words'"),
        ({"control": "maybe"}, "control must be negative or positive"),
        ({"repeats": 0}, "repeats must be >= 1"),
    ],
)
def test_settings_that_would_mislead_are_refused(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        AuditSettings(**changes)  # type: ignore[arg-type]


def test_only_the_target_reads_through_canaries_and_every_node_keeps_its_model() -> None:
    cfg = parse_run_config({"dataset": "digits", "num-clients": 3})
    sections = _node_sections({"2": {"model": "mlp-s"}}, cfg, "c.npz", AuditSettings())  # type: ignore[arg-type]
    assert sections["keep-model"] is True
    target = sections["0"]
    assert target["data"] == "with-canaries" and target["data-base"] == "partition"
    assert target["data-canaries"] == "c.npz" and target["data-partition-id"] == 0
    assert "audit-control-noise-off" not in target
    assert sections["2"] == {"model": "mlp-s"} and "1" not in sections
    positive = _node_sections({}, cfg, "c.npz", AuditSettings(control="positive"))  # type: ignore[arg-type]
    assert positive["0"]["audit-control-noise-off"] is True
