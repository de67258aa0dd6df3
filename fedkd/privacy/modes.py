"""Names the privacy machinery accepts, importable without torch or Opacus.

The clipping modes and swing scorers are read from their packages' files (one file per
mode or scorer), never imported: a test holds each list equal to its registry's.
"""

from pathlib import Path

from fedkd.known_names import registered_names

_HERE = Path(__file__).resolve().parent

ACCOUNTANTS = ("prv", "rdp")
GRAD_SAMPLE_MODES = registered_names(_HERE / "clipping", "register_clipping_mode")
"""Every built-in per-sample clipping mode (:mod:`fedkd.privacy.clipping`)."""
SCORERS = registered_names(_HERE / "scorers", "register_scorer")
"""Every built-in swing scorer (:mod:`fedkd.privacy.scorers`)."""
