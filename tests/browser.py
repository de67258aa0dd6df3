"""Headless Chromium for tests of the pages fedkd writes (Debian's ``chromium``)."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--enable-logging=stderr", "--log-level=0",
)  # fmt: skip


@dataclass(frozen=True)
class Rendered:
    dom: str
    console: list[str]
    """Every line the page wrote to its console (errors included)."""
    screenshot: Path


def chromium() -> str:
    """The browser, or skip: `.ci/run` installs Debian's chromium for CI."""
    path = shutil.which("chromium")
    if path is None:
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    return path


def render(page: Path, folder: Path, *, width: int = 1200, height: int = 2400) -> Rendered:
    """The page's DOM after loading, its console lines, and a screenshot."""
    browser = chromium()
    dom = subprocess.run(
        [browser, *FLAGS, f"--user-data-dir={folder / 'profile-dom'}", "--dump-dom",
         page.resolve().as_uri()],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    shot = folder / "screenshot.png"
    subprocess.run(
        [browser, *FLAGS, f"--user-data-dir={folder / 'profile-shot'}",
         f"--window-size={width},{height}", f"--screenshot={shot}", page.resolve().as_uri()],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    console = [line for line in dom.stderr.splitlines() if ":CONSOLE" in line]
    return Rendered(dom=dom.stdout, console=console, screenshot=shot)
