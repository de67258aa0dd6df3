"""Opacus's functorch mode: per-sample gradients by ``vmap`` over each layer.

vmap over an empty batch fails in GroupNorm: an empty Poisson batch skips the model and
hands the optimiser empty per-sample gradients.
"""

from __future__ import annotations

from fedkd.privacy.clipping.base import OpacusPerSample, register_clipping_mode


@register_clipping_mode
class Functorch(OpacusPerSample):
    name = "functorch"
    opacus_mode = "functorch"
    runs_empty_batches = False
