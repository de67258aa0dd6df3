"""fedkd as a user installs it: the wheel, not the checkout, run from another folder —
and a plugin package whose strategy and model reach the Ray workers through entry points."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PLUGIN = ROOT / "examples" / "plugin-package"

SCRIPT = """
import json, fedkd, fedkd_plugin_example
result = fedkd.simulate(
    {"dataset": "digits", "num_clients": 3, "partitioner": "iid", "transfer_size": 200,
     "num_server_rounds": 2, "strategy": "geometric-mean", "model": "mlp-xs",
     "run_name": "from-the-wheel"},
    output_dir="runs",
)
print(json.dumps({
    "fedkd": fedkd.__file__, "plugin": fedkd_plugin_example.__file__,
    "status": result.summary["status"], "strategy": result.summary["strategy"],
    "alma": result.alma, "models": sorted({m["model"] for m in result.metrics if m["model"]}),
    "run_dir": str(result.run_dir),
}))
"""


def _run(*args: str | Path, **kwargs: object) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, timeout=600, **kwargs
    )  # type: ignore[call-overload]
    assert done.returncode == 0, done.stdout + done.stderr
    return done  # type: ignore[no-any-return]


@pytest.mark.integration
def test_the_wheel_runs_a_plugin_simulation_through_ray_outside_the_checkout(
    tmp_path: Path,
) -> None:
    dist = tmp_path / "dist"
    for project in (ROOT, PLUGIN):
        _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
             "-q", "-w", dist, project)  # fmt: skip
    venv = tmp_path / "venv"
    _run(sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", venv)
    python = venv / "bin" / "python"
    new_site = Path(
        _run(
            python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"
        ).stdout.strip()
    )
    # This test's interpreter may itself be a venv's: its packages (torch, Flower…) reach
    # the new venv after the new venv's own site-packages, so the wheel's fedkd wins.
    (new_site / "zz-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    _run(sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "-q",
         *sorted(dist.glob("*.whl")))  # fmt: skip

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = _run(python, "-c", SCRIPT, cwd=elsewhere, env=env)
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["fedkd"].startswith(str(new_site)), report
    assert report["plugin"].startswith(str(new_site)), report
    assert report["status"] == "complete" and report["strategy"] == "geometric-mean"
    assert report["models"] == ["mlp-xs"]  # built inside the Ray workers, from the plugin
    assert 0.5 < report["alma"] <= 1.0
    assert Path(report["run_dir"]) == elsewhere / "runs" / "from-the-wheel"
