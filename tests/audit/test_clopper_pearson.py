"""Clopper–Pearson against scipy's exact interval, and the bound on an exactly ε-DP
mechanism over independent runs."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from fedkd.audit.clopper_pearson import clopper_pearson_upper, epsilon_lower_bound


@pytest.mark.parametrize(("k", "n"), [(0, 10), (3, 10), (7, 50), (49, 50), (0, 1000)])
def test_the_upper_bound_is_scipys_exact_interval(k: int, n: int) -> None:
    # A one-sided bound at 97.5% is the upper end of the two-sided exact 95% interval.
    exact = stats.binomtest(k, n).proportion_ci(confidence_level=0.95, method="exact").high
    assert clopper_pearson_upper(k, n, confidence=0.975) == pytest.approx(exact, rel=1e-9)
    assert clopper_pearson_upper(n, n, confidence=0.975) == 1.0


def test_no_errors_reach_the_ceiling() -> None:
    bound = epsilon_lower_bound(fp=0, n_out=500, fn=0, n_in=500, delta=0.0)
    assert bound.epsilon == pytest.approx(bound.ceiling)
    # FPR⁺ = FNR⁺ = 1 − 0.025^(1/500) ≈ 0.00735: ε ≥ ln((1 − 0.00735) / 0.00735) ≈ 4.9.
    upper = 1 - 0.025 ** (1 / 500)
    assert bound.ceiling == pytest.approx(math.log((1 - upper) / upper), rel=1e-6)


def test_the_bound_holds_on_exact_randomised_response_over_runs() -> None:
    """ε-DP randomised response on the canary's presence, N = 1,000 runs: the bound at
    95% must stay ≤ ε in ≥ 95% of 200 trials."""
    eps, runs, trials = 1.0, 1000, 200
    keep = math.exp(eps) / (1 + math.exp(eps))
    rng = np.random.default_rng(11)
    bounds = []
    for _ in range(trials):
        present = rng.random(runs) < 0.5
        says_present = np.where(rng.random(runs) < keep, present, ~present)
        bounds.append(
            epsilon_lower_bound(
                fp=int((says_present & ~present).sum()),
                n_out=int((~present).sum()),
                fn=int((~says_present & present).sum()),
                n_in=int(present.sum()),
                delta=0.0,
            ).epsilon
        )
    assert np.mean(np.array(bounds) <= eps) >= 0.95
    assert np.median(bounds) > 0.5 * eps
