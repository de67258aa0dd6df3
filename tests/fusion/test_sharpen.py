"""Sharpening after fusion: DS-FL's ERA on any strategy's targets, and its DP default."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fedkd.config import parse_run_config
from fedkd.fusion import FusionInput, make_fusion
from fedkd.fusion.sharpen import sharpen, sharpening_for


def _flat_teachers(k: int = 10, t: int = 50, c: int = 10, seed: int = 0) -> np.ndarray:
    """Unconfident soft labels: the right class gets 0.2, the rest share 0.8."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, c, size=t)
    p = np.full((k, t, c), 0.8 / (c - 1))
    p[:, np.arange(t), labels] = 0.2
    return p + rng.uniform(0, 0.01, size=p.shape)


def test_sharpening_the_mean_is_dsfl() -> None:
    p = _flat_teachers()
    p = p / p.sum(axis=2, keepdims=True)
    mean = make_fusion("mean").fuse(FusionInput(p)).targets
    dsfl = make_fusion("dsfl", temperature=0.1).fuse(FusionInput(p)).targets
    np.testing.assert_allclose(sharpen(mean, 0.1), dsfl, atol=1e-5)


def test_sharpening_keeps_the_argmax_and_restores_confidence() -> None:
    p = _flat_teachers()
    p = p / p.sum(axis=2, keepdims=True)
    mean = make_fusion("mean").fuse(FusionInput(p)).targets[0]
    sharp = sharpen(mean, 0.1)
    assert (sharp.argmax(axis=1) == mean.argmax(axis=1)).all()
    # 0.2 against 0.089: raised to the 10th power the consensus class holds ~0.9997.
    assert mean.max(axis=1).max() < 0.25
    assert sharp.max(axis=1).min() > 0.99
    np.testing.assert_allclose(sharp.sum(axis=1), 1.0, atol=1e-6)


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.floats(0.0, 1.0), min_size=2, max_size=12).filter(lambda v: sum(v) > 1e-6),
    st.floats(0.01, 1.0),
)
def test_sharpened_rows_stay_on_the_simplex(row: list[float], temperature: float) -> None:
    p = np.asarray(row) / sum(row)
    out = sharpen(p[None, :], temperature)
    assert np.isfinite(out).all() and (out >= 0).all()
    assert abs(float(out.sum()) - 1.0) < 1e-5


@pytest.mark.parametrize("bad", [0.0, -0.1, 1.5, float("nan")])
def test_a_temperature_outside_zero_one_is_refused(bad: float) -> None:
    with pytest.raises(ValueError, match="sharpening temperature"):
        sharpen(np.full((1, 3), 1 / 3), bad)


def test_dp_runs_sharpen_by_default_and_dsfl_is_not_sharpened_twice() -> None:
    assert parse_run_config({}).fusion_sharpening == 1.0
    assert parse_run_config({"dp-target-epsilon": 3.0}).fusion_sharpening == 0.1
    assert (
        parse_run_config({"dp-target-epsilon": 3.0, "fusion-sharpen": 1.0}).fusion_sharpening == 1.0
    )
    assert sharpening_for(make_fusion("dsfl"), 0.1) == 1.0
    assert sharpening_for(make_fusion("knfu"), 0.1) == 0.1
    with pytest.raises(ValueError, match="fusion-sharpen"):
        parse_run_config({"fusion-sharpen": 2.0})
