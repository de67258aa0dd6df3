"""The server's likelihood ratio on the releases: the statistic against a hand-computed
value, and a planted trace that LiRA on the releases finds while chance stays chance."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fedkd.audit.release_attack import anchor_order, release_phi
from fedkd.audit.shadow_attack import lira
from server.releases import Release


def test_the_statistic_is_the_nearest_anchors_logit_confidence() -> None:
    transfer = np.eye(4, dtype=np.float32)
    canaries = np.array([[1, 0, 0, 0], [0, 0.9, 0.1, 0]], np.float32)
    order = anchor_order(transfer, canaries)
    assert order[:, 0].tolist() == [0, 1]
    # Round 1 released anchors 0 and 1, round 2 anchors 1 and 2.
    releases = [
        Release(1, np.array([0, 1]), np.array([[0.8, 0.2], [0.3, 0.7]])),
        Release(2, np.array([2, 1]), np.array([[0.5, 0.5], [0.1, 0.9]])),
    ]
    phi = release_phi(releases, order, np.array([0, 1]), transfer_size=4, nearest=1)
    # Canary 0 (label 0): anchor 0 in round 1 (0.8), anchor 1 in round 2 (0.1).
    assert phi[0] == pytest.approx((math.log(0.8 / 0.2) + math.log(0.1 / 0.9)) / 2)
    # Canary 1 (label 1): anchor 1 both rounds (0.7, 0.9).
    assert phi[1] == pytest.approx((math.log(0.7 / 0.3) + math.log(0.9 / 0.1)) / 2)


def _releases(
    rng: np.random.Generator, transfer: np.ndarray, order: np.ndarray, labels: np.ndarray,
    inside: np.ndarray, trace: float,
) -> list[Release]:  # fmt: skip
    """Two rounds of noisy soft labels; IN canaries push their nearest anchors to their label."""
    out = []
    for round_ in (1, 2):
        logits = rng.normal(0.0, 1.0, (len(transfer), 3))
        for canary in np.flatnonzero(inside):
            logits[order[canary, :3], labels[canary]] += trace
        p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        out.append(Release(round_, np.arange(len(transfer)), p))
    return out


@pytest.mark.parametrize(("trace", "band"), [(2.0, (0.9, 1.0)), (0.0, (0.35, 0.65))])
def test_lira_on_releases_finds_a_planted_trace_and_nothing_without_one(
    trace: float, band: tuple[float, float]
) -> None:
    rng = np.random.default_rng(3)
    transfer = rng.normal(size=(600, 8)).astype(np.float32)
    canaries = rng.normal(size=(200, 8)).astype(np.float32) * 3
    labels = rng.integers(0, 3, 200)
    order = anchor_order(transfer, canaries)

    def phi(inside: np.ndarray) -> np.ndarray:
        releases = _releases(rng, transfer, order, labels, inside, trace)
        return release_phi(releases, order, labels, transfer_size=600, nearest=3)

    shadow_in = rng.random((16, 200)) < 0.5
    shadows = np.stack([phi(row) for row in shadow_in])
    member = rng.random(200) < 0.5
    result = lira(phi(member), shadows, shadow_in, member)
    assert band[0] <= result.online.auc <= band[1]
    assert result.scores.shape == (200,)
