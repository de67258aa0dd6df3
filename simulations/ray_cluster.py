"""A multi-node Ray cluster on one machine: a head and workers as separate `ray start`
processes, the way a real cluster's machines each run one.

fedkd's simulations run on Flower's Ray-based simulation engine, which joins an existing
cluster when ``RAY_ADDRESS`` names one (Ray's own convention); the actors then spread over
every node's CPUs.  On a real cluster, run on the head machine::

    ray start --head --port=6379 --num-cpus=8

on every other machine (fedkd installed, the same checkout path)::

    ray start --address=<head-ip>:6379 --num-cpus=8

and the simulation on the head::

    RAY_ADDRESS=<head-ip>:6379 fedkd simulate simulations/mnist.toml

This module starts such a cluster on loopback for trying that path (and for its test and
benchmark), and stops every process it started by process id::

    python simulations/ray_cluster.py --nodes 2 --cpus-per-node 1   # prints RAY_ADDRESS
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil

RAY = str(Path(sys.executable).with_name("ray"))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class LocalCluster:
    """A running head and its workers: ``address`` is what ``RAY_ADDRESS`` takes."""

    address: str
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def alive_nodes(self) -> int:
        """Nodes the head counts as alive (asked from a separate driver process)."""
        probe = (
            f"import ray; ray.init(address={self.address!r}, logging_level='ERROR'); "
            "print(sum(1 for n in ray.nodes() if n['Alive']))"
        )
        done = subprocess.run(
            [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60
        )
        return int(done.stdout.strip().splitlines()[-1]) if done.returncode == 0 else 0

    def drivers(self) -> list[str]:
        """The command lines of every driver that has joined the cluster (GCS's job table:
        Ray's public state API needs the dashboard, which this cluster does not run)."""
        probe = (
            f"import json, ray; ray.init(address={self.address!r}, logging_level='ERROR'); "
            "from ray._private import state; "
            "print(json.dumps([j.get('Entrypoint', '') for j in state.jobs()]))"
        )
        done = subprocess.run(
            [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
        )
        entrypoints: list[str] = json.loads(done.stdout.strip().splitlines()[-1])
        return entrypoints

    def stop(self) -> None:
        """Stop every process the cluster started (GCS, raylets, their workers) by id."""
        tree: list[psutil.Process] = []
        for process in self.processes:
            with contextlib.suppress(psutil.Error):
                parent = psutil.Process(process.pid)
                tree += [parent, *parent.children(recursive=True)]
        for member in tree:
            with contextlib.suppress(psutil.Error):
                member.send_signal(signal.SIGTERM)
        _, alive = psutil.wait_procs(tree, timeout=10)
        for member in alive:
            with contextlib.suppress(psutil.Error):
                member.kill()
        for process in self.processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=5)


@contextlib.contextmanager
def local_cluster(
    nodes: int = 2, cpus_per_node: int = 1, timeout_s: float = 90.0
) -> Iterator[LocalCluster]:
    """A head and ``nodes - 1`` workers on 127.0.0.1, each offering ``cpus_per_node``
    CPUs; stopped on exit, whatever happened."""
    port = free_port()
    cluster = LocalCluster(address=f"127.0.0.1:{port}")
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    env.pop("RAY_ADDRESS", None)
    # A folder of its own: `ray start` records its address in <temp-dir>/ray_current_cluster,
    # which a later address-less ray.init() on this machine would try to join.
    temp_dir = tempfile.mkdtemp(prefix="ray-", dir="/tmp")
    common = ["--block", f"--num-cpus={cpus_per_node}", "--node-ip-address=127.0.0.1",
              "--disable-usage-stats", f"--temp-dir={temp_dir}"]  # fmt: skip
    try:
        cluster.processes.append(
            subprocess.Popen(
                [RAY, "start", "--head", f"--port={port}", "--include-dashboard=false", *common],
                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
        )  # fmt: skip
        _wait(cluster, 1, timeout_s)
        for _ in range(nodes - 1):
            cluster.processes.append(
                subprocess.Popen(
                    [RAY, "start", f"--address={cluster.address}", *common],
                    env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                )
            )  # fmt: skip
        _wait(cluster, nodes, timeout_s)
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(temp_dir, ignore_errors=True)


def _wait(cluster: LocalCluster, nodes: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if any(p.poll() is not None for p in cluster.processes):
            raise RuntimeError("a `ray start` process exited while the cluster was starting")
        if cluster.alive_nodes() >= nodes:
            return
        time.sleep(1)
    raise TimeoutError(f"the Ray cluster at {cluster.address} had not {nodes} nodes in time")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=2)
    parser.add_argument("--cpus-per-node", type=int, default=1)
    args = parser.parse_args()
    with local_cluster(args.nodes, args.cpus_per_node) as cluster:
        print(f"RAY_ADDRESS={cluster.address}  (Ctrl-C stops the cluster)", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            while all(p.poll() is None for p in cluster.processes):
                time.sleep(1)


if __name__ == "__main__":
    main()
