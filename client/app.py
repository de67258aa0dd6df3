"""fedkd ClientApp: build the node from its own config, let it serve the request, reply.

Flower re-creates this app for every message, so the model lives in ``context.state``.
The node's configuration is its own: a file named by ``--node-config "config='…'"``, keys
given inline in ``--node-config``, or (simulation) the file the simulation wrote for it.
"""

from __future__ import annotations

import os
from pathlib import Path

from flwr.app import Context, Message
from flwr.clientapp import ClientApp

from fedkd.config import parse_run_config
from fedkd.flower_glue.messages import STATE_KEY, pack, state_from_record, state_to_record, unpack
from fedkd.flower_glue.simulation import NODE_CONFIGS_ENV
from fedkd.node import (
    ClientNode,
    NodeConfig,
    parse_node_config,
    simulated_node_config,
    simulated_state_dir,
)

app = ClientApp()
PARTITION_KEY = "partition-id"


def node_config_of(context: Context) -> NodeConfig:
    """This node's own configuration (never the server's run config)."""
    given = dict(context.node_config)
    simulated = os.environ.get(NODE_CONFIGS_ENV)
    if simulated and PARTITION_KEY in given:
        path = Path(simulated) / f"node-{int(given[PARTITION_KEY])}.json"
        return parse_node_config(_json(path))
    if set(given) - {PARTITION_KEY, "num-partitions"}:
        return parse_node_config(given)
    # A bare simulated node (e.g. `flwr run .` on the local simulation): its share of the
    # run's built-in dataset, state under the run's output folder.
    cfg = parse_run_config(context.run_config)
    pid = int(given.get(PARTITION_KEY, 0))
    return simulated_node_config(cfg, pid, state_dir=str(simulated_state_dir(cfg)))


def _json(path: Path) -> dict[str, object]:
    import json

    loaded: dict[str, object] = json.loads(path.read_text())
    return loaded


def _serve(msg: Message, context: Context, *, train: bool) -> Message:
    node = ClientNode(
        node_config_of(context), parse_run_config(context.run_config), node_id=int(context.node_id)
    )
    record = context.state.array_records.get(STATE_KEY)
    state = state_from_record(record) if record is not None else None
    payload = unpack(msg.content) or b""
    reply, new_state = node.handle(payload, state, train=train)
    if new_state is not None:
        context.state[STATE_KEY] = state_to_record(new_state)
    return Message(pack(reply), reply_to=msg)


@app.train()
def train(msg: Message, context: Context) -> Message:
    """One round: distil last round's targets, evaluate, train, release what is asked."""
    return _serve(msg, context, train=True)


@app.query()
def query(msg: Message, context: Context) -> Message:
    """The server's handshake (round 0): the node's name and ledger head, nothing else."""
    return _serve(msg, context, train=False)


@app.evaluate()
def evaluate(msg: Message, context: Context) -> Message:
    """Final message: distil the last targets and evaluate; nothing is released."""
    return _serve(msg, context, train=False)
