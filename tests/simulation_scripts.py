"""The scripts under simulations/ (not a package), loaded by path for their tests."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]


def load_script(name: str) -> ModuleType:
    """``simulations/<name>.py`` as the module ``name`` (registered in sys.modules, so the
    dataclasses and pickled functions it defines resolve)."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "simulations" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
