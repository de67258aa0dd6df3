"""The audit report renders in a real browser: summary, table and images present, no
console errors, nothing loaded from anywhere."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

from fedkd.audit.report import render_report
from tests.browser import render

ROOT = Path(__file__).resolve().parents[2]
FOUR_CONFIGURATIONS = ROOT / "simulations" / "results" / "audit" / "compare.json"


def test_the_four_configuration_report_renders_in_chromium(tmp_path: Path) -> None:
    record = json.loads(FOUR_CONFIGURATIONS.read_text())
    assert set(record["configurations"]) == {"plain", "swing", "dp", "swing+dp"}
    page = tmp_path / "report.html"
    page.write_text(render_report(record), encoding="utf-8")
    shown = render(page, tmp_path)
    assert shown.console == []
    assert '<section id="summary">' in shown.dom and "What was attacked." in shown.dom
    assert "What they do not mean." in shown.dom
    for name in record["configurations"]:
        assert f"<strong>{name}</strong>" in shown.dom
    # One table row per configuration and view.
    assert len(re.findall(r"<tr><td>", shown.dom)) == 4 * 3
    images = re.findall(r'<img alt="([^"]+)" src="data:image/png;base64,([^"]+)"', shown.dom)
    assert len(images) == 2 * 4  # ROC curves and exposure histograms per configuration
    for _, data in images:
        assert base64.b64decode(data).startswith(b"\x89PNG")
    # Self-contained: no address the page could fetch.
    assert not re.search(r"(src|href)=\"(https?:|//)", shown.dom)
    assert shown.screenshot.stat().st_size > 50_000
