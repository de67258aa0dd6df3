"""`flwr run .` as the README documents it: offline (no runtime dependency installation),
the number of SuperNodes set in the federation config, and a ServerApp that stops with
one line when the online nodes do not match num-clients."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SUPERLINK_PORT = 39091


def _port_in_use(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _stop_superlinks(flwr_home: Path) -> None:
    """`flwr run` leaves its local SuperLink running: stop the one this test started."""
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            args = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if "flower-superlink" in args and str(flwr_home) in args:
            os.kill(int(proc.name), signal.SIGTERM)


def _flwr_run(flwr_home: Path, nodes: int, run_config: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "FLWR_HOME": str(flwr_home),
        "FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION": "1",
        "FLWR_TELEMETRY_ENABLED": "0",
        "FLWR_DISABLE_UPDATE_CHECK": "1",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }
    return subprocess.run(
        [
            "flwr", "run", ".", "--stream",
            "--federation-config", f"num-supernodes={nodes} client-resources-num-cpus=1",
            "--run-config", run_config,
        ],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


@pytest.mark.integration
def test_flwr_run_works_offline_and_refuses_a_federation_of_another_size(tmp_path: Path) -> None:
    if _port_in_use(SUPERLINK_PORT):
        pytest.skip(f"a SuperLink already serves port {SUPERLINK_PORT}; this test starts its own")
    flwr_home, runs = tmp_path / "flwr-home", tmp_path / "runs"
    common = f"output-dir='{runs}' model='mlp-s' num-server-rounds=1 transfer-size=200"
    try:
        done = _flwr_run(flwr_home, 3, f"{common} num-clients=3 run-name='three'")
        assert done.returncode == 0, done.stdout + done.stderr
        summary = json.loads((runs / "three" / "summary.json").read_text())
        assert summary["status"] == "complete"
        assert summary["num_clients"] == 3 and summary["clients_taking_part"] == 3

        # Flower's default federation has 2 SuperNodes: a run for 3 stops, saying so.
        short = _flwr_run(
            flwr_home, 2, f"{common} num-clients=3 run-name='short' startup-timeout=2"
        )
        output = short.stdout + short.stderr
        assert "num-clients is 3 but 2 nodes are online" in output, output
        assert "Traceback" not in output
        assert not (runs / "short").exists()
    finally:
        _stop_superlinks(flwr_home)
