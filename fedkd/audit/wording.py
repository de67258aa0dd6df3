"""The audit's sentences, shared by ``audit.md``, ``report.html`` and the command line, so
that every output says the same thing about a verdict, a control and a share."""

from __future__ import annotations

import math
from typing import Any

CHANCE_EXPOSURE_BITS = 1.44
VERDICT_HEADINGS = {
    "violated": "BROKEN",
    "consistent": "Consistent",
    "not testable at this size": "Not testable at this size",
    "invalid": "Invalid",
    "no guarantee claimed": "No guarantee claimed",
}


def ordered(record: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Configurations in the order the audit ran them (JSON sorts its keys)."""
    configurations = record["configurations"]
    order = record.get("configuration_order") or list(configurations)
    return [(name, configurations[name]) for name in order]


def num(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    return f"{value:.{digits}f}"


def odds(epsilon: float | None) -> str:
    """e^ε in words: how many times likelier an outcome may become."""
    if epsilon is None:
        return "unbounded"
    if epsilon > 50:
        return f"e^{epsilon:.0f}"
    value = math.exp(epsilon)
    return f"{value:.3g}×" if value < 1e4 else f"{value:.2e}×"


def claim_words(config: dict[str, Any]) -> str:
    claim = config.get("claim")
    if not claim:
        return "no ε claimed (no DP)"
    group = "" if claim["group"] == 1 else (
        f" for a group of {claim['group']} records (per record ε = "
        f"{claim['per_record_epsilon']:.3g}, δ = {claim['per_record_delta']:.3g})"
    )  # fmt: skip
    return (
        f"ε = {claim['epsilon']:.3g}, δ = {claim['delta']:.3g}{group}, odds at most "
        f"{odds(claim['epsilon'])} ({claim['source']})"
    )


def strongest_bound(config: dict[str, Any]) -> tuple[str, float, str]:
    """(view, bound, score) of the highest bound over the views."""
    best = ("", 0.0, "")
    for view, v in config["views"].items():
        bound = v.get("eps_lower_bound") or 0.0
        if bound > best[1] or not best[0]:
            best = (view, bound, v.get("eps_lower_bound_score") or "threshold")
    return best


def control_words(control: str | None) -> str:
    if control == "positive":
        return (
            "CONTROL RUN (positive): the target trained without DP noise, so this run has "
            "no privacy guarantee. It is tested against the nominal ε its sabotaged "
            "mechanism pretends to; a working audit shows that claim broken, or says it "
            "cannot test it. This is not an audit of a configuration anyone should deploy."
        )
    if control == "negative":
        return (
            "CONTROL RUN (negative): the canaries were drawn but none was inserted, so "
            "nothing in the run can depend on their coins: the claim tested is ε = 0, and "
            "a sound audit finds it consistent (AUC near 0.5). This is not an audit of a "
            "configuration anyone should deploy."
        )
    return ""


def verdict_words(config: dict[str, Any]) -> str:
    """One paragraph: the verdict, why, and what would change it."""
    verdict = config["verdict"]
    view, bound, score = strongest_bound(config)
    able = config.get("testability") or {}
    claim = config.get("claim")
    ceiling = able.get("ceiling")
    if ceiling is None:
        ceiling = max((v.get("eps_lower_bound_ceiling") or 0.0) for v in config["views"].values())
    confidence = f"{100 * (1 - config['level_per_bound'] * config['bounds_tried']):.0f} %"
    proved = f"ε ≥ {num(bound, 2)} ({view}, {score} score, {confidence} confidence)"
    if verdict == "invalid":
        return (
            "Invalid: "
            + "; ".join(config["verdict_reasons"])
            + (". The figures are reported, but they say nothing about the claim.")
        )
    if verdict == "no guarantee claimed":
        return (
            f"No ε was claimed for the target (no DP-SGD, or none reported): the attacks' "
            "figures only. The "
            f"strongest attack shows {proved}; the most these canaries could show is "
            f"{num(ceiling, 2)}."
        )
    assert claim is not None
    if verdict == "violated":
        return (
            f"BROKEN: the claimed guarantee does not hold. Claimed {claim_words(config)}; "
            f"the attack proves {proved}, odds of at least {odds(bound)}."
        )
    if verdict == "consistent":
        return (
            f"Consistent: claimed {claim_words(config)}. With these canaries an attack "
            f"could have shown up to ε ≥ {num(ceiling, 2)}, so the claim was testable, and "
            f"none refuted it: the strongest shows {proved}. Consistent is not proof of "
            "privacy: only the accountant's ε bounds every attacker."
        )
    return (
        f"Not testable at this size: claimed {claim_words(config)}, but with "
        f"{able.get('canaries')} canaries even a perfect attack could show at most "
        f"ε ≥ {num(ceiling, 2)}, so this audit can neither refute the claim nor support "
        f"it (the strongest attack shows {proved}). {_what_would_test(claim, able)}"
    )


def _what_would_test(claim: dict[str, Any], able: dict[str, Any]) -> str:
    if able.get("vacuous") and claim["group"] > 1:
        return (
            f"For a group of {claim['group']} records the claim's δ is {claim['delta']:.3g}: "
            "it promises nothing an audit could refute. Audit with distinct canaries "
            "(--repeats 1)."
        )
    if able.get("canaries_needed"):
        needed = able["canaries_needed"]
        return (
            f"One run with {needed} candidate canaries in all (each inserted with "
            f"probability ½; --candidates counts per kind) could test it, on a target with "
            f"at least about {5 * needed * claim['group']} records to keep them within 10 %."
        )
    if able.get("runs_needed"):
        return (
            f"No canary count suffices in one run at δ = {claim['delta']:.3g}: an audit over "
            f"independent runs would need {able['runs_needed']} runs with a canary and "
            f"{able['runs_needed']} without, every one classified right."
        )
    return "No audit of this kind can test it."


def share_words(canaries: dict[str, Any], control: str | None) -> str:
    share = canaries.get("share")
    if share is None:
        return ""
    text = (
        f"{canaries['inserted_rows']} canary rows in the target's "
        f"{canaries['target_records']} own records ({100 * share:.1f} %; an ordinary audit "
        f"allows {100 * canaries['share_limit']:.0f} %)"
    )
    if canaries.get("over_limit"):
        text += (
            f". Over the limit: allowed for a {control} control only, whose mechanism "
            "differs from the deployed one by design"
        )
    return text + "."


def accuracy_words(config: dict[str, Any]) -> str:
    unaudited = config.get("unaudited") or {}
    text = f"ALMA {num(config['alma'])}, global {num(config['global_acc'])} with canaries"
    if unaudited:
        text += (
            f"; {num(unaudited.get('alma'))} and {num(unaudited.get('global_acc'))} "
            "without them (the configuration as deployed)"
        )
    return text


EXPOSURE_WORDS = (
    "Exposure (bits) is a rank, not a likelihood: a planted record with exposure b "
    "outranks all but about a 2^−b share of the comparison records; about "
    f"{CHANCE_EXPOSURE_BITS} bits is chance, and with R comparison records it cannot exceed "
    "log2(R + 1)."
)
