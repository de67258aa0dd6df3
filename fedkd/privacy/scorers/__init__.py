"""Privacy-likelihood scorers for swing distillation (one per file, by name).

Plugins add scorers through the entry point group ``fedkd.scorers``.
"""

from fedkd.plugins import load_entry_points
from fedkd.privacy.scorers import confidence, proximity
from fedkd.privacy.scorers.base import PrivacyScorer, make_scorer, register_scorer, scorer_names

load_entry_points("fedkd.scorers")

__all__ = [
    "PrivacyScorer",
    "confidence",
    "make_scorer",
    "proximity",
    "register_scorer",
    "scorer_names",
]
