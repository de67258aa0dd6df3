"""summary.json: the numbers a reader looks for first.

Local accuracy is local: each node's is measured on its own held-out records only, never
topped up.  A node with fewer of them than the run's ``min-local-test`` is flagged
``too_few`` and, like every node, reported with its n and its exact (Clopper–Pearson) 95 %
interval in ``local_accuracy_per_node``.  ALMA is stated in two forms, and the rule is
written into the summary (``alma_rule``):

* ``alma``: the mean over every node that reports a local accuracy, each node once, the
  too-few ones included as measured (so every hospital counts, however small);
* ``alma_at_min``: the same mean over the nodes with at least ``min-local-test`` own test
  records only (None when no node has that many).
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from typing import Any

from fedkd.config import RunConfig
from fedkd.reporting.binomial import clopper_pearson_interval

CONFIDENCE = 0.95
"""The confidence of each node's local-accuracy interval."""


def _mean(values: list[float]) -> float | None:
    return statistics.fmean(values) if values else None


def local_accuracy_entry(accuracy: float, n: int | None, minimum: int) -> dict[str, Any]:
    """One node's final local accuracy with its n, correct count and 95 % interval.

    ``n`` is the node's own test records (``local_test_examples``); the correct count is
    ``accuracy × n`` rounded (the accuracy is a count over ``n``).  A node that reports no
    n gets no interval and is flagged too few: its accuracy cannot be weighed.
    """
    if not n:
        return {"accuracy": accuracy, "n": n, "correct": None, "ci95": None, "too_few": True}
    correct = min(n, max(0, round(accuracy * n)))
    low, high = clopper_pearson_interval(correct, n, confidence=CONFIDENCE)
    return {
        "accuracy": accuracy,
        "n": n,
        "correct": correct,
        "ci95": [low, high],
        "too_few": n < minimum,
    }


def alma_rule(minimum: int, nodes: int, too_few: int) -> str:
    """The sentence that says how ALMA treats nodes with too few own test records."""
    return (
        f"alma is the mean final local accuracy of all {nodes} node(s) reporting one, each "
        "node once, each measured on its own held-out records only (never topped up); "
        f"{too_few} of them hold fewer than min-local-test = {minimum} own test records "
        "(alma_too_few_clients): they count in alma as measured and are flagged too_few "
        "with their n and Clopper-Pearson 95% interval in local_accuracy_per_node; "
        f"alma_at_min is the mean over the nodes with at least {minimum} only (null when "
        "none has that many)"
    )


def summarise(
    cfg: RunConfig, rows: list[dict[str, Any]], *, num_nodes: int, wall_s: float
) -> dict[str, Any]:
    """ALMA and global accuracy at the final round, traffic per client-round, exclusions."""
    final = [r for r in rows if r["round"] == cfg.num_server_rounds]
    local = [r["local_accuracy"] for r in final if r["local_accuracy"] is not None]
    per_node = {
        str(r["node_id"]): {
            "partition_id": r["partition_id"],
            **local_accuracy_entry(
                r["local_accuracy"], r["local_test_examples"], cfg.min_local_test
            ),
        }
        for r in final
        if r["local_accuracy"] is not None
    }
    enough = [e["accuracy"] for e in per_node.values() if not e["too_few"]]
    too_few = sorted((k for k, e in per_node.items() if e["too_few"]), key=int)
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
        "alma_at_min": _mean(enough),
        "alma_at_min_clients": len(enough),
        "alma_too_few_clients": too_few,
        "alma_min_local_test": cfg.min_local_test,
        "alma_rule": alma_rule(cfg.min_local_test, len(per_node), len(too_few)),
        "local_accuracy_per_node": per_node,
        "global_acc": _mean(global_),
        "global_acc_median": statistics.median(global_) if global_ else None,
        # Local and global accuracies are reported by the clients (range-checked, not
        # verifiable by the server); the per-client values show what one client moves.
        "client_reported": [
            "alma",
            "alma_median",
            "alma_at_min",
            "global_acc",
            "global_acc_median",
            "local_accuracy_per_node",
        ],
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
