"""``median`` (Yin et al. 2018): naive reference, robustness to a poisoned client."""

from __future__ import annotations

import numpy as np
import pytest

from fedkd.fusion import FusionInput, make_fusion
from tests.fusion._inputs import SHAPES, fuse, soft_labels


def naive_median(p: np.ndarray) -> np.ndarray:
    k, t, c = p.shape
    out = np.zeros((k, t, c))
    for a in range(t):
        row = []
        for cl in range(c):
            values = sorted(p[j, a, cl] for j in range(k))
            mid = k // 2
            row.append(values[mid] if k % 2 else (values[mid - 1] + values[mid]) / 2)
        total = sum(row)
        for i in range(k):
            for cl in range(c):
                out[i, a, cl] = row[cl] / total if total > 0 else 1 / c
    return out


@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("shape", [*SHAPES, (5, 6, 4)])
def test_median_matches_naive(shape: tuple[int, int, int], sparse: bool) -> None:
    p = soft_labels(shape, seed=2, sparse=sparse)
    result = make_fusion("median").fuse(FusionInput(p))
    np.testing.assert_allclose(result.targets, naive_median(p), atol=1e-6)
    assert result.mixing is None


def test_median_resists_one_poisoned_client() -> None:
    rng = np.random.default_rng(6)
    truth = rng.dirichlet(np.ones(5), size=10)
    p = np.stack([np.stack([rng.dirichlet(500 * row) for row in truth]) for _ in range(7)])
    honest = p[1:].mean(axis=0)
    p[0] = np.eye(5)[np.zeros(10, dtype=int)]  # always votes class 0 with certainty
    median_error = np.abs(fuse("median", p)[0] - honest).max()
    mean_error = np.abs(fuse("mean", p)[0] - honest).max()
    assert median_error < 0.03, median_error
    assert mean_error > 0.08, mean_error


def test_all_zero_medians_become_uniform() -> None:
    votes = np.eye(3)[:, None, :]  # three one-hot votes that all disagree
    np.testing.assert_allclose(fuse("median", votes), np.full((3, 1, 3), 1 / 3), atol=1e-6)
