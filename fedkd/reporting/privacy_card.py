"""A privacy model card for a run (the coordinating site's view) or for one node (its
own view, from its own state directory, without asking the server).

Only public data is named (by digest); ε and δ come from the nodes' verified ledgers
(hash chains checked) where they can be read, else from what the server recorded; the
mechanisms are the run's DP-SGD and swing settings; what left each node is its fields and
bytes; audit results are attached when the run was part of an audit.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

UNIT_OF_PRIVACY = "one record of a node's private training data"


def node_card(state_dir: Path) -> dict[str, Any]:
    """Every ledger in ``state_dir``: spend per run, mechanisms, what left the node."""
    from fedkd.privacy.ledger import ReadOnlyLedger

    ledgers = sorted(state_dir.glob("*.ledger.db"))
    if not ledgers:
        raise FileNotFoundError(f"no node ledger (*.ledger.db) in {state_dir}")
    nodes = {}
    for path in ledgers:
        name = path.name.removesuffix(".ledger.db")
        rows = ReadOnlyLedger.read(path).rows()  # verifies the chain, or raises
        nodes[name] = _node_spend(name, rows, state_dir / f"{name}.sent.jsonl")
    return {
        "kind": "node privacy report",
        "state_dir": str(state_dir),
        "unit_of_privacy": UNIT_OF_PRIVACY,
        "source": "the node's own verified ledger(s) and sent log; nothing from the server",
        "nodes": nodes,
    }


def _node_spend(name: str, rows: list[Any], sent_log: Path) -> dict[str, Any]:
    sent = [json.loads(line) for line in sent_log.read_text().splitlines() if line.strip()] if (
        sent_log.exists()
    ) else []  # fmt: skip
    bytes_by_run: dict[str, int] = defaultdict(int)
    replies_by_run: dict[str, int] = defaultdict(int)
    for line in sent:
        bytes_by_run[line["run_id"]] += int(line["bytes"])
        replies_by_run[line["run_id"]] += 1
    runs: dict[str, dict[str, Any]] = {}
    for row in rows:
        run = runs.setdefault(
            row.run_id,
            {"releases": 0, "rounds": [], "mechanisms": set(), "fields_sent": set(),
             "noise_multipliers": set(), "sample_rates": set(), "steps": 0},
        )  # fmt: skip
        run["releases"] += 1
        run["rounds"].append(row.round)
        run["mechanisms"].add(row.mechanism)
        run["fields_sent"].update(row.fields_sent)
        run["noise_multipliers"].add(round(row.noise_multiplier, 6))
        run["sample_rates"].add(round(row.sample_rate, 6))
        run["steps"] += row.steps
        run.update(
            epsilon=row.epsilon, delta=row.delta, accountant=row.accountant,
            transfer_digest=row.transfer_digest, randomness=row.randomness, policy=row.policy,
        )  # fmt: skip
    for run_id, run in runs.items():
        for key in ("mechanisms", "fields_sent", "noise_multipliers", "sample_rates"):
            run[key] = sorted(run[key])
        run["bytes_sent"] = bytes_by_run.get(run_id)
        run["replies_sent"] = replies_by_run.get(run_id)
    last = rows[-1] if rows else None
    return {
        "name": name,
        "releases": len(rows),
        "epsilon": last.epsilon if last else None,
        "delta": last.delta if last else None,
        "ledger_head": last.row_hash if last else None,
        "chain": "verified",
        "runs": runs,
    }


def run_card(run_dir: Path) -> dict[str, Any]:
    """The run's privacy card, from its own folder (and its nodes' ledgers if local)."""
    from fedkd.data.public import load_public_data
    from fedkd.results import RunResult

    result = RunResult.load(run_dir)
    cfg = result.config
    public = load_public_data(cfg.public_spec)
    recorded = result.summary.get("privacy", {})
    return {
        "kind": "run privacy report",
        "run_dir": str(run_dir),
        "status": result.summary.get("status"),
        "public_data": {
            "name": public.name,
            "transfer_set": public.transfer.name,
            "transfer_digest": public.transfer.digest,
            "test_digest": public.test_digest,
        },
        "unit_of_privacy": UNIT_OF_PRIVACY,
        "mechanisms": _mechanisms(cfg),
        "clients": _clients(result, recorded),
        "audit": _audit_of(run_dir),
    }


def _mechanisms(cfg: Any) -> dict[str, Any]:
    swing = cfg.swing
    return {
        "dp_sgd": {
            "enabled": cfg.dp,
            "target_epsilon": cfg.dp_target_epsilon or None,
            "noise_multiplier": cfg.dp_noise_multiplier or None,
            "max_grad_norm": cfg.dp_max_grad_norm,
            "delta": cfg.dp_delta,
            "accountant": cfg.dp_accountant,
            "grad_sample_mode": cfg.dp_grad_sample_mode or "default",
        }
        if cfg.dp
        else {"enabled": False},
        "swing": None
        if swing is None
        else {
            "scorer": cfg.swing_scorer or None,
            "max_temperature": swing.max_temperature,
            "noise": swing.noise,
            "noise_scale": swing.noise_scale,
            "top_k": swing.top_k,
            "formal_guarantee": "none (measured by the audit, never an ε)",
        },
        "release": {"payload_dtype": cfg.payload_dtype, "temperature": cfg.distill_temperature},
    }


def _clients(result: Any, recorded: dict[str, Any]) -> dict[str, Any]:
    sent: dict[int, dict[str, int]] = defaultdict(lambda: {"bytes_up": 0, "replies": 0})
    names: dict[int, str] = {}
    for row in result.metrics:
        sent[row["node_id"]]["bytes_up"] += row["bytes_up"]
        sent[row["node_id"]]["replies"] += 1 if row["bytes_up"] else 0
    for node_id, node in (recorded.get("nodes") or {}).items():
        names[int(node_id)] = node.get("name") or str(node_id)
    clients: dict[str, Any] = {}
    for node_id, traffic in sorted(sent.items()):
        name = names.get(node_id, str(node_id))
        server_view = (recorded.get("nodes") or {}).get(str(node_id), {})
        clients[name] = {
            "bytes_sent": traffic["bytes_up"],
            "replies": traffic["replies"],
            "epsilon_recorded_by_server": server_view.get("epsilon"),
            "ledger_head_recorded_by_server": server_view.get("ledger_head"),
        }
    for node in result.nodes:  # simulated nodes: read their own ledgers, verified
        ledger = Path(str(node["state-dir"])) / f"{node['name']}.ledger.db"
        if ledger.exists() and str(node["name"]) in clients:
            card = node_card_for(ledger)
            clients[str(node["name"])].update(
                epsilon=card["epsilon"], delta=card["delta"], chain="verified",
                fields_sent=sorted({f for r in card["runs"].values() for f in r["fields_sent"]}),
            )  # fmt: skip
    return clients


def node_card_for(ledger: Path) -> dict[str, Any]:
    """One node's spend from one verified ledger file."""
    from fedkd.privacy.ledger import ReadOnlyLedger

    name = ledger.name.removesuffix(".ledger.db")
    rows = ReadOnlyLedger.read(ledger).rows()
    return _node_spend(name, rows, ledger.with_name(f"{name}.sent.jsonl"))


def _audit_of(run_dir: Path) -> dict[str, Any] | None:
    """The audit this run belongs to (``<audit>/runs/<run>``), summarised per view."""
    record_path = run_dir.parent.parent / "audit.json"
    if not record_path.exists():
        return None
    record = json.loads(record_path.read_text())
    for name, config in record.get("configurations", {}).items():
        if Path(config.get("run_dir", "")).name == run_dir.name:
            return {
                "audit": str(record_path),
                "configuration": name,
                "control": record.get("control"),
                "verdict": config.get("verdict"),
                "verdict_reasons": config.get("verdict_reasons", []),
                "views": {
                    view: {
                        key: v.get(key)
                        for key in ("verdict", "exposure_mean_bits", "mia_auc",
                                    "tpr_at_zero_fpr", "tpr_at_0.1pct_fpr", "eps_lower_bound",
                                    "eps_lower_bound_ceiling", "eps_claimed", "eps_tested",
                                    "delta_tested")
                    }
                    for view, v in config.get("views", {}).items()
                },
            }  # fmt: skip
    return None


def card_markdown(card: dict[str, Any]) -> str:
    """The card as Markdown, for a reader; the JSON beside it is the record."""
    lines = [f"# Privacy model card ({card['kind']})", ""]
    lines.append(f"Unit of privacy: {card['unit_of_privacy']}.")
    if "public_data" in card:
        pub = card["public_data"]
        lines += [
            "",
            "## Public data (by digest)",
            f"- {pub['name']}: transfer set `{pub['transfer_set']}` {pub['transfer_digest']}",
            f"- public test set {pub['test_digest']}",
            "",
            "## Mechanisms",
            f"```json\n{json.dumps(card['mechanisms'], indent=2)}\n```",
        ]
    lines += ["", "## Spend and what left each node", ""]
    entries = card.get("clients") or card.get("nodes") or {}
    lines += ["| node | ε | δ | chain | bytes sent | fields |", "|---|---|---|---|---|---|"]
    for name, entry in entries.items():
        eps = entry.get("epsilon", entry.get("epsilon_recorded_by_server"))
        nbytes = entry.get("bytes_sent")
        if nbytes is None and "runs" in entry:
            known = [r["bytes_sent"] for r in entry["runs"].values() if r["bytes_sent"] is not None]
            nbytes = sum(known) if known else None
        fields = entry.get("fields_sent")
        if fields is None and "runs" in entry:
            fields = sorted({f for r in entry["runs"].values() for f in r["fields_sent"]})
        shown_eps = "∞ (no DP)" if eps is None else f"{eps:.4f}"
        chain = entry.get("chain", "as recorded by the server")
        shown_bytes = "—" if nbytes is None else str(nbytes)
        shown_fields = ", ".join(fields or []) or "—"
        lines.append(
            f"| {name} | {shown_eps} | {entry.get('delta', '—')} | {chain} | {shown_bytes} "
            f"| {shown_fields} |"
        )
    audit = card.get("audit")
    if audit:
        lines += ["", f"## Audit ({audit['configuration']}, {audit['audit']})", ""]
        if audit.get("control"):
            lines.append(f"**Control run ({audit['control']}): not a deployable configuration.**")
        if audit.get("verdict"):
            reasons = "; ".join(audit.get("verdict_reasons") or [])
            lines.append(f"Verdict: **{audit['verdict']}**" + (f" ({reasons})" if reasons else ""))
        for view, v in audit["views"].items():
            lines.append(f"- {view}: " + ", ".join(f"{k} {v[k]}" for k in v))
    return "\n".join(lines) + "\n"


def write_card(card: dict[str, Any], out: Path) -> tuple[Path, Path]:
    out.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out / "privacy-report.json", out / "privacy-report.md"
    json_path.write_text(json.dumps(card, indent=2, sort_keys=True, allow_nan=False, default=str))
    md_path.write_text(card_markdown(card))
    return json_path, md_path
