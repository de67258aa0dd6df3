"""What a hospital's node agrees to run, enforced before any code of the run is loaded.

In deployment the SuperNode runs whatever app bundle (FAB) the SuperLink hands it, so a
check inside the bundle proves nothing: a tampered bundle would check itself.  Flower
1.41's own guard (``flower-supernode --trusted-entities``) accepts only bundles signed
through Flower's hosted platform (``valid_license``), which a self-hosted SuperLink never
sets.  So the node runs its SuperNode with ``--isolation process`` and starts ClientApps
through this launcher, which is installed from the hospital's own wheelhouse:

1. ``fedkd node launch`` takes each task from the SuperNode's Runtime API (as
   ``flower-superexec`` would) and starts one task process for it;
2. the task process pulls the task's input (message, context, run, bundle) and, before
   the bundle is installed or imported, checks that the bundle's SHA-256 is one the
   node's configuration pins (``bundle-sha256``) and that the run's transfer set, built
   by the installed fedkd from the run config and the node's own public data, has the
   pinned digest (``transfer-digest``);
3. a match goes on through Flower's own ClientApp process code; a mismatch replies to
   the server with a Flower error naming both hashes, and the bundle is never unpacked.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from fedkd.flower_glue.task_runtime import clientapp_tasks, fab_sha256, run_checked_task
from fedkd.node.config import NodeConfig, parse_node_config

log = logging.getLogger("fedkd.launcher")
POLL_S = 0.2


class BundleRefused(RuntimeError):
    """The run's bundle or transfer set is not the one this node pinned."""


def bundle_sha256(app_dir: Path) -> str:
    """The SHA-256 of the bundle ``flwr run <app_dir>`` sends (Flower builds it
    byte-for-byte reproducibly), for the coordinating site to publish and hospitals to pin."""
    return fab_sha256(app_dir)


def check_bundle(content: bytes, run_config: Mapping[str, object], node: NodeConfig) -> None:
    """Refuse ``content`` (a bundle) unless ``node`` pins it and the run's transfer set.

    Raises
    ------
    BundleRefused
        With the reason, both hashes named.
    """
    pinned = node.bundle_sha256.split()
    if not pinned:
        raise BundleRefused(
            f"node {node.name} pins no bundle: set bundle-sha256 in its configuration to the "
            "SHA-256 the coordinating site published (fedkd deploy bundle)"
        )
    actual = hashlib.sha256(content).hexdigest()
    if actual not in pinned:
        raise BundleRefused(
            f"node {node.name} refused app bundle sha256 {actual}: it pins {' '.join(pinned)}"
        )
    if node.transfer_digest:
        digest = transfer_digest_of(run_config, node)
        if digest != node.transfer_digest:
            raise BundleRefused(
                f"node {node.name} refused the run: its transfer set is {digest}, the node "
                f"pins {node.transfer_digest}"
            )


def transfer_digest_of(run_config: Mapping[str, object], node: NodeConfig) -> str:
    """The digest of the transfer set the run would use at this node (its public data)."""
    from fedkd.config import parse_run_config
    from fedkd.node import ClientNode

    return ClientNode(
        node, parse_run_config(dict(run_config)).protocol(), node_id=0
    ).transfer_digest()


def run_task(
    runtime_api_address: str, token: str, node_config: Path, *, root_certificates: bytes | None
) -> None:
    """One task: check the bundle against ``node_config``'s pins, then Flower's own
    ClientApp process code (a refusal is answered to the server, naming both hashes)."""
    node = parse_node_config({"config": str(node_config)})

    def check(content: bytes, run_config: Mapping[str, object]) -> None:
        check_bundle(content, run_config, node)

    run_checked_task(
        runtime_api_address,
        token,
        check=check,
        refusal=BundleRefused,
        root_certificates=root_certificates,
    )


def serve_tasks(
    runtime_api_address: str,
    node_config: Path,
    *,
    root_certificates: Path | None = None,
    max_tasks: int | None = None,
) -> None:
    """Take the SuperNode's ClientApp tasks one by one and start a checked task process for
    each (``max_tasks``: stop after that many, for tests)."""
    parse_node_config({"config": str(node_config)})  # a broken config fails now, not per task
    certificates = root_certificates.read_bytes() if root_certificates else None
    tasks = clientapp_tasks(runtime_api_address, root_certificates=certificates)
    started = 0
    children: list[subprocess.Popen[bytes]] = []
    try:
        while max_tasks is None or started < max_tasks:
            token = next(tasks)
            if token is not None:
                args = [sys.executable, "-m", "fedkd.deploy.launcher", "--runtime-api-address",
                        runtime_api_address, "--node-config", str(node_config)]  # fmt: skip
                if root_certificates is not None:
                    args += ["--root-certificates", str(root_certificates)]
                # The task token on stdin: a command line is readable by every local user.
                child = subprocess.Popen(args, stdin=subprocess.PIPE)
                assert child.stdin is not None
                child.stdin.write(token.encode() + b"\n")
                child.stdin.close()
                children.append(child)
                started += 1
            children = [c for c in children if c.poll() is None]
            time.sleep(POLL_S)
    finally:
        tasks.close()
        for child in children:
            child.wait()


def main(argv: list[str] | None = None) -> None:
    """One checked task process (started by :func:`serve_tasks`, never by hand)."""
    parser = argparse.ArgumentParser(description="fedkd's checked ClientApp task process")
    parser.add_argument("--runtime-api-address", required=True)
    parser.add_argument("--node-config", required=True, type=Path)
    parser.add_argument("--root-certificates", type=Path)
    args = parser.parse_args(argv)
    token = sys.stdin.readline().strip()  # never on the command line (see serve_tasks)
    if not token:
        parser.error("no task token on standard input")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    certificates = args.root_certificates.read_bytes() if args.root_certificates else None
    run_task(args.runtime_api_address, token, args.node_config, root_certificates=certificates)


if __name__ == "__main__":
    main()
