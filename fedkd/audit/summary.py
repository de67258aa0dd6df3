"""``audit.md``: the threat model, then one table per configuration, views as rows."""

from __future__ import annotations

from typing import Any


def _num(value: Any, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def markdown_summary(record: dict[str, Any]) -> str:
    lines = ["# Privacy audit", "", *record["threat_model"].splitlines(), ""]
    canaries = record["canaries"]
    lines.append(
        f"Canaries: {', '.join(canaries['kinds'])}; {canaries['candidates_per_kind']} "
        f"candidates per kind (each inserted with probability ½; {canaries['inserted']} "
        f"inserted), {canaries['references_per_kind']} never-inserted references per kind, "
        f"repeated {canaries['repeats']}×. Unit of privacy: {record['unit_of_privacy']}."
    )
    if record.get("control"):
        lines.append(f"**Control run: {record['control']}.**")
    lines.append("")
    from fedkd.audit.report import ordered

    for name, c in ordered(record):
        claimed = "∞ (no DP)" if c["eps_claimed"] is None else f"{c['eps_claimed']:.3f}"
        lines += [
            f"## {name}: ALMA {_num(c['alma'])}, global {_num(c['global_acc'])}, "
            f"claimed ε {claimed}, δ {c['delta']}",
            "",
            "| view | kind | exposure bits (95% CI) | references | above | MIA AUC | "
            "TPR@1%FPR | TPR@0.1%FPR | ε lower bound (ceiling) |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for view, v in c["views"].items():
            bound = f"{_num(v['eps_lower_bound'])} ({_num(v['eps_lower_bound_ceiling'])})"
            rows = [("all", v), *v["by_kind"].items()]
            for kind, e in rows:
                ci = e["exposure_ci95"]
                ref = e["reference_exposure_ci95"]
                above = e.get("exposure_above_references", e.get("above_references"))
                lines.append(
                    f"| {view} | {kind} | {_num(e['exposure_mean_bits'], 2)} "
                    f"({_num(ci[0], 2)}–{_num(ci[1], 2)}) | {_num(ref[0], 2)}–{_num(ref[1], 2)} "
                    f"| {'yes' if above else 'no'} | {_num(e['mia_auc'])} | "
                    f"{_num(e['tpr_at_1pct_fpr'])} | {_num(e['tpr_at_0.1pct_fpr'])} | "
                    f"{bound if kind == 'all' else ''} |"
                )
        lines += _shadow_lines(record)
    broken = record.get("broken_guarantees") or {}
    for name, views in broken.items():
        lines.append(
            f"**BROKEN GUARANTEE: {name}: the ε lower bound of view(s) {', '.join(views)} "
            "exceeds the claimed ε.**"
        )
    lines.append(
        "Bounds: one-run (Steinke, Nasr, Jagielski 2023) at 95% confidence jointly over the "
        "three views (Bonferroni), ceilings = the bound if every guess were right. A black-box "
        "bound far below the claimed ε is expected, not a failure of DP."
    )
    return "\n".join(lines) + "\n"


def _shadow_lines(record: dict[str, Any]) -> list[str]:
    """LiRA and Clopper–Pearson per configuration and view, when shadows were run."""
    from fedkd.audit.report import ordered

    rows = []
    for name, c in ordered(record):
        for view, v in c["views"].items():
            lira, cp = v.get("lira"), v.get("clopper_pearson")
            if not lira:
                continue
            cp_cell = "—" if not cp else (
                f"{_num(cp['epsilon'])} (ceiling {_num(cp['ceiling'])}, "
                f"{cp['runs_in']} + {cp['runs_out']} runs)"
            )  # fmt: skip
            rows.append(
                f"| {name} | {view} | {lira['shadows']} | {_num(lira['online']['auc'])} | "
                f"{_num(lira['online']['tpr_at_1pct_fpr'])} | "
                f"{_num(lira['online']['tpr_at_01pct_fpr'])} | {_num(lira['offline']['auc'])} | "
                f"{'global' if lira['global_variance'] else 'per canary'} | {cp_cell} |"
            )
    if not rows:
        return [""]
    return [
        "## LiRA over shadow runs (candidates only)",
        "",
        "| configuration | view | shadows | online AUC | TPR@1%FPR | TPR@0.1%FPR | offline AUC "
        "| variance | Clopper–Pearson ε |",
        "|---|---|---|---|---|---|---|---|---|",
        *rows,
        "",
    ]
