"""docs/runbook.md as a test: every ``bash`` block, in order, in one bash session on
loopback, from an empty directory, with only the substitutions the runbook itself names
(its "How this runbook is tested" table).  ``bash hospital`` blocks run once per
hospital.  Blocks of the kinds the runbook declares not run here (``systemd``,
``crontab``, ``offline-host``) are counted, so a new kind cannot slip through unrun.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from fedkd.privacy.ledger import ReadOnlyLedger
from tests.deploy.cluster import ROOT, free_port, kill_leftovers

pytestmark = pytest.mark.integration
RUNBOOK = ROOT / "docs" / "runbook.md"
HOSPITALS = ("cleveland", "hungary")
NOT_RUN = {"systemd", "crontab", "offline-host"}
ROOTS = ("/etc/fedkd", "/var/lib/fedkd", "/var/log/fedkd", "/data")
FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```$", re.MULTILINE | re.DOTALL)


def runbook_blocks() -> list[tuple[str, str]]:
    """(info string, text) of every fenced block, in order."""
    return [(m.group(1).strip(), m.group(2)) for m in FENCE.finditer(RUNBOOK.read_text())]


def substitute(text: str, base: Path, ports: dict[str, int], hospital: str | None) -> str:
    """The runbook's own substitutions, and no others."""
    for root in ROOTS:
        text = re.sub(rf"(?<![\w./-]){re.escape(root)}(?=[/\s\"']|$)", f"{base}{root}", text)
    text = text.replace("/opt/fedkd/app", str(ROOT)).replace("10.0.0.5", "127.0.0.2")
    for port, free in ports.items():
        text = re.sub(rf"\b{port}\b", str(free), text)
    if hospital is not None:
        text = text.replace("cleveland", hospital)
    return text


class Session:
    """One bash, fed block after block, as an operator at a terminal."""

    def __init__(self, cwd: Path, env: dict[str, str]) -> None:
        self.shell = subprocess.Popen(
            ["bash", "--noprofile", "--norc"], cwd=cwd, env=env, text=True,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.transcript: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        self._send("set -eo pipefail\n")

    def _read(self) -> None:
        assert self.shell.stdout is not None
        for line in self.shell.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def _send(self, text: str) -> None:
        assert self.shell.stdin is not None
        self.shell.stdin.write(text)
        self.shell.stdin.flush()

    def run(self, script: Path, label: str, timeout: float) -> None:
        marker = f"__runbook_block_done__ {label}"
        self._send(f"source {script}\necho '{marker}'\n")
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                pytest.fail(f"block {label} ran past {timeout:g} s:\n{self.tail()}")
            if line is None:
                pytest.fail(f"block {label} failed (the shell exited):\n{self.tail()}")
            if line.strip() == marker:
                return
            self.transcript.append(line)

    def tail(self) -> str:
        return "".join(self.transcript[-60:])

    def stop(self, base: Path) -> None:
        """Everything the runbook started: the session's group, then what left it."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.shell.pid, signal.SIGTERM)
        try:
            self.shell.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.shell.pid, signal.SIGKILL)
        kill_leftovers(lambda args, cwd: str(base) in args or cwd.startswith(str(base)))


def test_the_runbook_runs_as_written(tmp_path: Path) -> None:
    blocks = runbook_blocks()
    kinds = {info for info, _ in blocks}
    assert kinds <= {"bash", "bash hospital", *NOT_RUN}, kinds
    ports = {"8000": free_port(), "9092": free_port()}
    runtime = {name: free_port() for name in HOSPITALS}
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "HOME": str(tmp_path / "home"),
        "FEDKD_CA_PASSPHRASE": "correct horse battery staple",
    }
    for key in list(env):
        if key.startswith("FLWR_"):
            del env[key]
    (tmp_path / "home").mkdir()
    scripts = tmp_path / ".runbook"
    scripts.mkdir()
    session = Session(tmp_path, env)
    started = time.monotonic()
    ran = 0
    try:
        for number, (info, text) in enumerate(blocks):
            if info in NOT_RUN:
                continue
            for hospital in HOSPITALS if info == "bash hospital" else (None,):
                block_ports = {**ports, "9094": runtime[hospital]} if hospital else ports
                script = scripts / f"block-{number}{'-' + hospital if hospital else ''}.sh"
                script.write_text(substitute(text, tmp_path, block_ports, hospital))
                session.run(script, script.stem, timeout=900 if "flwr run" in text else 180)
                ran += 1
    finally:
        took = time.monotonic() - started
        session.stop(tmp_path)
    print(f"runbook: {ran} block runs in {took:.0f} s")
    assert ran == sum(2 if i == "bash hospital" else 1 for i, _ in blocks if i not in NOT_RUN)

    run_dir = tmp_path / "var/lib/fedkd/superlink/runs/heart-2026-12"
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "complete", summary.get("incomplete_reason")
    names = sorted(v["name"] for v in summary["privacy"]["nodes"].values())
    assert names == sorted(HOSPITALS)
    assert 0 < summary["epsilon_max"] <= 3.0
    for name in HOSPITALS:
        ledger = tmp_path / f"var/lib/fedkd/{name}/{name}.ledger.db"
        assert [r.round for r in ReadOnlyLedger.read(ledger).rows() if r.steps > 0] == [1, 2]
    access = (tmp_path / "var/log/fedkd/gateway-access.log").read_text()
    assert " POST /v1/fleet/" in access and "flwr-signature" not in access
    assert "privacy" in session.tail().lower()  # the node's own card was printed
