"""ε lower bound from N independent runs with and without a canary (Jagielski, Ullman,
Oprea, "Auditing Differentially Private Machine Learning: How Private is Private SGD?",
NeurIPS 2020).

An attack says "canary present" or not for each run.  With ``fp`` false positives in
``n_out`` runs without the canary and ``fn`` false negatives in ``n_in`` runs with it,
Clopper–Pearson upper bounds FPR⁺ and FNR⁺ (each at confidence 1 − α/2, so both hold at
1 − α) give, for any (ε, δ)-DP mechanism,

    ε ≥ max( ln((1 − δ − FPR⁺) / FNR⁺),  ln((1 − δ − FNR⁺) / FPR⁺) )

The ceiling for N runs is the bound with no error at all.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from fedkd.reporting.binomial import clopper_pearson_interval, clopper_pearson_upper

__all__ = [
    "ClopperPearsonBound",
    "clopper_pearson_interval",
    "clopper_pearson_upper",
    "epsilon_lower_bound",
    "runs_needed",
]


@dataclass(frozen=True)
class ClopperPearsonBound:
    epsilon: float
    ceiling: float
    runs_in: int
    runs_out: int
    confidence: float
    method: str = "Clopper-Pearson over independent runs (Jagielski et al. 2020)"


def _epsilon(fpr_upper: float, fnr_upper: float, delta: float) -> float:
    candidates = []
    for numerator, denominator in (
        (1 - delta - fpr_upper, fnr_upper),
        (1 - delta - fnr_upper, fpr_upper),
    ):
        if numerator > 0 and denominator > 0:
            candidates.append(math.log(numerator / denominator))
    return max(0.0, *candidates) if candidates else 0.0


def epsilon_lower_bound(
    *, fp: int, n_out: int, fn: int, n_in: int, delta: float, confidence: float = 0.95
) -> ClopperPearsonBound:
    """The bound, and the ceiling these run counts allow."""
    each = 1 - (1 - confidence) / 2
    fpr = clopper_pearson_upper(fp, n_out, confidence=each)
    fnr = clopper_pearson_upper(fn, n_in, confidence=each)
    ceiling = _epsilon(
        clopper_pearson_upper(0, n_out, confidence=each),
        clopper_pearson_upper(0, n_in, confidence=each),
        delta,
    )
    return ClopperPearsonBound(_epsilon(fpr, fnr, delta), ceiling, n_in, n_out, confidence)


RUN_SEARCH_LIMIT = 1 << 30


def runs_needed(epsilon: float, *, delta: float, confidence: float = 0.95) -> int | None:
    """The fewest runs ``n`` with the canary and ``n`` without it whose ceiling (every run
    classified right) exceeds ``epsilon``: what an audit over independent runs would need
    where one run cannot reach a claim.  None when δ alone keeps the bound below it."""

    def exceeds(n: int) -> bool:
        bound = epsilon_lower_bound(fp=0, n_out=n, fn=0, n_in=n, delta=delta, confidence=confidence)
        return bound.ceiling > epsilon

    if exceeds(1):
        return 1
    low, high = 1, 2
    while not exceeds(high):
        if high >= RUN_SEARCH_LIMIT:
            return None
        low, high = high, 2 * high
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if not exceeds(middle) else (low, middle)
    return high
