"""``knfu``: personalised effective knowledge fusion (our reconstruction of KnFu).

Seyedmohammadi, Atapour, Abouei, Mohammadi, "KnFu: Effective Knowledge Fusion", 2024,
arXiv:2403.11892.  The paper's Eq. 8 was not available to us; this is a reconstruction
from its description (fuse only the *effective* knowledge of each client's *semantic
neighbours*, β = 10), documented as such:

    e_j   = (1 − s)·(1/T) Σ_t P_j[t] + s/C          estimated label distribution, smoothed
    d_kj  = KL(e_k ‖ e_j)                           semantic distance
    w_kj  = softmax_j(−β·d_kj)                      over the neighbours kept (below)
    F_k   = Σ_j w_kj P_j

Neighbours: all clients, or the ``top_m`` largest w_kj, or those with
w_kj ≥ ``threshold``·max_j w_kj; ``include_self=False`` removes j = k (with d_kk = 0 the
client itself otherwise gets the top weight, so at high skew F_k ≈ P_k).  Smoothing with s
keeps the KL finite when payloads are top-k truncated or int8-quantised.

Variants, each a different mechanism, selected by ``effectiveness``:

* ``"distribution"`` — the reconstruction above: one weight per client pair.
* ``"per-class"`` — a neighbour counts on anchor t in proportion to its competence on the
  consensus class c_t = argmax_c (1/K) Σ_j P_j[t, c], estimated by how much mass it puts on
  that class: w_kjt ∝ w_kj · e_j[c_t]^γ (γ = ``class_power``).
* ``"per-sample"`` — a neighbour counts on anchor t in proportion to its confidence there:
  w_kjt ∝ w_kj · exp(−β_s · H(P_j[t])) (β_s = ``sample_beta``, H the entropy).

and ``global_blend`` λ mixes in the global consensus: F_k ← (1 − λ)·F_k + λ·(1/K) Σ_j P_j.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fedkd.fusion.base import FusionResult, FusionStrategy
from fedkd.fusion.registry import register_fusion

EFFECTIVENESS = ("distribution", "per-class", "per-sample")


@register_fusion
@dataclass(frozen=True)
class KnFu(FusionStrategy):
    """Each client gets a mixture of its semantic neighbours' soft labels."""

    name = "knfu"
    personalised = True
    beta: float = 10.0
    top_m: int = 0
    threshold: float = 0.0
    include_self: bool = True
    smoothing: float = 1e-3
    effectiveness: str = "distribution"
    class_power: float = 1.0
    sample_beta: float = 1.0
    global_blend: float = 0.0

    def __post_init__(self) -> None:
        if not self.beta > 0:
            raise ValueError(f"beta must be > 0, got {self.beta}")
        if self.top_m < 0:
            raise ValueError(f"top_m must be >= 0 (0 keeps all), got {self.top_m}")
        if not 0 <= self.threshold <= 1:
            raise ValueError(f"threshold must be in [0, 1], got {self.threshold}")
        if not 0 <= self.smoothing < 1:
            raise ValueError(f"smoothing must be in [0, 1), got {self.smoothing}")
        if self.effectiveness not in EFFECTIVENESS:
            raise ValueError(
                f"effectiveness must be one of {EFFECTIVENESS}, got {self.effectiveness!r}"
            )
        if not 0 <= self.global_blend <= 1:
            raise ValueError(f"global_blend must be in [0, 1], got {self.global_blend}")

    def neighbour_weights(self, p: np.ndarray) -> np.ndarray:
        """The K×K row-stochastic matrix w_kj (before any per-anchor effectiveness)."""
        k, _, c = p.shape
        e = (1 - self.smoothing) * p.mean(axis=1) + self.smoothing / c
        log_e = np.log(e)
        # KL(e_k ‖ e_j) = Σ_c e_k log e_k − Σ_c e_k log e_j, for all pairs in one product.
        divergence = (e * log_e).sum(axis=1)[:, None] - e @ log_e.T
        logits = -self.beta * divergence
        if not self.include_self and k > 1:
            np.fill_diagonal(logits, -np.inf)
        logits -= logits.max(axis=1, keepdims=True)
        weights = np.exp(logits)
        weights /= weights.sum(axis=1, keepdims=True)
        keep = np.ones_like(weights, dtype=bool)
        if 0 < self.top_m < k:
            order = np.argsort(-weights, axis=1, kind="stable")
            ranks = np.empty_like(order)
            np.put_along_axis(ranks, order, np.arange(k)[None, :].repeat(k, 0), axis=1)
            keep &= ranks < self.top_m
        if self.threshold > 0:
            keep &= weights >= self.threshold * weights.max(axis=1, keepdims=True)
        weights = np.where(keep, weights, 0.0)
        normalised: np.ndarray = weights / weights.sum(axis=1, keepdims=True)
        return normalised

    def _fuse(self, p: np.ndarray, w: np.ndarray) -> FusionResult:
        pair = self.neighbour_weights(p)
        mixing: np.ndarray | None
        if self.effectiveness == "distribution":
            targets = np.einsum("kj,jtc->ktc", pair, p)
            mixing = pair
        else:
            competence = self._competence(p)  # (K, T): client j on anchor t
            per_anchor = pair[:, :, None] * competence[None, :, :]  # (K, K, T)
            totals = per_anchor.sum(axis=1, keepdims=True)
            # Where every neighbour scores zero on an anchor, fall back to the pair weights.
            per_anchor = np.where(
                totals > 0, per_anchor / np.where(totals > 0, totals, 1.0), pair[:, :, None]
            )
            targets = np.einsum("kjt,jtc->ktc", per_anchor, p)
            mixing = None
        if self.global_blend > 0:
            consensus = p.mean(axis=0)
            targets = (1 - self.global_blend) * targets + self.global_blend * consensus[None]
            if mixing is not None:
                mixing = (1 - self.global_blend) * mixing + self.global_blend / p.shape[0]
        return FusionResult(targets=targets, mixing=mixing)

    def _competence(self, p: np.ndarray) -> np.ndarray:
        if self.effectiveness == "per-class":
            c = p.shape[2]
            e = (1 - self.smoothing) * p.mean(axis=1) + self.smoothing / c
            consensus_class = p.mean(axis=0).argmax(axis=1)  # (T,)
            competence: np.ndarray = e[:, consensus_class] ** self.class_power
            return competence
        entropy = -(p * np.log(np.clip(p, 1e-12, None))).sum(axis=2)  # (K, T)
        confidence: np.ndarray = np.exp(-self.sample_beta * entropy)
        return confidence
