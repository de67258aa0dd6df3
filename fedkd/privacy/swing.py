"""Swing distillation on release: per-sample temperature, then noise on the soft targets.

Li, Wu, Dong, Wu, Bian, Xiong, "Swing Distillation: A Privacy-Preserving Knowledge
Distillation Framework", 2022, arXiv:2212.08349.  The paper sets each position's
temperature from the likelihood that it carries private information and perturbs the
soft targets with noise.  Its exact temperature map and noise law were not available to
us; this module implements the design's stand-in::

    T_i  = T_base + (T_max − T_base) · p_i              p_i ∈ [0, 1] from a scorer
    q_i  = softmax(z_i / T_i)
    q̃_i  = renorm(clip(q_i + η_i, floor, 1))          η_i ~ N(0, s²) or Laplace(0, s)
    (optional) keep the top-k entries of q̃_i, renormalise

Swing has NO formal privacy guarantee: no ε is ever reported for it.  Its effect is what
the audit measures.  The per-sample temperatures stay on the node.  Its noise draws from
the node's CSPRNG (:mod:`fedkd.privacy.secure_noise`), like every privacy mechanism.
"""

from __future__ import annotations

import numpy as np
import torch

from fedkd.privacy.csprng import ChaCha20Stream
from fedkd.privacy.secure_noise import gaussian_noise, laplace_noise
from fedkd.privacy.swing_config import NOISE_LAWS, SwingConfig

__all__ = ["NOISE_LAWS", "SwingConfig", "swing_release", "swing_targets", "swing_temperatures"]


def swing_temperatures(privacy_likelihood: np.ndarray, cfg: SwingConfig) -> np.ndarray:
    """``T_i = T_base + (T_max − T_base)·p_i`` for scores ``p_i ∈ [0, 1]``."""
    p = np.asarray(privacy_likelihood, dtype=np.float64)
    if p.ndim != 1 or not np.all(np.isfinite(p)) or p.min(initial=0) < 0 or p.max(initial=0) > 1:
        raise ValueError("privacy likelihoods must be a finite vector in [0, 1]")
    temperatures: np.ndarray = (
        cfg.base_temperature + (cfg.max_temperature - cfg.base_temperature) * p
    )
    return temperatures


def swing_release(
    logits: np.ndarray,
    privacy_likelihood: np.ndarray,
    cfg: SwingConfig,
    *,
    randomness: ChaCha20Stream,
) -> np.ndarray:
    """Soft targets ``(N, C)`` float32 from ``logits`` under the swing transform."""
    z = np.asarray(logits, dtype=np.float64)
    if z.ndim != 2 or len(z) != len(privacy_likelihood):
        raise ValueError(f"logits {z.shape} and {len(privacy_likelihood)} likelihoods do not match")
    temperatures = swing_temperatures(privacy_likelihood, cfg)
    q = torch.softmax(torch.from_numpy(z / temperatures[:, None]), dim=1).numpy()
    if cfg.noise != "none" and cfg.noise_scale > 0:
        draw = gaussian_noise if cfg.noise == "gaussian" else laplace_noise
        q = q + draw(randomness, q.shape, cfg.noise_scale).numpy()
    q = np.clip(q, cfg.floor, 1.0)
    if 0 < cfg.top_k < q.shape[1]:
        kth = np.sort(q, axis=1)[:, -cfg.top_k][:, None]
        q = np.where(q >= kth, q, 0.0)
    released: np.ndarray = (q / q.sum(axis=1, keepdims=True)).astype(np.float32)
    return released


def swing_targets(
    probabilities: np.ndarray,
    privacy_likelihood: np.ndarray,
    cfg: SwingConfig,
    *,
    randomness: ChaCha20Stream,
) -> np.ndarray:
    """The same transform on received probabilities (log p plays the logits' part)."""
    p = np.clip(np.asarray(probabilities, dtype=np.float64), cfg.floor, 1.0)
    return swing_release(np.log(p), privacy_likelihood, cfg, randomness=randomness)
