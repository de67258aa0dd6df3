"""Canary exposure (Carlini, Liu, Erlingsson, Kos, Song, "The Secret Sharer", USENIX
Security 2019), in bits, from attack scores (higher: the model prefers the canary more).

Rank-based (their "interpolation" estimate) against ``R`` never-inserted references drawn
the same way::

    exposure(c) = log2(R + 1) − log2(rank(c)),  rank(c) = 1 + #{references scoring ≥ c}

Skew-normal ("extrapolation"): fit a skew-normal to the references' log-perplexities
``Px = −log2 p`` and read how improbable the canary's is::

    exposure(c) ≈ −log2 CDF_skewnorm(Px(c))

so it can exceed ``log2(R + 1)``.  The mean over inserted canaries comes with a 95%
t-interval; the references' own exposures (each against the others) give the interval
that "above the references" must clear.

Exposure is a rank, not a likelihood: 10 bits says the canary outranks about
1 − 2⁻¹⁰ of the references, not that it is 2¹⁰ times likelier.  The skew-normal estimate
extrapolates a fitted tail, and a poor fit inflates it on any model (several bits on a
collapsed one), so it is only reported beside its reference control: the same estimate
for the references themselves, which a sound fit keeps near log2 e ≈ 1.44 bits.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

CONFIDENCE = 0.95


def rank_exposure(scores: np.ndarray, references: np.ndarray) -> np.ndarray:
    """Rank-based exposure of each canary score against the reference scores."""
    refs = np.sort(np.asarray(references, float))
    at_least = len(refs) - np.searchsorted(refs, np.asarray(scores, float), side="left")
    out: np.ndarray = np.log2(len(refs) + 1) - np.log2(1 + at_least)
    return out


def reference_rank_exposure(references: np.ndarray) -> np.ndarray:
    """Each reference's rank exposure against the others (leave-one-out)."""
    refs = np.asarray(references, float)
    ordered = np.sort(refs)
    # Others scoring ≥ r: all references scoring ≥ r, less the reference itself.
    others_at_least = len(refs) - np.searchsorted(ordered, refs, side="left") - 1
    out: np.ndarray = np.log2(len(refs)) - np.log2(1 + others_at_least)
    return out


def skewnorm_exposure(
    log_perplexity: np.ndarray, reference_log_perplexity: np.ndarray
) -> np.ndarray:
    """Extrapolated exposure: −log2 of the fitted reference CDF at each log-perplexity."""
    shape, loc, scale = stats.skewnorm.fit(np.asarray(reference_log_perplexity, float))
    log_cdf = stats.skewnorm.logcdf(np.asarray(log_perplexity, float), shape, loc, scale)
    return np.asarray(-log_cdf / math.log(2))


@dataclass(frozen=True)
class MeanWithInterval:
    mean: float
    low: float
    high: float
    n: int


def mean_interval(values: np.ndarray, confidence: float = CONFIDENCE) -> MeanWithInterval:
    """Mean and its two-sided t-interval."""
    values = np.asarray(values, float)
    values = values[np.isfinite(values)]
    n = len(values)
    if n == 0:
        return MeanWithInterval(math.nan, math.nan, math.nan, 0)
    mean = float(values.mean())
    if n == 1:
        return MeanWithInterval(mean, -math.inf, math.inf, 1)
    half = float(stats.t.ppf((1 + confidence) / 2, n - 1) * values.std(ddof=1) / math.sqrt(n))
    return MeanWithInterval(mean, mean - half, mean + half, n)


@dataclass(frozen=True)
class Exposure:
    """Exposure of the inserted canaries, and of the references for comparison."""

    rank: MeanWithInterval
    skewnorm: MeanWithInterval
    reference_rank: MeanWithInterval
    reference_skewnorm: MeanWithInterval
    """The skew-normal estimate of the references themselves: the control that says how
    far the fit alone moves it."""
    max_rank_bits: float
    """``log2(R + 1)``: what rank exposure can reach with ``R`` references."""

    @property
    def above_references(self) -> bool:
        """The inserted canaries' interval lies wholly above the references'."""
        return self.rank.low > self.reference_rank.high


def exposure(
    inserted_scores: np.ndarray,
    reference_scores: np.ndarray,
    *,
    inserted_log_perplexity: np.ndarray,
    reference_log_perplexity: np.ndarray,
) -> Exposure:
    """Both estimates for the inserted canaries, with the references' own as control."""
    references = np.asarray(reference_scores, float)
    return Exposure(
        rank=mean_interval(rank_exposure(inserted_scores, references)),
        skewnorm=mean_interval(
            skewnorm_exposure(inserted_log_perplexity, reference_log_perplexity)
        ),
        reference_rank=mean_interval(reference_rank_exposure(references)),
        reference_skewnorm=mean_interval(
            skewnorm_exposure(reference_log_perplexity, reference_log_perplexity)
        ),
        max_rank_bits=float(np.log2(len(references) + 1)),
    )
