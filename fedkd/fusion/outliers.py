"""Robust outlier rejection for weight averaging: updates far outside the round's spread.

A weight-averaging round is only as good as its worst accepted model: one node sending a
zero model or weights of 3e38 (finite, so no value check refuses them) drags or overflows
the average.  Like the coordinate-wise median of Yin et al. ("Byzantine-robust
distributed learning: towards optimal statistical rates", ICML 2018), the reference is
the round's coordinate-wise median model ``m``; a model is refused when its distance to it
leaves the robust spread of the round's distances::

    d_k = ‖θ_k − m‖₂        limit = max(FACTOR · median(d) + MADS · 1.4826 · MAD(d),
                                        RELATIVE_FLOOR · ‖m‖₂)

With fewer than :data:`MIN_NODES` models there is no majority to define a spread, and
nothing is refused here (the value bounds of the reply rules still hold).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import numpy as np

log = logging.getLogger(__name__)

FACTOR = 3.0
"""How many median distances an honest update may be away: generous, because honest
non-IID nodes with more records take more local steps and move further."""
MADS = 5.0
MIN_NODES = 3
RELATIVE_FLOOR = 1e-3
"""The limit is never below this fraction of the median model's norm."""


def norm_outliers(models: Sequence[Mapping[str, np.ndarray]]) -> dict[int, str]:
    """Indices of ``models`` (same names and shapes) outside the round's robust spread.

    Returns
    -------
    dict[int, str]
        The refused model's index → the reason, with its distance and the limit.
    """
    if len(models) < MIN_NODES:
        return {}
    names = sorted(models[0])
    flat = np.stack(
        [
            np.concatenate([np.asarray(m[n], dtype=np.float64).ravel() for n in names])
            for m in models
        ]
    )
    center = np.median(flat, axis=0)
    distances = np.sqrt(np.sum(np.square(flat - center), axis=1))
    typical = float(np.median(distances))
    spread = float(np.median(np.abs(distances - typical)))
    # With most models identical the spread is 0: a floor relative to the model's own size
    # keeps a node that merely moved from being refused.
    floor = RELATIVE_FLOOR * float(np.sqrt(np.sum(np.square(center))))
    limit = max(FACTOR * typical + MADS * 1.4826 * spread, floor)
    log.debug(
        "update distances %s; limit %.4g (largest at %.2f of it)",
        " ".join(f"{d:.4g}" for d in distances),
        limit,
        float(distances.max()) / limit if limit > 0 else float("inf"),
    )
    return {
        k: (
            f"update {d:.4g} away from the round's coordinate-wise median model, outside "
            f"the round's spread (limit {limit:.4g} = {FACTOR:g} × median {typical:.4g} + "
            f"{MADS:g} robust deviations)"
        )
        for k, d in enumerate(distances.tolist())
        if not d <= limit
    }
