"""``report.html``: one self-contained page a privacy officer can read and sign.

A plain-language summary first (what was attacked, by whom, what was found, the claimed
ε beside the measured lower bound and its ceiling, what the numbers mean and do not
mean), then the table, the ROC curves (log-log) and the exposure histograms.  Images are
PNG data URIs; the page loads nothing from anywhere and runs no script.
"""

from __future__ import annotations

import base64
import html
import io
import math
from typing import Any

VIEW_WORDS = {
    "server": "the coordinating server, from the soft labels the hospital sent it",
    "peer": "another hospital, from its own final model",
    "model-holder": "anyone holding the hospital's final model",
}


def ordered(record: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Configurations in the order the audit ran them (JSON sorts its keys)."""
    configurations = record["configurations"]
    order = record.get("configuration_order") or list(configurations)
    return [(name, configurations[name]) for name in order]


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
        ax.set_xlabel("exposure (bits)")
        ax.legend(fontsize=7)
    figure.suptitle(f"{name}: canary exposure", y=1.04)
    return _png(figure)


def _verdict(config: dict[str, Any]) -> str:
    if config.get("control"):
        return _control_prefix(config) + _claim_verdict(config)
    return _claim_verdict(config)


def _control_prefix(config: dict[str, Any]) -> str:
    return (
        f"<strong class='bad'>{html.escape(str(config['control']))}</strong>: a positive "
        "control — the target trained without noise, so this run has no privacy guarantee "
        "(its ε is unbounded). It is tested against the nominal ε its sabotaged mechanism "
        "pretends to, which a working audit must show broken. "
    )


def _claim_verdict(config: dict[str, Any]) -> str:
    claimed = config["eps_claimed"]
    bounds = [
        (v["eps_lower_bound"] or 0.0, v["eps_lower_bound_ceiling"] or 0.0, view)
        for view, v in config["views"].items()
    ]
    best, ceiling, view = max(bounds)
    if claimed is None:
        return (
            f"No formal privacy guarantee was claimed (no DP-SGD). The strongest attack "
            f"({html.escape(view)}) shows ε ≥ {_fmt(best, 2)} (the most these canaries could "
            f"show is {_fmt(ceiling, 2)})."
        )
    if best > claimed:
        return (
            f"<strong class='bad'>The claimed guarantee is broken</strong>: the accountant "
            f"claims ε = {_fmt(claimed, 2)}, and the attack by {html.escape(view)} proves "
            f"ε ≥ {_fmt(best, 2)} at 95% confidence."
        )
    return (
        f"The claimed guarantee holds against these attacks: the accountant claims "
        f"ε = {_fmt(claimed, 2)}; the strongest attack proves ε ≥ {_fmt(best, 2)} "
        f"(at most {_fmt(ceiling, 2)} could have been shown with these canaries)."
    )


def _strongest(config: dict[str, Any]) -> tuple[str, float]:
    aucs = {
        view: (v["lira"]["online"]["auc"] if v.get("lira") else v["mia_auc"]) or 0.5
        for view, v in config["views"].items()
    }
    view = max(aucs, key=lambda k: aucs[k])
    return view, aucs[view]


def _copies(repeats: int) -> str:
    return "" if repeats == 1 else f" ({repeats} copies of each)"


def _summary(record: dict[str, Any]) -> str:
    canaries = record["canaries"]
    parts = [
        "<section id='summary'><h2>Summary</h2>",
        f"<p><strong>What was attacked.</strong> One hospital's private training data. To "
        f"measure leakage, {canaries['inserted']} artificial records (“canaries”) were "
        f"planted in it{_copies(canaries['repeats'])}, and "
        f"{canaries['references_per_kind'] * len(canaries['kinds'])} "
        "similar records were kept out for comparison. If an attacker can tell planted "
        "records from the others, it could do the same to real patients' records.</p>",
        "<p><strong>By whom.</strong> Three attackers, each using only what it would hold "
        "in a real deployment: " + "; ".join(html.escape(w) for w in VIEW_WORDS.values()) + ".</p>",
        "<p><strong>What was found.</strong></p><ul>",
    ]
    for name, config in ordered(record):
        view, auc = _strongest(config)
        parts.append(
            f"<li><strong>{html.escape(name)}</strong> (accuracy {_fmt(config['alma'], 3)}): "
            f"the best attacker ({html.escape(view)}) separates planted from unplanted "
            f"records with AUC {_fmt(auc, 2)} (0.5 is guessing, 1.0 is certainty). "
            f"{_verdict(config)}</li>"
        )
    parts += [
        "</ul>",
        "<p><strong>What the numbers mean.</strong> ε is the accountant's worst-case "
        "promise for any record and any attacker; a lower bound is what these attackers "
        "<em>proved</em> from these canaries. A lower bound far below ε is expected and is "
        "not a weakness of the guarantee. A lower bound <em>above</em> ε means the "
        "guarantee does not hold. Exposure (bits) says how much more likely a planted "
        "record is than the comparison records: about 1.4 bits is chance.</p>",
        "<p><strong>What they do not mean.</strong> An attack that finds nothing does not "
        "prove privacy: only the DP guarantee (ε) bounds every possible attacker. Settings "
        "without DP (ε = ∞) have no formal protection, whatever the measured leakage. "
        "Swing distillation, temperature and quantisation change the measured leakage "
        "but carry no ε.</p>",
        "</section>",
    ]
    return "\n".join(parts)


def _exposure_cell(v: dict[str, Any]) -> str:
    low, high = v["exposure_ci95"]
    return f"{_fmt(v['exposure_mean_bits'], 2)} ({_fmt(low, 2)}–{_fmt(high, 2)})"


def _lira_cells(lira: dict[str, Any] | None) -> list[str]:
    if not lira:
        return ["—", "—"]
    online = lira["online"]
    return [f"{_fmt(online['auc'])} ({lira['shadows']})", _fmt(online["tpr_at_01pct_fpr"])]


def _clopper_pearson_cell(cp: dict[str, Any] | None) -> str:
    if not cp:
        return "—"
    runs = f"{cp['runs_in']}+{cp['runs_out']}"
    return f"{_fmt(cp['epsilon'], 2)} ({_fmt(cp['ceiling'], 2)}, {runs})"


def _table(record: dict[str, Any]) -> str:
    head = (
        "<tr><th>configuration</th><th>view</th><th>exposure bits (95% CI)</th>"
        "<th>threshold AUC</th><th>TPR @ 0.1% FPR</th><th>LiRA AUC (shadows)</th>"
        "<th>LiRA TPR @ 0.1% FPR</th><th>claimed ε</th><th>ε lower bound (ceiling)</th>"
        "<th>Clopper–Pearson ε (ceiling, runs)</th></tr>"
    )
    rows = []
    for name, c in ordered(record):
        for view, v in c["views"].items():
            cells = [
                html.escape(name),
                html.escape(view),
                _exposure_cell(v),
                _fmt(v["mia_auc"]),
                _fmt(v["tpr_at_0.1pct_fpr"]),
                *_lira_cells(v.get("lira")),
                "∞" if c["eps_claimed"] is None else _fmt(c["eps_claimed"], 2),
                f"{_fmt(v['eps_lower_bound'], 2)} ({_fmt(v['eps_lower_bound_ceiling'], 2)})",
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
            "<title>fedkd privacy audit</title>",
            f"<style>{STYLE}</style></head><body>",
            "<h1>Privacy audit report</h1>",
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
