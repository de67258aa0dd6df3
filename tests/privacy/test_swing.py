"""Swing releases valid distributions at the configured per-sample temperatures."""

from __future__ import annotations

import numpy as np
import pytest

from fedkd.privacy.csprng import ChaCha20Stream
from fedkd.privacy.swing import SwingConfig, swing_release, swing_targets, swing_temperatures


def stream(key: int) -> ChaCha20Stream:
    return ChaCha20Stream.reproducible(str(key))


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    out: np.ndarray = e / e.sum(axis=1, keepdims=True)
    return out


def test_temperatures_interpolate_between_base_and_max() -> None:
    cfg = SwingConfig(base_temperature=2.0, max_temperature=10.0)
    p = np.array([0.0, 0.25, 1.0])
    np.testing.assert_allclose(swing_temperatures(p, cfg), [2.0, 4.0, 10.0])


def test_without_noise_each_row_is_softmax_at_its_own_temperature() -> None:
    rng = np.random.default_rng(0)
    logits, p = rng.normal(size=(50, 10)) * 3, rng.uniform(size=50)
    cfg = SwingConfig(base_temperature=1.0, max_temperature=5.0, noise="none", floor=1e-12)
    released = swing_release(logits, p, cfg, randomness=stream(0))
    expected = softmax(logits / (1.0 + 4.0 * p)[:, None])
    np.testing.assert_allclose(released, expected, atol=1e-6)
    # Higher privacy likelihood → hotter → flatter (higher entropy) rows.
    entropy = -(released * np.log(released)).sum(axis=1)
    assert np.corrcoef(p, entropy)[0, 1] > 0.5


@pytest.mark.parametrize("law", ["gaussian", "laplace"])
def test_noisy_release_is_a_valid_distribution(law: str) -> None:
    rng = np.random.default_rng(1)
    cfg = SwingConfig(noise=law, noise_scale=0.2, floor=1e-4)
    released = swing_release(
        rng.normal(size=(200, 10)), rng.uniform(size=200), cfg, randomness=stream(3)
    )
    assert released.dtype == np.float32
    assert np.all(released >= 0) and np.all(np.isfinite(released))
    np.testing.assert_allclose(released.sum(axis=1), 1.0, atol=1e-5)
    clean = swing_release(
        rng.normal(size=(200, 10)), np.zeros(200), SwingConfig(noise="none"), randomness=stream(3)
    )
    assert np.abs(released - clean).mean() > 0.01  # the noise is really there
    again = swing_release(
        rng.normal(size=(200, 10)), rng.uniform(size=200), cfg, randomness=stream(3)
    )
    assert again.shape == released.shape


def test_noise_comes_from_the_stream_alone() -> None:
    z, p = np.random.default_rng(2).normal(size=(20, 5)), np.full(20, 0.5)
    cfg = SwingConfig(noise_scale=0.1)
    np.testing.assert_array_equal(
        swing_release(z, p, cfg, randomness=stream(9)),
        swing_release(z, p, cfg, randomness=stream(9)),
    )
    assert not np.array_equal(
        swing_release(z, p, cfg, randomness=stream(9)),
        swing_release(z, p, cfg, randomness=stream(10)),
    )


def test_top_k_keeps_k_entries_and_renormalises() -> None:
    z = np.random.default_rng(4).normal(size=(30, 10))
    released = swing_release(
        z, np.zeros(30), SwingConfig(noise="none", top_k=3), randomness=stream(0)
    )
    assert np.all((released > 0).sum(axis=1) == 3)
    np.testing.assert_allclose(released.sum(axis=1), 1.0, atol=1e-6)
    np.testing.assert_array_equal(released.argmax(axis=1), z.argmax(axis=1))


def test_receiving_side_transform_on_probabilities() -> None:
    probs = softmax(np.random.default_rng(5).normal(size=(10, 4)))
    cfg = SwingConfig(base_temperature=1.0, max_temperature=3.0, noise="none", floor=1e-12)
    # At T = 1 the probabilities come back unchanged; at T = 3 they are p^(1/3), renormalised.
    np.testing.assert_allclose(
        swing_targets(probs, np.zeros(10), cfg, randomness=stream(0)), probs, atol=1e-6
    )
    hot = probs ** (1 / 3) / (probs ** (1 / 3)).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(
        swing_targets(probs, np.ones(10), cfg, randomness=stream(0)), hot, atol=1e-6
    )


def test_bad_settings_and_scores_are_refused() -> None:
    with pytest.raises(ValueError, match="temperatures"):
        SwingConfig(base_temperature=5.0, max_temperature=2.0)
    with pytest.raises(ValueError, match="noise must be"):
        SwingConfig(noise="uniform")
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        swing_temperatures(np.array([0.5, 1.5]), SwingConfig())
    with pytest.raises(ValueError, match="do not match"):
        swing_release(np.zeros((3, 2)), np.zeros(4), SwingConfig(), randomness=stream(0))
