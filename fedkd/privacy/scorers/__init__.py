"""Privacy-likelihood scorers for swing distillation (one per file, by name)."""

from fedkd.privacy.scorers import confidence, proximity
from fedkd.privacy.scorers.base import PrivacyScorer, make_scorer, register_scorer, scorer_names

__all__ = [
    "PrivacyScorer",
    "confidence",
    "make_scorer",
    "proximity",
    "register_scorer",
    "scorer_names",
]
