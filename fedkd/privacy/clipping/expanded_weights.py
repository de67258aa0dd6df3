"""Opacus's expanded weights (``ew``): per-sample gradients from PyTorch's ExpandedWeights.

Expanded weights reject a zero batch: an empty Poisson batch skips the model and hands
the optimiser empty per-sample gradients.
"""

from __future__ import annotations

from fedkd.privacy.clipping.base import OpacusPerSample, register_clipping_mode


@register_clipping_mode
class ExpandedWeights(OpacusPerSample):
    name = "ew"
    opacus_mode = "ew"
    runs_empty_batches = False
