"""fedkd ServerApp: the round loop over Flower's Grid.

Each round sends every online node its personalised request, waits up to
``reply-timeout``, and hands whatever came back (replies, Flower error replies, silence)
to :class:`fedkd.coordinator.Coordinator`.  A failed client is excluded from that round;
the round goes on.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from flwr.app import Context, Message, MessageType
from flwr.serverapp import Grid, ServerApp
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from fedkd.config import RunConfig, parse_run_config
from fedkd.coordinator import Coordinator, Delivery, RoundOutcome
from fedkd.data.public import load_public_data
from fedkd.flower_glue.messages import flower_size, pack, unpack
from fedkd.privacy.node_registry import NodeRegistry
from fedkd.results import RunRecorder

log = logging.getLogger("fedkd.server")
app = ServerApp()
NODE_WAIT_S = 60.0


@app.main()
def main(grid: Grid, context: Context) -> None:
    cfg = parse_run_config(context.run_config)
    run_federation(grid, cfg, run_id=str(context.run_id))


def wait_for_nodes(grid: Grid, wanted: int, deadline_s: float) -> list[int]:
    """Online node ids, waiting up to ``deadline_s`` for ``wanted`` of them."""
    start = time.monotonic()
    nodes = sorted(grid.get_node_ids())
    while len(nodes) < wanted and time.monotonic() - start < deadline_s:
        time.sleep(0.5)
        nodes = sorted(grid.get_node_ids())
    if len(nodes) != wanted:
        log.warning("expected %d nodes, %d online: running with those", wanted, len(nodes))
    return nodes


def exchange(
    grid: Grid, coordinator: Coordinator, nodes: list[int], round_: int, kind: str, timeout: float
) -> RoundOutcome:
    """Send one request per node, collect replies, and let the coordinator judge them."""
    deliveries, bytes_down = _send(grid, coordinator, nodes, round_, kind, timeout)
    return coordinator.ingest(round_, deliveries, bytes_down)


def _send(
    grid: Grid, coordinator: Coordinator, nodes: list[int], round_: int, kind: str, timeout: float
) -> tuple[list[Delivery], dict[int, tuple[int, int]]]:
    """One request per node; what came back from each (a reply, an error, or silence)."""
    messages, bytes_down = [], {}
    for node_id, payload in coordinator.requests(round_, nodes).items():
        message = Message(pack(payload), dst_node_id=node_id, message_type=kind)
        messages.append(message)
        bytes_down[node_id] = (len(payload), flower_size(message))
    replies = grid.send_and_receive(messages, timeout=timeout)
    sent_to = {m.metadata.message_id: m.metadata.dst_node_id for m in messages}
    deliveries: dict[int, Delivery] = {}
    for reply in replies:
        # An error reply's source is the SuperLink, not the node: map it back by message id.
        node_id = sent_to.get(reply.metadata.reply_to_message_id, reply.metadata.src_node_id)
        if reply.has_error():
            deliveries[node_id] = Delivery(
                node_id=node_id,
                transport_error=f"Flower error {reply.error.code}: {reply.error.reason}",
            )
            continue
        reply_payload = unpack(reply.content)
        deliveries[node_id] = Delivery(
            node_id=node_id,
            payload=reply_payload,
            transport_error="" if reply_payload is not None else "reply has no fedkd payload",
            flower_bytes=flower_size(reply),
        )
    for node_id in nodes:
        deliveries.setdefault(
            node_id, Delivery(node_id=node_id, transport_error=f"no reply within {timeout:.0f} s")
        )
    return [deliveries[n] for n in nodes], bytes_down


def hello(grid: Grid, coordinator: Coordinator, nodes: list[int], timeout: float) -> None:
    """Round 0: each node says its name, so its first request carries its recorded head."""
    deliveries, _ = _send(grid, coordinator, nodes, 0, MessageType.QUERY, timeout)
    names = coordinator.hello(deliveries)
    log.info("handshake: %d of %d nodes named themselves", len(names), len(nodes))


def run_federation(grid: Grid, cfg: RunConfig, *, run_id: str) -> Path:
    """Run every round and the final evaluation; return the run directory."""
    # The server holds only public data: the transfer set, the classes, the public test set.
    public = load_public_data(cfg.public_spec)
    # Nodes that outlive the run keep their ledgers; the registry keeps what the server
    # saw of them, so a node that lost its ledger between runs is refused, not restarted.
    registry_path = cfg.registry_path
    registry = NodeRegistry.open(registry_path) if registry_path is not None else None
    coordinator = Coordinator(
        cfg,
        run_id=run_id,
        transfer=public.transfer,
        num_classes=public.num_classes,
        registry=registry,
    )
    run_dir = Path(cfg.output_dir).expanduser().resolve() / cfg.run_name
    recorder = RunRecorder(cfg, run_dir)
    nodes = wait_for_nodes(grid, cfg.num_clients, NODE_WAIT_S)
    hello(grid, coordinator, nodes, cfg.reply_timeout)
    total = cfg.num_server_rounds + 1
    with Progress(
        TextColumn(f"[bold]{cfg.run_name}[/] {cfg.strategy}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} {task.fields[status]}"),
        TimeElapsedColumn(),
    ) as progress:
        task = progress.add_task("rounds", total=total, status="")
        for round_ in range(1, total + 1):
            kind = MessageType.TRAIN if round_ <= cfg.num_server_rounds else MessageType.EVALUATE
            outcome = exchange(grid, coordinator, nodes, round_, kind, cfg.reply_timeout)
            recorder.record(outcome)
            progress.update(task, advance=1, status=_status_line(outcome))
    summary = recorder.finish(num_nodes=len(nodes), extra={"privacy": _privacy_record(coordinator)})
    log.info("run %s done: ALMA %s, results in %s", cfg.run_name, summary["alma"], run_dir)
    return run_dir


def _privacy_record(coordinator: Coordinator) -> dict[str, object]:
    """What the server keeps of each node's privacy: cumulative ε and last ledger head."""
    cfg = coordinator.cfg
    return {
        "dp": cfg.dp,
        "epsilon_claimed": cfg.claims_dp,
        "delta": cfg.dp_delta if cfg.dp else None,
        "accountant": cfg.dp_accountant if cfg.dp else None,
        "target_epsilon": cfg.dp_target_epsilon or None,
        "registry": str(coordinator.registry.path) if coordinator.registry else None,
        "nodes": {
            str(node_id): {
                "name": coordinator.name_of(node_id),
                "epsilon": coordinator.epsilon_recorded.get(node_id),
                "ledger_head": head,
            }
            for node_id, head in sorted(coordinator.ledger_heads.items())
        },
    }


def _status_line(outcome: RoundOutcome) -> str:
    accs = [e.local_accuracy for e in outcome.evals]
    alma = sum(accs) / len(accs) if accs else float("nan")
    excluded = len(outcome.excluded)
    return f"ALMA(r{outcome.round - 1})={alma:.3f} excluded={excluded}"
