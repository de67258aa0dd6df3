"""The node's model between rounds, on its own disk, so a resumed run carries on from it.

Flower keeps a ClientApp's state in the run's context, which a new Flower run (the
ServerApp started again after a crash, resuming under its own fedkd run id) does not
have.  The node therefore also keeps its latest model per fedkd run id, next to its
ledger; only the current run's is kept, and it is deleted once the run's final message
is served.  The file never leaves the node.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from fedkd.privacy.private_files import owner_only
from fedkd.wire.types import ModelWeights

_PREFIX = "w:"


class RoundProgress:
    """The node's model state by fedkd run id under ``folder``."""

    def __init__(self, folder: Path, *, context: str = "") -> None:
        self.folder = folder
        self.context = context

    def _path(self, run_id: str) -> Path:
        key = hashlib.sha256(f"{run_id}\0{self.context}".encode()).hexdigest()[:16]
        return self.folder / f"{key}.model.npz"

    def load(self, run_id: str) -> ModelWeights | None:
        """The model the node had after its last round of ``run_id``, if it kept one."""
        path = self._path(run_id)
        if not path.exists():
            return None
        with np.load(path, allow_pickle=False) as stored:
            return {k[len(_PREFIX) :]: stored[k] for k in stored.files if k.startswith(_PREFIX)}

    def save(self, run_id: str, state: ModelWeights) -> None:
        """Keep ``state`` as the run's latest (atomically; other runs' files go)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self._path(run_id)
        for old in self.folder.glob("*.model.npz"):
            if old != path:
                old.unlink(missing_ok=True)
        partial = path.with_name(path.name + ".partial.npz")
        np.savez(owner_only(partial), **{_PREFIX + k: v for k, v in state.items()})  # type: ignore[arg-type]
        os.replace(partial, path)

    def clear(self, run_id: str) -> None:
        self._path(run_id).unlink(missing_ok=True)
