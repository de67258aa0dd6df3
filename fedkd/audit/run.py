"""``fedkd audit``: run configurations on identical data, canaries and seeds, measure what
each attacker view got, and judge the claim against what the audit could have shown.

The audit drives ordinary simulations.  It touches a run in three open ways, each what a
party in the threat model holds anyway: the target node reads its private data through
the ``with-canaries`` provider (the auditor operates the target), every node keeps its
final model (a hospital keeps what it trained), and the server keeps the releases it
received (``record-releases``).

So that the audited mechanism is the deployed one, canaries are at most a stated share of
the target's own records (10 % unless said otherwise; controls may exceed it and say so),
and the target publishes its real record count (``privacy-nominal-records``), so the
sample rate, noise and steps are those of the run without canaries.  That run, the
*unaudited* one, is run too: its accuracy beside the audited one's shows whether the
canaries changed the model, and a collapsed model invalidates the audit.
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

from fedkd.audit.canaries import KINDS, CanarySet, candidates_for_share, draw_canaries
from fedkd.audit.clopper_pearson import ClopperPearsonBound
from fedkd.audit.exposure import (
    Exposure,
    MeanWithInterval,
    exposure,
    mean_interval,
    rank_exposure,
    reference_rank_exposure,
)
from fedkd.audit.group_privacy import group_claim
from fedkd.audit.membership import AttackResult, threshold_attack
from fedkd.audit.one_run_bound import OneRunBound, one_run_bound
from fedkd.audit.presets import preset_overrides
from fedkd.audit.shadow_attack import LiraResult, thinned_roc
from fedkd.audit.threat_model import View
from fedkd.audit.verdict import (
    ClaimSource,
    ClaimUnderTest,
    Reach,
    Verdict,
    claim_under_test,
    combine,
    judge,
    reach,
)
from fedkd.audit.views import CanaryScores, held_model, score, surrogate_from_releases
from fedkd.config import RunConfig
from server.releases import load_releases

ALPHA = 0.05
DEFAULT_CANARY_SHARE = 0.1
COLLAPSE_MARGIN = 0.1
"""Without an unaudited run, ALMA within this of chance (1/classes) is a collapse."""


class Score:
    """The scores a view's bound may use; each one tried widens the correction."""

    THRESHOLD = "threshold"
    """The queried model's logit confidence in the canary's label."""
    LIRA = "lira-online"
    """LiRA over the shadows, on the same model as the threshold score."""
    RELEASE_LIRA = "release-lira"
    """The server's likelihood ratio on the releases themselves (``release_attack``)."""


@dataclass(frozen=True)
class AuditSettings:
    """What to insert where, and how sure the bounds must be."""

    target: int = 0
    """Partition id of the target node (whose data holds the canaries)."""
    peer: int = 1
    """Partition id of the hospital whose final model is the peer view."""
    kinds: tuple[str, ...] = KINDS
    candidates: int = 0
    """Per kind: canaries each inserted with probability ½ (the one-run bound's); 0 sizes
    them to the canary share."""
    references: int = 1000
    """Per kind: canaries never inserted, drawn the same way (exposure's baseline)."""
    repeats: int = 1
    """Copies of each inserted canary; above 1 the bound is about a group of that many
    records and is compared with the group's claim (``group_privacy``)."""
    seed: int = 0
    alpha: float = ALPHA
    control: str = ""
    """``negative`` (no canary inserted) or ``positive`` (the target's DP noise silently
    switched off); empty for an ordinary audit."""
    shadows: int = 0
    """Shadow runs for LiRA and the Clopper–Pearson bound (0: neither)."""
    canary_share: float = DEFAULT_CANARY_SHARE
    """Inserted canary rows at most this share of the target's own records (controls may
    exceed it, and the record says so)."""
    unaudited: bool = True
    """Also run each configuration without canaries, for the accuracy comparison."""

    def __post_init__(self) -> None:
        if self.target == self.peer:
            raise ValueError("the peer must be another node than the target")
        if self.references < 1000:
            raise ValueError(f"references must be >= 1000 per kind, got {self.references}")
        if self.candidates != 0 and self.candidates < 10:
            raise ValueError(
                f"candidates must be >= 10 per kind (or 0: sized to the canary share), "
                f"got {self.candidates}"
            )
        if self.repeats < 1:
            raise ValueError(f"repeats must be >= 1, got {self.repeats}")
        if self.shadows < 0 or 0 < self.shadows < 2:
            raise ValueError(f"shadows must be 0 (none) or >= 2, got {self.shadows}")
        if self.control not in ("", "negative", "positive"):
            raise ValueError(f"control must be negative or positive, got {self.control!r}")
        if not 0 < self.canary_share <= 1:
            raise ValueError(f"canary share must be in (0, 1], got {self.canary_share}")
        for kind in self.kinds:
            if kind not in KINDS:
                raise ValueError(f"unknown canary kind {kind!r}; known: {list(KINDS)}")


@dataclass(frozen=True)
class CanaryShare:
    """How many canary rows went into how many of the target's own records."""

    target_records: int
    inserted_rows: int
    limit: float
    control: str

    @property
    def share(self) -> float:
        return self.inserted_rows / self.target_records if self.target_records else math.inf

    @property
    def over_limit(self) -> bool:
        return self.share > self.limit


@dataclass(frozen=True)
class ViewResult:
    exposure: dict[str, Exposure]
    mia: dict[str, AttackResult]
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
    release_lira: LiraResult | None = None
    """Server view only: the likelihood ratio on the releases themselves."""
    clopper_pearson: ClopperPearsonBound | None = None
    candidate_scores: dict[str, np.ndarray] = field(repr=False, default_factory=dict)
    """Per score this view may use: the candidates' scores (higher: more likely IN)."""
    bounds: dict[str, OneRunBound] = field(default_factory=dict)
    """Per score: its one-run bound, at the audit's corrected level."""
    verdict: Verdict = Verdict.NO_CLAIM

    @property
    def bound(self) -> OneRunBound | None:
        """The strongest score's bound (the one the verdict reads)."""
        return max(self.bounds.values(), key=lambda b: b.epsilon) if self.bounds else None

    @property
    def bound_score(self) -> str | None:
        best = self.bound
        return next(k for k, b in self.bounds.items() if b is best) if best else None


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
    claim: ClaimUnderTest | None = None
    reach: Reach | None = None
    level: float = ALPHA
    """The significance of each (view, score) bound after the Bonferroni correction."""
    comparisons: int = 1
    verdict: Verdict = Verdict.NO_CLAIM
    reasons: list[str] = field(default_factory=list)
    """Why the verdict is what it is, in words (invalid audits above all)."""
    unaudited: dict[str, Any] | None = None
    """The same configuration without canaries: run_dir, alma, global_acc."""
    num_classes: int = 0
    mechanism: dict[str, Any] | None = None
    """The target's σ, q and DP steps in the audited run (``target_mechanism``)."""

    @property
    def broken(self) -> list[str]:
        """Views whose lower bound exceeds the claimed ε: a broken guarantee."""
        if self.verdict is not Verdict.VIOLATED:
            return []
        return [view for view, result in self.views.items() if result.verdict is Verdict.VIOLATED]

    @property
    def collapsed(self) -> bool:
        """The audited model lost most of what the model without canaries learned (or,
        without that run, sits within COLLAPSE_MARGIN of chance)."""
        if self.alma is None or not self.num_classes:
            return False
        chance = 1.0 / self.num_classes
        baseline = (self.unaudited or {}).get("alma")
        if baseline is None:
            return self.alma < chance + COLLAPSE_MARGIN
        return self.alma < chance + 0.5 * (float(baseline) - chance)


def audit_configurations(
    base: RunConfig,
    sections: Mapping[str, Any],
    configurations: Sequence[str],
    settings: AuditSettings,
    out: Path,
    *,
    progress: Callable[[str], None] = lambda line: None,
) -> tuple[list[ConfigurationResult], CanarySet, CanaryShare]:
    """Run, attack and judge every configuration on the same data, canaries and seeds."""
    from fedkd.api import preflight

    if not configurations:
        raise ValueError("no configurations to audit, e.g. plain,swing,dp,swing+dp")
    planned = {name: _configuration(base, name, out) for name in configurations}
    for name, cfg in planned.items():
        if not 0 <= settings.target < cfg.num_clients or settings.peer >= cfg.num_clients:
            raise ValueError(f"{name}: target and peer must be nodes 0 … {cfg.num_clients - 1}")
    preflight(base)
    canaries, share = _canaries(base, sections, settings, out)
    results = []
    for name, cfg in planned.items():
        started = time.perf_counter()
        unaudited = None
        if settings.unaudited:
            progress(f"{name}: simulating without canaries")
            unaudited = _unaudited(cfg, sections, settings, share)
        progress(f"{name}: simulating")
        run_dir = _simulate(cfg, sections, canaries.path, settings, share)
        progress(f"{name}: attacking")
        result = _attack(name, cfg, run_dir, canaries.set, settings)
        result.unaudited = unaudited
        if settings.shadows:
            progress(f"{name}: {settings.shadows} shadow runs")
            _shadow_attacks(result, cfg, run_dir, canaries.set, settings, out, progress)
        _judge(result, canaries.set, settings)
        result.seconds = time.perf_counter() - started
        results.append(result)
    return results, canaries.set, share


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

    @property
    def exit_code(self) -> int:
        return int(self.record["exit_code"])


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
    """Everything ``fedkd audit`` does: run, attack, judge, write ``audit.json``/``.md``."""
    from fedkd.api import load_config
    from fedkd.audit.record import audit_record, write_audit, write_report

    base, sections = load_config(config, overrides)
    out.mkdir(parents=True, exist_ok=True)
    results, canaries, share = audit_configurations(
        base, sections, configurations, settings, out, progress=progress
    )
    record = audit_record(results, settings, canaries, share)
    json_path, md_path = write_audit(out, record)
    html_path = write_report(out, record) if report else None
    return AuditOutcome(record, json_path, md_path, html_path)


@dataclass(frozen=True)
class _Canaries:
    set: CanarySet
    path: Path


def _configuration(base: RunConfig, name: str, out: Path, *, suffix: str = "") -> RunConfig:
    from fedkd.config import parse_run_config
    from fedkd.config_registries import check_registered_names

    flat = {
        **base.to_flat(),
        **preset_overrides(name),
        "record-releases": True,
        "output-dir": str(out / "runs"),
        "run-name": name.replace("+", "-") + suffix,
        "overwrite": True,
        # A run the audit starts is always fresh: an interrupted audit's checkpoint
        # belongs to other canaries or settings, and resuming it would mix the two.
        "resume": False,
    }
    # A configuration may name a scorer or clipping mode the base did not: checked like
    # any run's before the audit starts it.
    return check_registered_names(parse_run_config(flat))


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
) -> tuple[_Canaries, CanaryShare]:
    from fedkd.data.public import load_public_data

    x, y = _target_records(base, sections, settings.target)
    candidates = settings.candidates or candidates_for_share(
        len(x), share=settings.canary_share, kinds=len(settings.kinds), repeats=settings.repeats
    )
    if candidates < 10:
        raise ValueError(
            f"node {settings.target} holds {len(x)} training records: a canary share of "
            f"{settings.canary_share:.0%} allows {candidates} candidates per kind, fewer than "
            "the 10 an audit needs; audit a node with more records (--target), or raise "
            "--canary-share and say so"
        )
    drawn = draw_canaries(
        kinds=settings.kinds,
        candidates=candidates,
        references=settings.references,
        repeats=settings.repeats,
        num_classes=load_public_data(base.public_spec).num_classes,
        base_x=x,
        base_y=y,
        seed=settings.seed,
        insert=settings.control != "negative",
    )
    share = CanaryShare(
        target_records=len(x),
        inserted_rows=int(drawn.inserted.sum()) * settings.repeats,
        limit=settings.canary_share,
        control=settings.control,
    )
    if share.over_limit and not settings.control:
        raise ValueError(
            f"{share.inserted_rows} canary rows would be {share.share:.1%} of node "
            f"{settings.target}'s {len(x)} records, over the {settings.canary_share:.0%} "
            "share that keeps the audited mechanism the deployed one: use fewer "
            "--candidates (0 sizes them to the share), or raise --canary-share and say so"
        )
    return _Canaries(drawn, drawn.save(out / "canaries.npz")), share


def _node_sections(
    sections: Mapping[str, Any],
    cfg: RunConfig,
    settings: AuditSettings,
    share: CanaryShare,
    canaries: Path | None,
) -> dict[str, Any]:
    """Every node keeps its model; the target publishes its real record count and, when
    audited, reads its data through the canary wrapper."""
    from fedkd.flower_glue.simulation import simulated_nodes

    nodes = simulated_nodes(cfg, "audit", sections)
    target = nodes[settings.target].to_flat()
    own: dict[str, Any] = {k: v for k, v in target.items() if k.startswith("data-") or k == "data"}
    own["privacy-nominal-records"] = share.target_records
    if canaries is not None:
        own.update(
            {"data": "with-canaries", "data-base": target["data"], "data-canaries": str(canaries)}
        )
        if settings.control == "positive":
            own["audit-control-noise-off"] = True
    out: dict[str, Any] = {k: v for k, v in sections.items() if not isinstance(v, Mapping)}
    out["keep-model"] = True
    for key, value in sections.items():
        if isinstance(value, Mapping):
            out[key] = dict(value)
    out[str(settings.target)] = {**out.get(str(settings.target), {}), **own}
    return out


def _simulate(
    cfg: RunConfig,
    sections: Mapping[str, Any],
    canaries: Path,
    settings: AuditSettings,
    share: CanaryShare,
) -> Path:
    from fedkd.flower_glue.simulation import run_simulation

    return run_simulation(
        cfg, node_sections=_node_sections(sections, cfg, settings, share, canaries)
    )


def _unaudited(
    cfg: RunConfig, sections: Mapping[str, Any], settings: AuditSettings, share: CanaryShare
) -> dict[str, Any]:
    """The configuration as deployed: no canaries, no control switch, the same nominal
    count (so the same q, σ and steps)."""
    from fedkd.api import RunResult
    from fedkd.flower_glue.simulation import run_simulation

    plain = dataclasses.replace(cfg, run_name=f"{cfg.run_name}-unaudited", record_releases=False)
    run_dir = run_simulation(
        plain, node_sections=_node_sections(sections, plain, settings, share, None)
    )
    result = RunResult.load(run_dir)
    return {
        "run_dir": str(run_dir),
        "alma": result.alma,
        "global_acc": result.global_acc,
        "mechanism": target_mechanism(result, settings.target),
    }


def target_mechanism(result: Any, target: int) -> dict[str, Any] | None:
    """σ, q and the DP steps of the target's ledger (None without DP steps): what must be
    equal in the audited and the unaudited run for the audit to be of the deployed one."""
    from fedkd.privacy.ledger import ReadOnlyLedger

    node = next(n for n in result.nodes if int(n["partition-id"]) == target)
    ledger = Path(str(node["state-dir"])) / f"{node['name']}.ledger.db"
    rows = [row for row in ReadOnlyLedger.read(ledger).rows() if row.steps > 0]
    if not rows:
        return None
    return {
        "noise_multipliers": sorted({round(row.noise_multiplier, 9) for row in rows}),
        "sample_rates": sorted({round(row.sample_rate, 12) for row in rows}),
        "steps": sum(row.steps for row in rows),
    }


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
        num_classes=classes,
        mechanism=target_mechanism(result, settings.target),
    )
    for view, model in models.items():
        out.views[view.value] = _view_result(score(model, canaries.x, canaries.y), canaries)
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


def _view_result(scores: CanaryScores, canaries: CanarySet) -> ViewResult:
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
    inserted_exposure, reference_exposure = np.concatenate(pooled), np.concatenate(pooled_refs)
    return ViewResult(
        exposure=exposures,
        mia=attacks,
        pooled_exposure=mean_interval(inserted_exposure),
        pooled_reference=mean_interval(reference_exposure),
        pooled_mia=threshold_attack(scores.score[canaries.coin], scores.score[~canaries.coin]),
        phi=scores.score,
        exposure_samples={
            "inserted": [round(float(v), 3) for v in inserted_exposure],
            "references": [round(float(v), 3) for v in reference_exposure],
        },
        roc=thinned_roc(canaries.coin, scores.score),
        candidate_scores={Score.THRESHOLD: scores.score[canaries.candidate]},
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
    """LiRA and Clopper–Pearson from shadow runs of this configuration, per view, and the
    server's likelihood ratio on the releases themselves."""
    from fedkd.audit.release_attack import anchor_order, release_phi
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
    member = canaries.coin[candidates]
    # About the shadows' mechanism (which inserts canaries, even in a negative control),
    # for groups of ``repeats`` records; reported beside the verdict, not part of it.
    cp_delta = (
        group_claim(result.eps_claimed, result.delta or 0.0, settings.repeats)[1]
        if result.eps_claimed is not None
        else (result.delta or 1e-5)
    )
    for view in View:
        phis = shadow_phi(
            runs, view, canaries, cfg, target=settings.target, peer=settings.peer,
            transfer_x=public.transfer.x, num_classes=public.num_classes, seed=settings.seed,
        )  # fmt: skip
        current = result.views[view.value]
        online = lira(current.phi[candidates], phis[:, candidates], coins[:, candidates], member)
        result.views[view.value] = dataclasses.replace(
            current,
            lira=online,
            clopper_pearson=clopper_pearson_over_shadows(
                phis[:, candidates], coins[:, candidates], delta=cp_delta,
                confidence=1 - settings.alpha,
            ),
            candidate_scores={**current.candidate_scores, Score.LIRA: online.scores},
        )  # fmt: skip
    order = anchor_order(public.transfer.x, canaries.x[candidates])
    target_name = next(n.name for n in nodes if n.partition_id == settings.target)
    if any(not run.target_releases for run in runs):
        progress("release likelihood ratio skipped: a shadow's target released nothing")
        return
    size = len(public.transfer.x)
    audited = release_phi(
        load_releases(run_dir / "releases" / f"{target_name}.npz"), order,
        canaries.y[candidates], transfer_size=size,
    )  # fmt: skip
    shadow_release = np.stack(
        [release_phi(run.target_releases, order, canaries.y[candidates], transfer_size=size)
         for run in runs]
    )  # fmt: skip
    on_releases = lira(audited, shadow_release, coins[:, candidates], member)
    server = result.views[View.SERVER.value]
    result.views[View.SERVER.value] = dataclasses.replace(
        server,
        release_lira=on_releases,
        candidate_scores={**server.candidate_scores, Score.RELEASE_LIRA: on_releases.scores},
    )


def _judge(result: ConfigurationResult, canaries: CanarySet, settings: AuditSettings) -> None:
    """Every view's bound from its strongest score, at a level corrected for every (view,
    score) tried, and the verdict against the claim it could or could not test."""
    result.claim = _tested_claim(result, settings)
    result.comparisons = sum(len(v.candidate_scores) for v in result.views.values())
    result.level = settings.alpha / result.comparisons
    delta = result.claim.delta if result.claim else (result.delta or 1e-5)
    coins = canaries.coin[canaries.candidate]
    m = int(canaries.candidate.sum())
    if result.claim is not None:
        result.reach = reach(result.claim, canaries=m, level=result.level)
    for name, view in result.views.items():
        bounds = {
            kind: one_run_bound(scores, coins, delta=delta, alpha=result.level)
            for kind, scores in view.candidate_scores.items()
        }
        best = max(b.epsilon for b in bounds.values())
        verdict = judge(best, result.claim, result.reach)
        result.views[name] = dataclasses.replace(view, bounds=bounds, verdict=verdict)
    result.verdict = combine([v.verdict for v in result.views.values()])
    _validity(result, settings)


def _tested_claim(result: ConfigurationResult, settings: AuditSettings) -> ClaimUnderTest | None:
    if settings.control == "negative":
        return claim_under_test(
            0.0, 0.0, group=settings.repeats, source=ClaimSource.NOTHING_INSERTED
        )
    if result.eps_claimed is None:
        return None
    source = ClaimSource.NOMINAL if result.control else ClaimSource.ACCOUNTANT
    return claim_under_test(
        result.eps_claimed, result.delta or 0.0, group=settings.repeats, source=source
    )


def _validity(result: ConfigurationResult, settings: AuditSettings) -> None:
    """Invalid where the verdict cannot be read: a collapsed model, or a control that did
    not behave as a control must."""
    reasons = []
    if result.collapsed and (settings.control or result.verdict is not Verdict.VIOLATED):
        baseline = (result.unaudited or {}).get("alma")
        reasons.append(
            f"the audited model collapsed: ALMA {result.alma:.3f}"
            + (f" against {baseline:.3f} without canaries" if baseline is not None else "")
            + f" (chance {1 / result.num_classes:.3f}); the audited model is not the deployed one"
        )
    deployed = (result.unaudited or {}).get("mechanism")
    if result.unaudited is not None and deployed != result.mechanism:
        reasons.append(
            f"the audited mechanism is not the deployed one: σ, q and steps "
            f"{result.mechanism} with canaries against {deployed} without"
        )
    if settings.control == "positive" and result.verdict is Verdict.CONSISTENT:
        reasons.append(
            "the positive control was not detected: a mechanism without noise passed, so "
            "this audit cannot see leakage in this setting"
        )
    if settings.control == "negative" and result.verdict is Verdict.VIOLATED:
        reasons.append(
            "the negative control found leakage where nothing was inserted: the audit's "
            "statistics are not sound here"
        )
    if reasons:
        result.verdict = Verdict.INVALID
        result.reasons = reasons
