"""When the audit itself cannot be read: a collapsed model, a mechanism that is not the
deployed one, a control that did not behave as a control must — each makes it invalid."""

from __future__ import annotations

from pathlib import Path

import pytest

from fedkd.audit.run import AuditSettings, ConfigurationResult, _validity
from fedkd.audit.verdict import Verdict

MECHANISM = {"noise_multipliers": [1.2], "sample_rates": [0.01], "steps": 1000}


def _result(verdict: Verdict, *, alma: float = 0.9, unaudited: dict[str, object] | None = None,
            mechanism: dict[str, object] | None = None) -> ConfigurationResult:  # fmt: skip
    result = ConfigurationResult(
        name="dp", run_dir=Path("."), alma=alma, global_acc=0.9, eps_claimed=3.0, delta=1e-5,
        num_classes=10, unaudited=unaudited, mechanism=mechanism,
    )  # fmt: skip
    result.verdict = verdict
    return result


def test_a_sound_audit_keeps_its_verdict() -> None:
    result = _result(
        Verdict.CONSISTENT, unaudited={"alma": 0.92, "mechanism": MECHANISM}, mechanism=MECHANISM
    )
    _validity(result, AuditSettings())
    assert result.verdict is Verdict.CONSISTENT and result.reasons == []


@pytest.mark.parametrize(
    ("alma", "baseline", "collapsed"),
    # chance 0.1; collapsed below chance + half the unaudited gain over chance
    [(0.103, 0.9, True), (0.49, 0.9, True), (0.51, 0.9, False), (0.149, None, True),
     (0.25, None, False)],
)  # fmt: skip
def test_collapse_is_judged_against_the_model_without_canaries(
    alma: float, baseline: float | None, collapsed: bool
) -> None:
    unaudited = None if baseline is None else {"alma": baseline, "mechanism": None}
    result = _result(Verdict.VIOLATED, alma=alma, unaudited=unaudited)
    assert result.collapsed is collapsed
    _validity(result, AuditSettings(control="positive"))
    # A control on a collapsed model is invalid, even where it "broke" the claim.
    assert (result.verdict is Verdict.INVALID) is collapsed
    if collapsed:
        assert "collapsed" in result.reasons[0]


def test_a_real_violation_on_a_collapsed_model_stays_a_violation() -> None:
    result = _result(Verdict.VIOLATED, alma=0.11, unaudited={"alma": 0.9, "mechanism": None})
    _validity(result, AuditSettings())
    assert result.verdict is Verdict.VIOLATED


def test_an_audited_mechanism_other_than_the_deployed_one_is_invalid() -> None:
    other = {**MECHANISM, "sample_rates": [0.02]}
    result = _result(
        Verdict.CONSISTENT, unaudited={"alma": 0.9, "mechanism": MECHANISM}, mechanism=other
    )
    _validity(result, AuditSettings())
    assert result.verdict is Verdict.INVALID
    assert "not the deployed one" in result.reasons[0]


def test_controls_that_misbehave_make_the_audit_invalid() -> None:
    missed = _result(Verdict.CONSISTENT)
    _validity(missed, AuditSettings(control="positive"))
    assert missed.verdict is Verdict.INVALID and "not detected" in missed.reasons[0]
    false_alarm = _result(Verdict.VIOLATED)
    _validity(false_alarm, AuditSettings(control="negative"))
    assert (
        false_alarm.verdict is Verdict.INVALID and "nothing was inserted" in false_alarm.reasons[0]
    )
    untestable = _result(Verdict.NOT_TESTABLE)
    _validity(untestable, AuditSettings(control="positive"))
    assert untestable.verdict is Verdict.NOT_TESTABLE
