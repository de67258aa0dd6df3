"""The one-run bound against closed forms, the paper's p-value code path, and an exactly
ε-DP mechanism (randomised response) on which it must stay ≤ ε."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from fedkd.audit.one_run_bound import epsilon_lower_bound, one_run_bound, p_value


def _reference_p_value(m: int, r: int, v: int, eps: float, delta: float) -> float:
    """Appendix D of Steinke, Nasr & Jagielski (2023), transcribed as a loop."""
    q = 1 / (1 + math.exp(-eps))
    beta = stats.binom.sf(v - 1, r, q)
    alpha, total = 0.0, 0.0
    for i in range(1, v + 1):
        total += stats.binom.pmf(v - i, r, q)
        alpha = max(alpha, total / i)
    return float(min(1.0, beta + alpha * delta * 2 * m))


@pytest.mark.parametrize(
    ("m", "r", "v", "eps", "delta"),
    [(1000, 100, 90, 2.0, 1e-5), (1000, 500, 400, 1.0, 1e-5), (200, 50, 50, 3.0, 1e-3),
     (100, 10, 0, 0.5, 1e-2)],
)  # fmt: skip
def test_p_value_is_the_papers(m: int, r: int, v: int, eps: float, delta: float) -> None:
    got = p_value(m=m, r=r, v=v, epsilon=eps, delta=delta)
    assert got == pytest.approx(_reference_p_value(m, r, v, eps, delta), rel=1e-9, abs=1e-15)


@pytest.mark.parametrize("r", [10, 100, 1000])
def test_all_guesses_right_without_delta_has_a_closed_form(r: int) -> None:
    # P[Bin(r, q) ≥ r] = q^r = alpha  →  q = alpha^(1/r),  ε = log(q / (1 − q)).
    q = 0.05 ** (1 / r)
    expected = math.log(q / (1 - q))
    got = epsilon_lower_bound(m=r, r=r, v=r, delta=0.0, alpha=0.05)
    assert got == pytest.approx(expected, abs=1e-6)


def test_chance_guesses_give_no_bound_and_delta_only_lowers_it() -> None:
    assert epsilon_lower_bound(m=1000, r=1000, v=500, delta=1e-5, alpha=0.05) == 0.0
    without = epsilon_lower_bound(m=1000, r=200, v=180, delta=0.0, alpha=0.05)
    with_delta = epsilon_lower_bound(m=1000, r=200, v=180, delta=1e-3, alpha=0.05)
    assert 0 < with_delta < without


def test_the_bound_holds_on_exact_randomised_response() -> None:
    """ε-DP randomised response: each canary's membership bit is reported truthfully with
    probability e^ε/(1+e^ε).  The bound at 95% must stay ≤ ε in ≥ 95% of 200 trials."""
    eps, m, trials = 1.0, 1000, 200
    rng = np.random.default_rng(7)
    keep = math.exp(eps) / (1 + math.exp(eps))
    bounds = []
    for _ in range(trials):
        member = rng.random(m) < 0.5
        reported = np.where(rng.random(m) < keep, member, ~member)
        scores = reported + rng.random(m) * 1e-3  # ties broken at random
        bounds.append(one_run_bound(scores, member, delta=0.0, alpha=0.05).epsilon)
    within = np.mean(np.array(bounds) <= eps)
    assert within >= 0.95
    # …and it is not vacuous: the audit sees most of the ε that is there.
    assert np.median(bounds) > 0.5 * eps


def test_the_ceiling_is_what_all_right_guesses_would_show() -> None:
    member = np.arange(100) % 2 == 0
    perfect = one_run_bound(member.astype(float), member, delta=0.0, alpha=0.05)
    assert perfect.epsilon == pytest.approx(perfect.ceiling)
    assert perfect.correct == perfect.guesses
