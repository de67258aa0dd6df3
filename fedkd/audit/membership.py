"""Threshold membership inference (Yeom et al. 2018; the "global threshold" baseline of
LiRA, Carlini et al. 2022): members are guessed by a score above a threshold, here the
logit-scaled confidence in the record's label, φ = log(p_y / (1 − p_y)).

Reported as ROC AUC and the TPR at low FPRs (scikit-learn's ROC), the metrics that
matter for the few records an attacker is sure about.  A TPR at FPR f means something
only with at least 1/f non-members: with fewer, the lowest FPR above zero is one false
positive, 1/n, and "TPR at 0.1 % FPR" would be the TPR at zero false positives under
another name.  So TPRs at 1 % and 0.1 % are None below 100 and 1,000 non-members, and
every result also gives the TPR at zero false positives and at the lowest FPR the
non-members support (one false positive).
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
    tpr_at_1pct_fpr: float | None
    """None with fewer than 100 non-members (see the module docstring)."""
    tpr_at_01pct_fpr: float | None
    """None with fewer than 1,000 non-members."""
    members: int
    non_members: int
    tpr_at_zero_fpr: float = 0.0
    tpr_at_lowest_fpr: float = 0.0
    """TPR at FPR 1/non_members: one false positive allowed."""

    @property
    def lowest_fpr(self) -> float:
        return 1.0 / self.non_members if self.non_members else 1.0


def tpr_at_fpr(members: np.ndarray, non_members: np.ndarray, fpr: float) -> float:
    """The highest TPR whose FPR is at most ``fpr`` (0 if no threshold achieves it)."""
    truth = np.r_[np.ones(len(members)), np.zeros(len(non_members))]
    fprs, tprs, _ = roc_curve(truth, np.r_[members, non_members])
    ok = fprs <= fpr
    return float(tprs[ok].max()) if ok.any() else 0.0


def supported_tpr(members: np.ndarray, non_members: np.ndarray, fpr: float) -> float | None:
    """TPR at ``fpr`` where at least 1/``fpr`` non-members make it mean something."""
    if len(non_members) * fpr < 1 - 1e-9:
        return None
    return tpr_at_fpr(members, non_members, fpr)


def threshold_attack(members: np.ndarray, non_members: np.ndarray) -> AttackResult:
    """The attack's ROC summary for member and non-member scores."""
    members, non_members = np.asarray(members, float), np.asarray(non_members, float)
    truth = np.r_[np.ones(len(members)), np.zeros(len(non_members))]
    lowest = 1.0 / max(1, len(non_members))
    return AttackResult(
        auc=float(roc_auc_score(truth, np.r_[members, non_members])),
        tpr_at_1pct_fpr=supported_tpr(members, non_members, LOW_FPRS[0]),
        tpr_at_01pct_fpr=supported_tpr(members, non_members, LOW_FPRS[1]),
        members=len(members),
        non_members=len(non_members),
        tpr_at_zero_fpr=tpr_at_fpr(members, non_members, 0.0),
        tpr_at_lowest_fpr=tpr_at_fpr(members, non_members, lowest * (1 + 1e-9)),
    )
