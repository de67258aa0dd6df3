"""Where a run writes its results, so that no result is ever lost or mixed.

A run writes into a fresh staging folder (``<output-dir>/.staging/<run-name>-<token>``)
and is moved into place with one ``rename`` when it is complete.  A run that is
interrupted or fails is moved to ``<output-dir>/incomplete/<run-name>-<token>`` with
``status: incomplete`` in its summary (written if the run wrote none), also when the
process must exit at once (:meth:`RunDirectory.abandon`).  A run that checkpointed its
rounds is resumed, token and all, when the same run (same config fingerprint) is started
again.  So
``<output-dir>/<run-name>`` only ever holds a complete run, of exactly the
``config.json`` beside it, and an existing one is replaced only when the run was
started with ``overwrite``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

STAGING = ".staging"
INCOMPLETE = "incomplete"
CHECKPOINT = "checkpoint.json"
LOCK = ".lock"
COMPLETE_STATUS = "complete"
INCOMPLETE_STATUS = "incomplete"


class RunExistsError(ValueError):
    """The run directory exists and the run was not told to overwrite it."""


def run_token() -> str:
    """A name part no other run of this output-dir has: UTC time, then random hex."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + uuid.uuid4().hex[:8]


def check_free(output_dir: Path, run_name: str, *, overwrite: bool) -> Path:
    """The run's final folder; refuses an existing one unless ``overwrite``."""
    target = output_dir / run_name
    if target.exists() and not overwrite:
        raise RunExistsError(
            f"{target} already holds a run; choose another run name, or pass --overwrite "
            "(set overwrite = true) to replace its results"
        )
    return target


@dataclass(frozen=True)
class RunDirectory:
    """A run's staging folder and where it goes when the run ends."""

    output_dir: Path
    run_name: str
    token: str
    overwrite: bool = False
    resumed_from: Path | None = None
    """The interrupted run's folder this run carries on, if it resumed one."""
    _lock: list[int] = field(default_factory=list, compare=False, repr=False)

    @classmethod
    def create(cls, output_dir: Path, run_name: str, *, overwrite: bool) -> RunDirectory:
        output_dir = output_dir.expanduser().resolve()
        check_free(output_dir, run_name, overwrite=overwrite)
        made = cls(output_dir, run_name, run_token(), overwrite)
        made.staging.mkdir(parents=True)
        made._hold()
        return made

    @classmethod
    def open(
        cls, output_dir: Path, run_name: str, *, overwrite: bool, fingerprint: str | None
    ) -> RunDirectory:
        """Resume the newest interrupted run with this ``fingerprint``, else create one.

        ``fingerprint=None`` never resumes.  An interrupted run is one set aside in
        ``incomplete/``, or one whose process died in ``.staging/`` (no live process holds
        its lock).
        """
        output_dir = output_dir.expanduser().resolve()
        found = None if fingerprint is None else find_resumable(output_dir, run_name, fingerprint)
        if found is None:
            return cls.create(output_dir, run_name, overwrite=overwrite)
        check_free(output_dir, run_name, overwrite=overwrite)
        token = found.name[len(run_name) + 1 :]
        made = cls(output_dir, run_name, token, overwrite, resumed_from=found)
        if found != made.staging:
            made.staging.parent.mkdir(parents=True, exist_ok=True)
            os.replace(found, made.staging)
        made._hold()
        return made

    def _hold(self) -> None:
        """Lock the staging folder for this process's lifetime (a dead process's lock is
        released by the kernel, which is how a crashed run is told from a live one)."""
        fd = os.open(self.staging / LOCK, os.O_CREAT | os.O_RDWR, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self._lock.append(fd)

    def release(self) -> None:
        """Give up the staging folder's lock (done when the run ends)."""
        while self._lock:
            os.close(self._lock.pop())

    @property
    def target(self) -> Path:
        return self.output_dir / self.run_name

    @property
    def staging(self) -> Path:
        return self.output_dir / STAGING / f"{self.run_name}-{self.token}"

    @property
    def incomplete(self) -> Path:
        return self.output_dir / INCOMPLETE / f"{self.run_name}-{self.token}"

    def publish(self) -> Path:
        """Move the complete run into place; an old run there goes only if ``overwrite``."""
        target = check_free(self.output_dir, self.run_name, overwrite=self.overwrite)
        replaced = self.output_dir / STAGING / f"{self.run_name}-{self.token}.replaced"
        if target.exists():
            # Two renames, so a reader sees either the old run or the new one, whole.
            os.replace(target, replaced)
        # A complete run is not resumed: its checkpoint goes (the JSON first, as it names
        # the arrays).
        (self.staging / CHECKPOINT).unlink(missing_ok=True)
        for arrays in self.staging.glob("checkpoint-*.npz"):
            arrays.unlink()
        os.replace(self.staging, target)
        shutil.rmtree(replaced, ignore_errors=True)
        self.release()
        (target / LOCK).unlink(missing_ok=True)
        self._tidy()
        return target

    def set_aside(self, reason: str = "") -> Path:
        """Move an interrupted or failed run to ``incomplete/``; return where it went.

        Its ``summary.json`` says ``status: incomplete``: the one the run wrote (which
        says why), else one recording ``reason``, so no run is set aside unexplained.
        """
        self._mark_incomplete(reason, then=False)
        self.incomplete.parent.mkdir(parents=True, exist_ok=True)
        os.replace(self.staging, self.incomplete)
        self.release()
        self._tidy()
        return self.incomplete

    def abandon(self, reason: str) -> Path | None:
        """Set the run aside now, for a process about to exit at once (a second Ctrl-C
        or SIGTERM): ``summary.json`` says ``status: incomplete`` and adds ``reason`` to
        the one it had (a summary the run wrote keeps its figures).  Its checkpoint stays,
        so the run can still be resumed.  None when nothing is staged any more."""
        if not self.staging.is_dir():
            return None
        self._mark_incomplete(reason, then=True)
        return self.set_aside()

    def _mark_incomplete(self, reason: str, *, then: bool) -> None:
        """``status: incomplete`` in the staged summary (written if the run wrote none);
        ``then`` adds ``reason`` after the reason it had."""
        summary = read_summary(self.staging)
        if summary is not None and summary.get("status") == INCOMPLETE_STATUS and not then:
            return
        summary = summary or {"run_name": self.run_name}
        earlier = summary.get("incomplete_reason")
        summary["status"] = INCOMPLETE_STATUS
        if earlier and then:
            summary["incomplete_reason"] = f"{earlier}; then {reason}"
        else:
            summary["incomplete_reason"] = reason or earlier or "ended before it finished"
        partial = self.staging / "summary.json.partial"
        partial.write_text(json.dumps(summary, indent=2, sort_keys=True))
        os.replace(partial, self.staging / "summary.json")

    def _tidy(self) -> None:
        """Remove the staging folder's parent once no run is staged in it."""
        with contextlib.suppress(OSError):
            self.staging.parent.rmdir()


def find_resumable(output_dir: Path, run_name: str, fingerprint: str) -> Path | None:
    """The newest interrupted run of ``run_name`` whose checkpoint has ``fingerprint``."""
    candidates: list[tuple[int, str, Path]] = []
    for parent in (output_dir / INCOMPLETE, output_dir / STAGING):
        for folder in parent.glob(f"{run_name}-*"):
            token = folder.name[len(run_name) + 1 :]
            if not _is_token(token) or not folder.is_dir() or _held(folder):
                continue
            try:
                checkpoint = json.loads((folder / CHECKPOINT).read_text())
            except (OSError, ValueError):
                continue
            if checkpoint.get("fingerprint") == fingerprint:
                candidates.append((int(checkpoint.get("completed_round", 0)), token, folder))
    return max(candidates)[2] if candidates else None


def _is_token(token: str) -> bool:
    """Whether ``token`` is a :func:`run_token` (so ``a-b`` is not taken for run ``a``)."""
    stamp, _, tail = token.partition("-")
    return len(stamp) == 16 and stamp.endswith("Z") and len(tail) == 8 and "." not in tail


def _held(folder: Path) -> bool:
    """Whether a live process holds ``folder``'s lock (a run still going)."""
    try:
        fd = os.open(folder / LOCK, os.O_RDWR)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)
    return False


def read_summary(run_dir: Path) -> dict[str, Any] | None:
    """A run directory's summary, or None when it has none or it does not parse."""
    try:
        summary: dict[str, Any] = json.loads((run_dir / "summary.json").read_text())
    except (OSError, ValueError):
        return None
    return summary


def is_complete(run_dir: Path) -> bool:
    """Whether ``run_dir`` holds a run that finished (summary says ``complete``)."""
    summary = read_summary(run_dir)
    return summary is not None and summary.get("status") == COMPLETE_STATUS
