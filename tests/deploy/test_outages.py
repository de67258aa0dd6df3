"""The deployment under outage and attack, on loopback: the SuperLink killed mid-run and
restarted, and a flood of oversize, unauthenticated and slow requests at the gateway,
each while hospitals run.

The SuperLink is killed with SIGKILL (with its ServerApp, as systemd kills a unit's
control group) during round 2 of 4 and started again 20 s later on the same state;
the SuperNodes, never restarted, reconnect through the gateway (which answered 503 with
``Retry-After`` meanwhile), and the run, submitted again, resumes from its checkpoint.
"""

from __future__ import annotations

import base64
import json
import signal
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from fedkd.deploy.gateway_limits import body_limit_for
from fedkd.privacy.ledger import ReadOnlyLedger
from tests.deploy.cluster import HOSPITAL_FACING, SITE, Cluster
from tests.deploy.signing import node_key, signed_headers

pytestmark = pytest.mark.integration
HOSPITALS = ("cleveland", "hungary")
MAX_PAYLOAD = 2 * 1024 * 1024
LIMIT = body_limit_for(MAX_PAYLOAD)
CONNECTION_CAP = 24


def _run_config(root: Path, name: str, rounds: int, reply_timeout: float = 60.0) -> dict[str, Any]:
    return {
        "dataset": "heart", "public-data": str(root / "hospitals" / "public.npz"),
        "num-clients": len(HOSPITALS), "num-server-rounds": rounds, "model": "mlp-s",
        "batch-size": 16, "lr": 0.02, "dp": True, "dp-target-epsilon": 8.0,
        "output-dir": str(root / "runs"), "run-name": name,
        "node-keys": str(root / "site" / "nodes.toml"), "max-payload-bytes": MAX_PAYLOAD,
        "reply-timeout": reply_timeout, "startup-timeout": 120.0,
    }  # fmt: skip


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    root = tmp_path_factory.mktemp("outages")
    made = Cluster(
        root,
        gateway_options=(
            "--max-payload-bytes", str(MAX_PAYLOAD), "--max-connections", str(CONNECTION_CAP),
            "--max-connections-per-client", "8",
        ),
    )  # fmt: skip
    try:
        made.prepare(HOSPITALS, _run_config(root, "any", 4))
        made.start_superlink()
        for name in HOSPITALS:
            made.register_node(name)
            made.start_node(name)
        made.calibrate(_run_config(root, "any", 2))
        yield made
    finally:
        made.stop_all()


def _staged_rows(runs: Path, name: str) -> list[dict[str, Any]]:
    metrics = list((runs / ".staging").glob(f"{name}-*/metrics.jsonl"))
    return [json.loads(x) for x in metrics[0].read_text().splitlines()] if metrics else []


def _wait_for_round(cluster: Cluster, name: str, label: str, done: int) -> None:
    deadline = time.monotonic() + cluster.patience(done)
    while time.monotonic() < deadline:
        rows = _staged_rows(cluster.root / "runs", name)
        if sum(1 for r in rows if r["round"] == done and r["status"] == "ok") == len(HOSPITALS):
            return
        assert cluster.processes[label].poll() is None, cluster.log(label)[-3000:]
        time.sleep(0.2)
    pytest.fail(f"round {done} never finished: " + cluster.log(label)[-3000:])


def test_a_superlink_killed_in_round_two_and_restarted_loses_no_node(cluster: Cluster) -> None:
    config = _run_config(cluster.root, "restarted", 4, cluster.reply_timeout)
    nodes = {name: cluster.processes[f"node-{name}"] for name in HOSPITALS}
    pids = {name: node.pid for name, node in nodes.items()}
    cluster.run(config, label="before-restart")
    _wait_for_round(cluster, "restarted", "before-restart", 1)
    time.sleep(1.0)  # round 2's requests are out
    cluster.kill("superlink")  # SIGKILL to its process group: the ServerApp goes with it
    killed_at = time.monotonic()
    time.sleep(20)
    access = (cluster.root / "gateway" / "access.log").read_text()
    assert " 503 " in access  # the nodes were told to retry, not to give up
    assert " 500 " not in access and " 429 " not in access
    cluster.start_superlink(gateway=False)
    cluster.kill("before-restart")  # the submitting CLI lost its stream with the SuperLink

    resumed = cluster.run(config, label="after-restart")
    assert resumed.wait(timeout=cluster.patience(4)) == 0, cluster.log("after-restart")[-3000:]
    took = time.monotonic() - killed_at
    for name, node in nodes.items():
        assert node.poll() is None and node.pid == pids[name], name  # never restarted
    run_dir = cluster.root / "runs" / "restarted"
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "complete"
    assert summary["resumed_after_round"] >= 1
    rows = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert all(r["status"] == "ok" for r in rows if r["round"] >= 1), rows
    assert sorted(r["round"] for r in rows if r["round"] >= 1) == [1, 1, 2, 2, 3, 3, 4, 4]
    for name in HOSPITALS:
        ledger = ReadOnlyLedger.read(cluster.root / f"state-{name}" / f"{name}.ledger.db")
        released = [
            r.round for r in ledger.rows() if r.steps > 0 and r.run_id != cluster.calibration_run_id
        ]
        assert released == [1, 2, 3, 4], (name, released)  # one release per round
    print(f"killed in round 2, restarted after 20 s, complete {took:.0f} s after the kill")


def _peak_reset(pid: int) -> None:
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # VmHWM := VmRSS from now on


def _kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def _group(leader: int) -> list[int]:
    """``leader`` and every process in its process group (the SuperLink's ServerApp too)."""
    pids = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if int((proc / "stat").read_text().rsplit(")", 1)[1].split()[2]) == leader:
                pids.append(int(proc.name))
        except (OSError, ValueError, IndexError):
            continue
    return pids


def _tls(gateway: tuple[str, int], source: str, ca: Path) -> ssl.SSLSocket:
    context = ssl.create_default_context(cafile=str(ca))
    raw = socket.create_connection(gateway, timeout=30, source_address=(source, 0))
    return context.wrap_socket(raw, server_hostname=gateway[0])


def _read_all(sock: ssl.SSLSocket) -> bytes:
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except (OSError, ssl.SSLError):
        pass
    return data


def _head(path: str, extra: dict[str, str]) -> bytes:
    lines = [f"POST {path} HTTP/1.1", f"Host: {HOSPITAL_FACING}"]
    lines += [f"{k}: {v}" for k, v in {**signed_headers(node_key()), **extra}.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _oversize_declared(gateway: tuple[str, int], source: str, ca: Path) -> bytes:
    """Headers declaring three times the limit; the answer comes before any body is sent."""
    with _tls(gateway, source, ca) as sock:
        sock.sendall(_head("/v1/fleet/push-object", {"Content-Length": str(3 * LIMIT)}))
        return _read_all(sock)


def _oversize_chunked(gateway: tuple[str, int], source: str, ca: Path) -> bytes:
    """A chunked body (no Content-Length) one byte past the limit, then the answer."""
    with _tls(gateway, source, ca) as sock:
        sock.sendall(_head("/v1/fleet/push-object", {"Transfer-Encoding": "chunked"}))
        left, block = LIMIT + 1, 64 * 1024
        while left:
            size = min(block, left)
            sock.sendall(f"{size:x}\r\n".encode() + b"\x00" * size + b"\r\n")
            left -= size
        return _read_all(sock)


def _just_under(gateway: tuple[str, int], source: str, ca: Path) -> bytes:
    """A well-formed push of an object just under the limit, signed by a key the SuperLink
    never registered: it parses the whole body before its authentication refuses it."""
    from flwr.proto.message_pb2 import PushObjectRequest
    from flwr.proto.node_pb2 import Node

    body = PushObjectRequest(
        node=Node(node_id=1), run_id=1, object_id="0" * 64, object_content=b"\x00" * (LIMIT - 4096)
    ).SerializeToString()
    assert len(body) < LIMIT
    headers = {"Content-Length": str(len(body)), "Content-Type": "application/protobuf"}
    with _tls(gateway, source, ca) as sock:
        sock.sendall(_head("/v1/fleet/push-object", headers) + body)
        return _read_all(sock)


def _slow(gateway: tuple[str, int], source: str, ca: Path, hold_s: float) -> bytes:
    """Headers trickled a byte every two seconds until cut off (or ``hold_s`` passes)."""
    try:
        sock = _tls(gateway, source, ca)
    except (OSError, ssl.SSLError) as exc:
        return f"refused at connect: {exc}".encode()
    with sock:
        sock.settimeout(2.0)
        deadline = time.monotonic() + hold_s
        try:
            sock.sendall(b"POST /v1/fleet/pull-messages HTTP/1.1\r\n")
            while time.monotonic() < deadline:
                try:
                    answer = sock.recv(65536)
                    return answer  # refused or timed out by the gateway
                except TimeoutError:
                    sock.sendall(b"X")
        except (OSError, ssl.SSLError):
            return b"cut off"
        return b"held"


def test_a_flood_before_authentication_stays_bounded_while_hospitals_run(
    cluster: Cluster,
) -> None:
    gateway_pid = cluster.processes["gateway"].pid
    link_pids = _group(cluster.processes["superlink"].pid)
    # The bounds, stated before the flood: the gateway streams (a few 64 KiB reads per
    # connection, nothing per body); the SuperLink buffers at most the bodies the gateway
    # forwards at once, here the 20 just under the limit, a few copies each as it parses.
    gateway_bound_kib = _kib(gateway_pid, "VmRSS") + 64 * 1024
    link_bound_kib = sum(_kib(p, "VmRSS") for p in link_pids) + (3 * 20 * LIMIT) // 1024 + 64 * 1024
    for pid in (gateway_pid, *link_pids):
        _peak_reset(pid)

    honest = cluster.run(
        _run_config(cluster.root, "flooded", 3, cluster.reply_timeout), label="flooded"
    )
    ca = cluster.root / "ca" / "ca.crt"
    gateway = (HOSPITAL_FACING, cluster.gateway_port)
    outcomes: dict[str, list[bytes]] = {"declared": [], "chunked": [], "under": [], "slow": []}

    def attack(kind: str, source: str) -> None:
        if kind == "declared":
            outcomes[kind].append(_oversize_declared(gateway, source, ca))
        elif kind == "chunked":
            outcomes[kind].append(_oversize_chunked(gateway, source, ca))
        elif kind == "under":
            outcomes[kind].append(_just_under(gateway, source, ca))
        else:
            outcomes[kind].append(_slow(gateway, source, ca, hold_s=20))

    plan = [("declared", f"127.0.1.{i}") for i in range(5)]
    plan += [("chunked", f"127.0.2.{i}") for i in range(5)]
    plan += [("under", f"127.0.3.{i}") for i in range(20)]
    plan += [("slow", f"127.0.4.{i // 4}") for i in range(CONNECTION_CAP + 8)]
    time.sleep(3)  # the run is submitted and starting: flood while it runs
    threads = [threading.Thread(target=attack, args=step) for step in plan]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(t.is_alive() for t in threads)

    assert honest.wait(timeout=cluster.patience(3)) == 0, cluster.log("flooded")[-3000:]
    summary = json.loads((cluster.root / "runs" / "flooded" / "summary.json").read_text())
    assert summary["status"] == "complete"
    gateway_peak = _kib(gateway_pid, "VmHWM")
    link_peak = sum(_kib(p, "VmHWM") for p in _group(cluster.processes["superlink"].pid))
    status = {k: [a.split(b"\r\n", 1)[0] for a in v] for k, v in outcomes.items()}
    rows = [
        json.loads(x)
        for x in (cluster.root / "runs" / "flooded" / "metrics.jsonl").read_text().splitlines()
    ]
    print(
        f"peak RSS: gateway {gateway_peak / 1024:.0f} MiB (bound {gateway_bound_kib / 1024:.0f}),"
        f" SuperLink {link_peak / 1024:.0f} MiB (bound {link_bound_kib / 1024:.0f});"
        f" answers { ({k: sorted(set(v)) for k, v in status.items()}) };"
        f" honest rows {sorted((r['round'], r['status']) for r in rows)}"
    )
    assert gateway_peak <= gateway_bound_kib
    assert link_peak <= link_bound_kib
    assert all(s.startswith(b"HTTP/1.1 413 ") for s in status["declared"]), status["declared"]
    assert all(s.startswith(b"HTTP/1.1 413 ") for s in status["chunked"]), status["chunked"]
    assert len(status["declared"]) == len(status["chunked"]) == 5
    # Unregistered keys: refused by the SuperLink's authentication (or told to retry when
    # the forwarding slots or the address's rate were taken), never accepted.
    assert all(s[9:12] in (b"401", b"503") for s in status["under"]), status["under"]
    assert any(s[9:12] == b"401" for s in status["under"]), status["under"]
    refused = [s for s in status["slow"] if s.startswith(b"HTTP/1.1 503 ")]
    cut = [s for s in status["slow"] if s.startswith(b"HTTP/1.1 408 ") or s == b"cut off"]
    assert len(refused) >= 8 and len(refused) + len(cut) == CONNECTION_CAP + 8, status["slow"]


def _incomplete_summary(cluster: Cluster, name: str) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        found = list((cluster.root / "runs" / "incomplete").glob(f"{name}-*/summary.json"))
        if found:
            return dict(json.loads(found[0].read_text()))
        time.sleep(0.5)
    pytest.fail(f"no incomplete/{name}-*/summary.json")


def test_a_deployed_run_stopped_or_cut_off_by_sigterm_leaves_its_summary(
    cluster: Cluster,
) -> None:
    # `flwr stop` after round 1.
    cluster.run(_run_config(cluster.root, "stopped", 4, cluster.reply_timeout), label="stopped")
    _wait_for_round(cluster, "stopped", "stopped", 1)
    run_id = cluster.log("stopped").split("Successfully started run ")[1].split()[0]
    assert cluster.flwr("stop", run_id, "lab").returncode == 0
    summary = _incomplete_summary(cluster, "stopped")
    assert summary["status"] == "incomplete" and summary["incomplete_reason"]

    # The SuperLink's unit stopped (SIGTERM to all its processes, the ServerApp too).
    cluster.run(
        _run_config(cluster.root, "terminated", 4, cluster.reply_timeout), label="terminated"
    )
    _wait_for_round(cluster, "terminated", "terminated", 1)
    cluster.kill("superlink", signal.SIGTERM)
    summary = _incomplete_summary(cluster, "terminated")
    assert summary["status"] == "incomplete"
    assert "stopped by a signal" in summary["incomplete_reason"]
    assert (cluster.root / "runs" / "incomplete").glob("terminated-*/checkpoint.json")
    cluster.start_superlink(gateway=False)  # for whatever runs next on this cluster


def test_a_captured_node_auth_header_replayed_on_another_call_is_refused(
    cluster: Cluster,
) -> None:
    """Flower signs only the timestamp: the same headers on another path with another body
    pass the SuperLink's own check (shown on the site's interface), not the gateway."""
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import load_ssh_private_key
    from flwr.proto.fleet_pb2 import ActivateNodeRequest, RegisterNodeFleetRequest

    key = load_ssh_private_key(
        (cluster.root / "keys-cleveland" / "cleveland.auth").read_bytes(), None
    )
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    captured = signed_headers(key)  # what a node sent once, as seen on the wire
    public_pem = base64.b64decode(captured["flwr-public-key"])
    headers = {**captured, "Content-Type": "application/protobuf"}
    first = ActivateNodeRequest(public_key=public_pem, heartbeat_interval=30)
    other = RegisterNodeFleetRequest(public_key=public_pem)  # another call, another body
    ca = str(cluster.root / "ca" / "ca.crt")
    gateway = f"https://{HOSPITAL_FACING}:{cluster.gateway_port}/v1/fleet"
    with httpx.Client(verify=ca, timeout=30) as client:
        used = client.post(
            f"{gateway}/activate-node", headers=headers, content=first.SerializeToString()
        )
        # Authenticated (the node is online already, so Flower declines to activate it).
        assert used.status_code != 401, used.text
        replayed = client.post(
            f"{gateway}/register-node", headers=headers, content=other.SerializeToString()
        )
        assert replayed.status_code == 401 and "used already" in replayed.text
        # The hole it closes: the SuperLink's own check accepts the same replay.
        direct = client.post(
            f"https://{SITE}:{cluster.port}/v1/fleet/register-node",
            headers=headers, content=other.SerializeToString(),
        )  # fmt: skip
        assert direct.status_code != 401, direct.text
