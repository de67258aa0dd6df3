"""What a privacy-likelihood scorer is, and the registry that names them."""

from __future__ import annotations

import abc
from typing import ClassVar

import numpy as np
from torch import nn


class PrivacyScorer(abc.ABC):
    """Scores each anchor with p_i ∈ [0, 1]: how likely its release reveals private data.

    ``reads_private_records`` is part of the privacy contract: with DP on, a scorer that
    reads private records turns the release into something that is no longer
    post-processing of the DP model, and the run must stop claiming an ε.
    """

    name: ClassVar[str]
    reads_private_records: ClassVar[bool]

    @abc.abstractmethod
    def score(
        self, model: nn.Module, anchors: np.ndarray, private_x: np.ndarray | None
    ) -> np.ndarray:
        """``(N,)`` float64 in [0, 1], one per anchor."""


_SCORERS: dict[str, type[PrivacyScorer]] = {}


def register_scorer(cls: type[PrivacyScorer]) -> type[PrivacyScorer]:
    if cls.name in _SCORERS:
        raise ValueError(f"privacy scorer {cls.name!r} registered twice")
    _SCORERS[cls.name] = cls
    return cls


def make_scorer(name: str) -> PrivacyScorer:
    try:
        return _SCORERS[name]()
    except KeyError:
        raise ValueError(f"unknown privacy scorer {name!r}; known: {sorted(_SCORERS)}") from None


def scorer_names() -> list[str]:
    return sorted(_SCORERS)


def relative_excess(values: np.ndarray, reference: float) -> np.ndarray:
    """``clip((v − ref) / (1 − ref), 0, 1)``: how far above a typical level, in [0, 1]."""
    if reference >= 1:
        return np.zeros_like(values, dtype=np.float64)
    scaled: np.ndarray = np.clip((values - reference) / (1 - reference), 0.0, 1.0)
    return scaled
