"""summary.json: the numbers a reader looks for first."""

from __future__ import annotations

import statistics
from collections import defaultdict
from typing import Any

from fedkd.config import RunConfig


def _mean(values: list[float]) -> float | None:
    return statistics.fmean(values) if values else None


def summarise(
    cfg: RunConfig, rows: list[dict[str, Any]], *, num_nodes: int, wall_s: float
) -> dict[str, Any]:
    """ALMA and global accuracy at the final round, traffic per client-round, exclusions."""
    final = [r for r in rows if r["round"] == cfg.num_server_rounds]
    local = [r["local_accuracy"] for r in final if r["local_accuracy"] is not None]
    global_ = [r["global_accuracy"] for r in final if r["global_accuracy"] is not None]
    traffic = [r for r in rows if 1 <= r["round"] <= cfg.num_server_rounds]
    client_rounds = max(1, len(traffic))
    excluded: dict[str, int] = defaultdict(int)
    for r in traffic:
        if r["status"] not in ("ok", ""):
            excluded[r["status"]] += 1
    eps = [r["epsilon"] for r in rows if r["epsilon"] is not None]
    per_round: dict[int, list[float]] = defaultdict(list)
    for r in rows:
        if r["local_accuracy"] is not None:
            per_round[r["round"]].append(r["local_accuracy"])
    return {
        "run_name": cfg.run_name,
        "strategy": cfg.strategy,
        "strategy_params": cfg.fusion_params(),
        "dataset": cfg.dataset,
        "partitioner": cfg.partitioner,
        "dirichlet_alpha": cfg.dirichlet_alpha,
        "seed": cfg.seed,
        "num_clients": cfg.num_clients,
        "num_nodes_seen": num_nodes,
        # Nodes with at least one accepted reply: the clients that actually took part.
        "clients_taking_part": len({r["node_id"] for r in traffic if r["status"] == "ok"}),
        "rounds": cfg.num_server_rounds,
        "alma": _mean(local),
        "alma_median": statistics.median(local) if local else None,
        "alma_clients": len(local),
        "global_acc": _mean(global_),
        "global_acc_median": statistics.median(global_) if global_ else None,
        # Local and global accuracies are reported by the clients (range-checked, not
        # verifiable by the server); the per-client values show what one client moves.
        "client_reported": ["alma", "alma_median", "global_acc", "global_acc_median"],
        "final_local_accuracy_per_client": {
            str(r["node_id"]): r["local_accuracy"] for r in final if r["local_accuracy"] is not None
        },
        "local_test_examples_min": min(
            (r["local_test_examples"] for r in final if r["local_test_examples"]), default=None
        ),
        "local_test_examples_total": sum(r["local_test_examples"] or 0 for r in final),
        "bytes_up_per_client_round": sum(r["bytes_up"] for r in traffic) / client_rounds,
        "bytes_down_per_client_round": sum(r["bytes_down"] for r in traffic) / client_rounds,
        "flower_bytes_up_per_client_round": sum(r["flower_bytes_up"] for r in traffic)
        / client_rounds,
        "flower_bytes_down_per_client_round": sum(r["flower_bytes_down"] for r in traffic)
        / client_rounds,
        "payload_dtype": cfg.payload_dtype,
        "excluded_client_rounds": dict(excluded),
        "alma_per_round": {str(k): statistics.fmean(v) for k, v in sorted(per_round.items())},
        "wall_s": wall_s,
        "epsilon_max": max(eps) if eps else None,
    }
