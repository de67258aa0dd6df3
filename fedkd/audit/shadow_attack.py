"""LiRA and the Clopper–Pearson bound over shadow runs, per attacker view."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from sklearn.metrics import roc_curve
from torch import nn

from fedkd.audit.canaries import CanarySet
from fedkd.audit.clopper_pearson import ClopperPearsonBound, epsilon_lower_bound
from fedkd.audit.lira import fit_shadows, lira_offline, lira_online
from fedkd.audit.membership import AttackResult, threshold_attack
from fedkd.audit.shadows import ShadowRun
from fedkd.audit.threat_model import View
from fedkd.audit.views import score, surrogate_from_releases
from fedkd.config import RunConfig
from fedkd.node.model import init_model, load_state
from fedkd.wire.types import ModelWeights

ROC_POINTS = 200


@dataclass(frozen=True)
class LiraResult:
    online: AttackResult
    offline: AttackResult
    shadows: int
    global_variance: bool
    roc_fpr: list[float]
    roc_tpr: list[float]
    """Online LiRA's ROC, thinned to at most ROC_POINTS points (log-spaced in FPR)."""
    scores: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0))
    """The online likelihood ratio of every candidate (what a bound may use)."""


def shadow_phi(
    runs: list[ShadowRun],
    view: View,
    canaries: CanarySet,
    cfg: RunConfig,
    *,
    target: int,
    peer: int,
    transfer_x: np.ndarray,
    num_classes: int,
    seed: int,
) -> np.ndarray:
    """S × N logit confidences of every canary, as ``view`` computes them in each shadow."""
    rows = []
    for run in runs:
        if view is View.SERVER:
            model = surrogate_from_releases(
                run.target_releases, transfer_x, architecture=cfg.model,
                num_classes=num_classes, temperature=cfg.distill_temperature, seed=seed,
            )  # fmt: skip
        else:
            weights, node = (run.target_model, target) if view is View.MODEL_HOLDER else (
                run.peer_model, peer
            )  # fmt: skip
            model = _model(cfg.model_for(node), weights, transfer_x.shape[1:], num_classes, cfg)
        rows.append(score(model, canaries.x, canaries.y).score)
    return np.stack(rows)


def _model(
    architecture: str,
    weights: ModelWeights,
    input_shape: tuple[int, ...],
    num_classes: int,
    cfg: RunConfig,
) -> nn.Module:
    model = init_model(
        architecture, input_shape=tuple(input_shape), num_classes=num_classes, run_seed=cfg.seed
    )
    load_state(model, weights)
    return model.eval()


def lira(
    target_phi: np.ndarray, shadow_phi_: np.ndarray, shadow_in: np.ndarray, member: np.ndarray
) -> LiraResult:
    """LiRA online and offline on the candidates; ``member`` is the audited run's coins."""
    fits = fit_shadows(shadow_phi_, shadow_in)
    online = lira_online(target_phi, fits)
    offline = lira_offline(target_phi, fits)
    roc = thinned_roc(member, online)
    return LiraResult(
        online=threshold_attack(online[member], online[~member]),
        offline=threshold_attack(offline[member], offline[~member]),
        shadows=shadow_phi_.shape[0],
        global_variance=fits.global_variance,
        roc_fpr=roc["fpr"],
        roc_tpr=roc["tpr"],
        scores=online,
    )


def thinned_roc(member: np.ndarray, scores: np.ndarray) -> dict[str, list[float]]:
    """The ROC of ``scores`` against ``member``, at most ROC_POINTS points, log-spaced."""
    fpr, tpr, _ = roc_curve(np.asarray(member, int), np.asarray(scores, float))
    keep = _thin(fpr)
    return {"fpr": [float(f) for f in fpr[keep]], "tpr": [float(t) for t in tpr[keep]]}


def _thin(fpr: np.ndarray) -> np.ndarray:
    if len(fpr) <= ROC_POINTS:
        return np.arange(len(fpr))
    grid = np.r_[0.0, np.logspace(np.log10(max(fpr[fpr > 0].min(), 1e-6)), 0, ROC_POINTS - 1)]
    return np.unique(np.searchsorted(fpr, grid).clip(0, len(fpr) - 1))


def clopper_pearson_over_shadows(
    shadow_phi_: np.ndarray, shadow_in: np.ndarray, *, delta: float, confidence: float
) -> ClopperPearsonBound | None:
    """Jagielski et al.'s bound for one canary over independent shadow runs.

    The first half of the shadows picks the canary (the largest standardised gap between
    its IN and OUT scores) and the threshold (the midpoint); the second half, which chose
    nothing, counts the false positives and negatives.  None with fewer than 4 shadows.
    """
    shadows = shadow_phi_.shape[0]
    if shadows < 4:
        return None
    half = shadows // 2
    pick_phi, pick_in = shadow_phi_[:half], shadow_in[:half]
    fits = fit_shadows(pick_phi, pick_in, global_variance=True)
    usable = pick_in.any(axis=0) & (~pick_in).any(axis=0) & shadow_in[half:].any(axis=0)
    usable &= (~shadow_in[half:]).any(axis=0)
    if not usable.any():
        return None
    gap = np.where(usable, (fits.mu_in - fits.mu_out) / fits.sigma_out, -np.inf)
    canary = int(np.argmax(gap))
    threshold = (fits.mu_in[canary] + fits.mu_out[canary]) / 2
    test_phi, test_in = shadow_phi_[half:, canary], shadow_in[half:, canary]
    flagged = test_phi > threshold
    return epsilon_lower_bound(
        fp=int((flagged & ~test_in).sum()),
        n_out=int((~test_in).sum()),
        fn=int((~flagged & test_in).sum()),
        n_in=int(test_in.sum()),
        delta=delta,
        confidence=confidence,
    )
