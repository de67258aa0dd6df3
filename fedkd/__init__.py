"""fedkd: federated, privacy-preserving knowledge distillation.

``fedkd.simulate`` and ``fedkd.compare`` are the Python API (:mod:`fedkd.api`); they are
loaded on first use, so ``import fedkd.config`` stays free of torch and Flower.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fedkd.version_check import __version__

__all__ = ["Comparison", "RunResult", "__version__", "compare", "simulate"]

_LAZY = frozenset({"Comparison", "RunResult", "compare", "simulate"})

if TYPE_CHECKING:
    from fedkd.api import Comparison, RunResult, compare, simulate


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from fedkd import api

        return getattr(api, name)
    raise AttributeError(f"module 'fedkd' has no attribute {name!r}")
