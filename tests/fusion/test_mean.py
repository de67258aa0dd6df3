"""``mean`` (FedMD / FD): against a naive reference and closed forms."""

from __future__ import annotations

import numpy as np
import pytest

from fedkd.fusion import FusionInput, make_fusion
from tests.fusion._inputs import SHAPES, fuse, soft_labels


def naive_mean(p: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    k, t, c = p.shape
    raw = [1.0] * k if weights is None else [float(v) for v in weights]
    total = sum(raw)
    out = np.zeros((k, t, c))
    for i in range(k):
        for a in range(t):
            for cl in range(c):
                out[i, a, cl] = sum(raw[j] / total * p[j, a, cl] for j in range(k))
    return out


@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("shape", SHAPES)
def test_mean_matches_naive(shape: tuple[int, int, int], sparse: bool) -> None:
    p = soft_labels(shape, sparse=sparse)
    counts = np.arange(1, shape[0] + 1, dtype=float) * 10
    np.testing.assert_allclose(fuse("mean", p), naive_mean(p), atol=1e-6)
    # Unweighted ignores the counts it is given.
    np.testing.assert_allclose(fuse("mean", p, counts), naive_mean(p), atol=1e-6)
    np.testing.assert_allclose(
        fuse("mean", p, counts, weighted=True), naive_mean(p, counts), atol=1e-6
    )


def test_two_one_hot_rows_average_to_half_half() -> None:
    one_hot = np.array([[[1.0, 0.0]], [[0.0, 1.0]]])
    np.testing.assert_allclose(fuse("mean", one_hot), np.full((2, 1, 2), 0.5))
    np.testing.assert_allclose(
        fuse("mean", one_hot, np.array([3.0, 1.0]), weighted=True)[0, 0], [0.75, 0.25]
    )


def test_mean_mixing_rows_are_the_weights() -> None:
    p = soft_labels((3, 4, 5))
    result = make_fusion("mean", weighted=True).fuse(FusionInput(p, np.array([1.0, 1.0, 2.0])))
    assert result.mixing is not None
    np.testing.assert_allclose(result.mixing, np.tile([0.25, 0.25, 0.5], (3, 1)))
    assert not make_fusion("mean").personalised
