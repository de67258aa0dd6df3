"""A deployment on loopback for tests: a SuperLink with TLS and SuperNode authentication,
SuperNodes for hospitals that made their own keys, fedkd's node register, and `flwr run`.

Two loopback addresses stand for two interfaces: the SuperLink (Fleet, Control and
Runtime APIs on one port) listens on the coordinating site's own, 127.0.0.1; hospitals
reach it only through fedkd's Fleet gateway on the hospital-facing one, 127.0.0.2.  Each
SuperNode runs with ``--isolation process`` and its ClientApps start through
``fedkd node launch``, which checks the pinned bundle first.

Every process is started in its own session and stopped by its process id (its group),
whatever the test did.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from fedkd.data.heart_export import export_heart_hospitals
from fedkd.deploy.certs import make_ca, make_node_keys, make_server_cert
from fedkd.deploy.keyring import register
from fedkd.deploy.launcher import bundle_sha256, transfer_digest_of
from fedkd.node import parse_node_config

ROOT = Path(__file__).resolve().parents[2]
UNITS = ROOT / "fedkd" / "deploy" / "systemd"
SANDBOX = Path(__file__).resolve().parent / "sandbox.py"
PASSPHRASE = b"correct horse battery"
BIN = Path(sys.executable).parent
SITE = "127.0.0.1"
"""The coordinating site's own interface."""
HOSPITAL_FACING = "127.0.0.2"
"""The interface hospitals reach."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _env(home: Path) -> dict[str, str]:
    return {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "FLWR_HOME": str(home),
        "HOME": str(home),
        "FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION": "1",
        "FLWR_TELEMETRY_ENABLED": "0",
        "FLWR_DISABLE_UPDATE_CHECK": "1",
    }


def wait_for_port(host: str, port: int, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex((host, port)) == 0:
                return
        time.sleep(0.2)
    raise RuntimeError(f"{what} did not come up on {host}:{port}")


@dataclass
class Cluster:
    root: Path
    port: int = field(default_factory=free_port)
    """The SuperLink's (site interface)."""
    gateway_port: int = field(default_factory=free_port)
    """The Fleet gateway's (hospital-facing interface)."""
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    pin: str = ""
    """The SHA-256 of this checkout's bundle, which every hospital pins."""
    transfer_digest: str = ""
    gateway_options: tuple[str, ...] = ()
    """More ``fedkd deploy gateway`` options (its limits)."""
    calibration_run_id: str = ""
    """The calibration run's id (its releases are in the nodes' ledgers too)."""
    reply_timeout: float = 40.0
    """The runs' reply-timeout: :meth:`calibrate` derives it from the round times measured
    on this machine as it is now (idle or loaded)."""
    sandboxed: bool = True
    """Whether the SuperLink, gateway, SuperNodes and launchers run under their systemd
    units' process sandbox (syscall filter, W^X memory, address families, umask)."""

    @property
    def register_file(self) -> Path:
        return self.root / "site" / "nodes.toml"

    def prepare(self, hospitals: tuple[str, ...], run_config: dict[str, object]) -> None:
        """The coordinating site's CA and certificate; each hospital's keys and config,
        pinning this checkout's bundle and the transfer set of ``run_config``."""
        make_ca(self.root / "ca", passphrase=PASSPHRASE)
        sans = ("localhost", SITE)
        make_server_cert(self.root / "ca", self.root / "link", passphrase=PASSPHRASE, sans=sans)
        # The internet-facing gateway has its own certificate and key, not the SuperLink's.
        make_server_cert(
            self.root / "ca", self.root / "gateway", passphrase=PASSPHRASE, sans=(HOSPITAL_FACING,)
        )
        export_heart_hospitals(self.root / "hospitals", seed=0)
        home = self.root / "cli-home"
        home.mkdir(parents=True, exist_ok=True)
        (home / "config.toml").write_text(
            '[superlink]\ndefault = "lab"\n[superlink.lab]\n'
            f'address = "{SITE}:{self.port}"\n'
            f'root-certificates = "{self.root / "ca" / "ca.crt"}"\n'
            # The same CLI pointed at the hospital-facing interface (it must get nowhere).
            "[superlink.hospital-side]\n"
            f'address = "{HOSPITAL_FACING}:{self.gateway_port}"\n'
            f'root-certificates = "{self.root / "ca" / "ca.crt"}"\n'
        )
        self.pin = bundle_sha256(ROOT)
        self.transfer_digest = ""
        for name in hospitals:
            self.add_hospital(name, run_config)

    def add_hospital(self, name: str, run_config: dict[str, object]) -> Path:
        """What a hospital does at home: its keys, and its node config (pins included)."""
        data = self.root / "hospitals"
        keys = self.root / f"keys-{name}"
        make_node_keys(keys, name)  # at the hospital; only the .pub files travel
        config = self.root / f"{name}.node.toml"
        config.write_text(
            f'name = "{name}"\ndata = "csv"\ndata-path = "{data / f"{name}.csv"}"\n'
            f'data-schema = "{data / "heart.schema.toml"}"\n'
            f'public-data = "{data / "public.npz"}"\n'
            f'state-dir = "{self.root / f"state-{name}"}"\n'
            f'signing-key = "{keys / f"{name}.sign"}"\n'
            f'bundle-sha256 = "{self.pin}"\n'
            "privacy-max-epsilon = 50.0\nprivacy-max-delta = 1e-5\n"
        )
        if not self.transfer_digest:
            node = parse_node_config({"config": str(config)})
            self.transfer_digest = transfer_digest_of(run_config, node)
        with config.open("a") as fh:
            fh.write(f'transfer-digest = "{self.transfer_digest}"\n')
        return config

    def _start(
        self, label: str, args: list[str], home: Path, *, unit: str | None = None
    ) -> subprocess.Popen[bytes]:
        """``args`` in its own session, under ``unit``'s process sandbox (see sandbox.py)."""
        if unit is not None and (traced := os.environ.get("FEDKD_DEPLOY_STRACE_DIR")):
            # To find the calls a unit's filter must allow: each process's calls, counted.
            args = ["strace", "-f", "-qq", "-c", "-o", f"{traced}/{unit}.{label}.txt", *args]
        elif unit is not None and self.sandboxed:
            args = [sys.executable, str(SANDBOX), str(UNITS / unit), "--", *args]
        log = (self.root / f"{label}.log").open("wb")
        process = subprocess.Popen(
            args, cwd=self.root, env=_env(home), stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        self.processes[label] = process
        return process

    def start_superlink(self, *, gateway: bool = True) -> None:
        """The SuperLink (its state in ``link/state.db``, kept across restarts) and, unless
        ``gateway`` is false, the Fleet gateway in front of it."""
        self._start(
            "superlink",
            ["flower-superlink", "--ssl-ca-certfile", "ca/ca.crt", "--ssl-certfile",
             "link/server.pem", "--ssl-keyfile", "link/server.key", "--enable-supernode-auth",
             "--database", "link/state.db", "--host", SITE, "--port", str(self.port)],
            self.root / "link-home", unit="fedkd-superlink.service",
        )  # fmt: skip
        wait_for_port(SITE, self.port, "the SuperLink")
        if not gateway:
            return
        self._start(
            "gateway",
            [sys.executable, "-m", "fedkd.cli", "deploy", "gateway", "--listen",
             f"{HOSPITAL_FACING}:{self.gateway_port}", "--superlink", f"https://{SITE}:{self.port}",
             "--certfile", "gateway/server.pem", "--keyfile", "gateway/server.key",
             "--ca", "ca/ca.crt", "--access-log", "gateway/access.log", *self.gateway_options],
            self.root / "gateway-home", unit="fedkd-fleet-gateway.service",
        )  # fmt: skip
        wait_for_port(HOSPITAL_FACING, self.gateway_port, "the Fleet gateway")

    def flwr(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["flwr", *args], cwd=self.root, env=_env(self.root / "cli-home"),
            capture_output=True, text=True, timeout=timeout,
        )  # fmt: skip

    def register_node(self, name: str) -> None:
        """The coordinating site registers the hospital's two public keys under its name."""
        keys = self.root / f"keys-{name}"
        done = self.flwr("supernode", "register", str(keys / f"{name}.auth.pub"), "lab",
                         "--name", name)  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(done.stdout + done.stderr)
        register(
            self.register_file, name, auth=keys / f"{name}.auth.pub", sign=keys / f"{name}.sign.pub"
        )

    def start_node(self, name: str, *, key: Path | None = None) -> subprocess.Popen[bytes]:
        """The hospital's SuperNode (through the gateway) and its bundle-checking launcher."""
        key = key or self.root / f"keys-{name}" / f"{name}.auth"
        runtime_port = free_port()
        config = self.root / f"{name}.node.toml"
        node = self._start(
            f"node-{name}",
            [sys.executable, "-m", "fedkd.cli", "node", "supernode", "--superlink",
             f"{HOSPITAL_FACING}:{self.gateway_port}",
             "--root-certificates", "ca/ca.crt", "--auth-supernode-private-key", str(key),
             "--isolation", "process", "--host", SITE, "--port", str(runtime_port),
             "--node-config", f"config='{config}'"],
            self.root / f"home-{name}", unit="fedkd-supernode@.service",
        )  # fmt: skip
        self._start(
            f"launch-{name}",
            [sys.executable, "-m", "fedkd.cli", "node", "launch", str(config),
             "--runtime-api-address", f"{SITE}:{runtime_port}"],
            self.root / f"home-{name}", unit="fedkd-launcher@.service",
        )  # fmt: skip
        return node

    def run(
        self, run_config: dict[str, object], *, app: Path = ROOT, label: str = "run"
    ) -> subprocess.Popen[bytes]:
        """``flwr run`` of ``app`` (this checkout) on the SuperLink, streaming its logs."""
        text = " ".join(f"{k}={json.dumps(v) if not isinstance(v, str) else repr(v)}"
                        for k, v in run_config.items())  # fmt: skip
        return self._start(
            label,
            ["flwr", "run", str(app), "lab", "--stream", "--run-config", text],
            self.root / "cli-home",
        )

    def calibrate(self, run_config: dict[str, object]) -> float:
        """A two-round run without DP on every started node; the reply timeout becomes five
        times its slowest round after the first (each round starts a ClientApp process per
        node, so a loaded machine shows in it), at least 30 s."""
        config = {**run_config, "run-name": "calibration", "num-server-rounds": 2,
                  "dp": False, "reply-timeout": 600.0}  # fmt: skip
        run = self.run(config, label="calibration")
        if run.wait(timeout=1800) != 0:
            raise RuntimeError("the calibration run failed: " + self.log("calibration")[-3000:])
        summary = json.loads(
            (Path(str(config["output-dir"])) / "calibration" / "summary.json").read_text()
        )
        # Round 1 also installs the bundle at each node: it has startup-timeout on top.
        later = [float(s) for r, s in summary["round_seconds"].items() if int(r) > 1]
        slowest = max(later)
        self.reply_timeout = float(max(30, round(5 * slowest)))
        self.calibration_run_id = self.log("calibration").split("started run ")[1].split()[0]
        print(f"slowest calibration round {slowest:.1f} s: reply-timeout {self.reply_timeout:g} s")
        return self.reply_timeout

    def patience(self, rounds: int) -> float:
        """How long a run of ``rounds`` may take before a test gives up on it."""
        return 120 + (rounds + 2) * 3 * self.reply_timeout

    def log(self, label: str) -> str:
        return (self.root / f"{label}.log").read_text(errors="replace")

    def kill_node(self, name: str) -> None:
        """A hospital's machine going down: its SuperNode and its launcher."""
        self.kill(f"node-{name}")
        self.kill(f"launch-{name}")

    def kill(self, label: str, sig: int = signal.SIGKILL, *, wait_s: float = 60) -> None:
        """``sig`` to ``label``'s process and every process it started, however they
        grouped themselves (the SuperLink's ServerApp runs in a session of its own), as
        systemd stops a unit's control group; SIGKILL after ``wait_s``, as systemd does
        after its stop timeout."""
        process = self.processes[label]
        if process.poll() is None:
            _signal_tree(process.pid, sig)
        try:
            process.wait(timeout=wait_s)
        except subprocess.TimeoutExpired:
            _signal_tree(process.pid, signal.SIGKILL)
            process.wait(timeout=30)

    def stop_all(self) -> None:
        for label in list(self.processes):
            process = self.processes[label]
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
        # SuperExec helpers left behind by a killed parent: stop those this cluster owns.
        kill_leftovers(lambda args, cwd: ("flower-" in args or "fedkd" in args)
                       and cwd.startswith(str(self.root)))  # fmt: skip


def kill_leftovers(owned: Callable[[str, str], bool]) -> None:
    """SIGKILL every process (but this one) whose (command line, working directory) is
    ``owned``: what a test started and what those started in sessions of their own."""
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            args = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            cwd = os.readlink(proc / "cwd")
        except OSError:
            continue
        pid = int(proc.name)
        if pid != os.getpid() and owned(args, cwd):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def _descendants(root: int) -> list[int]:
    """``root`` and every process below it, from /proc's parent links."""
    children: dict[int, list[int]] = {}
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            parent = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(parent, []).append(int(proc.name))
    found, frontier = [root], [root]
    while frontier:
        frontier = [c for p in frontier for c in children.get(p, [])]
        found += frontier
    return found


def _signal_tree(root: int, sig: int) -> None:
    for pid in _descendants(root):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
