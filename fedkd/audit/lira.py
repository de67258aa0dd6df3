"""The likelihood-ratio attack, LiRA (Carlini, Chien, Nasr, Song, Terzis, Tramèr,
"Membership Inference Attacks From First Principles", IEEE S&P 2022).

Shadow runs train with each canary IN in about half of them.  For every canary, the
logit-scaled confidences φ = log(p_y / (1 − p_y)) it gets in IN and OUT shadows are fitted
with Gaussians N(μ_in, σ_in²) and N(μ_out, σ_out²).  The audited run's φ is then scored

    online:   log N(φ; μ_in, σ_in²) − log N(φ; μ_out, σ_out²)
    offline:  (φ − μ_out) / σ_out     (one-sided: how far above the OUT shadows)

With few shadows the per-canary variances are noise; the *global-variance* variant uses
one σ_in and one σ_out pooled over all canaries (the paper's fixed-variance LiRA, better
below ~64 shadows).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FEW_SHADOWS = 64
MIN_SIGMA = 1e-6


@dataclass(frozen=True)
class ShadowFits:
    mu_in: np.ndarray
    sigma_in: np.ndarray
    mu_out: np.ndarray
    sigma_out: np.ndarray
    global_variance: bool


def fit_shadows(
    shadow_phi: np.ndarray, shadow_in: np.ndarray, *, global_variance: bool | None = None
) -> ShadowFits:
    """Per-canary Gaussian fits from ``shadow_phi`` (S × N) and ``shadow_in`` (S × N).

    ``global_variance=None`` chooses it when there are fewer than 64 shadows.
    """
    phi, member = np.asarray(shadow_phi, float), np.asarray(shadow_in, bool)
    if phi.shape != member.shape or phi.ndim != 2:
        raise ValueError(f"shadow scores {phi.shape} and memberships {member.shape} must be S × N")
    if global_variance is None:
        global_variance = phi.shape[0] < FEW_SHADOWS
    mu_in, sd_in = _moments(phi, member)
    mu_out, sd_out = _moments(phi, ~member)
    if global_variance:
        sd_in = np.full_like(sd_in, _pooled_sd(phi, member, mu_in))
        sd_out = np.full_like(sd_out, _pooled_sd(phi, ~member, mu_out))
    # A canary never IN (or never OUT) in any shadow borrows the other canaries' mean.
    mu_in = np.where(np.isnan(mu_in), np.nanmean(mu_in), mu_in)
    mu_out = np.where(np.isnan(mu_out), np.nanmean(mu_out), mu_out)
    sd_in = np.where(np.isnan(sd_in), np.nanmean(sd_in), sd_in)
    sd_out = np.where(np.isnan(sd_out), np.nanmean(sd_out), sd_out)
    return ShadowFits(
        mu_in, np.maximum(sd_in, MIN_SIGMA), mu_out, np.maximum(sd_out, MIN_SIGMA), global_variance
    )


def _moments(phi: np.ndarray, member: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    count = member.sum(axis=0)
    total = np.where(member, phi, 0.0).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(count > 0, total / np.maximum(count, 1), np.nan)
        squares = np.where(member, (phi - mean) ** 2, 0.0).sum(axis=0)
        sd = np.where(count > 1, np.sqrt(squares / np.maximum(count - 1, 1)), np.nan)
    return mean, sd


def _pooled_sd(phi: np.ndarray, member: np.ndarray, mean: np.ndarray) -> float:
    """The pooled within-canary standard deviation: Σ squared deviations from each
    canary's own mean over Σ (count − 1), unbiased however few shadows each canary has."""
    fitted = member & ~np.isnan(mean)[None, :]
    squares = float(np.where(fitted, (phi - np.nan_to_num(mean)) ** 2, 0.0).sum())
    count = fitted.sum(axis=0)
    freedom = int((count - 1).clip(min=0).sum())
    return float(np.sqrt(squares / freedom)) if freedom > 0 else 1.0


def lira_online(phi: np.ndarray, fits: ShadowFits) -> np.ndarray:
    """Log-likelihood ratio of IN over OUT for the audited run's ``phi``."""
    log_in = _log_normal(phi, fits.mu_in, fits.sigma_in)
    ratio: np.ndarray = log_in - _log_normal(phi, fits.mu_out, fits.sigma_out)
    return ratio


def lira_offline(phi: np.ndarray, fits: ShadowFits) -> np.ndarray:
    """Standardised distance above the OUT shadows (no IN shadows needed)."""
    out: np.ndarray = (np.asarray(phi, float) - fits.mu_out) / fits.sigma_out
    return out


def _log_normal(x: np.ndarray, mu: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    z = (np.asarray(x, float) - mu) / sigma
    out: np.ndarray = -0.5 * z**2 - np.log(sigma)
    return out
