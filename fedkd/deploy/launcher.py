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

from flwr.app import Context, Message
from flwr.app.error import Error
from flwr.common.constant import ErrorCode

from fedkd.node.config import NodeConfig, parse_node_config

log = logging.getLogger("fedkd.launcher")
POLL_S = 0.2


class BundleRefused(RuntimeError):
    """The run's bundle or transfer set is not the one this node pinned."""


def bundle_sha256(app_dir: Path) -> str:
    """The SHA-256 of the bundle ``flwr run <app_dir>`` sends (Flower builds it
    byte-for-byte reproducibly), for the coordinating site to publish and hospitals to pin."""
    from flwr.cli.build import build_fab_from_disk

    return hashlib.sha256(build_fab_from_disk(app_dir)).hexdigest()


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

    return ClientNode(node, parse_run_config(dict(run_config)), node_id=0).transfer_digest()


def run_task(
    runtime_api_address: str, token: str, node_config: Path, *, root_certificates: bytes | None
) -> None:
    """One task: check the bundle, then Flower's own ClientApp process code.

    Flower's ``run_clientapp`` pulls the task input and installs the bundle in one
    function; the pull is wrapped here so the check sits between the two, and everything
    else (heartbeats, the reply, the task's final status) stays Flower's.
    """
    from flwr.supercore.fab import Fab
    from flwr.supercore.run import Run
    from flwr.supercore.runtime import RuntimeHttpClient
    from flwr.supernode.runtime import run_clientapp as flower_task

    node = parse_node_config({"config": str(node_config)})
    pull = flower_task.pull_task_input

    def pull_checked(client: RuntimeHttpClient) -> tuple[Message, Context, Run, Fab]:
        message, context, run, fab = pull(client)
        try:
            check_bundle(fab.content, context.run_config, node)
        except BundleRefused as refused:
            log.error("%s", refused)
            error = Error(code=ErrorCode.INVALID_FAB, reason=str(refused))
            flower_task.push_message(client, Message(error, reply_to=message), context)
            raise
        log.info("node %s: bundle %s is pinned; starting the ClientApp", node.name, fab.hash_str)
        return message, context, run, fab

    flower_task.pull_task_input = pull_checked
    flower_task.run_clientapp(
        runtime_api_address=runtime_api_address,
        token=token,
        insecure=root_certificates is None,
        certificates=root_certificates,
        runtime_dependency_install=False,
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
    from flwr.proto.runtime_pb2 import AcquireTaskRequest
    from flwr.supercore.constant import TaskType
    from flwr.supercore.interceptors import RuntimeVersionHttpInterceptor
    from flwr.supercore.retry import make_simple_http_retry_invoker
    from flwr.supercore.runtime import RuntimeHttpClient

    parse_node_config({"config": str(node_config)})  # a broken config fails now, not per task
    certificates = root_certificates.read_bytes() if root_certificates else None
    client = RuntimeHttpClient.from_server_address(
        server_address=runtime_api_address,
        insecure=certificates is None,
        root_certificates=certificates,
        interceptors=[RuntimeVersionHttpInterceptor(component_name="SuperExec")],
        retry_invoker=make_simple_http_retry_invoker(),
    )
    started = 0
    children: list[subprocess.Popen[bytes]] = []
    try:
        while max_tasks is None or started < max_tasks:
            res = client.AcquireTask(AcquireTaskRequest(supported_task_types=[TaskType.CLIENT_APP]))
            if res.HasField("task") and res.token:
                args = [sys.executable, "-m", "fedkd.deploy.launcher", "--runtime-api-address",
                        runtime_api_address, "--token", res.token, "--node-config",
                        str(node_config)]  # fmt: skip
                if root_certificates is not None:
                    args += ["--root-certificates", str(root_certificates)]
                children.append(subprocess.Popen(args))
                started += 1
            children = [c for c in children if c.poll() is None]
            time.sleep(POLL_S)
    finally:
        client.close()
        for child in children:
            child.wait()


def main(argv: list[str] | None = None) -> None:
    """One checked task process (started by :func:`serve_tasks`, never by hand)."""
    parser = argparse.ArgumentParser(description="fedkd's checked ClientApp task process")
    parser.add_argument("--runtime-api-address", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--node-config", required=True, type=Path)
    parser.add_argument("--root-certificates", type=Path)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    certificates = args.root_certificates.read_bytes() if args.root_certificates else None
    run_task(args.runtime_api_address, args.token, args.node_config, root_certificates=certificates)


if __name__ == "__main__":
    main()
