"""Flower's ClientApp task runtime, as the node's launcher needs it.

Flower 1.41 has no hook between pulling a task's input and installing its app bundle
(FAB), and no public API for a SuperNode's task queue: what the launcher
(:mod:`fedkd.deploy.launcher`) needs of both reaches into ``flwr.supercore`` and
``flwr.supernode`` internals, so it lives here, beside the rest of fedkd's Flower code,
and the launcher keeps only the policy (which bundles a node runs).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Generator, Mapping
from pathlib import Path

from flwr.app import Context, Message
from flwr.app.error import Error
from flwr.common.constant import ErrorCode

log = logging.getLogger("fedkd.launcher")

BundleCheck = Callable[[bytes, Mapping[str, object]], None]
"""Raises to refuse a task: (the bundle's bytes, the run config)."""


def fab_sha256(app_dir: Path) -> str:
    """The SHA-256 of the bundle ``flwr run <app_dir>`` sends (Flower builds it
    byte-for-byte reproducibly)."""
    from flwr.cli.build import build_fab_from_disk

    return hashlib.sha256(build_fab_from_disk(app_dir)).hexdigest()


def run_checked_task(
    runtime_api_address: str,
    token: str,
    *,
    check: BundleCheck,
    refusal: type[Exception],
    root_certificates: bytes | None,
) -> None:
    """One task through Flower's own ClientApp process code, ``check`` run in between.

    Flower's ``run_clientapp`` pulls the task input and installs the bundle in one
    function; the pull is wrapped so ``check`` sits between the two.  A ``refusal`` it
    raises is answered to the server as Flower's ``INVALID_FAB`` error with its message,
    and the bundle is never unpacked; everything else (heartbeats, the reply, the task's
    final status) stays Flower's.
    """
    from flwr.supercore.fab import Fab
    from flwr.supercore.run import Run
    from flwr.supercore.runtime import RuntimeHttpClient
    from flwr.supernode.runtime import run_clientapp as flower_task

    pull = flower_task.pull_task_input

    def pull_checked(client: RuntimeHttpClient) -> tuple[Message, Context, Run, Fab]:
        message, context, run, fab = pull(client)
        try:
            check(fab.content, context.run_config)
        except refusal as refused:
            log.error("%s", refused)
            error = Error(code=ErrorCode.INVALID_FAB, reason=str(refused))
            flower_task.push_message(client, Message(error, reply_to=message), context)
            raise
        log.info("bundle %s passed the node's check; starting the ClientApp", fab.hash_str)
        return message, context, run, fab

    flower_task.pull_task_input = pull_checked
    flower_task.run_clientapp(
        runtime_api_address=runtime_api_address,
        token=token,
        insecure=root_certificates is None,
        certificates=root_certificates,
        runtime_dependency_install=False,
    )


def clientapp_tasks(
    runtime_api_address: str, *, root_certificates: bytes | None
) -> Generator[str | None, None, None]:
    """The SuperNode's ClientApp tasks as ``flower-superexec`` takes them: each yield is
    one task's token, or ``None`` when none is waiting.  Closing the generator closes
    the connection."""
    from flwr.proto.runtime_pb2 import AcquireTaskRequest
    from flwr.supercore.constant import TaskType
    from flwr.supercore.interceptors import RuntimeVersionHttpInterceptor
    from flwr.supercore.retry import make_simple_http_retry_invoker
    from flwr.supercore.runtime import RuntimeHttpClient

    client = RuntimeHttpClient.from_server_address(
        server_address=runtime_api_address,
        insecure=root_certificates is None,
        root_certificates=root_certificates,
        interceptors=[RuntimeVersionHttpInterceptor(component_name="SuperExec")],
        retry_invoker=make_simple_http_retry_invoker(),
    )
    try:
        while True:
            res = client.AcquireTask(AcquireTaskRequest(supported_task_types=[TaskType.CLIENT_APP]))
            yield res.token if res.HasField("task") and res.token else None
    finally:
        client.close()
