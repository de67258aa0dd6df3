"""``fedkd audit``: run configurations on identical data, canaries and seeds, and measure
what each attacker view got, beside what the accountant claims.

The audit drives ordinary simulations.  It touches a run in three open ways, each what a
party in the threat model holds anyway: the target node reads its private data through
the ``with-canaries`` provider (the auditor operates the target), every node keeps its
final model (a hospital keeps what it trained), and the server keeps the releases it
received (``record-releases``).
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fedkd.audit.canaries import KINDS, CanarySet, draw_canaries
from fedkd.audit.clopper_pearson import ClopperPearsonBound
from fedkd.audit.exposure import (
    Exposure,
    MeanWithInterval,
    exposure,
    mean_interval,
    rank_exposure,
    reference_rank_exposure,
)
from fedkd.audit.membership import AttackResult, threshold_attack
from fedkd.audit.one_run_bound import OneRunBound, one_run_bound
from fedkd.audit.presets import preset_overrides
from fedkd.audit.releases import load_releases
from fedkd.audit.shadow_attack import LiraResult, thinned_roc
from fedkd.audit.threat_model import UNIT_OF_PRIVACY, View, threat_model_text
from fedkd.audit.views import CanaryScores, held_model, score, surrogate_from_releases
from fedkd.config import RunConfig
from fedkd.privacy.guard import CONTROL_MECHANISM

ALPHA = 0.05


@dataclass(frozen=True)
class AuditSettings:
    """What to insert where, and how sure the bounds must be."""

    target: int = 0
    """Partition id of the target node (whose data holds the canaries)."""
    peer: int = 1
    """Partition id of the hospital whose final model is the peer view."""
    kinds: tuple[str, ...] = KINDS
    candidates: int = 500
    """Per kind: canaries each inserted with probability ½ (the one-run bound's)."""
    references: int = 1000
    """Per kind: canaries never inserted, drawn the same way (exposure's baseline)."""
    repeats: int = 1
    seed: int = 0
    alpha: float = ALPHA
    control: str = ""
    """``negative`` (no canary inserted) or ``positive`` (the target's DP noise silently
    switched off); empty for an ordinary audit."""
    shadows: int = 0
    """Shadow runs for LiRA and the Clopper–Pearson bound (0: neither)."""

    def __post_init__(self) -> None:
        if self.target == self.peer:
            raise ValueError("the peer must be another node than the target")
        if self.references < 1000:
            raise ValueError(f"references must be >= 1000 per kind, got {self.references}")
        if self.candidates < 10:
            raise ValueError(f"candidates must be >= 10 per kind, got {self.candidates}")
        if self.repeats < 1:
            raise ValueError(f"repeats must be >= 1, got {self.repeats}")
        if self.shadows < 0 or 0 < self.shadows < 2:
            raise ValueError(f"shadows must be 0 (none) or >= 2, got {self.shadows}")
        if self.control not in ("", "negative", "positive"):
            raise ValueError(f"control must be negative or positive, got {self.control!r}")
        for kind in self.kinds:
            if kind not in KINDS:
                raise ValueError(f"unknown canary kind {kind!r}; known: {list(KINDS)}")


@dataclass(frozen=True)
class ViewResult:
    exposure: dict[str, Exposure]
    mia: dict[str, AttackResult]
    bound: OneRunBound | None
    pooled_exposure: MeanWithInterval
    """Rank exposure of every inserted canary (each against its own kind's references)."""
    pooled_reference: MeanWithInterval
    pooled_mia: AttackResult
    phi: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0))
    """The audited run's logit confidence of every canary in this view."""
    exposure_samples: dict[str, list[float]] = field(repr=False, default_factory=dict)
    roc: dict[str, list[float]] = field(repr=False, default_factory=dict)
    """The threshold attack's ROC (``fpr``, ``tpr``), thinned."""
    lira: LiraResult | None = None
    clopper_pearson: ClopperPearsonBound | None = None


@dataclass
class ConfigurationResult:
    name: str
    run_dir: Path
    alma: float | None
    global_acc: float | None
    eps_claimed: float | None
    delta: float | None
    views: dict[str, ViewResult] = field(default_factory=dict)
    seconds: float = 0.0
    control: bool = False
    """A positive control: the target ran without noise and claimed no guarantee;
    ``eps_claimed`` is then the nominal ε its sabotaged mechanism pretends to."""

    @property
    def broken(self) -> list[str]:
        """Views whose lower bound exceeds the claimed ε: a broken guarantee."""
        if self.eps_claimed is None:
            return []
        return [
            view
            for view, result in self.views.items()
            if result.bound is not None and result.bound.epsilon > self.eps_claimed
        ]


def audit_configurations(
    base: RunConfig,
    sections: Mapping[str, Any],
    configurations: Sequence[str],
    settings: AuditSettings,
    out: Path,
    *,
    progress: Callable[[str], None] = lambda line: None,
) -> tuple[list[ConfigurationResult], CanarySet]:
    """Run and audit every configuration on the same data, canaries and seeds."""
    from fedkd.api import preflight

    if not configurations:
        raise ValueError("no configurations to audit, e.g. plain,swing,dp,swing+dp")
    planned = {name: _configuration(base, name, out) for name in configurations}
    for name, cfg in planned.items():
        if not 0 <= settings.target < cfg.num_clients or settings.peer >= cfg.num_clients:
            raise ValueError(f"{name}: target and peer must be nodes 0 … {cfg.num_clients - 1}")
    preflight(base)
    canaries = _canaries(base, sections, settings, out)
    results = []
    for name, cfg in planned.items():
        progress(f"{name}: simulating")
        started = time.perf_counter()
        run_dir = _simulate(cfg, sections, canaries.path, settings)
        progress(f"{name}: attacking")
        result = _attack(name, cfg, run_dir, canaries.set, settings)
        if settings.shadows:
            progress(f"{name}: {settings.shadows} shadow runs")
            _shadow_attacks(result, cfg, run_dir, canaries.set, settings, out, progress)
        result.seconds = time.perf_counter() - started
        results.append(result)
    return results, canaries.set


@dataclass(frozen=True)
class AuditOutcome:
    record: dict[str, Any]
    json_path: Path
    markdown_path: Path
    report_path: Path | None = None

    @property
    def broken(self) -> dict[str, list[str]]:
        broken: dict[str, list[str]] = self.record["broken_guarantees"]
        return broken


def audit(
    config: Any,
    configurations: Sequence[str],
    settings: AuditSettings,
    out: Path,
    *,
    overrides: Mapping[str, Any] | None = None,
    progress: Callable[[str], None] = lambda line: None,
    report: bool = False,
) -> AuditOutcome:
    """Everything ``fedkd audit`` does: run, attack, write ``audit.json`` and ``audit.md``."""
    from fedkd.api import load_config

    base, sections = load_config(config, overrides)
    out.mkdir(parents=True, exist_ok=True)
    results, canaries = audit_configurations(
        base, sections, configurations, settings, out, progress=progress
    )
    record = audit_record(results, settings, canaries)
    json_path, md_path = write_audit(out, record)
    html_path = write_report(out, record) if report else None
    return AuditOutcome(record, json_path, md_path, html_path)


def write_report(out: Path, record: dict[str, Any]) -> Path:
    """``report.html``: the self-contained page for a privacy officer."""
    from fedkd.audit.report import render_report

    path = out / "report.html"
    path.write_text(render_report(record), encoding="utf-8")
    return path


@dataclass(frozen=True)
class _Canaries:
    set: CanarySet
    path: Path


def _configuration(base: RunConfig, name: str, out: Path) -> RunConfig:
    from fedkd.config import parse_run_config

    flat = {
        **base.to_flat(),
        **preset_overrides(name),
        "record-releases": True,
        "output-dir": str(out / "runs"),
        "run-name": name.replace("+", "-"),
        "overwrite": True,
    }
    return parse_run_config(flat)


def _target_records(
    base: RunConfig, sections: Mapping[str, Any], target: int
) -> tuple[np.ndarray, np.ndarray]:
    """The target's training records, read as its operator reads them."""
    from fedkd.data.providers import make_provider
    from fedkd.data.public import load_public_data
    from fedkd.flower_glue.simulation import simulated_nodes

    node = simulated_nodes(base, "audit", sections)[target]
    records = make_provider(node.data, dict(node.data_options)).load(
        load_public_data(base.public_spec)
    )
    return records.train.x, records.train.y


def _canaries(
    base: RunConfig, sections: Mapping[str, Any], settings: AuditSettings, out: Path
) -> _Canaries:
    x, y = _target_records(base, sections, settings.target)
    from fedkd.data.public import load_public_data

    drawn = draw_canaries(
        kinds=settings.kinds,
        candidates=settings.candidates,
        references=settings.references,
        repeats=settings.repeats,
        num_classes=load_public_data(base.public_spec).num_classes,
        base_x=x,
        base_y=y,
        seed=settings.seed,
        insert=settings.control != "negative",
    )
    return _Canaries(drawn, drawn.save(out / "canaries.npz"))


def _node_sections(
    sections: Mapping[str, Any], cfg: RunConfig, canaries: Path, settings: AuditSettings
) -> dict[str, Any]:
    """Every node keeps its model; the target reads its data through the canary wrapper."""
    from fedkd.flower_glue.simulation import simulated_nodes

    nodes = simulated_nodes(cfg, "audit", sections)
    target = nodes[settings.target].to_flat()
    own = {k: v for k, v in target.items() if k.startswith("data-")}
    wrapped: dict[str, Any] = {
        **own,
        "data": "with-canaries",
        "data-base": target["data"],
        "data-canaries": str(canaries),
    }
    if settings.control == "positive":
        wrapped["audit-control-noise-off"] = True
    out: dict[str, Any] = {k: v for k, v in sections.items() if not isinstance(v, Mapping)}
    out["keep-model"] = True
    for key, value in sections.items():
        if isinstance(value, Mapping):
            out[key] = dict(value)
    out[str(settings.target)] = {**out.get(str(settings.target), {}), **wrapped}
    return out


def _simulate(
    cfg: RunConfig, sections: Mapping[str, Any], canaries: Path, settings: AuditSettings
) -> Path:
    from fedkd.flower_glue.simulation import run_simulation

    return run_simulation(cfg, node_sections=_node_sections(sections, cfg, canaries, settings))


def _attack(
    name: str, cfg: RunConfig, run_dir: Path, canaries: CanarySet, settings: AuditSettings
) -> ConfigurationResult:
    from fedkd.api import RunResult
    from fedkd.data.public import load_public_data

    result = RunResult.load(run_dir)
    public = load_public_data(cfg.public_spec)
    nodes = {int(n["partition-id"]): n for n in result.nodes}
    target, peer = nodes[settings.target], nodes[settings.peer]
    shape, classes = public.input_shape, public.num_classes
    models = {
        View.MODEL_HOLDER: held_model(
            Path(str(target["state-dir"])) / f"{target['name']}.model.npz",
            input_shape=shape, num_classes=classes,
        ),
        View.PEER: held_model(
            Path(str(peer["state-dir"])) / f"{peer['name']}.model.npz",
            input_shape=shape, num_classes=classes,
        ),
        View.SERVER: surrogate_from_releases(
            load_releases(run_dir / "releases" / f"{target['name']}.npz"),
            public.transfer.x,
            architecture=cfg.model,
            num_classes=classes,
            temperature=cfg.distill_temperature,
            seed=settings.seed,
        ),
    }  # fmt: skip
    target_ledger = Path(str(target["state-dir"])) / f"{target['name']}.ledger.db"
    claimed, delta = _claimed(result.summary, str(target["name"]), cfg, target_ledger)
    out = ConfigurationResult(
        name=name,
        run_dir=run_dir,
        alma=result.alma,
        global_acc=result.global_acc,
        eps_claimed=claimed,
        delta=delta,
        control=str(target["name"]) in result.summary.get("privacy", {}).get("controls", []),
    )
    # Bonferroni over the views: every view's bound holds at 1 − alpha together.
    level = settings.alpha / len(models)
    for view, model in models.items():
        scores = score(model, canaries.x, canaries.y)
        out.views[view.value] = _view_result(scores, canaries, delta or 1e-5, level)
    return out


def _claimed(
    summary: dict[str, Any], target: str, cfg: RunConfig, ledger: Path
) -> tuple[float | None, float]:
    """The target's cumulative ε as the server recorded it (None without DP); for a
    positive control, the nominal ε of the steps its ledger says it pretended to take."""
    privacy = summary.get("privacy", {})
    if not privacy.get("dp"):
        return None, cfg.dp_delta
    delta = float(privacy.get("delta") or cfg.dp_delta)
    if target in privacy.get("controls", []):
        return nominal_control_epsilon(ledger, delta=delta, accountant=cfg.dp_accountant), delta
    for node in privacy.get("nodes", {}).values():
        if node.get("name") == target and node.get("epsilon") is not None:
            return float(node["epsilon"]), float(privacy.get("delta") or cfg.dp_delta)
    return None, cfg.dp_delta


def nominal_control_epsilon(ledger: Path, *, delta: float, accountant: str) -> float:
    """ε that a positive control's rows would claim had their noise been on."""
    from fedkd.privacy.accounting import DPSteps, compose, epsilon
    from fedkd.privacy.guard import CONTROL_MECHANISM
    from fedkd.privacy.ledger import ReadOnlyLedger

    history: tuple[DPSteps, ...] = ()
    for row in ReadOnlyLedger.read(ledger).rows():
        if row.mechanism == CONTROL_MECHANISM and row.steps:
            history = compose(history, DPSteps(row.noise_multiplier, row.sample_rate, row.steps))
    return epsilon(history, delta=delta, accountant=accountant)


def _view_result(
    scores: CanaryScores, canaries: CanarySet, delta: float, level: float
) -> ViewResult:
    exposures, attacks = {}, {}
    pooled, pooled_refs = [], []
    for kind in sorted({KINDS[k] for k in np.unique(canaries.kind)}):
        of_kind = canaries.of_kind(kind)
        # Scored against the coins: in a negative control nothing was inserted, and the
        # attacks must then find nothing.
        inserted = of_kind & canaries.coin
        references = of_kind & ~canaries.candidate
        out = of_kind & ~canaries.coin
        if inserted.any():
            exposures[kind] = exposure(
                scores.score[inserted],
                scores.score[references],
                inserted_log_perplexity=scores.log_perplexity[inserted],
                reference_log_perplexity=scores.log_perplexity[references],
            )
            attacks[kind] = threshold_attack(scores.score[inserted], scores.score[out])
            pooled.append(rank_exposure(scores.score[inserted], scores.score[references]))
            pooled_refs.append(reference_rank_exposure(scores.score[references]))
    candidates = canaries.candidate
    bound = one_run_bound(
        scores.score[candidates], canaries.coin[candidates], delta=delta, alpha=level
    )
    inserted_exposure, reference_exposure = np.concatenate(pooled), np.concatenate(pooled_refs)
    return ViewResult(
        exposure=exposures,
        mia=attacks,
        bound=bound,
        pooled_exposure=mean_interval(inserted_exposure),
        pooled_reference=mean_interval(reference_exposure),
        pooled_mia=threshold_attack(scores.score[canaries.coin], scores.score[~canaries.coin]),
        phi=scores.score,
        exposure_samples={
            "inserted": [round(float(v), 3) for v in inserted_exposure],
            "references": [round(float(v), 3) for v in reference_exposure],
        },
        roc=thinned_roc(canaries.coin, scores.score),
    )


def _shadow_attacks(
    result: ConfigurationResult,
    cfg: RunConfig,
    run_dir: Path,
    canaries: CanarySet,
    settings: AuditSettings,
    out: Path,
    progress: Callable[[str], None],
) -> None:
    """LiRA and Clopper–Pearson from shadow runs of this configuration, per view."""
    from fedkd.audit.shadow_attack import clopper_pearson_over_shadows, lira, shadow_phi
    from fedkd.audit.shadows import run_shadows, shadow_coins
    from fedkd.data.public import load_public_data
    from fedkd.node.config import parse_node_config

    nodes = [parse_node_config(flat) for flat in json.loads((run_dir / "nodes.json").read_text())]
    coins = shadow_coins(canaries, settings.shadows, seed=settings.seed)
    runs = run_shadows(
        cfg, nodes, canaries, coins, target=settings.target, peer=settings.peer,
        folder=out / "shadows" / result.name.replace("+", "-"), progress=progress,
    )  # fmt: skip
    public = load_public_data(cfg.public_spec)
    candidates = canaries.candidate
    for view in View:
        phis = shadow_phi(
            runs, view, canaries, cfg, target=settings.target, peer=settings.peer,
            transfer_x=public.transfer.x, num_classes=public.num_classes, seed=settings.seed,
        )  # fmt: skip
        current = result.views[view.value]
        result.views[view.value] = dataclasses.replace(
            current,
            lira=lira(
                current.phi[candidates], phis[:, candidates], coins[:, candidates],
                canaries.coin[candidates],
            ),
            clopper_pearson=clopper_pearson_over_shadows(
                phis[:, candidates], coins[:, candidates], delta=result.delta or 1e-5,
                confidence=1 - settings.alpha,
            ),
        )  # fmt: skip


def audit_record(
    results: list[ConfigurationResult], settings: AuditSettings, canaries: CanarySet
) -> dict[str, Any]:
    """``audit.json``: the threat model first, then every configuration and view."""
    deltas = {r.delta for r in results if r.delta is not None}
    record: dict[str, Any] = _finite(
        {
            "threat_model": threat_model_text(min(deltas) if deltas else None),
            "unit_of_privacy": UNIT_OF_PRIVACY
            + (f" (each canary repeated {settings.repeats}×: bounds are for a group of "
               f"{settings.repeats} records)" if settings.repeats > 1 else ""),
            "control": settings.control or None,
            "settings": dataclasses.asdict(settings),
            "canaries": {
                "kinds": list(settings.kinds),
                "candidates_per_kind": settings.candidates,
                "references_per_kind": settings.references,
                "inserted": int(canaries.inserted.sum()),
                "repeats": settings.repeats,
            },
            "configurations": {r.name: _configuration_record(r) for r in results},
            "configuration_order": [r.name for r in results],
            "broken_guarantees": {r.name: r.broken for r in results if r.broken},
        }
    )  # fmt: skip
    return record


def _configuration_record(r: ConfigurationResult) -> dict[str, Any]:
    views = {}
    for view, v in r.views.items():
        views[view] = {
            "view": view,
            "holds": View(view).holds,
            "alma": r.alma,
            "global_acc": r.global_acc,
            "exposure_mean_bits": v.pooled_exposure.mean,
            "exposure_ci95": [v.pooled_exposure.low, v.pooled_exposure.high],
            "reference_exposure_ci95": [v.pooled_reference.low, v.pooled_reference.high],
            "exposure_above_references": v.pooled_exposure.low > v.pooled_reference.high,
            "mia_auc": v.pooled_mia.auc,
            "tpr_at_1pct_fpr": v.pooled_mia.tpr_at_1pct_fpr,
            "tpr_at_0.1pct_fpr": v.pooled_mia.tpr_at_01pct_fpr,
            "canaries_in": v.pooled_mia.members,
            "canaries_out": v.pooled_mia.non_members,
            "by_kind": {
                kind: {
                    "exposure_mean_bits": e.rank.mean,
                    "exposure_ci95": [e.rank.low, e.rank.high],
                    "exposure_skewnorm_mean_bits": e.skewnorm.mean,
                    "exposure_skewnorm_ci95": [e.skewnorm.low, e.skewnorm.high],
                    "reference_exposure_mean_bits": e.reference_rank.mean,
                    "reference_exposure_ci95": [e.reference_rank.low, e.reference_rank.high],
                    "max_rank_bits": e.max_rank_bits,
                    "above_references": e.above_references,
                    "mia_auc": v.mia[kind].auc,
                    "tpr_at_1pct_fpr": v.mia[kind].tpr_at_1pct_fpr,
                    "tpr_at_0.1pct_fpr": v.mia[kind].tpr_at_01pct_fpr,
                }
                for kind, e in v.exposure.items()
            },
            "eps_lower_bound": v.bound.epsilon if v.bound else None,
            "eps_lower_bound_ceiling": v.bound.ceiling if v.bound else None,
            "eps_lower_bound_method": v.bound.method if v.bound else None,
            "eps_lower_bound_confidence": 1 - v.bound.alpha * len(r.views) if v.bound else None,
            "guesses": v.bound.guesses if v.bound else None,
            "correct_guesses": v.bound.correct if v.bound else None,
            "eps_claimed": r.eps_claimed,
            "delta": r.delta,
            "exposure_samples": v.exposure_samples,
            "roc_threshold": v.roc,
            "lira": _lira_record(v.lira),
            "clopper_pearson": dataclasses.asdict(v.clopper_pearson) if v.clopper_pearson else None,
        }
    return {
        "run_dir": str(r.run_dir),
        "alma": r.alma,
        "global_acc": r.global_acc,
        "eps_claimed": r.eps_claimed,
        "delta": r.delta,
        "seconds": r.seconds,
        # A positive control's claim is nominal: the run itself had no guarantee.
        "control": CONTROL_MECHANISM if r.control else None,
        "views": views,
    }


def _lira_record(result: LiraResult | None) -> dict[str, Any] | None:
    if result is None:
        return None
    return {
        "shadows": result.shadows,
        "global_variance": result.global_variance,
        "online": dataclasses.asdict(result.online),
        "offline": dataclasses.asdict(result.offline),
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
