"""``selective`` (confidence-selected averaging): naive reference and limiting cases."""

from __future__ import annotations

import numpy as np
import pytest

from fedkd.fusion import make_fusion
from tests.fusion._inputs import SHAPES, fuse, soft_labels


def naive_selective(
    p: np.ndarray, confidence: float, weights: np.ndarray | None = None
) -> np.ndarray:
    k, t, c = p.shape
    w = np.full(k, 1.0 / k) if weights is None else weights / weights.sum()
    out = np.zeros((k, t, c))
    for a in range(t):
        chosen = [j for j in range(k) if max(p[j, a]) >= confidence] or list(range(k))
        total = sum(w[j] for j in chosen)
        row = [sum(w[j] * p[j, a, cl] for j in chosen) / total for cl in range(c)]
        for i in range(k):
            out[i, a] = row
    return out


@pytest.mark.parametrize("confidence", [0.0, 0.3, 0.6, 0.95, 1.0])
@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("shape", SHAPES)
def test_selective_matches_naive(
    shape: tuple[int, int, int], sparse: bool, confidence: float
) -> None:
    p = soft_labels(shape, seed=3, sparse=sparse)
    np.testing.assert_allclose(
        fuse("selective", p, confidence=confidence), naive_selective(p, confidence), atol=1e-6
    )
    w = np.arange(1, shape[0] + 1, dtype=np.float64)
    np.testing.assert_allclose(
        fuse("selective", p, w, confidence=confidence, weighted=True),
        naive_selective(p, confidence, w),
        atol=1e-6,
    )


def test_unsure_clients_stop_diluting_the_sure_one() -> None:
    sure = [[0.9, 0.05, 0.05]]
    unsure = [[0.34, 0.33, 0.33]]
    p = np.array([sure, unsure, unsure])
    np.testing.assert_allclose(fuse("selective", p, confidence=0.5)[0, 0], sure[0], atol=1e-6)
    # Nobody above τ: the plain mean; τ = 0: the plain mean too.
    mean = p.mean(axis=0)[0]
    np.testing.assert_allclose(fuse("selective", p, confidence=0.95)[0, 0], mean, atol=1e-6)
    np.testing.assert_allclose(fuse("selective", p, confidence=0.0)[0, 0], mean, atol=1e-6)


def test_selective_checks_its_parameter() -> None:
    with pytest.raises(ValueError, match=r"confidence must be in \[0, 1\], got 1.5"):
        make_fusion("selective", confidence=1.5)
    assert not make_fusion("selective").personalised
