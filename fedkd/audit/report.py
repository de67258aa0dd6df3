"""``report.html``: one self-contained page a privacy officer can read and sign.

A control run says so at the top.  A plain-language summary first (what was attacked, by
whom, the canary share, each configuration's verdict — violated, consistent, not
testable at this size, invalid — with the claimed ε and its odds beside the measured
lower bound and its ceiling, what the numbers mean and do not mean, and what the audit
did not cover), then the table, the ROC curves (log-log) and the exposure histograms.  Images are
PNG data URIs; the page loads nothing from anywhere and runs no script.
"""

from __future__ import annotations

import base64
import html
import io
import math
from typing import Any

from fedkd.audit.summary import tpr_cell
from fedkd.audit.wording import (
    EXPOSURE_WORDS,
    VERDICT_HEADINGS,
    accuracy_words,
    control_words,
    odds,
    ordered,
    share_words,
    verdict_words,
)

VIEW_WORDS = {
    "server": "the coordinating server, from the soft labels the hospital sent it",
    "peer": "another hospital, from its own final model",
    "model-holder": "anyone holding the hospital's final model",
}


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    return f"{value:.{digits}f}"


def _png(figure: Any) -> str:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(figure)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _roc_figure(name: str, config: dict[str, Any]) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, ax = plt.subplots(figsize=(5, 4))
    for view, v in config["views"].items():
        lira = v.get("lira")
        roc = lira["roc_online"] if lira else v.get("roc_threshold") or {}
        label = f"{view} ({'LiRA' if lira else 'threshold'})"
        fpr, tpr = roc.get("fpr", []), roc.get("tpr", [])
        if fpr:
            ax.plot([max(f, 1e-4) for f in fpr], [max(t, 1e-4) for t in tpr], label=label)
    ax.plot([1e-4, 1], [1e-4, 1], "k--", linewidth=0.8, label="chance")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(1e-3, 1)
    ax.set_ylim(1e-3, 1)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title(f"{name}: membership attacks (log-log ROC)")
    ax.legend(fontsize=7)
    return _png(figure)


def _exposure_figure(name: str, config: dict[str, Any]) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    views = list(config["views"].items())
    figure, axes = plt.subplots(1, len(views), figsize=(4 * len(views), 3), squeeze=False)
    for ax, (view, v) in zip(axes[0], views, strict=True):
        samples = v.get("exposure_samples") or {}
        ax.hist(samples.get("references", []), bins=20, alpha=0.6, density=True, label="references")
        ax.hist(samples.get("inserted", []), bins=20, alpha=0.6, density=True, label="inserted")
        ax.set_title(f"{view}")
        ax.set_xlabel("rank exposure (bits)")
        ax.legend(fontsize=7)
    figure.suptitle(f"{name}: canary exposure", y=1.04)
    return _png(figure)


def _strongest(config: dict[str, Any]) -> tuple[str, float]:
    aucs = {}
    for view, v in config["views"].items():
        candidates = [v["mia_auc"]]
        for attack in ("lira", "release_lira"):
            if v.get(attack):
                candidates.append(v[attack]["online"]["auc"])
        aucs[view] = max((a for a in candidates if a is not None), default=0.5)
    view = max(aucs, key=lambda k: aucs[k])
    return view, aucs[view]


def _copies(repeats: int) -> str:
    return "" if repeats == 1 else f" ({repeats} copies of each)"


def _verdict_class(verdict: str) -> str:
    return {"violated": "bad", "invalid": "bad", "not testable at this size": "warn"}.get(
        verdict, "ok"
    )


def _control_banner(record: dict[str, Any]) -> str:
    words = control_words(record.get("control"))
    if not words:
        return ""
    return f"<p id='control' class='banner'><strong>{html.escape(words)}</strong></p>"


def _summary(record: dict[str, Any]) -> str:
    canaries = record["canaries"]
    parts = [
        "<section id='summary'><h2>Summary</h2>",
        f"<p><strong>What was attacked.</strong> One hospital's private training data. To "
        f"measure leakage, {canaries['inserted']} artificial records (“canaries”) were "
        f"planted in it{_copies(canaries['repeats'])}, and "
        f"{canaries['references_per_kind'] * len(canaries['kinds'])} "
        "similar records were kept out for comparison: "
        f"{html.escape(share_words(canaries, record.get('control')))} Canaries are built "
        "to be easy to spot (noise images, wrong labels); real records are harder to "
        "single out, so these figures are an upper end of what the same attacks would get "
        "on real patients' records, not a measurement of it.</p>",
        "<p><strong>By whom.</strong> Three attackers, each using only what it would hold "
        "in a real deployment: " + "; ".join(html.escape(w) for w in VIEW_WORDS.values()) + ".</p>",
        "<p><strong>What was found.</strong></p><ul>",
    ]
    for name, config in ordered(record):
        view, auc = _strongest(config)
        verdict = config["verdict"]
        mechanism = (
            f"<strong class='bad'>{html.escape(str(config['control']))}</strong> "
            if config.get("control")
            else ""
        )
        parts.append(
            f"<li>{mechanism}<strong>{html.escape(name)}</strong> "
            f"<span class='verdict {_verdict_class(verdict)}'>"
            f"{html.escape(VERDICT_HEADINGS[verdict])}</span> "
            f"({html.escape(accuracy_words(config))}): the best attacker "
            f"({html.escape(view)}) separates planted from unplanted records with AUC "
            f"{_fmt(auc, 2)} (0.5 is guessing, 1.0 is certainty). "
            f"{html.escape(verdict_words(config))}</li>"
        )
    parts += [
        "</ul>",
        "<p><strong>What the numbers mean.</strong> ε is the accountant's worst-case "
        "promise for any record and any attacker: no outcome may become more than e^ε "
        "times likelier (the odds) because one record was used. A lower bound is what "
        "these attackers <em>proved</em> from these canaries, and its ceiling is the most "
        "they could have proved. A claim above the ceiling cannot be tested by this audit "
        "and is never called consistent. A lower bound <em>above</em> ε means the "
        f"guarantee does not hold. {html.escape(EXPOSURE_WORDS)}</p>",
        "<p><strong>What they do not mean.</strong> An attack that finds nothing does not "
        "prove privacy: only the DP guarantee (ε) bounds every possible attacker. Settings "
        "without DP (ε = ∞) have no formal protection, whatever the measured leakage. "
        "Swing distillation, temperature and quantisation change the measured leakage "
        "but carry no ε.</p>",
        "<p><strong>Not covered by this audit.</strong></p><ul>",
        *(f"<li>{html.escape(item)}</li>" for item in record.get("not_covered", [])),
        "</ul>",
        "</section>",
    ]
    return "\n".join(parts)


def _exposure_cell(v: dict[str, Any]) -> str:
    low, high = v["exposure_ci95"]
    return f"{_fmt(v['exposure_mean_bits'], 2)} ({_fmt(low, 2)}–{_fmt(high, 2)})"


def _lira_cell(lira: dict[str, Any] | None) -> str:
    if not lira:
        return "—"
    online = lira["online"]
    return f"{_fmt(online['auc'])} ({lira['shadows']}); {html.escape(tpr_cell(online))}"


def _clopper_pearson_cell(cp: dict[str, Any] | None) -> str:
    if not cp:
        return "—"
    runs = f"{cp['runs_in']}+{cp['runs_out']}"
    if not cp["ceiling"]:
        return f"— ({runs} runs: ceiling 0, too few to show anything)"
    return f"{_fmt(cp['epsilon'], 2)} ({_fmt(cp['ceiling'], 2)}, {runs})"


def _claim_cell(c: dict[str, Any]) -> str:
    claim = c.get("claim")
    if not claim:
        return "∞ (no DP)"
    return f"{_fmt(claim['epsilon'], 2)} (odds ≤ {html.escape(odds(claim['epsilon']))})"


def _table(record: dict[str, Any]) -> str:
    head = (
        "<tr><th>configuration</th><th>view</th><th>verdict</th>"
        "<th>exposure rank bits (95% CI)</th><th>threshold AUC</th><th>threshold TPR</th>"
        "<th>LiRA AUC (shadows); TPR</th><th>release LR AUC (shadows); TPR</th>"
        "<th>claimed ε (odds)</th><th>ε lower bound (score)</th><th>ceiling</th>"
        "<th>Clopper–Pearson ε (ceiling, runs)</th></tr>"
    )
    rows = []
    for name, c in ordered(record):
        for view, v in c["views"].items():
            cells = [
                html.escape(name),
                html.escape(view),
                html.escape(VERDICT_HEADINGS[v.get("verdict", c["verdict"])]),
                _exposure_cell(v),
                _fmt(v["mia_auc"]),
                html.escape(tpr_cell(v)),
                _lira_cell(v.get("lira")),
                _lira_cell(v.get("release_lira")),
                _claim_cell(c),
                f"{_fmt(v['eps_lower_bound'], 2)} "
                f"({html.escape(str(v.get('eps_lower_bound_score')))})",
                _fmt(v["eps_lower_bound_ceiling"], 2),
                _clopper_pearson_cell(v.get("clopper_pearson")),
            ]
            rows.append("<tr>" + "".join(f"<td>{cell}</td>" for cell in cells) + "</tr>")
    return f"<section id='results'><h2>Results</h2><table>{head}{''.join(rows)}</table></section>"


STYLE = """
body { font-family: sans-serif; max-width: 1100px; margin: 2em auto; color: #222; }
table { border-collapse: collapse; font-size: 13px; }
th, td { border: 1px solid #bbb; padding: 4px 6px; text-align: left; }
th { background: #eee; }
.bad { color: #b00; }
.warn { color: #a60; }
.ok { color: #060; }
.verdict { font-weight: bold; }
.banner { border: 2px solid #b00; padding: 0.6em; background: #fff4f4; }
pre { background: #f6f6f6; padding: 1em; white-space: pre-wrap; }
img { max-width: 100%; }
"""


def render_report(record: dict[str, Any]) -> str:
    """The whole page as one string."""
    figures = []
    for name, config in ordered(record):
        figures.append(
            f"<h3>{html.escape(name)}</h3>"
            f"<img alt='ROC curves for {html.escape(name)}' src='{_roc_figure(name, config)}'>"
            f"<img alt='Exposure histograms for {html.escape(name)}' "
            f"src='{_exposure_figure(name, config)}'>"
        )
    return "\n".join(
        [
            "<!DOCTYPE html>",
            "<html lang='en'><head><meta charset='utf-8'>",
            "<meta http-equiv='Content-Security-Policy' content=\"default-src 'none'; "
            "img-src data:; style-src 'unsafe-inline'\">",
            f"<title>fedkd privacy audit{' (control run)' * bool(record.get('control'))}</title>",
            f"<style>{STYLE}</style></head><body>",
            f"<h1>{'Control run: ' if record.get('control') else ''}Privacy audit report</h1>",
            _control_banner(record),
            _summary(record),
            _table(record),
            "<section id='figures'><h2>Figures</h2>",
            *figures,
            "</section>",
            "<section id='threat-model'><h2>Threat model and method</h2>",
            f"<pre>{html.escape(record['threat_model'])}</pre>",
            f"<p>Unit of privacy: {html.escape(record['unit_of_privacy'])}.</p>",
            "</section></body></html>",
        ]
    )
