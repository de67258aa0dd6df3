"""``fedavg``: weight averaging, the reference point, not a soft-label strategy.

McMahan, Moore, Ramage, Hampson, Agüera y Arcas, "Communication-Efficient Learning of Deep
Networks from Decentralized Data", AISTATS 2017, arXiv:1602.05629::

    θ[key] = Σ_j (n_j / Σ_i n_i) · θ_j[key]       for every key, homogeneous models only

``fedavg_weights`` is the formula; ``FedAvg`` the strategy: it asks every node for its
weights and gives every node the average (a standing global model).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from fedkd.fusion.base import (
    Aggregate,
    Contribution,
    Instruction,
    Knowledge,
    Release,
    Strategy,
    contribution_weights,
)
from fedkd.fusion.outliers import norm_outliers
from fedkd.fusion.registry import register_fusion


def fedavg_weights(
    state_dicts: Sequence[Mapping[str, np.ndarray]], weights: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """Weighted average of model weights, key by key.

    Parameters
    ----------
    state_dicts
        One mapping ``name → array`` per client, all with the same keys and shapes.
    weights
        ``(len(state_dicts),)`` nonnegative, e.g. local example counts; ``None`` is uniform.

    Returns
    -------
    dict[str, numpy.ndarray]
        The averaged arrays, in the first model's key order and dtypes (integer tensors,
        e.g. BatchNorm's step counter, are rounded).

    Raises
    ------
    ValueError
        No models, bad weights, a key missing from or extra in a model (named), or a key
        whose shapes differ across models (named).
    """
    if not state_dicts:
        raise ValueError("fedavg needs at least one model")
    n = len(state_dicts)
    w = np.full(n, 1.0) if weights is None else np.asarray(weights, dtype=np.float64)
    if w.shape != (n,) or not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
        raise ValueError(
            f"fedavg weights must be {n} finite nonnegative values, not all 0, got {w}"
        )
    w = w / w.sum()
    keys = list(state_dicts[0])
    for i, sd in enumerate(state_dicts[1:], start=1):
        missing, extra = sorted(set(keys) - set(sd)), sorted(set(sd) - set(keys))
        if missing or extra:
            raise ValueError(
                f"model {i} does not match model 0: missing keys {missing}, extra keys {extra}"
            )
    averaged: dict[str, np.ndarray] = {}
    for key in keys:
        shapes = [np.shape(sd[key]) for sd in state_dicts]
        if len(set(shapes)) != 1:
            raise ValueError(f"tensor {key!r} has different shapes across models: {shapes}")
        stacked = np.stack([np.asarray(sd[key], dtype=np.float64) for sd in state_dicts])
        mean = np.tensordot(w, stacked, axes=1)
        dtype = np.asarray(state_dicts[0][key]).dtype
        if np.issubdtype(dtype, np.integer):
            mean = np.rint(mean)
        averaged[key] = mean.astype(dtype)
    return averaged


@register_fusion
@dataclass(frozen=True)
class FedAvg(Strategy):
    """Weight averaging over the nodes that replied, weighted by their capped record counts
    (uniform under DP); models outside the round's robust spread are refused
    (:mod:`fedkd.fusion.outliers`)."""

    name = "fedavg"
    identical_architectures = True

    def configure_round(
        self, round_: int, nodes: Sequence[int], anchors: np.ndarray
    ) -> dict[int, Instruction]:
        ask = Instruction(Release.WEIGHTS, np.zeros(0, dtype=np.uint32))
        return dict.fromkeys(nodes, ask)

    def aggregate(self, round_: int, contributions: Mapping[int, Contribution]) -> Aggregate:
        """The average stands for every node (also those that missed this round).

        Raises
        ------
        ValueError
            A contribution without weights, or models that do not match (named).
        """
        excluded: dict[int, str] = {}
        usable: dict[int, Contribution] = {}
        for n, contribution in sorted(contributions.items()):
            if contribution.weights is None:
                excluded[n] = "contributed no weights to a weight-averaging round"
            else:
                usable[n] = contribution
        if not usable:
            raise ValueError(f"no node contributed weights ({sorted(contributions)})")
        # The architecture most nodes sent is the federation's; a node whose tensors differ
        # in name or shape is excluded (named), not allowed to sink the round.
        signatures = {n: _signature(c.weights or {}) for n, c in usable.items()}
        # Most nodes' architecture; a tie goes to the lowest node id's (never hash order).
        votes = list(signatures.values())
        common = max(votes, key=lambda s: (votes.count(s), -votes.index(s)))
        for n, signature in signatures.items():
            if signature != common:
                excluded[n] = _mismatch(dict(common), dict(signature))
        nodes = [n for n in usable if n not in excluded]
        rules = dict.fromkeys(excluded, "fusion.model")
        far = norm_outliers([usable[n].weights or {} for n in nodes])
        for k, reason in far.items():
            excluded[nodes[k]], rules[nodes[k]] = reason, "fusion.outlier"
        nodes = [n for n in nodes if n not in excluded]
        states = [usable[n].weights or {} for n in nodes]
        averaged = fedavg_weights(states, contribution_weights(usable, nodes))
        if not all(np.all(np.isfinite(v)) for v in averaged.values()):
            raise ValueError("the average of the accepted models is not finite")
        return Aggregate(
            per_node={}, shared=Knowledge(weights=averaged), excluded=excluded, rules=rules
        )


def _signature(weights: Mapping[str, np.ndarray]) -> tuple[tuple[str, tuple[int, ...]], ...]:
    return tuple(sorted((name, tuple(np.shape(array))) for name, array in weights.items()))


def _mismatch(common: dict[str, tuple[int, ...]], theirs: dict[str, tuple[int, ...]]) -> str:
    missing, extra = sorted(set(common) - set(theirs)), sorted(set(theirs) - set(common))
    shapes = sorted(k for k in set(common) & set(theirs) if common[k] != theirs[k])
    return (
        f"weights do not match the other nodes' model: missing {missing}, extra {extra}, "
        f"other shapes {[(k, theirs[k], common[k]) for k in shapes]}"
    )
