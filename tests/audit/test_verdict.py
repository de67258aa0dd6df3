"""Three verdicts, never two: a claim above what the canaries can show is not testable,
with the canary count (or the number of runs) that would make it testable."""

from __future__ import annotations

import pytest

from fedkd.audit.clopper_pearson import epsilon_lower_bound as runs_bound
from fedkd.audit.clopper_pearson import runs_needed
from fedkd.audit.one_run_bound import canaries_needed, ceiling, one_run_bound
from fedkd.audit.verdict import (
    ClaimSource,
    Verdict,
    claim_under_test,
    combine,
    exit_code,
    judge,
    reach,
)

LEVEL = 0.05 / 3


def test_the_one_run_ceiling_peaks_near_five_and_falls_again() -> None:
    # δ = 1e-5, guesses on 5 %…100 % of the canaries, α/3 over three views.
    at = {m: ceiling(m, delta=1e-5, alpha=LEVEL) for m in (200, 1000, 2000, 10_000, 50_000)}
    assert at[200] == pytest.approx(3.518, abs=0.01)
    assert at[1000] == pytest.approx(5.019, abs=0.01)
    assert max(at.values()) < 5.6
    assert at[50_000] < at[10_000] < at[2000]


def test_the_ceiling_is_what_one_run_bound_reports_with_every_guess_right() -> None:
    coins = __import__("numpy").arange(1000) % 2 == 0
    perfect = one_run_bound(coins.astype(float), coins, delta=1e-5, alpha=LEVEL)
    assert perfect.epsilon == pytest.approx(perfect.ceiling)
    assert perfect.ceiling == pytest.approx(ceiling(1000, delta=1e-5, alpha=LEVEL))


@pytest.mark.parametrize("epsilon", [1.0, 3.0, 5.0])
def test_canaries_needed_is_the_first_count_whose_ceiling_exceeds_the_claim(
    epsilon: float,
) -> None:
    needed = canaries_needed(epsilon, delta=1e-5, alpha=LEVEL)
    assert needed is not None
    assert ceiling(needed, delta=1e-5, alpha=LEVEL) > epsilon
    assert ceiling(needed - 1, delta=1e-5, alpha=LEVEL) <= epsilon


def test_no_canary_count_reaches_a_claim_of_eight() -> None:
    assert canaries_needed(8.0, delta=1e-5, alpha=LEVEL) is None
    runs = runs_needed(8.0, delta=1e-5, confidence=1 - LEVEL)
    assert runs is not None and 5_000 < runs < 50_000
    assert (
        runs_bound(fp=0, n_out=runs, fn=0, n_in=runs, delta=1e-5, confidence=1 - LEVEL).ceiling > 8
    )
    before = runs_bound(fp=0, n_out=runs - 1, fn=0, n_in=runs - 1, delta=1e-5, confidence=1 - LEVEL)
    assert before.ceiling <= 8


def test_the_positive_control_at_a_claim_of_eight_is_not_testable_never_holds() -> None:
    """The issue's case: noise off, claim 7.89, bound 2.23 — formerly "holds", exit 0."""
    claim = claim_under_test(7.89, 1e-5, group=1, source=ClaimSource.NOMINAL)
    able = reach(claim, canaries=1000, level=LEVEL)
    assert not able.testable and able.canaries_needed is None and able.runs_needed
    verdict = judge(2.23, claim, able)
    assert verdict is Verdict.NOT_TESTABLE
    assert exit_code([verdict]) == 4


def test_verdicts_for_each_case() -> None:
    claim = claim_under_test(3.0, 1e-5, group=1, source=ClaimSource.ACCOUNTANT)
    able = reach(claim, canaries=1000, level=LEVEL)
    assert able.testable and able.canaries_needed is not None and able.canaries_needed < 1000
    assert judge(3.5, claim, able) is Verdict.VIOLATED
    assert judge(1.0, claim, able) is Verdict.CONSISTENT
    small = reach(claim, canaries=100, level=LEVEL)
    assert judge(1.0, claim, small) is Verdict.NOT_TESTABLE
    assert judge(4.0, claim, small) is Verdict.VIOLATED  # can't happen above the ceiling
    assert judge(2.0, None, None) is Verdict.NO_CLAIM


def test_a_negative_control_is_tested_against_zero() -> None:
    claim = claim_under_test(0.0, 0.0, group=1, source=ClaimSource.NOTHING_INSERTED)
    able = reach(claim, canaries=1000, level=LEVEL)
    assert able.testable
    assert judge(0.0, claim, able) is Verdict.CONSISTENT
    assert judge(0.2, claim, able) is Verdict.VIOLATED


def test_combining_views_and_exit_codes() -> None:
    v, c, n = Verdict.VIOLATED, Verdict.CONSISTENT, Verdict.NOT_TESTABLE
    assert combine([c, v, n]) is v
    assert combine([n, c, n]) is c
    assert combine([n, n]) is n
    assert combine([Verdict.NO_CLAIM]) is Verdict.NO_CLAIM
    assert exit_code([c, Verdict.NO_CLAIM]) == 0
    assert exit_code([n, c]) == 4
    assert exit_code([Verdict.INVALID, n]) == 5
    assert exit_code([Verdict.INVALID, v]) == 3


def test_a_claim_just_below_the_peak_finds_the_count_past_a_dip_in_the_scan() -> None:
    # The ceiling at 2,048 and 4,096 canaries is below 5.49; between them it is above.
    assert ceiling(2048, delta=1e-5, alpha=LEVEL) < 5.49
    assert ceiling(4096, delta=1e-5, alpha=LEVEL) < 5.49
    needed = canaries_needed(5.49, delta=1e-5, alpha=LEVEL)
    assert needed is not None and 2048 < needed < 4096
    assert ceiling(needed, delta=1e-5, alpha=LEVEL) > 5.49
