"""Threshold membership inference (Yeom et al. 2018; the "global threshold" baseline of
LiRA, Carlini et al. 2022): members are guessed by a score above a threshold, here the
logit-scaled confidence in the record's label, φ = log(p_y / (1 − p_y)).

Reported as ROC AUC and TPR at 1% and 0.1% FPR (scikit-learn's ROC), the metrics that
matter for the few records an attacker is sure about.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.metrics import roc_auc_score, roc_curve

LOW_FPRS = (0.01, 0.001)


def logit_confidence(probabilities: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """φ = log(p_y) − log(1 − p_y), computed stably from class probabilities."""
    p = np.asarray(probabilities, np.float64)
    rows = np.arange(len(p))
    p_y = np.clip(p[rows, np.asarray(labels, np.int64)], 1e-12, 1.0)
    rest = np.clip(1.0 - p_y, 1e-12, 1.0)
    return np.log(p_y) - np.log(rest)


@dataclass(frozen=True)
class AttackResult:
    auc: float
    tpr_at_1pct_fpr: float
    tpr_at_01pct_fpr: float
    members: int
    non_members: int


def tpr_at_fpr(members: np.ndarray, non_members: np.ndarray, fpr: float) -> float:
    """The highest TPR whose FPR is at most ``fpr`` (0 if no threshold achieves it)."""
    truth = np.r_[np.ones(len(members)), np.zeros(len(non_members))]
    fprs, tprs, _ = roc_curve(truth, np.r_[members, non_members])
    ok = fprs <= fpr
    return float(tprs[ok].max()) if ok.any() else 0.0


def threshold_attack(members: np.ndarray, non_members: np.ndarray) -> AttackResult:
    """The attack's ROC summary for member and non-member scores."""
    members, non_members = np.asarray(members, float), np.asarray(non_members, float)
    truth = np.r_[np.ones(len(members)), np.zeros(len(non_members))]
    return AttackResult(
        auc=float(roc_auc_score(truth, np.r_[members, non_members])),
        tpr_at_1pct_fpr=tpr_at_fpr(members, non_members, LOW_FPRS[0]),
        tpr_at_01pct_fpr=tpr_at_fpr(members, non_members, LOW_FPRS[1]),
        members=len(members),
        non_members=len(non_members),
    )
