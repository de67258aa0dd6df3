"""``proximity``: anchors that sit close to a private record in the model's embedding.

The embedding is the input of the model's last Linear layer.  With s_i the cosine
similarity of anchor i to its nearest private record, and s_ref the median similarity of a
private record to its nearest *other* private record (how close private points typically
are to each other)::

    p_i = clip((s_i − s_ref) / (1 − s_ref), 0, 1)

An anchor nearer to some private record than private records are to each other is treated
as likely to carry that record's information.  Reads private records: under DP the run
loses its ε claim when this scorer is used.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import torch
from torch import nn

from fedkd.privacy.scorers.base import PrivacyScorer, register_scorer, relative_excess

# Nearest-neighbour search is O(N·n); the reference level needs only a sample.
_REFERENCE_SAMPLE = 2000
_BATCH = 1024


def embeddings(model: nn.Module, x: np.ndarray) -> torch.Tensor:
    """L2-normalised inputs of ``model``'s last Linear layer on ``x``."""
    last_linear = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
    captured: list[torch.Tensor] = []
    handle = last_linear.register_forward_hook(
        lambda _m, inputs, _out: captured.append(inputs[0].detach().float().cpu())
    )
    device = next(model.parameters()).device
    model.eval()
    try:
        with torch.no_grad():
            for i in range(0, len(x), _BATCH):
                model(torch.from_numpy(x[i : i + _BATCH]).to(device))
    finally:
        handle.remove()
    features = torch.cat(captured) if captured else torch.zeros((0, last_linear.in_features))
    return torch.nn.functional.normalize(features, dim=1)


@register_scorer
class ProximityScorer(PrivacyScorer):
    name = "proximity"
    reads_private_records: ClassVar[bool] = True

    def score(
        self, model: nn.Module, anchors: np.ndarray, private_x: np.ndarray | None
    ) -> np.ndarray:
        if private_x is None or len(private_x) < 2:
            raise ValueError("the proximity scorer needs at least two private records")
        private = embeddings(model, private_x)
        nearest = (embeddings(model, anchors) @ private.T).max(dim=1).values.numpy()
        sample = private[: min(len(private), _REFERENCE_SAMPLE)]
        within = sample @ sample.T
        within.fill_diagonal_(-np.inf)
        reference = float(within.max(dim=1).values.median())
        return relative_excess(nearest.astype(np.float64), reference)
