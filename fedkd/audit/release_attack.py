"""The server's likelihood-ratio attack on the releases themselves (LiRA, Carlini et al.,
IEEE S&P 2022, applied to what the server receives rather than to a model).

The server holds, per round, the target's soft labels on that round's public anchors.  A
record the target trained on pulls its model's predictions near the record towards the
record's label, so the released soft labels of the anchors nearest a canary (x, y) carry
its trace.  The canary's statistic is the logit confidence those anchors give its label,

    φ_release(x, y) = mean over rounds t, and over the K anchors a of round t nearest x,
                      of log p_t,a(y) − log(1 − p_t,a(y))

(nearest in input space; rounds without such anchors are skipped).  Shadow runs release
with each canary IN in about half of them; Gaussians fitted to the IN and OUT shadow
statistics turn the audited run's φ_release into a likelihood ratio, exactly as LiRA does
for a model's confidence (:mod:`fedkd.audit.lira`).  Unlike the surrogate (a model
distilled from the same releases), nothing is learned in between, so the test is on the
released numbers as received.
"""

from __future__ import annotations

import numpy as np

from fedkd.audit.membership import logit_confidence
from server.releases import Release

NEAREST_ANCHORS = 10


def anchor_order(transfer_x: np.ndarray, canary_x: np.ndarray) -> np.ndarray:
    """Per canary, every transfer-set index from nearest to farthest (squared L2)."""
    anchors = np.asarray(transfer_x, np.float32).reshape(len(transfer_x), -1)
    canaries = np.asarray(canary_x, np.float32).reshape(len(canary_x), -1)
    distances = (
        (canaries**2).sum(axis=1)[:, None]
        - 2 * canaries @ anchors.T
        + (anchors**2).sum(axis=1)[None, :]
    )
    order: np.ndarray = np.argsort(distances, axis=1, kind="stable")
    return order


def release_phi(
    releases: list[Release],
    order: np.ndarray,
    canary_y: np.ndarray,
    *,
    transfer_size: int,
    nearest: int = NEAREST_ANCHORS,
) -> np.ndarray:
    """φ_release of every canary (``order`` from :func:`anchor_order`)."""
    if not releases:
        raise ValueError("the server recorded no release of the target")
    labels = np.asarray(canary_y, np.int64)
    total = np.zeros(len(labels))
    rounds = np.zeros(len(labels))
    for release in releases:
        row_of = np.full(transfer_size, -1)
        row_of[np.asarray(release.anchors, np.int64)] = np.arange(len(release.anchors))
        present = row_of[order] >= 0
        chosen = present & (np.cumsum(present, axis=1) <= nearest)
        counts = chosen.sum(axis=1)
        canary_index, column = np.nonzero(chosen)
        rows = row_of[order[canary_index, column]]
        phi = logit_confidence(release.soft_labels[rows], labels[canary_index])
        per_canary = np.bincount(canary_index, weights=phi, minlength=len(labels))
        has = counts > 0
        total[has] += per_canary[has] / counts[has]
        rounds[has] += 1
    out: np.ndarray = np.where(rounds > 0, total / np.maximum(rounds, 1), 0.0)
    return out
