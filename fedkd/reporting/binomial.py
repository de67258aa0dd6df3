"""Exact (Clopper–Pearson) confidence bounds on a binomial rate.

Shared by the run summary (each node's local-accuracy interval) and the audit (error
rates of a membership test); it lives here, below both, so the summary needs no audit code.
"""

from __future__ import annotations

from scipy import stats


def clopper_pearson_upper(errors: int, trials: int, *, confidence: float) -> float:
    """One-sided exact upper confidence bound on a binomial rate."""
    if not 0 <= errors <= trials or trials < 1:
        raise ValueError(f"need 0 <= errors <= trials, trials >= 1; got {errors}, {trials}")
    if errors == trials:
        return 1.0
    return float(stats.beta.ppf(confidence, errors + 1, trials - errors))


def clopper_pearson_interval(
    successes: int, trials: int, *, confidence: float = 0.95
) -> tuple[float, float]:
    """Two-sided exact (Clopper–Pearson) confidence interval on a binomial rate.

    Each tail holds (1 − ``confidence``)/2; the lower end is 0 at no successes and the
    upper end 1 at all successes.
    """
    if not 0 <= successes <= trials or trials < 1:
        raise ValueError(f"need 0 <= successes <= trials, trials >= 1; got {successes}, {trials}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    tail = (1.0 - confidence) / 2.0
    low = 0.0 if successes == 0 else float(stats.beta.ppf(tail, successes, trials - successes + 1))
    high = (
        1.0
        if successes == trials
        else float(stats.beta.ppf(1 - tail, successes + 1, trials - successes))
    )
    return low, high
