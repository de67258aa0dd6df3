"""A deployment on loopback for tests: a SuperLink with TLS and SuperNode authentication,
SuperNodes for hospitals that made their own keys, fedkd's node register, and `flwr run`.

Every process is started in its own session and stopped by its process id (its group),
whatever the test did.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from fedkd.data.heart_export import export_heart_hospitals
from fedkd.deploy.certs import make_ca, make_node_keys, make_server_cert
from fedkd.deploy.keyring import register

ROOT = Path(__file__).resolve().parents[2]
PASSPHRASE = b"correct horse battery"
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _env(home: Path) -> dict[str, str]:
    return {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "FLWR_HOME": str(home),
        "FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION": "1",
        "FLWR_TELEMETRY_ENABLED": "0",
        "FLWR_DISABLE_UPDATE_CHECK": "1",
    }


@dataclass
class Cluster:
    root: Path
    port: int = field(default_factory=free_port)
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def register_file(self) -> Path:
        return self.root / "site" / "nodes.toml"

    def prepare(self, hospitals: tuple[str, ...]) -> None:
        """The coordinating site's CA and certificate; each hospital's keys and config."""
        make_ca(self.root / "ca", passphrase=PASSPHRASE)
        make_server_cert(self.root / "ca", self.root / "link", passphrase=PASSPHRASE)
        export_heart_hospitals(self.root / "hospitals", seed=0)
        home = self.root / "cli-home"
        home.mkdir(parents=True, exist_ok=True)
        (home / "config.toml").write_text(
            '[superlink]\ndefault = "lab"\n[superlink.lab]\n'
            f'address = "127.0.0.1:{self.port}"\n'
            f'root-certificates = "{self.root / "ca" / "ca.crt"}"\n'
        )
        data = self.root / "hospitals"
        for name in hospitals:
            keys = self.root / f"keys-{name}"
            make_node_keys(keys, name)  # at the hospital; only the .pub files travel
            (self.root / f"{name}.node.toml").write_text(
                f'name = "{name}"\ndata = "csv"\ndata-path = "{data / f"{name}.csv"}"\n'
                f'data-schema = "{data / "heart.schema.toml"}"\n'
                f'public-data = "{data / "public.npz"}"\n'
                f'state-dir = "{self.root / f"state-{name}"}"\n'
                f'signing-key = "{keys / f"{name}.sign"}"\n'
            )

    def _start(self, label: str, args: list[str], home: Path) -> subprocess.Popen[bytes]:
        log = (self.root / f"{label}.log").open("wb")
        process = subprocess.Popen(
            args, cwd=self.root, env=_env(home), stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        self.processes[label] = process
        return process

    def start_superlink(self) -> None:
        self._start(
            "superlink",
            ["flower-superlink", "--ssl-ca-certfile", "ca/ca.crt", "--ssl-certfile",
             "link/server.pem", "--ssl-keyfile", "link/server.key", "--enable-supernode-auth",
             "--database", "link/state.db", "--host", "127.0.0.1", "--port", str(self.port)],
            self.root / "link-home",
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.2)
        raise RuntimeError("the SuperLink did not come up")

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
        key = key or self.root / f"keys-{name}" / f"{name}.auth"
        return self._start(
            f"node-{name}",
            ["flower-supernode", "--superlink", f"127.0.0.1:{self.port}", "--root-certificates",
             "ca/ca.crt", "--auth-supernode-private-key", str(key), "--port", str(free_port()),
             "--node-config", f"config='{self.root / f'{name}.node.toml'}'"],
            self.root / f"home-{name}",
        )  # fmt: skip

    def run(self, run_config: dict[str, object]) -> subprocess.Popen[bytes]:
        """``flwr run`` of this checkout's app on the SuperLink, streaming its logs."""
        text = " ".join(f"{k}={json.dumps(v) if not isinstance(v, str) else repr(v)}"
                        for k, v in run_config.items())  # fmt: skip
        return self._start(
            "run",
            ["flwr", "run", str(ROOT), "lab", "--stream", "--run-config", text],
            self.root / "cli-home",
        )

    def kill(self, label: str, sig: int = signal.SIGKILL) -> None:
        process = self.processes[label]
        if process.poll() is None:
            os.killpg(process.pid, sig)
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
        for proc in Path("/proc").glob("[0-9]*"):
            try:
                args = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                cwd = os.readlink(proc / "cwd")
            except OSError:
                continue
            if "flower-" in args and cwd.startswith(str(self.root)):
                os.kill(int(proc.name), signal.SIGKILL)
