"""The node's own logs, which never leave it: local metrics, and why it did not take part.

Under DP, metrics computed on private records (local accuracy and loss, record counts,
timings) are written here instead of into the reply.  Validation problems with the
node's data are written here too: the server only learns that the node is absent.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from datetime import UTC, datetime
from pathlib import Path

from fedkd.privacy.private_files import owner_only
from fedkd.wire.types import EvalReport

log = logging.getLogger("fedkd.node")


class NodeLog:
    """Appends to ``eval_path`` (JSON lines of :class:`EvalReport`) and ``log_path`` (text)."""

    def __init__(
        self,
        *,
        eval_path: Path,
        log_path: Path,
        sent_path: Path | None = None,
        runs_path: Path | None = None,
    ) -> None:
        self.eval_path = eval_path
        self.log_path = log_path
        self.sent_path = sent_path
        self.runs_path = runs_path

    def sent(
        self, *, run_id: str, round_: int, status: str, fields: tuple[str, ...], size: int
    ) -> None:
        """Keep what one reply carried out of the node: its fields and its size in bytes."""
        if self.sent_path is None:
            return
        stamp = datetime.now(UTC).isoformat(timespec="seconds")
        line = {"at": stamp, "run_id": run_id, "round": round_, "status": status,
                "fields": list(fields), "bytes": size}  # fmt: skip
        self._append(self.sent_path, json.dumps(line, sort_keys=True))

    def evaluation(self, report: EvalReport) -> None:
        """Keep one round's full evaluation."""
        self._append(self.eval_path, json.dumps(dataclasses.asdict(report), sort_keys=True))

    def problem(self, message: str) -> None:
        """Keep (and echo to this process's log) why the node refused or stood aside."""
        log.error("%s", message)
        stamp = datetime.now(UTC).isoformat(timespec="seconds")
        self._append(self.log_path, f"{stamp} {message}")

    def joined(self, *, run_id: str, settings: dict[str, object]) -> None:
        """Keep one line per run the node took part in: when, which run, what it asked."""
        if self.runs_path is None:
            return
        stamp = datetime.now(UTC).isoformat(timespec="seconds")
        line = {"at": stamp, "run_id": run_id, **settings}
        self._append(self.runs_path, json.dumps(line, sort_keys=True, default=str))

    def note(self, message: str) -> None:
        """Keep (and log at INFO) something the node's operator should be able to read."""
        log.info("%s", message)
        stamp = datetime.now(UTC).isoformat(timespec="seconds")
        self._append(self.log_path, f"{stamp} {message}")

    def evaluations(self) -> list[EvalReport]:
        if not self.eval_path.exists():
            return []
        lines = self.eval_path.read_text().splitlines()
        return [EvalReport(**json.loads(line)) for line in lines if line.strip()]

    @staticmethod
    def _append(path: Path, line: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with owner_only(path).open("a", encoding="utf-8") as fh:
            fh.write(line.rstrip("\n") + "\n")
