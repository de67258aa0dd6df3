"""Opacus's hooks: per-sample gradients computed by module hooks, then clipped."""

from __future__ import annotations

from fedkd.privacy.clipping.base import OpacusPerSample, register_clipping_mode


@register_clipping_mode
class Hooks(OpacusPerSample):
    name = "hooks"
    opacus_mode = "hooks"
