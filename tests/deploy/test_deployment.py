"""A real deployment on loopback: a SuperLink with TLS and SuperNode authentication behind
a Fleet-only gateway, three SuperNodes each reading its own hospital CSV through its
provider and policy, signing its replies, and starting its ClientApps only through the
bundle-pinning launcher.

One cluster serves the module's tests, in order: the Control API is out of the
hospitals' reach; a node whose key was never registered is refused; a tampered bundle is
refused before any of its code runs; two DP rounds end to end with one SuperNode killed
during the second; that hospital, its ledger lost, is refused after re-registering under
a new Flower node id; and two runs of one configuration release different payloads.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from fedkd.deploy.certs import make_node_keys
from fedkd.deploy.keyring import rotate
from fedkd.deploy.launcher import bundle_sha256
from fedkd.privacy.ledger import ReadOnlyLedger
from tests.deploy.cluster import HOSPITAL_FACING, ROOT, SITE, Cluster

pytestmark = pytest.mark.integration
HOSPITALS = ("cleveland", "hungary", "switzerland")


def _run_config(root: Path, name: str, reply_timeout: float = 40.0) -> dict[str, Any]:
    return {
        "dataset": "heart", "public-data": str(root / "hospitals" / "public.npz"),
        "num-clients": 3, "num-server-rounds": 2, "model": "mlp-s", "batch-size": 16,
        "lr": 0.02, "dp": True, "dp-target-epsilon": 8.0, "output-dir": str(root / "runs"),
        "run-name": name, "node-keys": str(root / "site" / "nodes.toml"),
        "reply-timeout": reply_timeout, "startup-timeout": 60.0,
    }  # fmt: skip


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    root = tmp_path_factory.mktemp("deployment")
    made = Cluster(root)
    try:
        made.prepare(HOSPITALS, _run_config(root, "any"))
        made.start_superlink()
        for name in HOSPITALS:
            made.register_node(name)
            made.start_node(name)
        made.calibrate(_run_config(root, "any"))
        yield made
    finally:
        made.stop_all()


def _rows(run_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_every_service_runs_under_its_units_sandbox(cluster: Cluster) -> None:
    for label in (
        "superlink",
        "gateway",
        *(f"{k}-{n}" for k in ("node", "launch") for n in HOSPITALS),
    ):
        status = Path(f"/proc/{cluster.processes[label].pid}/status").read_text()
        assert "\nSeccomp:\t2\n" in status and "\nNoNewPrivs:\t1\n" in status, label


def test_the_control_api_is_unreachable_on_the_hospitals_interface(cluster: Cluster) -> None:
    # Nothing listens on the SuperLink's port on the hospital-facing interface...
    with socket.socket() as sock:
        assert sock.connect_ex((HOSPITAL_FACING, cluster.port)) != 0
    # ...and the gateway there answers Control routes 404 without forwarding them.
    ca = str(cluster.root / "ca" / "ca.crt")
    gateway = f"https://{HOSPITAL_FACING}:{cluster.gateway_port}"
    with httpx.Client(verify=ca) as client:
        for path in ("/v1/control/start-run", "/v1/control/list-runs", "/health", "/"):
            assert client.post(gateway + path, content=b"").status_code == 404, path
        # The same request on the site's own interface reaches Flower's Control API.
        assert client.post(f"https://{SITE}:{cluster.port}/v1/control/list-runs").status_code != 404
    assert cluster.flwr("ls", "hospital-side", timeout=60).returncode != 0
    assert cluster.flwr("ls", "lab", timeout=60).returncode == 0


def test_an_unregistered_node_is_refused(cluster: Cluster) -> None:
    cluster.add_hospital("bern", _run_config(cluster.root, "any"))  # keys never registered
    node = cluster.start_node("bern")
    code = node.wait(timeout=60)
    cluster.kill("launch-bern")
    assert code != 0
    assert "Failed to activate SuperNode" in cluster.log("node-bern")


def test_a_tampered_bundle_is_refused_before_its_code_runs(cluster: Cluster) -> None:
    tampered = cluster.root / "app" / "tampered"
    files = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    for name in files:
        if (ROOT / name).is_file():
            (tampered / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, tampered / name)
    marker = cluster.root / "TAMPERED-CODE-RAN"
    payload = f"\nfrom pathlib import Path as _P\n_P({str(marker)!r}).touch()\n"
    # The check below can fail: the payload, run, leaves the marker where it is looked for.
    subprocess.run([sys.executable, "-c", payload], check=True, timeout=30)
    assert marker.exists()
    marker.unlink()
    with (tampered / "client" / "app.py").open("a") as fh:
        fh.write(payload)
    digest = bundle_sha256(tampered)
    assert digest != bundle_sha256(ROOT)
    config = {
        **_run_config(cluster.root, "tampered", cluster.reply_timeout),
        "num-server-rounds": 1,
    }
    run = cluster.run(config, app=tampered, label="tampered")
    run.wait(timeout=cluster.patience(1))
    for name in HOSPITALS:
        launcher_log = cluster.log(f"launch-{name}")
        assert f"node {name} refused app bundle sha256 {digest}" in launcher_log
        home = cluster.root / f"home-{name}"
        assert not [p for p in home.rglob("*") if digest[:16] in p.name]  # nor was unpacked
    assert not marker.exists()  # its code never ran at any node
    log = cluster.log("tampered")
    assert log.count("refused app bundle sha256") >= 3
    assert not (cluster.root / "runs" / "tampered").exists()  # no result from no node


def test_hospitals_run_lose_a_node_and_a_lost_ledger_is_refused(cluster: Cluster) -> None:
    runs = cluster.root / "runs"
    timeout = cluster.reply_timeout
    run = cluster.run(_run_config(cluster.root, "deployed", timeout))
    # Kill Switzerland's SuperNode as soon as round 1 is in (round 2's requests go out).
    deadline = time.monotonic() + cluster.patience(1)
    while time.monotonic() < deadline:
        metrics = list((runs / ".staging").glob("deployed-*/metrics.jsonl"))
        rows = [json.loads(x) for x in metrics[0].read_text().splitlines()] if metrics else []
        if sum(1 for r in rows if r["round"] == 1 and r["status"] == "ok") == 3:
            break
        assert run.poll() is None, cluster.log("run")[-3000:]
        time.sleep(0.2)
    else:
        pytest.fail("round 1 never finished: " + cluster.log("run")[-3000:])
    cluster.kill_node("switzerland")
    assert run.wait(timeout=cluster.patience(2)) == 0, cluster.log("run")[-3000:]

    summary = json.loads((runs / "deployed" / "summary.json").read_text())
    assert summary["status"] == "complete"
    names = {int(k): v["name"] for k, v in summary["privacy"]["nodes"].items()}
    assert sorted(names.values()) == sorted(HOSPITALS)
    rows = _rows(runs / "deployed")
    round_two = {names[r["node_id"]]: r for r in rows if r["round"] == 2}
    assert round_two["switzerland"]["status"] == "missing"
    silence = f"no reply within {timeout:g} s (reply-timeout {timeout:g} s)"
    assert silence in round_two["switzerland"]["reason"]
    assert round_two["cleveland"]["status"] == round_two["hungary"]["status"] == "ok"
    assert all(0.0 < round_two[n]["epsilon"] <= 8.0 for n in ("cleveland", "hungary"))
    assert "node switzerland" in cluster.log("run") and "excluded" in cluster.log("run")

    # Switzerland comes back with its ledger lost, new keys and a new Flower node id.
    old_id = next(i for i, n in names.items() if n == "switzerland")
    shutil.rmtree(cluster.root / "state-switzerland")
    fresh = cluster.root / "keys-switzerland-new"
    make_node_keys(fresh, "switzerland")
    unregistered = cluster.flwr("supernode", "unregister", str(old_id), "lab")
    assert unregistered.returncode == 0, unregistered.stdout + unregistered.stderr
    registered = cluster.flwr(
        "supernode", "register", str(fresh / "switzerland.auth.pub"), "lab", "--name", "swiss2"
    )
    assert registered.returncode == 0, registered.stdout + registered.stderr
    rotate(
        cluster.register_file, "switzerland",
        sign=fresh / "switzerland.sign.pub", auth=fresh / "switzerland.auth.pub",
    )  # fmt: skip
    node_toml = cluster.root / "switzerland.node.toml"
    node_toml.write_text(
        node_toml.read_text().replace("keys-switzerland/", "keys-switzerland-new/")
    )
    cluster.start_node("switzerland", key=fresh / "switzerland.auth")

    again = cluster.run(_run_config(cluster.root, "deployed-again", timeout), label="run-again")
    assert again.wait(timeout=cluster.patience(2)) == 0, cluster.log("run-again")[-3000:]
    summary2 = json.loads((runs / "deployed-again" / "summary.json").read_text())
    names2 = {int(k): v["name"] for k, v in summary2["privacy"]["nodes"].items()}
    assert old_id not in names2 and "switzerland" in names2.values()
    round_one = {names2[r["node_id"]]: r for r in _rows(runs / "deployed-again") if r["round"] == 1}
    assert round_one["switzerland"]["status"] == "ledger-refused"
    assert "ledger" in round_one["switzerland"]["reason"]
    assert round_one["cleveland"]["status"] == round_one["hungary"]["status"] == "ok"

    # One configuration, two runs: every released payload differs (fresh DP randomness).
    for name in ("cleveland", "hungary"):
        ledger = ReadOnlyLedger.read(cluster.root / f"state-{name}" / f"{name}.ledger.db")
        by_run: dict[str, list[str]] = {}
        for row in ledger.rows():
            if row.steps > 0 and row.run_id != cluster.calibration_run_id:
                by_run.setdefault(row.run_id, []).append(row.payload_sha256)
        assert len(by_run) == 2 and all(len(h) == 2 for h in by_run.values()), by_run
        first, second = by_run.values()
        assert not set(first) & set(second)
