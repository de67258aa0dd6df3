"""Soft-target distillation loss.

Hinton, Vinyals & Dean, "Distilling the Knowledge in a Neural Network", NIPS-W 2015,
arXiv:1503.02531.  With student logits ``z``, target probabilities ``q`` (already at
temperature ``τ``) and ``p_τ = softmax(z / τ)``::

    L_KD = τ² · (1/B) Σ_b KL(q_b ‖ p_τ,b) = τ² · (1/B) Σ_b Σ_c q_bc (log q_bc − log p_τ,bc)

The ``τ²`` factor keeps the gradient scale independent of ``τ`` so the KD and CE terms can
be mixed with fixed weights.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def soft_target_kl(
    student_logits: torch.Tensor, target_probs: torch.Tensor, temperature: float
) -> torch.Tensor:
    """Return ``τ² · KL(target ‖ softmax(student / τ))`` averaged over the batch."""
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if student_logits.shape != target_probs.shape:
        raise ValueError(
            f"student logits {tuple(student_logits.shape)} and targets "
            f"{tuple(target_probs.shape)} differ in shape"
        )
    log_student = F.log_softmax(student_logits / temperature, dim=1)
    kl = F.kl_div(log_student, target_probs, reduction="batchmean")
    return kl * temperature**2
