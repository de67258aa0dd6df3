"""Canary scores as each attacker computes them from what it holds (see threat_model).

Every view ends in a model the attacker can query; a canary's score is the model's
logit-scaled confidence in the canary's label (higher: more likely inserted), and its
log-perplexity ``−log2 p(label)`` feeds the skew-normal exposure.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from fedkd.audit.membership import logit_confidence
from fedkd.distill.loops import distil, predict_logits
from fedkd.distill.settings import DistillConfig, OptimiserConfig
from fedkd.node.model import init_model, load_model
from server.releases import Release

SURROGATE_EPOCHS = 10


@dataclass(frozen=True)
class CanaryScores:
    """Per canary: the attack score and the log-perplexity of its label."""

    score: np.ndarray
    log_perplexity: np.ndarray


def score(model: nn.Module, x: np.ndarray, y: np.ndarray) -> CanaryScores:
    """Query ``model`` as a black box (class probabilities) on the canaries."""
    with torch.no_grad():
        logits = torch.from_numpy(predict_logits(model, x))
        probabilities = torch.softmax(logits.double(), dim=1).numpy()
    p_y = np.clip(probabilities[np.arange(len(y)), y], 1e-300, 1.0)
    return CanaryScores(logit_confidence(probabilities, y), -np.log2(p_y))


def held_model(path: Path, *, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """A final model a node kept (the peer's own, or the target's for the model holder)."""
    return load_model(path, input_shape=input_shape, num_classes=num_classes)


def surrogate_from_releases(
    releases: list[Release],
    transfer_x: np.ndarray,
    *,
    architecture: str,
    num_classes: int,
    temperature: float,
    seed: int,
    epochs: int = SURROGATE_EPOCHS,
) -> nn.Module:
    """The server's stand-in for the target's model: distilled from every round's released
    soft labels on their anchors (the server never sees the model itself).

    Later rounds come last, so the surrogate ends closest to the target's final state.
    """
    if not releases:
        raise ValueError("the server recorded no release of the target")
    model = init_model(
        architecture, input_shape=tuple(transfer_x.shape[1:]), num_classes=num_classes,
        run_seed=seed,
    )  # fmt: skip
    settings = DistillConfig(temperature=temperature, epochs=epochs, kl_weight=1.0, ce_weight=0.0)
    empty_x = np.zeros((0, *transfer_x.shape[1:]), np.float32)
    empty_y = np.zeros(0, np.int64)
    for i, release in enumerate(sorted(releases, key=lambda r: r.round)):
        anchors = transfer_x[release.anchors]
        distil(
            model, anchors, release.soft_labels.astype(np.float32), empty_x, empty_y,
            distill_cfg=settings, cfg=OptimiserConfig(), seed=seed + i,
        )  # fmt: skip
    return model.eval()
