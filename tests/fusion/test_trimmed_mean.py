"""``trimmed-mean`` (Yin et al. 2018): naive reference, closed forms, parameter checks."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fedkd.fusion import make_fusion
from tests.fusion._inputs import SHAPES, fuse, soft_labels


def naive_trimmed_mean(p: np.ndarray, trim: float) -> np.ndarray:
    k, t, c = p.shape
    b = math.floor(trim * k)
    out = np.zeros((k, t, c))
    for a in range(t):
        row = []
        for cl in range(c):
            values = sorted(p[j, a, cl] for j in range(k))
            kept = values[b : k - b]
            row.append(sum(kept) / len(kept))
        total = sum(row)
        for i in range(k):
            for cl in range(c):
                out[i, a, cl] = row[cl] / total if total > 0 else 1 / c
    return out


@pytest.mark.parametrize("trim", [0.0, 0.2, 0.34, 0.49])
@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("shape", [*SHAPES, (10, 5, 4)])
def test_trimmed_mean_matches_naive(shape: tuple[int, int, int], sparse: bool, trim: float) -> None:
    p = soft_labels(shape, seed=2, sparse=sparse)
    np.testing.assert_allclose(
        fuse("trimmed-mean", p, trim_fraction=trim), naive_trimmed_mean(p, trim), atol=1e-6
    )


def test_no_trimming_is_the_mean() -> None:
    p = soft_labels((5, 8, 6), seed=3)
    np.testing.assert_allclose(
        fuse("trimmed-mean", p, trim_fraction=0.0), fuse("mean", p), atol=1e-6
    )


def test_trimming_drops_one_poisoned_client() -> None:
    p = np.repeat(soft_labels((1, 6, 4), seed=9), 5, axis=0)
    p[2] = np.eye(4)[np.zeros(6, dtype=int)]
    np.testing.assert_allclose(fuse("trimmed-mean", p, trim_fraction=0.2)[0], p[0], atol=1e-6)


@pytest.mark.parametrize("bad", [-0.1, 0.5, 0.9])
def test_bad_trim_fraction(bad: float) -> None:
    with pytest.raises(ValueError, match=rf"trim_fraction must be in \[0, 0.5\), got {bad}"):
        make_fusion("trimmed-mean", trim_fraction=bad)
