"""Screenshots of the audit report for one consistent, one not-testable and one broken
claim, from the committed MNIST audits, into docs/ (Debian's headless chromium).

    .venv/bin/python -m simulations.audit_screenshots
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from pathlib import Path

from fedkd.audit.record import one_configuration
from fedkd.audit.report import render_report

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "simulations" / "results" / "audit"
CASES = {
    "consistent": ("compare.json", "dp+dp-target-epsilon=3"),
    "not-testable": ("compare.json", "dp"),
    "broken": ("positive-control.json", "dp+dp-target-epsilon=3"),
}


def case_record(case: str) -> dict[str, object]:
    source, name = CASES[case]
    return one_configuration(json.loads((RESULTS / source).read_text()), name)


def main() -> None:
    browser = shutil.which("chromium")
    if browser is None:
        raise SystemExit("needs Debian's chromium (apt-get install chromium)")
    with tempfile.TemporaryDirectory() as folder:
        for case in CASES:
            page = Path(folder) / f"{case}.html"
            page.write_text(render_report(case_record(case)), encoding="utf-8")
            shot = ROOT / "docs" / f"audit-{case}.png"
            subprocess.run(
                [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                 f"--user-data-dir={Path(folder) / case}", "--window-size=1200,1500",
                 f"--screenshot={shot}", page.as_uri()],
                capture_output=True, timeout=120, check=True,
            )  # fmt: skip
            print(f"{case}: {shot}")


if __name__ == "__main__":
    main()
