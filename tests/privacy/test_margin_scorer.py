"""The ``margin`` scorer: anchors with the widest top-two margin score highest."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from fedkd.privacy.scorers import make_scorer


def _identity() -> nn.Module:
    """A model whose logits are its inputs: the scorer sees chosen margins."""
    model = nn.Linear(3, 3)
    with torch.no_grad():
        model.weight.copy_(torch.eye(3))
        model.bias.zero_()
    return model


def test_the_widest_margins_score_highest_and_the_median_scores_zero() -> None:
    # Softmax margins p1 − p2 rise from row 0 to row 4; rows 2–4 are above the median.
    logits = np.array(
        [[0.0, 0.0, 0.0], [1.0, 0.5, 0.0], [2.0, 0.5, 0.0], [4.0, 0.0, 0.0], [9.0, 0.0, 0.0]],
        dtype=np.float32,
    )
    scores = make_scorer("margin").score(_identity(), logits, None)
    assert scores.shape == (5,) and scores.dtype == np.float64
    assert np.all((scores >= 0) & (scores <= 1))
    probs = torch.softmax(torch.from_numpy(logits).double(), dim=1).topk(2).values.numpy()
    margin = probs[:, 0] - probs[:, 1]
    median = float(np.median(margin))
    np.testing.assert_allclose(scores, np.clip((margin - median) / (1 - median), 0, 1))
    assert scores[0] == scores[1] == scores[2] == 0.0 and 0 < scores[3] < scores[4] < 1


def test_margin_reads_no_private_record_so_a_dp_run_keeps_its_epsilon() -> None:
    from fedkd.config import parse_run_config

    assert not make_scorer("margin").reads_private_records
    cfg = parse_run_config({"dp": True, "dp-target-epsilon": 3.0, "swing-scorer": "margin"})
    assert cfg.claims_dp
