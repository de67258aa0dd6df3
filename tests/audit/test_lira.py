"""LiRA on synthetic scores with a known answer, and its shadow fits."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from fedkd.audit.lira import fit_shadows, lira_offline, lira_online
from fedkd.audit.membership import threshold_attack


def _world(shift: float, shadows: int, n: int = 4000, seed: int = 0) -> tuple[np.ndarray, ...]:
    """Each canary has its own difficulty μ_c; being IN adds ``shift``; noise σ = 0.5."""
    rng = np.random.default_rng(seed)
    difficulty = rng.normal(0.0, 2.0, n)
    shadow_in = rng.random((shadows, n)) < 0.5
    shadow_phi = difficulty + shift * shadow_in + rng.normal(0.0, 0.5, (shadows, n))
    member = rng.random(n) < 0.5
    phi = difficulty + shift * member + rng.normal(0.0, 0.5, n)
    return shadow_phi, shadow_in, member, phi


def test_a_known_shift_gives_the_analytic_auc() -> None:
    # With the per-canary difficulty removed, IN and OUT differ by a shift of 0.5 in
    # noise σ = 0.5: AUC = Φ(0.5 / (0.5 √2)) = Φ(0.707) ≈ 0.760.
    shadow_phi, shadow_in, member, phi = _world(0.5, shadows=64)
    fits = fit_shadows(shadow_phi, shadow_in, global_variance=True)
    analytic = stats.norm.cdf(0.5 / (0.5 * math.sqrt(2)))
    online = lira_online(phi, fits)
    assert threshold_attack(online[member], online[~member]).auc == pytest.approx(
        analytic, abs=0.03
    )
    offline = lira_offline(phi, fits)
    assert threshold_attack(offline[member], offline[~member]).auc == pytest.approx(
        analytic, abs=0.03
    )
    # A threshold on φ alone cannot remove the difficulty: LiRA beats it by far.
    assert threshold_attack(phi[member], phi[~member]).auc < analytic - 0.1


def test_no_shift_gives_chance() -> None:
    shadow_phi, shadow_in, member, phi = _world(0.0, shadows=16)
    online = lira_online(phi, fit_shadows(shadow_phi, shadow_in))
    assert 0.47 < threshold_attack(online[member], online[~member]).auc < 0.53


def test_few_shadows_use_one_global_variance() -> None:
    shadow_phi, shadow_in, _, _ = _world(0.5, shadows=8)
    fits = fit_shadows(shadow_phi, shadow_in)
    assert fits.global_variance and np.unique(fits.sigma_in).size == 1
    assert fits.sigma_out[0] == pytest.approx(0.5, abs=0.05)
    many = fit_shadows(*_world(0.5, shadows=64)[:2])
    assert not many.global_variance and np.unique(many.sigma_in).size > 1
