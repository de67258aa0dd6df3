"""Scorers return [0, 1] scores that single out what they claim to single out."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fedkd.models import ModelSpec, build_model
from fedkd.privacy.scorers import make_scorer, scorer_names


def model() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model("mlp-m", ModelSpec(input_shape=(64,), num_classes=10))


def test_registry_names_the_scorers_and_their_contract() -> None:
    assert {"confidence", "proximity"} <= set(scorer_names())
    assert make_scorer("proximity").reads_private_records
    assert not make_scorer("confidence").reads_private_records
    with pytest.raises(ValueError, match="unknown privacy scorer"):
        make_scorer("oracle")


def test_proximity_flags_anchors_that_copy_private_records() -> None:
    rng = np.random.default_rng(0)
    private = rng.uniform(size=(300, 64)).astype(np.float32)
    copies = private[:20] + rng.normal(scale=1e-3, size=(20, 64)).astype(np.float32)
    fresh = rng.uniform(size=(80, 64)).astype(np.float32)
    p = make_scorer("proximity").score(model(), np.concatenate([copies, fresh]), private)
    assert p.shape == (100,) and p.min() >= 0 and p.max() <= 1
    assert p[:20].min() > 0.95
    assert p[20:].mean() < 0.3


def test_proximity_needs_private_records() -> None:
    with pytest.raises(ValueError, match="two private records"):
        make_scorer("proximity").score(model(), np.zeros((3, 64), np.float32), None)


def test_confidence_ranks_the_most_confident_anchors_highest() -> None:
    net = model()
    anchors = np.random.default_rng(1).normal(size=(200, 64)).astype(np.float32)
    with torch.no_grad():
        top = torch.softmax(net(torch.from_numpy(anchors)), 1).max(1).values.numpy()
    p = make_scorer("confidence").score(net, anchors, None)
    assert p.min() >= 0 and p.max() <= 1
    assert (p == 0).mean() >= 0.5  # everything at or below the median scores 0
    above = top > np.median(top)
    assert np.corrcoef(top[above], p[above])[0, 1] > 0.99
