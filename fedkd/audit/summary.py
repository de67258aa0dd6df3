"""``audit.md``: the threat model, the verdicts, then one table per configuration (views
as rows) and the shadow attacks' table once."""

from __future__ import annotations

from typing import Any

from fedkd.audit.wording import (
    EXPOSURE_WORDS,
    VERDICT_HEADINGS,
    accuracy_words,
    control_words,
    num,
    odds,
    ordered,
    share_words,
    verdict_words,
)


def tpr_cell(e: dict[str, Any]) -> str:
    """TPR at 0.1 % FPR where the non-members support it, else at zero false positives."""
    if e.get("tpr_at_0.1pct_fpr") is not None:
        return f"{num(e['tpr_at_0.1pct_fpr'])} @ 0.1% FPR"
    return f"{num(e.get('tpr_at_zero_fpr'))} @ 0 FP"


def markdown_summary(record: dict[str, Any]) -> str:
    lines = ["# Privacy audit", ""]
    if record.get("control"):
        lines += [f"**{control_words(record['control'])}**", ""]
    lines += [*record["threat_model"].splitlines(), ""]
    canaries = record["canaries"]
    lines.append(
        f"Canaries: {', '.join(canaries['kinds'])}; {canaries['candidates_per_kind']} "
        f"candidates per kind (each inserted with probability ½; {canaries['inserted']} "
        f"inserted), {canaries['references_per_kind']} never-inserted references per kind, "
        f"repeated {canaries['repeats']}×: {share_words(canaries, record.get('control'))} "
        f"Unit of privacy: {record['unit_of_privacy']}."
    )
    lines += ["", "## Verdicts", ""]
    lines += [
        "| configuration | verdict | claim tested | odds | ε lower bound (view, score) "
        "| ceiling | canaries | accuracy |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, c in ordered(record):
        claim = c.get("claim") or {}
        able = c.get("testability") or {}
        best = max(c["views"].items(), key=lambda kv: kv[1].get("eps_lower_bound") or 0.0)
        lines.append(
            f"| {name} | {VERDICT_HEADINGS[c['verdict']]} | "
            f"{'—' if not claim else num(claim['epsilon'], 3)} | "
            f"{odds(claim.get('epsilon')) if claim else '—'} | "
            f"{num(best[1].get('eps_lower_bound'))} ({best[0]}, "
            f"{best[1].get('eps_lower_bound_score')}) | "
            f"{num(able.get('ceiling', best[1].get('eps_lower_bound_ceiling')))} | "
            f"{able.get('canaries', '—')} | {accuracy_words(c)} |"
        )
    lines.append("")
    for name, c in ordered(record):
        lines += [f"**{name}.** {verdict_words(c)}", ""]
    for name, c in ordered(record):
        claim = c.get("claim")
        tested = "no ε claimed" if not claim else (
            f"claim tested ε {claim['epsilon']:.3f}, δ {claim['delta']:.3g}"
            + ("" if claim["group"] == 1 else f" (a group of {claim['group']})")
        )  # fmt: skip
        lines += [
            f"## {name}: ALMA {num(c['alma'])}, global {num(c['global_acc'])}, {tested}",
            "",
            "| view | kind | exposure rank bits (95% CI) | references | above | "
            "skew-normal bits (references) | MIA AUC | TPR | ε lower bound (score) |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for view, v in c["views"].items():
            bound = f"{num(v['eps_lower_bound'])} ({v.get('eps_lower_bound_score')})"
            for kind, e in [("all", v), *v["by_kind"].items()]:
                ci = e["exposure_ci95"]
                ref = e["reference_exposure_ci95"]
                above = e.get("exposure_above_references", e.get("above_references"))
                skew = "" if kind == "all" else (
                    f"{num(e['exposure_skewnorm_mean_bits'], 2)} "
                    f"({num(e.get('reference_exposure_skewnorm_mean_bits'), 2)})"
                )  # fmt: skip
                lines.append(
                    f"| {view} | {kind} | {num(e['exposure_mean_bits'], 2)} "
                    f"({num(ci[0], 2)}–{num(ci[1], 2)}) | {num(ref[0], 2)}–{num(ref[1], 2)} "
                    f"| {'yes' if above else 'no'} | {skew} | {num(e['mia_auc'])} | "
                    f"{tpr_cell(e)} | {bound if kind == 'all' else ''} |"
                )
        lines.append("")
    lines += _shadow_lines(record)
    confidence_pct = 100 * (1 - float(record.get("settings", {}).get("alpha", 0.05)))
    confidence = f"{confidence_pct:g}%"
    broken = record.get("broken_guarantees") or {}
    for name, views in broken.items():
        lines.append(
            f"**BROKEN GUARANTEE: {name}: the ε lower bound of view(s) {', '.join(views)} "
            "exceeds the claimed ε.**"
        )
    lines += [
        "",
        "Bounds: one-run (Steinke, Nasr, Jagielski 2023) at the claim's δ, each view's "
        f"from its strongest score, at {confidence} confidence jointly over every (view, "
        "score) tried and every guess count (Bonferroni); the ceiling is the bound if every "
        "guess were right. Each configuration is its own family: with C configurations a "
        f"false BROKEN somewhere has probability up to C × {100 - confidence_pct:g} %. "
        "Clopper–Pearson over the shadow runs is about the shadows' mechanism (they insert "
        f"canaries, even in a negative control), at {confidence} per view, beside the "
        "verdict and not part of it. "
        + EXPOSURE_WORDS
        + " TPRs at an FPR are given only where the non-members are at least 1/FPR; "
        "otherwise at zero false positives (0 FP).",
        "",
        "## Not covered by this audit",
        "",
        *[f"- {item}" for item in record.get("not_covered", [])],
    ]
    return "\n".join(lines) + "\n"


def _shadow_lines(record: dict[str, Any]) -> list[str]:
    """LiRA, the release likelihood ratio and Clopper–Pearson, every configuration and
    view in one table, when shadows were run."""
    rows = []
    for name, c in ordered(record):
        for view, v in c["views"].items():
            for attack, lira in (("LiRA", v.get("lira")), ("release LR", v.get("release_lira"))):
                if not lira:
                    continue
                cp = v.get("clopper_pearson") if attack == "LiRA" else None
                cp_cell = "—" if not cp else (
                    f"{num(cp['epsilon'])} (ceiling {num(cp['ceiling'])}, "
                    f"{cp['runs_in']} + {cp['runs_out']} runs)"
                )  # fmt: skip
                online = lira["online"]
                rows.append(
                    f"| {name} | {view} | {attack} | {lira['shadows']} | {num(online['auc'])} "
                    f"| {num(online['tpr_at_lowest_fpr'])} @ {num(online['lowest_fpr'], 4)} "
                    f"| {tpr_cell(online)} | {num(lira['offline']['auc'])} | "
                    f"{'global' if lira['global_variance'] else 'per canary'} | {cp_cell} |"
                )
    if not rows:
        return []
    return [
        "## Likelihood-ratio attacks over shadow runs (candidates only)",
        "",
        "| configuration | view | attack | shadows | online AUC | TPR @ lowest FPR | TPR "
        "| offline AUC | variance | Clopper–Pearson ε |",
        "|---|---|---|---|---|---|---|---|---|---|",
        *rows,
        "",
    ]
