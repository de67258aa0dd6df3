"""The multi-node path: a simulation joins a two-node Ray cluster (head and worker as
separate `ray start` processes on loopback) named by RAY_ADDRESS, and every process the
cluster started is gone afterwards."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from tests.simulation_scripts import load_script

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.integration
@pytest.mark.own_ray
def test_a_simulation_runs_on_a_two_node_ray_cluster(tmp_path: Path) -> None:
    clusters = load_script("ray_cluster")
    with clusters.local_cluster(nodes=2, cpus_per_node=1, timeout_s=90) as cluster:
        started = [p.pid for p in cluster.processes]
        tree = [c.pid for p in started for c in psutil.Process(p).children(recursive=True)]
        assert cluster.alive_nodes() == 2
        command = [sys.executable, "-m", "fedkd.cli", "simulate", "simulations/digits.toml",
                   "--name", "on-a-cluster", "--set", "num-clients=4",
                   "--set", "num-server-rounds=2", "--set", f"output-dir={tmp_path}"]  # fmt: skip
        done = subprocess.run(
            command, cwd=ROOT, env={**os.environ, "RAY_ADDRESS": cluster.address},
            capture_output=True, text=True, timeout=240,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-2000:]
        # The run was a driver of this cluster, not of a Ray of its own.
        assert any("on-a-cluster" in entry for entry in cluster.drivers())
    summary = json.loads((tmp_path / "on-a-cluster" / "summary.json").read_text())
    assert summary["status"] == "complete" and summary["alma"] > 0.5
    assert not [pid for pid in [*started, *tree] if psutil.pid_exists(pid)
                and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE]  # fmt: skip


@pytest.mark.integration
@pytest.mark.own_ray
def test_a_stopped_clusters_recorded_address_is_not_joined(tmp_path: Path) -> None:
    """`ray start` records its address for later address-less ray.init() calls to join,
    and nothing removes the record when the cluster is killed: a run must not hang on it."""
    from ray._private.utils import get_ray_address_file

    import fedkd

    record = Path(get_ray_address_file(None))
    before = record.read_text() if record.exists() else None
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_text("127.0.0.1:9")  # nothing listens on the discard port
    try:
        result = fedkd.simulate(
            {"dataset": "digits", "num_clients": 3, "partitioner": "iid", "transfer_size": 200,
             "num_server_rounds": 1, "model": "mlp-s", "strategy": "mean", "run_name": "own"},
            output_dir=str(tmp_path),
        )  # fmt: skip
    finally:
        if before is None:
            record.unlink(missing_ok=True)
        else:
            record.write_text(before)
    assert result.summary["status"] == "complete"
