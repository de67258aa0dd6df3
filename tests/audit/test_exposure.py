"""Exposure against hand-computed ranks, and the skew-normal estimate against a known CDF."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fedkd.audit.exposure import (
    exposure,
    mean_interval,
    rank_exposure,
    reference_rank_exposure,
    skewnorm_exposure,
)


def test_rank_exposure_by_hand() -> None:
    refs = np.array([0.1, 0.2, 0.3, 0.4])
    # 0.35 is beaten by one reference (0.4): rank 2 of 5 → log2 5 − log2 2.
    # 0.5 beats all: rank 1 → log2 5.  0.05 is beaten by all four: rank 5 → 0 bits.
    got = rank_exposure(np.array([0.35, 0.5, 0.05]), refs)
    np.testing.assert_allclose(got, [math.log2(5) - 1, math.log2(5), 0.0])
    # A tie counts against the canary (rank 1 + #refs ≥ score).
    assert rank_exposure(np.array([0.3]), refs)[0] == pytest.approx(math.log2(5) - math.log2(3))


def test_references_against_each_other_sit_near_one_over_ln_2_bits() -> None:
    refs = np.random.default_rng(0).normal(size=2000)
    # For a uniform rank among R+1, E[log2(R+1) − log2 rank] → 1/ln 2 ≈ 1.44 bits.
    assert reference_rank_exposure(refs).mean() == pytest.approx(1 / math.log(2), abs=0.05)


def test_skewnorm_exposure_reads_the_fitted_tail() -> None:
    rng = np.random.default_rng(1)
    refs = rng.normal(10.0, 1.0, size=5000)  # log-perplexities of references
    # A canary at the reference distribution's 1/1024 quantile has ~10 bits of exposure.
    from scipy import stats

    quantile = stats.norm.ppf(1 / 1024, loc=10.0, scale=1.0)
    got = skewnorm_exposure(np.array([quantile]), refs)[0]
    assert got == pytest.approx(10.0, abs=0.6)


def test_inserted_canaries_above_the_references_are_called_so() -> None:
    rng = np.random.default_rng(2)
    refs = rng.normal(size=1000)
    high, same = rng.normal(3.0, 1.0, size=100), rng.normal(size=100)
    result = exposure(high, refs, inserted_log_perplexity=-high, reference_log_perplexity=-refs)
    assert result.above_references and result.rank.mean > 4
    control = exposure(same, refs, inserted_log_perplexity=-same, reference_log_perplexity=-refs)
    assert not control.above_references
    assert result.max_rank_bits == pytest.approx(math.log2(1001))


def test_mean_interval_is_the_t_interval() -> None:
    values = np.array([1.0, 2.0, 3.0, 4.0])
    interval = mean_interval(values)
    half = 3.182446305284263 * np.std(values, ddof=1) / 2  # t_{0.975, 3}
    assert (interval.mean, interval.low, interval.high) == pytest.approx(
        (2.5, 2.5 - half, 2.5 + half)
    )
