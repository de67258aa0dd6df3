"""``local``: against a naive reference, and its flags."""

from __future__ import annotations

import numpy as np
import pytest

from fedkd.fusion import FusionInput, Release, make_fusion
from tests.fusion._inputs import SHAPES, soft_labels


def naive_local(p: np.ndarray) -> np.ndarray:
    k, t, c = p.shape
    out = np.zeros((k, t, c))
    for i in range(k):
        for a in range(t):
            for cl in range(c):
                out[i, a, cl] = p[i, a, cl]
    return out


@pytest.mark.parametrize("shape", SHAPES)
def test_local_matches_naive(shape: tuple[int, int, int]) -> None:
    p = soft_labels(shape)
    result = make_fusion("local").fuse(FusionInput(p))
    np.testing.assert_allclose(result.targets, naive_local(p), atol=1e-6)
    assert result.mixing is not None
    np.testing.assert_array_equal(result.mixing, np.eye(shape[0]))


def test_local_asks_nobody_for_anything() -> None:
    strategy = make_fusion("local")
    assert strategy.personalised and not strategy.identical_architectures
    asks = strategy.configure_round(1, [0, 1], np.arange(3, dtype=np.uint32))
    assert {a.release for a in asks.values()} == {Release.NOTHING}
