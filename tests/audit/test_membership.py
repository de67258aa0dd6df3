"""The threshold attack's AUC and low-FPR TPR on scores with a known answer."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from fedkd.audit.membership import logit_confidence, threshold_attack, tpr_at_fpr


def test_a_known_shift_gives_the_analytic_auc() -> None:
    rng = np.random.default_rng(0)
    members, non = rng.normal(1.0, 1.0, 20_000), rng.normal(0.0, 1.0, 20_000)
    result = threshold_attack(members, non)
    assert result.auc == pytest.approx(stats.norm.cdf(1 / math.sqrt(2)), abs=0.01)  # 0.760
    # TPR at 1% FPR: threshold at the 99th percentile of N(0,1), shifted by 1.
    assert result.tpr_at_1pct_fpr == pytest.approx(
        stats.norm.sf(stats.norm.ppf(0.99) - 1), abs=0.02
    )


def test_no_shift_gives_chance() -> None:
    rng = np.random.default_rng(1)
    result = threshold_attack(rng.normal(size=5000), rng.normal(size=5000))
    assert 0.48 < result.auc < 0.52


def test_tpr_at_fpr_is_zero_when_no_threshold_reaches_it() -> None:
    assert tpr_at_fpr(np.array([0.0]), np.array([1.0]), 0.001) == 0.0


def test_logit_confidence() -> None:
    p = np.array([[0.8, 0.2], [0.5, 0.5]])
    np.testing.assert_allclose(logit_confidence(p, np.array([0, 1])), [math.log(4), 0.0])


def test_tprs_at_an_fpr_need_one_over_fpr_non_members() -> None:
    rng = np.random.default_rng(2)
    few = threshold_attack(rng.normal(2.0, 1.0, 300), rng.normal(0.0, 1.0, 478))
    # 478 non-members: 1 % is supported, 0.1 % is not (it would be TPR at zero FP).
    assert few.tpr_at_1pct_fpr is not None and few.tpr_at_01pct_fpr is None
    assert few.lowest_fpr == pytest.approx(1 / 478)
    assert 0.0 <= few.tpr_at_zero_fpr <= few.tpr_at_lowest_fpr <= few.tpr_at_1pct_fpr
    enough = threshold_attack(rng.normal(2.0, 1.0, 300), rng.normal(0.0, 1.0, 1000))
    assert enough.tpr_at_01pct_fpr is not None
    tiny = threshold_attack(rng.normal(size=10), rng.normal(size=50))
    assert tiny.tpr_at_1pct_fpr is None and tiny.tpr_at_01pct_fpr is None


def test_tpr_at_zero_false_positives_is_the_share_above_every_non_member() -> None:
    members, non = np.array([5.0, 4.0, 1.0, 0.5]), np.array([2.0, 0.0, -1.0])
    result = threshold_attack(members, non)
    assert result.tpr_at_zero_fpr == pytest.approx(0.5)
    assert result.tpr_at_lowest_fpr == pytest.approx(1.0)  # one false positive allowed
