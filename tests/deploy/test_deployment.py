"""A real deployment on loopback: a SuperLink with TLS and SuperNode authentication,
three SuperNodes each reading its own hospital CSV through its provider and policy and
signing its replies; two rounds; one SuperNode killed during the second round.  The run
finishes with the other two, and the dead node is excluded by name."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.deploy.cluster import Cluster

HOSPITALS = ("cleveland", "hungary", "switzerland")
REPLY_TIMEOUT = 40.0


@pytest.mark.integration
def test_three_hospitals_two_rounds_one_killed(tmp_path: Path) -> None:
    cluster = Cluster(tmp_path)
    try:
        cluster.prepare(HOSPITALS)
        cluster.start_superlink()
        for name in HOSPITALS:
            cluster.register_node(name)
            cluster.start_node(name)
        runs = tmp_path / "runs"
        run = cluster.run(
            {"dataset": "heart", "public-data": str(tmp_path / "hospitals" / "public.npz"),
             "num-clients": 3, "num-server-rounds": 2, "model": "mlp-s", "batch-size": 16,
             "lr": 0.02, "output-dir": str(runs), "run-name": "deployed",
             "node-keys": str(cluster.register_file), "reply-timeout": REPLY_TIMEOUT,
             "startup-timeout": 60.0}
        )  # fmt: skip
        # Kill Switzerland's SuperNode as soon as round 2's requests are out.
        deadline = time.monotonic() + 150
        while time.monotonic() < deadline:
            metrics = list((runs / ".staging").glob("deployed-*/metrics.jsonl"))
            rows = [json.loads(x) for x in metrics[0].read_text().splitlines()] if metrics else []
            if sum(1 for r in rows if r["round"] == 1 and r["status"] == "ok") == 3:
                break
            assert run.poll() is None, (tmp_path / "run.log").read_text()[-3000:]
            time.sleep(0.2)
        else:
            pytest.fail("round 1 never finished: " + (tmp_path / "run.log").read_text()[-3000:])
        cluster.kill("node-switzerland")
        assert run.wait(timeout=150) == 0, (tmp_path / "run.log").read_text()[-3000:]
    finally:
        cluster.stop_all()
    summary = json.loads((runs / "deployed" / "summary.json").read_text())
    assert summary["status"] == "complete"
    names = {int(k): v["name"] for k, v in summary["privacy"]["nodes"].items()}
    assert sorted(names.values()) == sorted(HOSPITALS)
    rows = [json.loads(x) for x in (runs / "deployed" / "metrics.jsonl").read_text().splitlines()]
    round_two = {names[r["node_id"]]: r for r in rows if r["round"] == 2}
    assert round_two["switzerland"]["status"] == "missing"
    assert "no reply within 40 s (reply-timeout 40 s)" in round_two["switzerland"]["reason"]
    assert round_two["cleveland"]["status"] == round_two["hungary"]["status"] == "ok"
    finals = [r for r in rows if r["round"] == 2 and r["local_accuracy"] is not None]
    assert len(finals) == 2 and all(0.5 <= r["local_accuracy"] <= 1.0 for r in finals)
    log = (tmp_path / "run.log").read_text()
    assert "node switzerland" in log and "excluded" in log


@pytest.mark.integration
def test_an_unregistered_node_is_refused(tmp_path: Path) -> None:
    cluster = Cluster(tmp_path)
    try:
        cluster.prepare(("hungary",))
        cluster.start_superlink()
        node = cluster.start_node("hungary")  # its key was never registered
        code = node.wait(timeout=60)
    finally:
        cluster.stop_all()
    assert code != 0
    assert "Failed to activate SuperNode" in (tmp_path / "node-hungary.log").read_text()
