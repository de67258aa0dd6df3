"""The node's answered rounds: a request for a round it already answered (a server that
restarted, a message delivered twice) gets the same reply bytes again — same signature,
same ledger row — instead of training and spending privacy budget a second time."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from fedkd.privacy.private_files import write_owner_only


class ReplyCache:
    """Reply bytes by (run, round) under ``folder``; only the current run's are kept.

    ``context`` (a digest of the run config the node was given) is part of the key, so
    one run id under another configuration is another run.
    """

    def __init__(self, folder: Path, *, context: str = "") -> None:
        self.folder = folder
        self.context = context

    def _run_key(self, run_id: str) -> str:
        return hashlib.sha256(f"{run_id}\0{self.context}".encode()).hexdigest()[:16]

    def _path(self, run_id: str, round_: int) -> Path:
        return self.folder / f"{self._run_key(run_id)}-{round_}.reply"

    def get(self, run_id: str, round_: int) -> bytes | None:
        path = self._path(run_id, round_)
        return path.read_bytes() if path.exists() else None

    def put(self, run_id: str, round_: int, payload: bytes) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        current = self._run_key(run_id)
        for old in self.folder.glob("*.reply"):
            if not old.name.startswith(current + "-"):
                old.unlink(missing_ok=True)  # another run's: never asked again
        path = self._path(run_id, round_)
        partial = path.with_name(path.name + ".partial")
        write_owner_only(partial, payload)
        os.replace(partial, path)
