"""Poisoned releases are valid probability rows that do the harm each attack names."""

from __future__ import annotations

import numpy as np
import pytest

from fedkd.node.adversary import ATTACKS, CONFIDENCE, poison
from fedkd.node.config import parse_node_config


def _honest(t: int = 200, c: int = 5) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.dirichlet(np.full(c, 0.3), size=t)


@pytest.mark.parametrize("attack", ATTACKS)
def test_every_attack_releases_valid_rows(attack: str) -> None:
    profile = np.array([0.5, 0.3, 0.2, 0.0, 0.0])
    rows = poison(_honest(), attack, rng=np.random.default_rng(1), profile=profile)
    assert rows.shape == (200, 5) and rows.dtype == np.float32
    assert np.all(rows >= 0) and np.allclose(rows.sum(axis=1), 1, atol=1e-6)


def test_label_flip_moves_every_class_by_one() -> None:
    honest = _honest()
    rows = poison(honest, "label-flip", rng=np.random.default_rng(0))
    assert np.array_equal(np.argmax(rows, axis=1), (np.argmax(honest, axis=1) + 1) % 5)


def test_confident_wrong_puts_its_confidence_on_the_least_likely_class() -> None:
    honest = _honest()
    rows = poison(honest, "confident-wrong", rng=np.random.default_rng(0))
    assert np.array_equal(np.argmax(rows, axis=1), np.argmin(honest, axis=1))
    assert np.allclose(rows.max(axis=1), CONFIDENCE)


def test_mimic_matches_the_target_profile_while_every_row_is_wrong() -> None:
    honest = _honest()
    profile = np.array([0.5, 0.3, 0.2, 0.0, 0.0])
    rows = poison(honest, "mimic", rng=np.random.default_rng(3), profile=profile)
    counts = np.bincount(np.argmax(rows, axis=1), minlength=5)
    assert counts.tolist() == [100, 60, 40, 0, 0]  # the profile, exactly
    wrong = np.argmax(rows, axis=1) != np.argmax(honest, axis=1)
    assert wrong.mean() >= 0.95
    # The mean row (what KnFu compares) is the profile up to the spread-out mass.
    assert (
        np.abs(
            rows.mean(axis=0) - (CONFIDENCE * profile + (1 - CONFIDENCE) / 4 * (1 - profile))
        ).max()
        < 1e-6
    )


def test_only_simulated_nodes_may_poison() -> None:
    with pytest.raises(ValueError, match="only for simulated nodes"):
        parse_node_config({"name": "x", "data": "csv", "adversary": "random"})
    with pytest.raises(ValueError, match="unknown adversary 'nope'; known: "):
        parse_node_config({"name": "x", "adversary": "nope"})
    with pytest.raises(ValueError, match="adversary-profile"):
        parse_node_config({"name": "x", "adversary": "mimic", "adversary-profile": "a b"})
    node = parse_node_config({"name": "x", "adversary": "mimic", "adversary-profile": "1 0 3"})
    assert node.profile() == (1.0, 0.0, 3.0)
