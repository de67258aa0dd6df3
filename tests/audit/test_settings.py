"""Audit settings and configuration presets refuse what would make the numbers meaningless."""

from __future__ import annotations

from pathlib import Path

import pytest

from fedkd.audit.presets import PRESETS, preset_overrides
from fedkd.audit.run import AuditSettings, CanaryShare, _configuration, _node_sections
from fedkd.config import parse_run_config


def test_presets_compose_and_take_overrides() -> None:
    assert preset_overrides("swing+dp") == {**PRESETS["swing"], **PRESETS["dp"]}
    assert preset_overrides("dp+dp-target-epsilon=1")["dp-target-epsilon"] == 1
    with pytest.raises(ValueError, match="neither a preset"):
        preset_overrides("swign")


@pytest.mark.parametrize(
    ("token", "message"),
    [
        ("plain+swing-scorer=entropyy", "unknown swing-scorer 'entropyy'"),
        ("dp+dp-grad-sample-mode=hookz", "unknown dp-grad-sample-mode 'hookz'"),
        ("plain+strategy=knfuu", "unknown strategy 'knfuu'; did you mean 'knfu'"),
    ],
)
def test_a_configuration_naming_an_unknown_part_is_refused_before_any_run(
    token: str, message: str, tmp_path: Path
) -> None:
    """The audit starts runs, so its configurations' names are checked like any run's."""
    with pytest.raises(ValueError, match=message):
        _configuration(parse_run_config({}), token, tmp_path)
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"references": 999}, "references must be >= 1000"),
        ({"peer": 0}, "peer must be another node"),
        ({"kinds": ("ood", "words")}, "unknown canary kind 'words'"),
        ({"control": "maybe"}, "control must be negative or positive"),
        ({"repeats": 0}, "repeats must be >= 1"),
        ({"candidates": 5}, "candidates must be >= 10"),
        ({"canary_share": 0.0}, "canary share must be in"),
        ({"canary_share": 1.5}, "canary share must be in"),
    ],
)
def test_settings_that_would_mislead_are_refused(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        AuditSettings(**changes)  # type: ignore[arg-type]


SHARE = CanaryShare(target_records=600, inserted_rows=50, limit=0.1, control="")


def test_only_the_target_reads_through_canaries_and_every_node_keeps_its_model() -> None:
    cfg = parse_run_config({"dataset": "digits", "num-clients": 3})
    sections = _node_sections({"2": {"model": "mlp-s"}}, cfg, AuditSettings(), SHARE, Path("c.npz"))
    assert sections["keep-model"] is True
    target = sections["0"]
    assert target["data"] == "with-canaries" and target["data-base"] == "partition"
    assert target["data-canaries"] == "c.npz" and target["data-partition-id"] == 0
    # The mechanism is the deployed one: q, σ and steps from the real record count.
    assert target["privacy-nominal-records"] == 600
    assert "audit-control-noise-off" not in target
    assert sections["2"] == {"model": "mlp-s"} and "1" not in sections
    positive = _node_sections({}, cfg, AuditSettings(control="positive"), SHARE, Path("c.npz"))
    assert positive["0"]["audit-control-noise-off"] is True
    # The unaudited run: the same nominal count, its own data, no control switch.
    unaudited = _node_sections({}, cfg, AuditSettings(control="positive"), SHARE, None)
    assert unaudited["0"]["data"] == "partition"
    assert unaudited["0"]["privacy-nominal-records"] == 600
    assert "audit-control-noise-off" not in unaudited["0"]


def test_every_run_an_audit_starts_is_fresh_never_a_resumed_checkpoint(tmp_path: Path) -> None:
    """After an audit killed mid-run, --overwrite must not resume its stale checkpoint."""
    base = parse_run_config({"dataset": "digits", "num-clients": 3, "resume": True})
    for name in ("plain", "dp+dp-target-epsilon=3", "swing+dp"):
        cfg = _configuration(base, name, tmp_path)
        assert cfg.resume is False and cfg.overwrite is True and cfg.record_releases


def test_the_share_is_the_inserted_rows_over_the_targets_own_records() -> None:
    share = CanaryShare(target_records=1126, inserted_rows=972, limit=0.1, control="")
    assert share.share == 972 / 1126 and share.over_limit
    assert not CanaryShare(1126, 112, 0.1, "").over_limit


DIGITS = Path(__file__).resolve().parents[2] / "simulations" / "digits.toml"


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        # Node 0 of digits.toml holds 18 records: 10 % allows no canary at all.
        (AuditSettings(), "allows 0 candidates per kind"),
        (AuditSettings(candidates=500), "over the 10% share"),
    ],
)
def test_an_audit_whose_canaries_would_swamp_the_target_is_refused_before_any_run(
    tmp_path: Path, settings: AuditSettings, message: str
) -> None:
    from fedkd.audit.run import audit

    with pytest.raises(ValueError, match=message):
        audit(DIGITS, ["plain"], settings, tmp_path / "a", overrides={"output-dir": str(tmp_path)})
    assert not (tmp_path / "a" / "runs").exists()


def test_shadows_draw_fresh_dp_randomness_even_when_the_audited_run_was_reproducible(
    tmp_path: Path,
) -> None:
    """Shadows sharing the audited run's seeded noise would make the scores depend on it."""
    import dataclasses

    from fedkd.audit.shadows import _shadow_node
    from fedkd.flower_glue.simulation import simulated_nodes

    cfg = parse_run_config({"dataset": "digits", "num-clients": 3})
    node = dataclasses.replace(simulated_nodes(cfg, "t")[0], reproducible_dp=True)
    shadow = _shadow_node(node, tmp_path, None)
    assert shadow.reproducible_dp is False and shadow.keep_model is False
