"""A SuperNode whose thread dies exits (status 75) instead of living on offline; the
launcher's task processes take their token on stdin, never on the command line."""

from __future__ import annotations

import subprocess
import sys

from fedkd.flower_glue.supernode_watchdog import THREAD_DIED

DIES = """
import threading, time
from fedkd.flower_glue.supernode_watchdog import exit_when_a_thread_dies
exit_when_a_thread_dies()
def heartbeat():
    raise RuntimeError("Heartbeat failed unexpectedly. The SuperLink does not know it.")
threading.Thread(target=heartbeat, name="heartbeat").start()
time.sleep(30)  # the main loop, alive and useless
"""


def test_a_dead_thread_ends_the_process_with_a_restartable_status() -> None:
    done = subprocess.run([sys.executable, "-c", DIES], capture_output=True, text=True, timeout=20)
    assert done.returncode == THREAD_DIED == 75
    assert "thread heartbeat died (RuntimeError: Heartbeat failed" in done.stderr


def test_fedkd_node_supernode_is_flowers_supernode() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "fedkd.cli", "node", "supernode", "--help"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "--auth-supernode-private-key" in done.stdout and "--isolation" in done.stdout


def test_a_task_process_takes_its_token_from_stdin_only() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "fedkd.deploy.launcher", "--runtime-api-address", "127.0.0.1:1",
         "--node-config", "x.toml", "--token", "secret"],
        capture_output=True, text=True, timeout=60, input="",
    )  # fmt: skip
    assert done.returncode == 2 and "unrecognized arguments: --token secret" in done.stderr
    done = subprocess.run(
        [sys.executable, "-m", "fedkd.deploy.launcher", "--runtime-api-address", "127.0.0.1:1",
         "--node-config", "x.toml"],
        capture_output=True, text=True, timeout=60, input="",
    )  # fmt: skip
    assert done.returncode == 2 and "no task token on standard input" in done.stderr
