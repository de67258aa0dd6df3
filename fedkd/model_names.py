"""The built-in architectures' names, known without importing torch.

Configs check model names in processes that never train (a simulation's launcher, the
server), where importing torch would cost seconds.  The names are read from the model
files themselves — every ``register_model("name")`` call in ``fedkd/models`` — so a
built-in model is one file there and nothing else; a test holds the names equal to the
registry's once torch is loaded.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

MODELS_DIR = Path(__file__).resolve().parent / "models"
"""Read as files, never imported: importing the package would import torch."""


@functools.cache
def builtin_models() -> tuple[str, ...]:
    """Every name a ``register_model("…")`` call in ``fedkd/models`` registers, in order."""
    names: list[str] = []
    for source in sorted(MODELS_DIR.glob("*.py")):
        for node in ast.walk(ast.parse(source.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id == "register_model"
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str)
            ):
                names.append(node.args[0].value)
    return tuple(names)
