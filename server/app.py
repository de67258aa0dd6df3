"""fedkd ServerApp: the round loop over Flower's Grid.

Each round sends every online node its personalised request, waits up to
``reply-timeout``, and hands whatever came back (replies, Flower error replies, silence)
to :class:`fedkd.coordinator.Coordinator`.  A failed client is excluded from that round;
the round goes on.  A run writes into a staging folder (:mod:`fedkd.run_directory`) that
becomes ``<output-dir>/<run-name>`` only when the run is complete.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flwr.app import Context, Message, MessageType
from flwr.serverapp import Grid, ServerApp
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from fedkd.config import RunConfig, parse_run_config
from fedkd.config_registries import check_registered_names
from fedkd.coordinator import Coordinator, Delivery, ResumeRefused, RoundOutcome
from fedkd.data.public import load_public_data
from fedkd.deploy.keyring import signing_keys
from fedkd.flower_glue.messages import flower_size, pack, unpack
from fedkd.interrupt import RunFailed, RunInterrupted, check
from fedkd.participation import round_participants
from fedkd.privacy.guard import CONTROL_MECHANISM
from fedkd.privacy.node_registry import NodeRegistry
from fedkd.results import RunRecorder
from fedkd.run_directory import RunDirectory
from server.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from server.releases import ReleaseLog, load_releases

log = logging.getLogger("fedkd.server")
app = ServerApp()
POLL_S = 0.02
"""How often the server asks for replies: a round ends within this of its last reply."""
STARTUP_ROUNDS = (0, 1)
"""The handshake and the first training round: where a node starts its app, loads its
data and builds its model, so they also get the ``startup-timeout`` allowance."""


class NodeCountError(RunFailed):
    """The online nodes do not match ``num-clients``."""


@app.main()
def main(grid: Grid, context: Context) -> None:
    cfg = check_registered_names(parse_run_config(context.run_config))
    directory = RunDirectory.open(
        Path(cfg.output_dir),
        cfg.run_name,
        overwrite=cfg.overwrite,
        fingerprint=cfg.fingerprint() if cfg.resume else None,
    )
    if threading.current_thread() is threading.main_thread():
        _set_aside_on_signal(directory)
    try:
        run_federation(grid, cfg, run_id=str(context.run_id), directory=directory)
    except NodeCountError as exc:
        directory.set_aside()
        log.error("%s", exc)  # the user's setting, not a fault: one line, no traceback
        return
    except BaseException:
        if not directory.staging.is_dir():  # already set aside by the signal
            raise
        where = directory.set_aside()
        log.error("run %s did not complete; what it has is in %s", cfg.run_name, where)
        raise
    log.info("results in %s", directory.publish())


def _set_aside_on_signal(directory: RunDirectory) -> None:
    """In deployment the ServerApp is a process of its own, stopped by SIGTERM when its
    SuperLink stops or restarts (``systemctl restart``: the whole unit at once).  Flower's
    handler then retries reaching the SuperLink that is going away until it force-exits,
    so the run is set aside first, with a summary saying why (its checkpoint kept)."""
    from flwr.supercore.exit import add_exit_handler

    def set_aside() -> None:
        where = directory.abandon(
            "the ServerApp was stopped by a signal (its SuperLink stopping or restarting)"
        )
        if where is not None:
            log.error("run %s stopped; what it has is in %s", directory.run_name, where)

    add_exit_handler(set_aside, run_before_force_exit=True)


@dataclass(frozen=True)
class Deadline:
    """How long a round waits, and the words an exclusion for silence uses."""

    seconds: float
    why: str

    @classmethod
    def of_round(cls, cfg: RunConfig, round_: int) -> Deadline:
        if round_ in STARTUP_ROUNDS:
            return cls(
                cfg.reply_timeout + cfg.startup_timeout,
                f"reply-timeout {cfg.reply_timeout:g} s + startup-timeout "
                f"{cfg.startup_timeout:g} s, a node's first rounds",
            )
        return cls(cfg.reply_timeout, f"reply-timeout {cfg.reply_timeout:g} s")

    def silence(self) -> str:
        return f"no reply within {self.seconds:g} s ({self.why})"


def wait_for_nodes(
    grid: Grid, wanted: int, deadline_s: float, stop: threading.Event | None = None
) -> list[int]:
    """The ``wanted`` online node ids; :class:`NodeCountError` if another number came."""
    start = time.monotonic()
    nodes = sorted(grid.get_node_ids())
    while len(nodes) < wanted and time.monotonic() - start < deadline_s:
        check(stop)
        time.sleep(POLL_S)
        nodes = sorted(grid.get_node_ids())
    if len(nodes) != wanted:
        raise NodeCountError(
            f"num-clients is {wanted} but {len(nodes)} nodes are online after "
            f"{deadline_s:g} s: start {wanted} SuperNodes (with `flwr run`, set "
            f"options.num-supernodes = {wanted} in the federation), or set num-clients"
        )
    return nodes


def send_and_collect(
    grid: Grid, messages: Iterable[Message], timeout: float, stop: threading.Event | None
) -> list[Message]:
    """Grid.send_and_receive, except that it stops within one poll when ``stop`` is set."""
    pending = set(grid.push_messages(messages))
    replies: list[Message] = []
    end = time.monotonic() + timeout
    while pending and time.monotonic() < end:
        check(stop)
        got = list(grid.pull_messages(pending))
        replies.extend(got)
        pending.difference_update(m.metadata.reply_to_message_id for m in got)
        if pending:
            time.sleep(POLL_S)
    return replies


def exchange(
    grid: Grid,
    coordinator: Coordinator,
    nodes: list[int],
    round_: int,
    kind: str,
    stop: threading.Event | None = None,
) -> RoundOutcome:
    """Send one request per node, collect replies, and let the coordinator judge them."""
    started = time.perf_counter()
    deliveries, bytes_down = _send(grid, coordinator, nodes, round_, kind, stop)
    outcome = coordinator.ingest(round_, deliveries, bytes_down)
    outcome.seconds = time.perf_counter() - started
    return outcome


def _send(
    grid: Grid,
    coordinator: Coordinator,
    nodes: list[int],
    round_: int,
    kind: str,
    stop: threading.Event | None,
) -> tuple[list[Delivery], dict[int, tuple[int, int]]]:
    """One request per node; what came back from each (a reply, an error, or silence)."""
    deadline = Deadline.of_round(coordinator.cfg, round_)
    messages, bytes_down = [], {}
    for node_id, payload in coordinator.requests(round_, nodes).items():
        message = Message(pack(payload), dst_node_id=node_id, message_type=kind)
        messages.append(message)
        bytes_down[node_id] = (len(payload), flower_size(message))
    sent_to = {m.metadata.message_id: m.metadata.dst_node_id for m in messages}
    replies = send_and_collect(grid, messages, deadline.seconds, stop)
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
            node_id, Delivery(node_id=node_id, transport_error=deadline.silence())
        )
    return [deliveries[n] for n in nodes], bytes_down


class NobodyAnswered(RunFailed):
    """No node answered the handshake: no round could have a result."""


def hello(
    grid: Grid, coordinator: Coordinator, nodes: list[int], stop: threading.Event | None = None
) -> None:
    """Round 0: each node says its name, so its first request carries its recorded head.

    When no node answers at all (each failed, e.g. refused the app bundle), the run ends
    here with the first node's reason rather than going through every round.
    """
    deliveries, _ = _send(grid, coordinator, nodes, 0, MessageType.QUERY, stop)
    names = coordinator.hello(deliveries)
    log.info("handshake: %d of %d nodes named themselves", len(names), len(nodes))
    failures = [d for d in deliveries if d.transport_error]
    for delivery in failures:
        log.warning("handshake: node %d: %s", delivery.node_id, delivery.transport_error)
    if not names and len(failures) == len(deliveries):
        raise NobodyAnswered(
            "no node's reply was accepted in any round (handshake: node "
            f"{failures[0].node_id}: {failures[0].transport_error})"
        )


def run_federation(
    grid: Grid,
    cfg: RunConfig,
    *,
    run_id: str,
    directory: RunDirectory,
    stop: threading.Event | None = None,
    roster: Mapping[str, int] | None = None,
) -> Path:
    """Run every round and the final evaluation into ``directory.staging``; return it.

    Whatever ends the run early (``stop``, a failed round, missing nodes, no reply
    accepted in any round after a resume point), the summary is written with ``status:
    incomplete`` and the reason before the exception leaves.  A resume refused because a
    node changed writes nothing: the checkpoint and the files before it stay as they were
    (the folder is set aside again, from where the next start resumes).
    ``roster`` (a simulation's node name → partition) is who may take part.
    """
    # The server holds only public data: the transfer set, the classes, the public test set.
    public = load_public_data(cfg.public_spec)
    # Nodes that outlive the run keep their ledgers; the registry keeps what the server
    # saw of them, so a node that lost its ledger between runs is refused, not restarted.
    registry_path = cfg.registry_path
    registry = NodeRegistry.open(registry_path) if registry_path is not None else None
    releases = ReleaseLog() if cfg.record_releases else None
    coordinator = Coordinator(
        cfg,
        run_id=run_id,
        transfer=public.transfer,
        num_classes=public.num_classes,
        registry=registry,
        releases=releases,
        signing_keys=signing_keys(Path(cfg.node_keys)) if cfg.node_keys else None,
        roster=roster,
    )
    checkpoint = load_checkpoint(directory.staging, coordinator.ref)
    if checkpoint is not None:
        # The nodes' reply caches and round progress are keyed by the run id they saw.
        coordinator.run_id = checkpoint.coordinator.run_id
    recorder = RunRecorder(cfg, directory.staging)
    nodes: list[int] = []
    try:
        # Nodes connect as they start: they get the start-up allowance to come online.
        nodes = wait_for_nodes(grid, cfg.num_clients, cfg.startup_timeout, stop)
        hello(grid, coordinator, nodes, stop)
        first = (
            1
            if checkpoint is None
            else _resume(checkpoint, coordinator, recorder, directory, releases)
        )
        _rounds(grid, cfg, coordinator, recorder, nodes, stop, releases, first=first)
    except ResumeRefused as exc:
        log.error("%s", exc)  # the checkpoint is kept as it was: one line, no traceback
        raise
    except (RunInterrupted, NodeCountError, NobodyAnswered) as exc:
        _finish(recorder, coordinator, nodes, incomplete=str(exc))
        raise
    except Exception as exc:
        log.exception("run %s failed", cfg.run_name)
        reason = f"{type(exc).__name__}: {exc}"
        _finish(recorder, coordinator, nodes, incomplete=reason)
        raise RunFailed(f"the run failed ({reason}); it ended with what it had") from exc
    if not recorder.clients_taking_part():
        # Every node failed every round: the numbers would be chance, not a result.
        reason = "no node's reply was accepted in any round (" + recorder.first_reason() + ")"
        _finish(recorder, coordinator, nodes, incomplete=reason)
        raise RunFailed(reason)
    after = coordinator.resumed_after
    resumed_rounds = range(after + 1, cfg.num_server_rounds + 1)
    empty = recorder.rounds_without_replies(range(1, cfg.num_server_rounds + 1))
    if after and resumed_rounds and set(resumed_rounds) <= set(empty):
        # Every round after the resume point went unanswered (e.g. every node failing on
        # what the checkpoint handed it): the rows before it are not this run's result.
        reason = (
            f"no node's reply was accepted in round(s) {_spans(list(resumed_rounds))} of "
            f"{cfg.num_server_rounds} (resumed after round {after}): "
            f"{recorder.first_reason(after + 1)}"
        )
        _finish(recorder, coordinator, nodes, incomplete=reason)
        raise RunFailed(reason)
    if empty:
        log.warning("run %s: no reply was accepted in round(s) %s", cfg.run_name, _spans(empty))
    if releases is not None:
        releases.save(directory.staging / "releases")
    summary = _finish(recorder, coordinator, nodes)
    log.info("run %s done: ALMA %s", cfg.run_name, summary["alma"])
    return directory.staging


def _resume(
    checkpoint: Checkpoint,
    coordinator: Coordinator,
    recorder: RunRecorder,
    directory: RunDirectory,
    releases: ReleaseLog | None,
) -> int:
    """Carry on from ``checkpoint``; return the first round still to run."""
    coordinator.resume(checkpoint.coordinator)
    ids = {name: node_id for node_id, name in coordinator.names.items()}
    recorder.resume(checkpoint.rows, checkpoint.names, ids, checkpoint.elapsed_s)
    if releases is not None:
        for path in sorted((directory.staging / "releases").glob("*.npz")):
            for release in load_releases(path):
                releases.record(path.stem, release.round, release.anchors, release.soft_labels)
    done = checkpoint.coordinator.completed_round
    coordinator.resumed_after = done
    log.info(
        "run %s: resuming after round %d (run id %s, checkpoint in %s)",
        coordinator.cfg.run_name,
        done,
        coordinator.run_id,
        directory.resumed_from,
    )
    return done + 1


def _checkpoint(
    cfg: RunConfig,
    coordinator: Coordinator,
    recorder: RunRecorder,
    staging: Path,
    round_: int,
    releases: ReleaseLog | None,
) -> None:
    """The state after ``round_``, on disk before the next round starts."""
    if releases is not None:
        releases.save(staging / "releases")
    save_checkpoint(
        staging,
        Checkpoint(
            fingerprint=cfg.fingerprint(),
            coordinator=coordinator.snapshot(round_),
            rows=recorder.ordered_rows(),
            names=dict(coordinator.names),
            elapsed_s=recorder.elapsed(),
        ),
    )


def _rounds(
    grid: Grid,
    cfg: RunConfig,
    coordinator: Coordinator,
    recorder: RunRecorder,
    nodes: list[int],
    stop: threading.Event | None,
    releases: ReleaseLog | None,
    *,
    first: int = 1,
) -> None:
    total = cfg.num_server_rounds + 1
    with Progress(
        TextColumn(f"[bold]{cfg.run_name}[/] {cfg.strategy}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} {task.fields[status]}"),
        TimeElapsedColumn(),
    ) as progress:
        task = progress.add_task("rounds", total=total, completed=first - 1, status="")
        for round_ in range(first, total + 1):
            training = round_ <= cfg.num_server_rounds
            kind = MessageType.TRAIN if training else MessageType.EVALUATE
            asked = nodes
            if training:
                asked = round_participants(
                    nodes, per_round=cfg.clients_per_round, seed=cfg.seed, round_=round_
                )
            outcome = exchange(grid, coordinator, asked, round_, kind, stop)
            recorder.record(outcome)
            if training:
                _checkpoint(cfg, coordinator, recorder, recorder.run_dir, round_, releases)
            progress.update(task, advance=1, status=_status_line(outcome))


def _spans(rounds: list[int]) -> str:
    """``[1, 2, 3, 7]`` → ``"1-3, 7"``."""
    spans: list[list[int]] = []
    for r in rounds:
        if spans and r == spans[-1][1] + 1:
            spans[-1][1] = r
        else:
            spans.append([r, r])
    return ", ".join(f"{a}" if a == b else f"{a}-{b}" for a, b in spans)


def _finish(
    recorder: RunRecorder, coordinator: Coordinator, nodes: list[int], *, incomplete: str = ""
) -> dict[str, Any]:
    """Write the summary (what the server kept of each node's privacy with it)."""
    return recorder.finish(
        num_nodes=len(nodes), extra=_extra(coordinator, recorder), incomplete=incomplete
    )


def _extra(coordinator: Coordinator, recorder: RunRecorder) -> dict[str, object]:
    cfg = coordinator.cfg
    extra: dict[str, object] = {
        "privacy": _privacy_record(coordinator),
        # Training rounds in which no node's reply was accepted: nothing was fused there.
        "rounds_without_replies": recorder.rounds_without_replies(
            range(1, cfg.num_server_rounds + 1)
        ),
    }
    if coordinator.resumed_after:
        extra["resumed_after_round"] = coordinator.resumed_after
    return extra


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
        # An audit's positive control: these nodes ran without noise; ε is unbounded.
        "controls": sorted(coordinator.name_of(n) for n in coordinator.controls),
        # Names two or more nodes gave at the handshake: none of them holds it.
        "contested_names": {
            name: sorted(ids) for name, ids in sorted(coordinator.contested.items())
        },
        # Every node that named itself, with what it spent (None: nothing accepted).
        "nodes": {
            str(node_id): {
                "name": coordinator.name_of(node_id),
                "trusted_name": node_id in coordinator.names,
                "epsilon": coordinator.epsilon_recorded.get(node_id),
                "ledger_head": coordinator.ledger_heads.get(node_id),
                **({"mechanism": CONTROL_MECHANISM} if node_id in coordinator.controls else {}),
            }
            for node_id in sorted(set(coordinator.names) | set(coordinator.ledger_heads))
        },
    }


def _status_line(outcome: RoundOutcome) -> str:
    accs = [e.local_accuracy for e in outcome.evals]
    alma = f"{sum(accs) / len(accs):.3f}" if accs else "—"
    return f"ALMA(r{outcome.round - 1})={alma} excluded={len(outcome.excluded)}"
