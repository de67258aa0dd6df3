"""Group privacy against hand-computed (kε, δ_k), and the audit's answer where δ_k is
vacuous: not testable, never a comparison."""

from __future__ import annotations

import math

import pytest

from fedkd.audit.group_privacy import group_claim
from fedkd.audit.verdict import ClaimSource, Verdict, claim_under_test, judge, reach

E = math.e


@pytest.mark.parametrize(
    ("epsilon", "delta", "group", "expected"),
    [
        # δ_k = δ (1 + e^ε + … + e^{(k−1)ε}), by hand:
        (1.0, 1e-5, 2, (2.0, 1e-5 * (1 + E))),  # 3.718281828e-5
        (1.0, 1e-5, 4, (4.0, 1e-5 * (1 + E + E**2 + E**3))),  # 3.119287485e-4
        (0.5, 1e-6, 4, (2.0, 1e-6 * (1 + E**0.5 + E + E**1.5))),  # 9.848674e-6
        (2.0, 1e-5, 1, (2.0, 1e-5)),
        (0.0, 1e-5, 3, (0.0, 3e-5)),
    ],
)
def test_group_claims_match_the_hand_computed_ones(
    epsilon: float, delta: float, group: int, expected: tuple[float, float]
) -> None:
    got = group_claim(epsilon, delta, group)
    assert got[0] == pytest.approx(expected[0], rel=1e-12)
    assert got[1] == pytest.approx(expected[1], rel=1e-12)


def test_the_numbers_written_out() -> None:
    assert group_claim(1.0, 1e-5, 2)[1] == pytest.approx(3.718281828e-5, rel=1e-9)
    assert group_claim(1.0, 1e-5, 4)[1] == pytest.approx(3.119287485e-4, rel=1e-9)


def test_never_looser_than_the_textbook_k_e_to_the_k_minus_one() -> None:
    for epsilon in (0.1, 1.0, 3.0):
        for k in (2, 3, 4, 8):
            assert group_claim(epsilon, 1e-5, k)[1] <= k * math.exp((k - 1) * epsilon) * 1e-5


def test_practical_group_claims_are_vacuous_and_answered_not_testable() -> None:
    # ε = 8 per record, 4 copies: δ_4 = 1e-5 (e^32 − 1)/(e^8 − 1) ≈ 2.6e5, capped at 1.
    assert group_claim(8.0, 1e-5, 4) == (32.0, 1.0)
    claim = claim_under_test(8.0, 1e-5, group=4, source=ClaimSource.ACCOUNTANT)
    able = reach(claim, canaries=1000, level=0.05 / 3)
    assert able.vacuous and able.ceiling == 0.0 and not able.testable
    assert able.canaries_needed is None and able.runs_needed is None
    # Even a "bound" of 5 cannot be compared with 32: the verdict is not testable.
    assert judge(5.0, claim, able) is Verdict.NOT_TESTABLE


def test_a_small_group_claim_stays_testable_with_its_own_delta() -> None:
    claim = claim_under_test(1.0, 1e-5, group=2, source=ClaimSource.ACCOUNTANT)
    assert (claim.epsilon, claim.delta) == pytest.approx((2.0, 3.718281828e-5))
    able = reach(claim, canaries=1000, level=0.05 / 3)
    assert able.testable and 2.0 < able.ceiling < 6.0


def test_bad_groups_are_refused() -> None:
    with pytest.raises(ValueError, match="at least one record"):
        group_claim(1.0, 1e-5, 0)
    with pytest.raises(ValueError, match="epsilon >= 0"):
        group_claim(-1.0, 1e-5, 2)
