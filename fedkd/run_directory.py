"""Where a run writes its results, so that no result is ever lost or mixed.

A run writes into a fresh staging folder (``<output-dir>/.staging/<run-name>-<token>``)
and is moved into place with one ``rename`` when it is complete.  A run that is
interrupted or fails is moved to ``<output-dir>/incomplete/<run-name>-<token>`` with
``status: incomplete`` in its summary.  So ``<output-dir>/<run-name>`` only ever holds a
complete run, of exactly the ``config.json`` beside it, and an existing one is replaced
only when the run was started with ``overwrite``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

STAGING = ".staging"
INCOMPLETE = "incomplete"
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

    @classmethod
    def create(cls, output_dir: Path, run_name: str, *, overwrite: bool) -> RunDirectory:
        output_dir = output_dir.expanduser().resolve()
        check_free(output_dir, run_name, overwrite=overwrite)
        made = cls(output_dir, run_name, run_token(), overwrite)
        made.staging.mkdir(parents=True)
        return made

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
        os.replace(self.staging, target)
        shutil.rmtree(replaced, ignore_errors=True)
        self._tidy()
        return target

    def set_aside(self) -> Path:
        """Move an interrupted or failed run to ``incomplete/``; return where it went."""
        self.incomplete.parent.mkdir(parents=True, exist_ok=True)
        os.replace(self.staging, self.incomplete)
        self._tidy()
        return self.incomplete

    def _tidy(self) -> None:
        """Remove the staging folder's parent once no run is staged in it."""
        with contextlib.suppress(OSError):
            self.staging.parent.rmdir()


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
