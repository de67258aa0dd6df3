"""The built-in architectures' names, known without importing torch.

Configs check model names in processes that never train (a simulation's launcher, the
server), where importing torch would cost seconds.  The names are read from the model
files themselves — every ``register_model("name")`` call in ``fedkd/models`` — so a
built-in model is one file there and nothing else; a test holds the names equal to the
registry's once torch is loaded.
"""

from __future__ import annotations

import functools
from pathlib import Path

from fedkd.known_names import registered_names

MODELS_DIR = Path(__file__).resolve().parent / "models"


@functools.cache
def builtin_models() -> tuple[str, ...]:
    """Every name a ``register_model("…")`` call in ``fedkd/models`` registers."""
    return registered_names(MODELS_DIR, "register_model")
