"""fedkd ClientApp: build the node from its own config, let it serve the request, reply.

Flower re-creates this app for every message, so the model lives in ``context.state``.
The node's configuration is its own: a file named by ``--node-config "config='…'"``, or
keys given inline in ``--node-config``.  :func:`client_app` builds the same app around
other sources of the two configs; ``fedkd.simulate`` uses it to hand each simulated node
the config written for it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from flwr.app import Context, Message
from flwr.clientapp import ClientApp

from fedkd.config import RunConfig, parse_run_config
from fedkd.flower_glue.messages import STATE_KEY, pack, state_from_record, state_to_record, unpack
from fedkd.node import NodeConfig, parse_node_config
from fedkd.simulated_nodes import simulated_node_config, simulated_state_dir

PARTITION_KEY = "partition-id"
NodeConfigOf = Callable[[Context], NodeConfig]
RunConfigOf = Callable[[Context], RunConfig]


def run_config_of(context: Context) -> RunConfig:
    """The run config the server's run carries (``flwr run``'s ``--run-config``)."""
    return parse_run_config(context.run_config)


def node_config_of(context: Context) -> NodeConfig:
    """This node's own configuration (never the server's run config)."""
    given = dict(context.node_config)
    if set(given) - {PARTITION_KEY, "num-partitions"}:
        return parse_node_config(given)
    # A bare simulated node (e.g. `flwr run .` on the local simulation): its share of the
    # run's built-in dataset, state under the run's output folder, fresh for every run.
    cfg = run_config_of(context)
    pid = int(given.get(PARTITION_KEY, 0))
    state_dir = simulated_state_dir(cfg, token=f"run{context.run_id}")
    return simulated_node_config(cfg, pid, state_dir=str(state_dir))


def serve(
    msg: Message, context: Context, node_of: NodeConfigOf, run_of: RunConfigOf, *, train: bool
) -> Message:
    """Let the node built from its config answer ``msg``; keep its state in ``context``.

    Nothing raised here reaches Flower (which would forward its text to the server): a
    failure before the node exists gets the same fixed reply as one inside it
    (:mod:`fedkd.node.isolation`), its detail on the node's stderr only.
    """
    payload = b""
    try:
        payload = unpack(msg.content) or b""
        return _served(msg, context, payload, node_of(context), run_of(context), train=train)
    except Exception:
        from fedkd.node.isolation import LOG, failure_reply_bytes

        LOG.exception("the node could not serve a request")
        reply = failure_reply_bytes(payload, node_id=int(context.node_id), max_bytes=_MAX_BYTES)
        return Message(pack(reply), reply_to=msg)


_MAX_BYTES = 1 << 30
"""The request size decoded to echo its run and round when even the run config failed."""


def _served(
    msg: Message,
    context: Context,
    payload: bytes,
    node_cfg: NodeConfig,
    run_cfg: RunConfig,
    *,
    train: bool,
) -> Message:
    # Imported here, not with the app: the simulation's launcher loads this module to hand
    # the app to Ray and never trains, so it need not import torch.
    from fedkd.allocator import keep_freed_memory
    from fedkd.node import ClientNode

    keep_freed_memory()  # this process trains: reuse freed tensor memory (once per process)
    node = ClientNode(node_cfg, run_cfg.protocol(), node_id=int(context.node_id))
    record = context.state.array_records.get(STATE_KEY)
    state = state_from_record(record) if record is not None else None
    reply, new_state = node.handle(payload, state, train=train)
    if new_state is not None:
        context.state[STATE_KEY] = state_to_record(new_state)
    return Message(pack(reply), reply_to=msg)


def client_app(
    node_of: NodeConfigOf = node_config_of, run_of: RunConfigOf = run_config_of
) -> ClientApp:
    """fedkd's ClientApp, with the node's and the run's configs taken from the callables."""
    built = ClientApp()

    @built.train()
    def train(msg: Message, context: Context) -> Message:
        """One round: distil last round's targets, evaluate, train, release what is asked."""
        _node_logging()
        return serve(msg, context, node_of, run_of, train=True)

    @built.query()
    def query(msg: Message, context: Context) -> Message:
        """The server's handshake (round 0): the node's name and ledger head, nothing else."""
        _node_logging()
        return serve(msg, context, node_of, run_of, train=False)

    @built.evaluate()
    def evaluate(msg: Message, context: Context) -> Message:
        """Final message: distil the last targets and evaluate; nothing is released."""
        return serve(msg, context, node_of, run_of, train=False)

    return built


def _node_logging() -> None:
    """Node log lines (refusals, budget warnings) reach the node's operator on stderr."""
    logger = logging.getLogger("fedkd")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)


app = client_app()
