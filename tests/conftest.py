"""Every test runs in its own empty directory, so run folders and node ledgers written
under the default relative ``runs/`` never leak between tests or into the checkout."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _isolated_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
