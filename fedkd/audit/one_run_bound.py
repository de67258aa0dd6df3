"""One-run ε lower bound (Steinke, Nasr, Jagielski, "Privacy Auditing with One (1)
Training Run", NeurIPS 2023, arXiv 2305.08846).

Each of ``m`` canaries is included in the training data independently with probability
½.  The auditor scores every canary, guesses IN for the ``k₊`` highest scores and OUT for
the ``k₋`` lowest, abstains on the rest, and counts ``v`` correct of ``r = k₊ + k₋``
guesses.  Under (ε, δ)-DP the number of correct guesses is stochastically dominated by

    Binomial(r, q),  q = e^ε / (1 + e^ε)

plus a δ term (their Theorem 3.1 / Appendix D): the p-value of observing ``v`` or more is

    p(ε) = P[Binomial(r, q) ≥ v] + 2·m·δ · max_{i=1..v} (1/i)·P[v − i ≤ Binomial(r, q) < v]

The bound is the largest ε whose p-value is still below ``alpha``: the mechanism is not
(ε, δ)-DP for that ε, at confidence 1 − alpha.  Its *ceiling* — what ``r`` guesses could
show at best — is the bound for ``v = r``.

The ceiling is what decides whether a claim can be tested at all.  It grows with ``m``
until the δ term ``2·m·δ`` takes over and then falls: at δ = 1e-5 and α = 0.05/15 it
peaks near ε ≈ 5.5 around m ≈ 3,000, so no canary count lets one run refute a claim of
ε = 8.  :func:`canaries_needed` finds the smallest ``m`` whose ceiling exceeds a claim,
or says that none does.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

SEARCH_STEPS = 40
GUESS_FRACTIONS = (0.05, 0.1, 0.25, 0.5, 1.0)
"""Fractions of the canaries guessed on (half IN at the top, half OUT at the bottom); the
last guesses on every canary, which is what the highest ceilings need."""
CANARY_SEARCH_LIMIT = 1 << 20


def p_value(*, m: int, r: int, v: int, epsilon: float, delta: float) -> float:
    """Probability of ``v`` or more correct of ``r`` guesses under (ε, δ)-DP (App. D)."""
    if not 0 <= v <= r <= m:
        raise ValueError(f"need 0 <= v <= r <= m, got v={v}, r={r}, m={m}")
    if epsilon < 0 or not 0 <= delta <= 1:
        raise ValueError(f"need epsilon >= 0 and delta in [0, 1], got {epsilon}, {delta}")
    q = 1.0 / (1.0 + math.exp(-epsilon))
    beta = float(stats.binom.sf(v - 1, r, q))
    if delta == 0 or v == 0:
        return min(1.0, beta)
    # below[i-1] = P[v − i ≤ Binomial(r, q) < v] for i = 1 … v, all at once.
    pmf = stats.binom.pmf(np.arange(v), r, q)
    below = np.cumsum(pmf[::-1])
    alpha_term = float(np.max(below / np.arange(1, v + 1)))
    return min(1.0, beta + alpha_term * delta * 2 * m)


def epsilon_lower_bound(
    *, m: int, r: int, v: int, delta: float, alpha: float, steps: int = SEARCH_STEPS
) -> float:
    """The largest ε with ``p_value(ε) < alpha`` (0 when even ε = 0 cannot be rejected),
    to within 2^-``steps`` of the bracket the doubling found."""
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if p_value(m=m, r=r, v=v, epsilon=0.0, delta=delta) >= alpha:
        return 0.0
    low, high = 0.0, 1.0
    while p_value(m=m, r=r, v=v, epsilon=high, delta=delta) < alpha:
        low, high = high, 2 * high
        if high > 1e3:
            return math.inf
    for _ in range(steps):
        middle = (low + high) / 2
        if p_value(m=m, r=r, v=v, epsilon=middle, delta=delta) < alpha:
            low = middle
        else:
            high = middle
    return low


@dataclass(frozen=True)
class OneRunBound:
    """The bound, the guesses it came from, and what it could have been at best."""

    epsilon: float
    ceiling: float
    m: int
    guesses: int
    correct: int
    alpha: float
    delta: float
    method: str = "one-run (Steinke, Nasr, Jagielski 2023)"


def one_run_bound(
    scores: np.ndarray,
    included: np.ndarray,
    *,
    delta: float,
    alpha: float,
    guess_fractions: tuple[float, ...] = GUESS_FRACTIONS,
) -> OneRunBound:
    """The bound from one run's canary ``scores`` (higher: more likely IN).

    The auditor tries guessing the top and bottom ``f·m`` canaries for each ``f`` in
    ``guess_fractions``; trying several is paid for with a Bonferroni correction
    (``alpha / len(guess_fractions)``), so the reported bound holds at confidence
    ``1 − alpha``.
    """
    scores, included = np.asarray(scores, float), np.asarray(included, bool)
    if scores.shape != included.shape or scores.ndim != 1:
        raise ValueError("scores and included must be 1-D and of one length")
    m = len(scores)
    level = alpha / len(guess_fractions)
    order = np.argsort(-scores, kind="stable")
    tried = []
    for fraction in guess_fractions:
        k = max(1, int(fraction * m / 2))
        top, bottom = order[:k], order[m - k :]
        r = 2 * k
        v = int(included[top].sum() + (~included[bottom]).sum())
        epsilon = epsilon_lower_bound(m=m, r=r, v=v, delta=delta, alpha=level)
        ceiling = epsilon_lower_bound(m=m, r=r, v=r, delta=delta, alpha=level)
        tried.append((epsilon, r, v, ceiling))
    epsilon, r, v, _ = max(tried)
    ceiling = max(c for *_, c in tried)
    return OneRunBound(epsilon, ceiling, m, r, v, alpha, delta)


def _guesses(m: int, fraction: float) -> int:
    return 2 * max(1, int(fraction * m / 2))


def ceiling(
    m: int,
    *,
    delta: float,
    alpha: float,
    guess_fractions: tuple[float, ...] = GUESS_FRACTIONS,
    steps: int = SEARCH_STEPS,
) -> float:
    """The most :func:`one_run_bound` can show with ``m`` canaries: every guess right."""
    level = alpha / len(guess_fractions)
    return max(
        epsilon_lower_bound(m=m, r=r, v=r, delta=delta, alpha=level, steps=steps)
        for r in {min(m, _guesses(m, f)) for f in guess_fractions}
    )


@functools.lru_cache(maxsize=8192)
def _scan_ceiling(m: int, delta: float, alpha: float, fractions: tuple[float, ...]) -> float:
    """:func:`ceiling` to 2^-24, remembered: audits ask the same counts again."""
    return ceiling(m, delta=delta, alpha=alpha, guess_fractions=fractions, steps=24)


def canaries_needed(
    epsilon: float,
    *,
    delta: float,
    alpha: float,
    guess_fractions: tuple[float, ...] = GUESS_FRACTIONS,
) -> int | None:
    """The fewest canaries whose ceiling exceeds ``epsilon``; None when no count does.

    The ceiling rises, peaks and falls again as the δ term grows (module docstring), so
    counts are scanned on a grid with ratio 2^(1/8) up to a doubling past the peak (to
    2^-24 in ε), and the first grid point above ``epsilon`` is then narrowed down by
    bisection.  A claim within the grid's resolution of the peak (about 0.01 in ε) may be
    reported unreachable.
    """

    def at(m: int) -> float:
        return _scan_ceiling(m, delta, alpha, guess_fractions)

    previous, m, best, falling = 2, 2, 0.0, 0
    while m <= CANARY_SEARCH_LIMIT:
        value = at(m)
        if value > epsilon:
            break
        if value > best:
            best, falling = value, 0
        elif value < best:
            falling += 1
        if falling >= 8:
            return None  # a doubling past the peak without exceeding ε
        previous, m = m, max(m + 1, int(m * 2 ** (1 / 8)))
    else:
        return None
    low, high = previous, m
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if at(middle) <= epsilon else (low, middle)
    return high
