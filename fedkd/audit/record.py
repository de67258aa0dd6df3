"""``audit.json``, ``audit.md`` and ``report.html`` from the audit's results.

The record is the contract every other output reads: the threat model first, the canary
share, then per configuration the claim tested, its verdict and why, and per view each
score's bound, the attacks' figures and the exposures.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

from fedkd.audit.canaries import CanarySet
from fedkd.audit.membership import AttackResult
from fedkd.audit.run import AuditSettings, CanaryShare, ConfigurationResult
from fedkd.audit.shadow_attack import LiraResult
from fedkd.audit.threat_model import UNIT_OF_PRIVACY, View, not_covered, threat_model_text
from fedkd.audit.verdict import exit_code
from fedkd.privacy.guard import CONTROL_MECHANISM


def audit_record(
    results: list[ConfigurationResult],
    settings: AuditSettings,
    canaries: CanarySet,
    share: CanaryShare,
) -> dict[str, Any]:
    """``audit.json``: the threat model first, then every configuration and view."""
    deltas = {r.delta for r in results if r.delta is not None}
    group = (
        f" (each canary repeated {settings.repeats}×: bounds are for a group of "
        f"{settings.repeats} records, compared with the group's claim)"
        if settings.repeats > 1
        else ""
    )
    record: dict[str, Any] = _finite(
        {
            "threat_model": threat_model_text(min(deltas) if deltas else None),
            "unit_of_privacy": UNIT_OF_PRIVACY + group,
            "control": settings.control or None,
            "settings": dataclasses.asdict(settings),
            "canaries": {
                "kinds": list(settings.kinds),
                "candidates_per_kind": int(canaries.candidate.sum()) // len(settings.kinds),
                "references_per_kind": settings.references,
                "inserted": int(canaries.inserted.sum()),
                "repeats": settings.repeats,
                "target_records": share.target_records,
                "inserted_rows": share.inserted_rows,
                "share": share.share,
                "share_limit": share.limit,
                "over_limit": share.over_limit,
            },
            "not_covered": not_covered(
                target=settings.target, seed=settings.seed, shadows=settings.shadows,
                repeats=settings.repeats,
            ),
            "configurations": {r.name: _configuration_record(r) for r in results},
            "configuration_order": [r.name for r in results],
            "broken_guarantees": {r.name: r.broken for r in results if r.broken},
            "verdicts": {r.name: r.verdict.value for r in results},
            "exit_code": exit_code([r.verdict for r in results]),
        }
    )  # fmt: skip
    return record


def _attack_record(result: AttackResult) -> dict[str, Any]:
    return {
        "auc": result.auc,
        "tpr_at_1pct_fpr": result.tpr_at_1pct_fpr,
        "tpr_at_0.1pct_fpr": result.tpr_at_01pct_fpr,
        "tpr_at_zero_fpr": result.tpr_at_zero_fpr,
        "tpr_at_lowest_fpr": result.tpr_at_lowest_fpr,
        "lowest_fpr": result.lowest_fpr,
        "members": result.members,
        "non_members": result.non_members,
    }


def _configuration_record(r: ConfigurationResult) -> dict[str, Any]:
    views = {}
    for view, v in r.views.items():
        bound = v.bound
        mia = _attack_record(v.pooled_mia)
        views[view] = {
            "view": view,
            "holds": View(view).holds,
            "verdict": v.verdict.value,
            "alma": r.alma,
            "global_acc": r.global_acc,
            "exposure_mean_bits": v.pooled_exposure.mean,
            "exposure_ci95": [v.pooled_exposure.low, v.pooled_exposure.high],
            "reference_exposure_ci95": [v.pooled_reference.low, v.pooled_reference.high],
            "exposure_above_references": v.pooled_exposure.low > v.pooled_reference.high,
            "mia_auc": v.pooled_mia.auc,
            **{key: mia[key] for key in (
                "tpr_at_1pct_fpr", "tpr_at_0.1pct_fpr", "tpr_at_zero_fpr",
                "tpr_at_lowest_fpr", "lowest_fpr",
            )},
            "canaries_in": v.pooled_mia.members,
            "canaries_out": v.pooled_mia.non_members,
            "by_kind": {
                kind: {
                    "exposure_mean_bits": e.rank.mean,
                    "exposure_ci95": [e.rank.low, e.rank.high],
                    "exposure_skewnorm_mean_bits": e.skewnorm.mean,
                    "exposure_skewnorm_ci95": [e.skewnorm.low, e.skewnorm.high],
                    "reference_exposure_skewnorm_mean_bits": e.reference_skewnorm.mean,
                    "reference_exposure_skewnorm_ci95": [
                        e.reference_skewnorm.low, e.reference_skewnorm.high,
                    ],
                    "reference_exposure_mean_bits": e.reference_rank.mean,
                    "reference_exposure_ci95": [e.reference_rank.low, e.reference_rank.high],
                    "max_rank_bits": e.max_rank_bits,
                    "above_references": e.above_references,
                    "mia_auc": v.mia[kind].auc,
                    "tpr_at_1pct_fpr": v.mia[kind].tpr_at_1pct_fpr,
                    "tpr_at_0.1pct_fpr": v.mia[kind].tpr_at_01pct_fpr,
                    "tpr_at_zero_fpr": v.mia[kind].tpr_at_zero_fpr,
                }
                for kind, e in v.exposure.items()
            },
            "scores": {
                name: {
                    "eps_lower_bound": b.epsilon,
                    "guesses": b.guesses,
                    "correct_guesses": b.correct,
                }
                for name, b in v.bounds.items()
            },
            "eps_lower_bound": bound.epsilon if bound else None,
            "eps_lower_bound_score": v.bound_score,
            "eps_lower_bound_ceiling": bound.ceiling if bound else None,
            "eps_lower_bound_method": bound.method if bound else None,
            "eps_lower_bound_confidence": 1 - r.level * r.comparisons,
            "guesses": bound.guesses if bound else None,
            "correct_guesses": bound.correct if bound else None,
            "eps_claimed": r.eps_claimed,
            "delta": r.delta,
            "eps_tested": r.claim.epsilon if r.claim else None,
            "delta_tested": r.claim.delta if r.claim else None,
            "exposure_samples": v.exposure_samples,
            "roc_threshold": v.roc,
            "lira": _lira_record(v.lira),
            "release_lira": _lira_record(v.release_lira),
            "clopper_pearson": dataclasses.asdict(v.clopper_pearson) if v.clopper_pearson else None,
        }  # fmt: skip
    claim, able = r.claim, r.reach
    return {
        "run_dir": str(r.run_dir),
        "alma": r.alma,
        "global_acc": r.global_acc,
        "unaudited": r.unaudited,
        "mechanism": r.mechanism,
        "collapsed": r.collapsed,
        "eps_claimed": r.eps_claimed,
        "delta": r.delta,
        "seconds": r.seconds,
        # A positive control's claim is nominal: the run itself had no guarantee.
        "control": CONTROL_MECHANISM if r.control else None,
        "claim": None if claim is None else {
            "epsilon": claim.epsilon,
            "delta": claim.delta,
            "odds": claim.odds,
            "group": claim.group,
            "per_record_epsilon": claim.per_record_epsilon,
            "per_record_delta": claim.per_record_delta,
            "source": claim.source.value,
        },
        "verdict": r.verdict.value,
        "verdict_reasons": r.reasons,
        "level_per_bound": r.level,
        "bounds_tried": r.comparisons,
        "testability": None if able is None else {
            "canaries": able.canaries,
            "ceiling": able.ceiling,
            "testable": able.testable,
            "vacuous": able.vacuous,
            "canaries_needed": able.canaries_needed,
            "runs_needed": able.runs_needed,
        },
        "views": views,
    }  # fmt: skip


def _lira_record(result: LiraResult | None) -> dict[str, Any] | None:
    if result is None:
        return None
    return {
        "shadows": result.shadows,
        "global_variance": result.global_variance,
        "online": _attack_record(result.online),
        "offline": _attack_record(result.offline),
        "roc_online": {"fpr": result.roc_fpr, "tpr": result.roc_tpr},
    }


def _finite(value: Any) -> Any:
    """JSON-safe: NaN and ±inf become null (strict JSON has neither)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def write_audit(out: Path, record: dict[str, Any]) -> tuple[Path, Path]:
    """``audit.json`` and ``audit.md`` in ``out``."""
    from fedkd.audit.summary import markdown_summary

    json_path = out / "audit.json"
    json_path.write_text(json.dumps(record, indent=2, sort_keys=True, allow_nan=False))
    md_path = out / "audit.md"
    md_path.write_text(markdown_summary(record))
    return json_path, md_path


def write_report(out: Path, record: dict[str, Any]) -> Path:
    """``report.html``: the self-contained page for a privacy officer."""
    from fedkd.audit.report import render_report

    path = out / "report.html"
    path.write_text(render_report(record), encoding="utf-8")
    return path


def one_configuration(record: dict[str, Any], name: str) -> dict[str, Any]:
    """The record cut down to one configuration (a report about that claim alone)."""
    if name not in record["configurations"]:
        raise KeyError(f"no configuration {name!r}; the audit has {list(record['configurations'])}")
    config = record["configurations"][name]
    return {
        **record,
        "configurations": {name: config},
        "configuration_order": [name],
        "broken_guarantees": {k: v for k, v in record["broken_guarantees"].items() if k == name},
        "verdicts": {name: record["verdicts"][name]},
    }
