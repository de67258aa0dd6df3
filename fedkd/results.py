"""A run directory: resolved config, per-client-per-round metrics, summary, plots.

``metrics.jsonl`` has one line per client per round.  A round's accuracy is measured at
the start of the next message (after distilling that round's targets), so lines are
assembled from two messages and written once complete.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fedkd.config import RunConfig, parse_run_config
from fedkd.coordinator import RoundOutcome
from fedkd.run_directory import COMPLETE_STATUS, INCOMPLETE_STATUS
from fedkd.wire.types import EvalReport, StatusCode

if TYPE_CHECKING:
    from fedkd.node.config import NodeConfig


@dataclass
class _Row:
    round: int
    node_id: int
    partition_id: int | None = None
    model: str = ""
    local_accuracy: float | None = None
    local_loss: float | None = None
    local_test_examples: int | None = None
    global_accuracy: float | None = None
    global_loss: float | None = None
    train_loss: float | None = None
    distill_loss: float | None = None
    bytes_up: int = 0
    bytes_down: int = 0
    flower_bytes_up: int = 0
    flower_bytes_down: int = 0
    status: str = ""
    reason: str = ""
    rule: str = ""
    epsilon: float | None = None
    seconds: dict[str, float] = field(default_factory=dict)


def _finite(value: float) -> float | None:
    """``value``, or None for NaN and ±inf (JSON has neither)."""
    return None if value is None or not math.isfinite(value) else float(value)


class RunRecorder:
    """Collects round outcomes and writes the run directory."""

    def __init__(self, cfg: RunConfig, run_dir: Path) -> None:
        self.cfg = cfg
        self.run_dir = run_dir
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.started = time.perf_counter()
        self.rows: dict[tuple[int, int], _Row] = {}
        self.round_seconds: dict[int, tuple[float, float]] = {}
        """Each message round's wall time at the server, and its fusion's (this session's
        rounds only: a resumed run's earlier rounds are not timed again)."""
        (run_dir / "config.json").write_text(json.dumps(cfg.to_flat(), indent=2, sort_keys=True))

    def resume(
        self, rows: list[dict[str, Any]], names: dict[int, str], ids: dict[str, int], elapsed: float
    ) -> None:
        """Take back a checkpoint's rows; a node back under a new Flower id (``ids``: name →
        id now) keeps its earlier rows under the new id, so no round is split or doubled."""
        self.started -= elapsed
        for data in rows:
            row = _Row(**data)
            name = names.get(row.node_id)
            if name is not None and name in ids:
                row.node_id = ids[name]
            self.rows[(row.round, row.node_id)] = row

    def elapsed(self) -> float:
        """Seconds this run has taken, across resumptions."""
        return time.perf_counter() - self.started

    def _row(self, round_: int, node_id: int) -> _Row:
        return self.rows.setdefault((round_, node_id), _Row(round=round_, node_id=node_id))

    def record(self, outcome: RoundOutcome) -> None:
        """Fold one message round (training round, or the final evaluation) into the rows."""
        traffic_round = min(outcome.round, self.cfg.num_server_rounds)
        for node_id, node in outcome.nodes.items():
            row = self._row(traffic_round, node_id)
            row.bytes_up += node.bytes_up
            row.bytes_down += node.bytes_down
            row.flower_bytes_up += node.flower_bytes_up
            row.flower_bytes_down += node.flower_bytes_down
            if outcome.round <= self.cfg.num_server_rounds:
                row.status, row.reason, row.epsilon = node.status, node.reason, node.privacy_epsilon
                row.rule = node.rule
        for node_id, report in zip(outcome.eval_nodes, outcome.evals, strict=True):
            self._record_eval(node_id, report)
        self.round_seconds[outcome.round] = (outcome.seconds, outcome.fusion_seconds)
        self.flush_metrics()

    def _record_eval(self, node_id: int, report: EvalReport) -> None:
        row = self._row(report.evaluated_round, node_id)
        # A negative partition: the server could not tie the node to one (see Coordinator).
        row.partition_id = report.partition_id if report.partition_id >= 0 else None
        row.model = report.model
        row.local_accuracy = _finite(report.local_accuracy)
        row.local_loss = _finite(report.local_loss)
        row.local_test_examples = report.local_test_examples
        row.global_accuracy = _finite(report.global_accuracy)
        row.global_loss = _finite(report.global_loss)
        row.distill_loss = _finite(report.distill_loss)
        row.seconds.update({f"eval-{k}": v for k, v in report.phase_seconds.items()})
        # Training happens after evaluation in a message, so its loss belongs to this round.
        if report.evaluated_round < self.cfg.num_server_rounds:
            next_row = self._row(report.evaluated_round + 1, node_id)
            next_row.train_loss = _finite(report.train_loss)

    def clients_taking_part(self) -> int:
        """Nodes with at least one accepted training reply."""
        return len({r.node_id for r in self.rows.values() if r.round >= 1 and r.status == "ok"})

    def rounds_without_replies(self, rounds: Iterable[int]) -> list[int]:
        """The training rounds of ``rounds`` in which no node's reply was accepted (a node
        saying its privacy budget is spent has answered: the run did what it should)."""
        answered = ("ok", StatusCode.BUDGET_EXHAUSTED.value)
        accepted = {r.round for r in self.rows.values() if r.status in answered}
        return [r for r in rounds if r not in accepted]

    def first_reason(self, from_round: int = 0) -> str:
        """The first exclusion reason recorded (from ``from_round`` on), for a message
        about a run nobody joined."""
        for key in sorted(self.rows):
            if key[0] >= from_round and self.rows[key].reason:
                return f"round {key[0]}: {self.rows[key].reason}"
        return "no reasons recorded"

    def ordered_rows(self) -> list[dict[str, Any]]:
        return [asdict(self.rows[k]) for k in sorted(self.rows)]

    def flush_metrics(self) -> None:
        lines = [json.dumps(r, sort_keys=True) for r in self.ordered_rows()]
        (self.run_dir / "metrics.jsonl").write_text("\n".join(lines) + "\n")

    def finish(
        self, *, num_nodes: int, extra: dict[str, Any] | None = None, incomplete: str = ""
    ) -> dict[str, Any]:
        """Write summary.json and the plots; return the summary.

        ``incomplete`` is why the run ended early; the summary then says
        ``status: incomplete`` and holds the rounds that finished.
        """
        from fedkd.reporting.summary import summarise

        summary = summarise(
            self.cfg,
            self.ordered_rows(),
            num_nodes=num_nodes,
            wall_s=self.elapsed(),
        )
        summary.update(extra or {})
        summary["round_seconds"] = {str(r): t for r, (t, _) in sorted(self.round_seconds.items())}
        summary["fusion_seconds"] = {str(r): f for r, (_, f) in sorted(self.round_seconds.items())}
        summary["status"] = INCOMPLETE_STATUS if incomplete else COMPLETE_STATUS
        if incomplete:
            summary["incomplete_reason"] = incomplete
        (self.run_dir / "summary.json").write_text(
            json.dumps(summary, indent=2, sort_keys=True, allow_nan=False)
        )
        from fedkd.reporting.plots import plot_run

        plot_run(self.ordered_rows(), self.run_dir, title=self.cfg.run_name)
        return summary


def merge_node_logs(cfg: RunConfig, run_dir: Path, nodes: Sequence[NodeConfig]) -> None:
    """Fold simulated nodes' local logs into the run's metrics and summary.

    Under DP, local metrics never cross the wire; in a simulation the operator of every
    node can still read each node's own log from the shared disk, and this is where (in
    the simulation driver, after the run: never in the server).
    """
    from fedkd.node.local_log import NodeLog
    from fedkd.reporting.plots import plot_run
    from fedkd.reporting.summary import summarise

    metrics = run_dir / "metrics.jsonl"
    if not metrics.exists():
        return
    rows = {
        (r["round"], r["node_id"]): r
        for r in (json.loads(line) for line in metrics.read_text().splitlines() if line)
    }
    # By the names the server tied to node ids, never by what a reply claimed (a node
    # claiming another's partition would otherwise be given that node's local metrics).
    summary_path = run_dir / "summary.json"
    old = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    node_of = {
        entry["name"]: int(node_id)
        for node_id, entry in old.get("privacy", {}).get("nodes", {}).items()
        if entry.get("trusted_name")
    }
    for node in nodes:
        if node.name not in node_of:
            continue
        node_id = node_of[node.name]
        local_log = NodeLog(eval_path=node.eval_log_path, log_path=node.log_path)
        for local in local_log.evaluations():
            row = rows.setdefault(
                (local.evaluated_round, node_id), asdict(_Row(local.evaluated_round, node_id))
            )
            row["local_accuracy"] = _finite(local.local_accuracy)
            row["local_loss"] = _finite(local.local_loss)
            row["local_test_examples"] = local.local_test_examples
            row["distill_loss"] = _finite(local.distill_loss)
            row["seconds"].update({f"eval-{k}": v for k, v in local.phase_seconds.items()})
            if local.evaluated_round >= cfg.num_server_rounds:
                continue  # the final evaluation: no training follows it
            key = (local.evaluated_round + 1, node_id)
            rows.setdefault(key, asdict(_Row(key[0], node_id)))["train_loss"] = _finite(
                local.train_loss
            )
    ordered = [rows[k] for k in sorted(rows)]
    metrics.write_text("\n".join(json.dumps(r, sort_keys=True) for r in ordered) + "\n")
    summary = summarise(
        cfg, ordered, num_nodes=old.get("num_nodes_seen", len(nodes)), wall_s=old.get("wall_s", 0.0)
    )
    summary_path.write_text(json.dumps({**old, **summary}, indent=2, sort_keys=True))
    plot_run(ordered, run_dir, title=cfg.run_name)


@dataclass(frozen=True)
class RunResult:
    """One run's results, as written in its directory."""

    run_dir: Path
    config: RunConfig
    summary: dict[str, Any]
    metrics: tuple[dict[str, Any], ...]
    """One row per client per round (``metrics.jsonl``)."""
    nodes: tuple[dict[str, Any], ...] = ()
    """The simulated nodes' own configs (``nodes.json``): data, model, state dir."""

    @classmethod
    def load(cls, run_dir: str | os.PathLike[str]) -> RunResult:
        """Read a run directory (complete, or set aside as incomplete)."""
        path = Path(run_dir)
        lines = (path / "metrics.jsonl").read_text().splitlines()
        nodes_file = path / "nodes.json"
        return cls(
            run_dir=path,
            config=parse_run_config(json.loads((path / "config.json").read_text())),
            summary=json.loads((path / "summary.json").read_text()),
            metrics=tuple(json.loads(line) for line in lines if line),
            nodes=tuple(json.loads(nodes_file.read_text())) if nodes_file.exists() else (),
        )

    @property
    def complete(self) -> bool:
        return bool(self.summary.get("status") != INCOMPLETE_STATUS)

    @property
    def alma(self) -> float | None:
        """Mean local accuracy at the final round (client-reported; see the median)."""
        value = self.summary.get("alma")
        return None if value is None else float(value)

    @property
    def global_acc(self) -> float | None:
        value = self.summary.get("global_acc")
        return None if value is None else float(value)

    @property
    def node_state_dirs(self) -> tuple[Path, ...]:
        """Where the simulated nodes kept their ledgers and logs (one per distinct dir)."""
        return tuple(dict.fromkeys(Path(str(n["state-dir"])) for n in self.nodes))
