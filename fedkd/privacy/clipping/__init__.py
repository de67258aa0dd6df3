"""DP-SGD's per-sample clipping modes, one file each, found by name in ``CLIPPING_MODES``.

Importing this package imports every module in it (a built-in mode is one file here with
a ``@register_clipping_mode`` class) and every ``fedkd.clipping_modes`` entry point.
Their names are known without torch (:data:`fedkd.privacy.modes.GRAD_SAMPLE_MODES`, read
from these files), so a config naming one is checked before anything starts.
"""

import sys

from fedkd.plugins import import_package_modules, load_entry_points
from fedkd.privacy.clipping.base import (
    CLIPPING_MODES,
    ClippedBackward,
    ClippingMode,
    clipping_mode,
    register_clipping_mode,
)

import_package_modules(sys.modules[__name__])
load_entry_points("fedkd.clipping_modes")

__all__ = [
    "CLIPPING_MODES",
    "ClippedBackward",
    "ClippingMode",
    "clipping_mode",
    "register_clipping_mode",
]
