"""``dsfl`` (DS-FL entropy-reduction averaging): naive reference and closed forms."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fedkd.fusion import FusionInput, make_fusion
from tests.fusion._inputs import SHAPES, fuse, soft_labels


def naive_dsfl(p: np.ndarray, temperature: float) -> np.ndarray:
    k, t, c = p.shape
    out = np.zeros((k, t, c))
    for a in range(t):
        logits = []
        for cl in range(c):
            avg = sum(p[j, a, cl] for j in range(k)) / k
            logits.append(max(math.log(avg), math.log(1e-12)) if avg > 0 else math.log(1e-12))
        scaled = [v / temperature for v in logits]
        top = max(scaled)
        z = sum(math.exp(v - top) for v in scaled)
        for i in range(k):
            for cl in range(c):
                out[i, a, cl] = math.exp(scaled[cl] - top) / z
    return out


def entropy(q: np.ndarray) -> float:
    return float(-(q * np.log(np.clip(q, 1e-12, None))).sum(axis=-1).mean())


@pytest.mark.parametrize("temperature", [0.1, 0.5, 1.0, 2.0])
@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("shape", SHAPES)
def test_dsfl_matches_naive(shape: tuple[int, int, int], sparse: bool, temperature: float) -> None:
    p = soft_labels(shape, seed=1, sparse=sparse)
    np.testing.assert_allclose(
        fuse("dsfl", p, temperature=temperature), naive_dsfl(p, temperature), atol=1e-6
    )


def test_temperature_one_is_the_mean() -> None:
    p = soft_labels((5, 8, 6), seed=3, sparse=True)
    np.testing.assert_allclose(fuse("dsfl", p, temperature=1.0), fuse("mean", p), atol=1e-6)


def test_dsfl_is_sharper_than_mean() -> None:
    p = soft_labels((4, 20, 10), seed=4)
    assert entropy(fuse("dsfl", p, temperature=0.3)) < entropy(fuse("mean", p)) - 0.1
    assert entropy(fuse("dsfl", p)) < entropy(fuse("dsfl", p, temperature=0.3))


def test_dsfl_is_not_a_mixture() -> None:
    assert make_fusion("dsfl").fuse(FusionInput(soft_labels((3, 4, 5)))).mixing is None


@pytest.mark.parametrize("bad", [0.0, -0.5, math.inf, math.nan])
def test_bad_temperature(bad: float) -> None:
    with pytest.raises(ValueError, match=f"temperature must be finite and > 0, got {bad}"):
        make_fusion("dsfl", temperature=bad)
