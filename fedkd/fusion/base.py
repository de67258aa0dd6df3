"""What every strategy shares: Flower-style round hooks, and the soft-label base class.

A :class:`Strategy` has two hooks, as Flower's strategies do: ``configure_round`` says what
each node is asked to release (soft labels on which anchors, weights, or nothing), and
``aggregate`` turns the valid contributions into what each node receives next round.  The
server's coordinator knows nothing else about a strategy; nodes never see one.

Soft-label strategies derive from :class:`FusionStrategy` and implement only the
tensor-level ``_fuse``:

``P ∈ R^{K×T×C}`` holds the soft labels of the K clients that replied validly this round,
on T shared public anchors over C classes; every row ``P_j[t]`` is a distribution.  A
strategy returns a personalised target ``F_k ∈ R^{T×C}`` for every input client k, and,
when it is a linear mixture, the row-stochastic matrix ``M`` with ``F_k = Σ_j M_kj P_j``.

The checks live here, once; each strategy file holds only its formula (``_fuse``).
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

ROW_TOLERANCE = 1e-3
"""How far a soft-label row may sum from 1 (fp16/int8 payloads round) before it is refused."""

ModelState = dict[str, np.ndarray]
"""A model's parameters by name, as weight-averaging strategies exchange them."""


class Release(enum.Enum):
    """What a strategy asks a node to release after local training.

    Fusion's own vocabulary: strategies know nothing of the wire.  The coordinator
    translates it into the request's release kind (the values are the same words).
    """

    NOTHING = "nothing"
    SOFT_LABELS = "soft-labels"
    WEIGHTS = "weights"


@dataclass(frozen=True)
class FusionInput:
    """One round's soft labels.

    Attributes
    ----------
    soft_labels
        ``(K, T, C)`` float array; rows on the probability simplex.
    weights
        ``(K,)`` nonnegative per-client weights (e.g. local example counts); ``None`` is
        uniform.  Only strategies that ask for them use them.
    """

    soft_labels: np.ndarray
    weights: np.ndarray | None = None


@dataclass(frozen=True)
class FusionResult:
    """Personalised targets.

    Attributes
    ----------
    targets
        ``(K, T, C)`` float32; ``targets[k]`` is client k's target, rows on the simplex.
    mixing
        ``(K, K)`` row-stochastic ``M`` with ``targets[k] = Σ_j M[k, j] P_j`` when the
        strategy is a linear mixture of the clients' soft labels, else ``None``.
    """

    targets: np.ndarray
    mixing: np.ndarray | None = None


@dataclass(frozen=True)
class Instruction:
    """What one node is asked to release this round."""

    release: Release
    anchor_indices: np.ndarray  # uint32 (T,); empty unless soft labels are asked for


@dataclass(frozen=True)
class Contribution:
    """One node's valid reply, as a strategy sees it (checked against its instruction)."""

    soft_labels: np.ndarray | None = None  # (T, C), rows on the simplex
    weights: ModelState | None = None
    num_examples: int = 0  # 0 when the node keeps its record count to itself (DP)


@dataclass(frozen=True)
class Knowledge:
    """What a node receives for the next round: targets on this round's anchors, or weights."""

    targets: np.ndarray | None = None  # (T, C)
    weights: ModelState | None = None


@dataclass(frozen=True)
class Aggregate:
    """A round's result: knowledge per node, and knowledge that stands for every node.

    ``shared`` (e.g. a global model) is delivered to every node until a later round
    replaces it; ``per_node`` knowledge is delivered once, in the next round only.
    """

    per_node: Mapping[int, Knowledge]
    shared: Knowledge | None = None
    excluded: Mapping[int, str] = field(default_factory=dict)
    """Nodes whose contribution the strategy could not use, and why (the rest are fused)."""
    rules: Mapping[int, str] = field(default_factory=dict)
    """The declared reply rule behind each exclusion (``fusion.model`` when not given)."""


class Strategy(ABC):
    """A server-side strategy: what to ask each node for, and what to make of the answers.

    Subclasses are frozen dataclasses whose fields are the strategy's parameters (set from
    run-config keys prefixed with the strategy's name, e.g. ``knfu-beta``).
    """

    name: ClassVar[str]
    personalised: ClassVar[bool] = False
    identical_architectures: ClassVar[bool] = False
    """Whether every node must run the same architecture (weight averaging)."""

    @abstractmethod
    def configure_round(
        self, round_: int, nodes: Sequence[int], anchors: np.ndarray
    ) -> dict[int, Instruction]:
        """What each of ``nodes`` is asked to release in ``round_``.

        ``anchors`` are the round's transfer-set rows (the coordinator's schedule); a
        strategy that exchanges no soft labels ignores them.
        """

    @abstractmethod
    def aggregate(self, round_: int, contributions: Mapping[int, Contribution]) -> Aggregate:
        """Fuse the round's valid contributions (at least one) into what nodes receive."""


class FusionStrategy(Strategy):
    """Server-side fusion of the clients' soft labels into per-client targets.

    Subclasses implement :meth:`_fuse` on already-validated inputs; the round hooks ask
    every node for soft labels on the round's anchors and hand each its row of the result.
    """

    def configure_round(
        self, round_: int, nodes: Sequence[int], anchors: np.ndarray
    ) -> dict[int, Instruction]:
        """Every node releases soft labels on ``anchors``."""
        ask = Instruction(Release.SOFT_LABELS, anchors)
        return dict.fromkeys(nodes, ask)

    def aggregate(self, round_: int, contributions: Mapping[int, Contribution]) -> Aggregate:
        """:meth:`fuse` over the contributions, in node order; node k gets ``targets[k]``."""
        nodes = sorted(contributions)
        stacked = np.stack([_soft_labels(contributions[n]) for n in nodes])
        result = self.fuse(
            FusionInput(soft_labels=stacked, weights=contribution_weights(contributions, nodes))
        )
        return Aggregate(
            per_node={n: Knowledge(targets=result.targets[k]) for k, n in enumerate(nodes)}
        )

    def fuse(self, inputs: FusionInput) -> FusionResult:
        """Validate ``inputs``, then apply the strategy's formula.

        Parameters
        ----------
        inputs
            Soft labels ``(K, T, C)`` and optional weights ``(K,)``.

        Returns
        -------
        FusionResult
            float32 targets ``(K, T, C)`` with rows on the simplex, and the mixing matrix
            where the strategy has one.

        Raises
        ------
        ValueError
            If the soft labels are not 3-D, have no client or class, contain NaN/inf or
            negative entries, or have a row not summing to 1 within ``ROW_TOLERANCE``; or
            if the weights have the wrong shape, are negative, non-finite or all zero.
        """
        p = _checked_soft_labels(inputs.soft_labels)
        w = _checked_weights(inputs.weights, p.shape[0])
        if p.shape[1] == 0:
            # No anchors this round: every formula's answer is the empty target.
            return FusionResult(targets=np.zeros(p.shape, dtype=np.float32), mixing=None)
        result = self._fuse(p, w)
        if result.targets.shape != p.shape:
            raise RuntimeError(
                f"{self.name} returned targets of shape {result.targets.shape}, expected {p.shape}"
            )
        # Float round-off can leave -1e-17 or a row off by an ulp; the contract is the simplex.
        targets = np.clip(result.targets, 0.0, None)
        targets = targets / targets.sum(axis=2, keepdims=True)
        return FusionResult(targets=targets.astype(np.float32), mixing=result.mixing)

    @abstractmethod
    def _fuse(self, p: np.ndarray, w: np.ndarray) -> FusionResult:
        """Apply the formula.

        Parameters
        ----------
        p
            float64 ``(K, T, C)``, ``K, T, C ≥ 1``, rows exactly renormalised.
        w
            float64 ``(K,)``, nonnegative, summing to 1.
        """


PLAUSIBLE_COUNT_FACTOR = 3.0
"""A reported record count counts for at most this many times the median reported one."""


def contribution_weights(
    contributions: Mapping[int, Contribution], nodes: Sequence[int]
) -> np.ndarray:
    """Each node's record count, bounded; uniform when no node reported one (DP).

    Counts are client claims.  The rule: ``w_k = min(max(n_k, 1), 3 · median_j n_j)``
    over the round's contributions, so one node claiming 10^9 records among five holds at
    most 3/7 of the weight, one claiming 1 record holds its share of 1, and one claiming 0
    counts as 1 rather than turning the round uniform.  Under DP nodes report no count
    (the coordinator also hands 0 for every node then): the weights are uniform.
    """
    counts = np.array([contributions[n].num_examples for n in nodes], dtype=np.float64)
    if not counts.any():
        return np.ones_like(counts)
    counts = np.maximum(counts, 1.0)
    cap = PLAUSIBLE_COUNT_FACTOR * float(np.median(counts))
    return np.minimum(counts, cap)


def _soft_labels(contribution: Contribution) -> np.ndarray:
    if contribution.soft_labels is None:
        raise ValueError("a soft-label strategy got a contribution without soft labels")
    return contribution.soft_labels


def _checked_soft_labels(soft_labels: np.ndarray) -> np.ndarray:
    p = np.asarray(soft_labels, dtype=np.float64)
    if p.ndim != 3:
        raise ValueError(
            f"soft labels must have shape (clients, anchors, classes), got shape {p.shape}"
        )
    if p.shape[0] < 1 or p.shape[2] < 1:
        raise ValueError(f"soft labels need at least one client and one class, got {p.shape}")
    if not np.all(np.isfinite(p)):
        raise ValueError(f"soft labels contain NaN or inf ({np.sum(~np.isfinite(p))} entries)")
    if np.any(p < 0):
        raise ValueError(f"soft labels must be nonnegative, got min {p.min():.3g}")
    sums = p.sum(axis=2, keepdims=True)
    deviation = float(np.max(np.abs(sums - 1.0), initial=0.0))
    if deviation > ROW_TOLERANCE:
        raise ValueError(
            f"soft-label rows must sum to 1 (within {ROW_TOLERANCE}), "
            f"got a max deviation of {deviation:.3g}"
        )
    renormalised: np.ndarray = p / sums
    return renormalised


def _checked_weights(weights: np.ndarray | None, num_clients: int) -> np.ndarray:
    if weights is None:
        return np.full(num_clients, 1.0 / num_clients)
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (num_clients,):
        raise ValueError(f"weights must have shape ({num_clients},), got {w.shape}")
    if not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
        raise ValueError(f"weights must be finite, nonnegative and not all zero, got {w}")
    normalised: np.ndarray = w / w.sum()
    return normalised
