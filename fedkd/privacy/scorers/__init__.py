"""Privacy-likelihood scorers for swing distillation (one per file, by name).

A built-in scorer is one file here with a ``@register_scorer`` class: importing this
package imports every module in it.  Plugins add scorers through the entry point group
``fedkd.scorers``.
"""

import sys

from fedkd.plugins import import_package_modules, load_entry_points
from fedkd.privacy.scorers.base import PrivacyScorer, make_scorer, register_scorer, scorer_names

import_package_modules(sys.modules[__name__])
load_entry_points("fedkd.scorers")

__all__ = ["PrivacyScorer", "make_scorer", "register_scorer", "scorer_names"]
