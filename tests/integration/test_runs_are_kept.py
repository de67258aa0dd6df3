"""Nothing a run did is lost: complete runs appear whole, failed and interrupted ones are
set aside as incomplete, nothing is replaced without overwrite, and the Python API leaves
no global state behind."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import fedkd
from fedkd.interrupt import RunFailed
from fedkd.run_directory import INCOMPLETE, RunExistsError

TINY: dict[str, Any] = {
    "dataset": "digits",
    "num_clients": 3,
    "partitioner": "iid",
    "transfer_size": 200,
    "num_server_rounds": 2,
    "model": "mlp-s",
    "strategy": "mean",
    "run_name": "tiny",
}


def _strict_json(path: Path) -> Any:
    """JSON that Python's parser accepts without NaN or Infinity."""

    def refuse(constant: str) -> None:
        raise AssertionError(f"{path} holds {constant}, which is not JSON")

    return json.loads(path.read_text(), parse_constant=refuse)


def _global_state() -> dict[str, Any]:
    return {
        "environ": dict(os.environ),
        "sigint": signal.getsignal(signal.SIGINT),
        "flwr_level": logging.getLogger("flwr").level,
        "flwr_filters": list(logging.getLogger("flwr").filters),
        "sys_path": list(sys.path),
    }


@pytest.mark.integration
def test_simulate_returns_typed_results_and_leaves_no_global_state(tmp_path: Path) -> None:
    # What importing Flower, Ray and scikit-learn does (logger set-up, Ray's vendored
    # packages on sys.path, OpenMP variables) is theirs, once per process; what a run
    # leaves behind would be ours.
    import flwr.simulation  # noqa: F401
    import ray  # noqa: F401
    import sklearn  # noqa: F401

    before = _global_state()
    result = fedkd.simulate(dict(TINY), output_dir=str(tmp_path))
    assert _global_state() == before
    assert result.complete and result.run_dir == tmp_path / "tiny"
    assert result.config.num_clients == 3 and result.summary["status"] == "complete"
    assert result.summary["clients_taking_part"] == 3
    assert result.alma is not None and 0.5 < result.alma <= 1.0
    # One row per client per round, rounds 0 (before training) to 2.
    assert len(result.metrics) == 3 * 3
    assert not (tmp_path / ".staging").exists()
    _strict_json(result.run_dir / "summary.json")

    # The same run name again is refused before any simulation starts, leaving it as it was.
    kept = (result.run_dir / "summary.json").read_bytes()
    started = time.perf_counter()
    with pytest.raises(RunExistsError, match="--overwrite"):
        fedkd.simulate(dict(TINY), output_dir=str(tmp_path))
    assert time.perf_counter() - started < 5
    assert (result.run_dir / "summary.json").read_bytes() == kept


@pytest.mark.integration
def test_a_round_that_fails_sets_the_run_aside_with_what_it_had(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fedkd.results import RunRecorder

    record = RunRecorder.record

    def fails_in_round_2(self: RunRecorder, outcome: Any) -> None:
        if outcome.round == 2:
            raise RuntimeError("disk on fire")
        record(self, outcome)

    monkeypatch.setattr(RunRecorder, "record", fails_in_round_2)
    with pytest.raises(RunFailed, match="disk on fire") as failed:
        fedkd.simulate(dict(TINY), output_dir=str(tmp_path))
    assert not (tmp_path / "tiny").exists()
    (aside,) = (tmp_path / INCOMPLETE).iterdir()
    assert str(aside) in str(failed.value)
    summary = _strict_json(aside / "summary.json")
    assert summary["status"] == "incomplete"
    assert "RuntimeError: disk on fire" in summary["incomplete_reason"]
    rows = [json.loads(line) for line in (aside / "metrics.jsonl").read_text().splitlines()]
    assert {r["round"] for r in rows} == {0, 1}  # what finished before round 2 failed


@pytest.mark.integration
def test_compare_reuses_only_complete_runs_of_the_same_config(tmp_path: Path) -> None:
    first = fedkd.compare(dict(TINY), ["mean"], [0], output_dir=str(tmp_path), name="cmp")
    run_dir = first.runs["mean"][0].run_dir
    assert run_dir == tmp_path / "cmp" / "mean-seed0"
    kept = (run_dir / "summary.json").read_text()

    again = fedkd.compare(
        dict(TINY), ["mean"], [0], output_dir=str(tmp_path), name="cmp", reuse=True
    )
    assert (run_dir / "summary.json").read_text() == kept  # reused, not run again
    assert again.stats["mean"]["alma"].mean == first.stats["mean"]["alma"].mean

    # Another config, or a run that never completed, is never reused, nor silently replaced.
    with pytest.raises(RunExistsError, match="--overwrite"):
        fedkd.compare(
            dict(TINY), ["mean"], [0], output_dir=str(tmp_path), name="cmp", reuse=True, lr=0.01
        )
    summary = json.loads(kept)
    summary["status"] = "incomplete"
    (run_dir / "summary.json").write_text(json.dumps(summary))
    with pytest.raises(RunExistsError, match="--overwrite"):
        fedkd.compare(dict(TINY), ["mean"], [0], output_dir=str(tmp_path), name="cmp", reuse=True)


def _descendants_alive(session: int) -> list[str]:
    """Processes still in the interrupted command's session (Ray's included)."""
    out = subprocess.run(
        ["ps", "-eo", "pid,sid,stat,cmd"], capture_output=True, text=True, check=True
    ).stdout
    alive = []
    for line in out.splitlines()[1:]:
        pid, sid, stat, *cmd = line.split(None, 3)
        if int(sid) == session and not stat.startswith("Z"):
            alive.append(f"{pid} {' '.join(cmd)}")
    return alive


@pytest.mark.integration
def test_ctrl_c_stops_the_run_within_seconds_and_keeps_everything(tmp_path: Path) -> None:
    previous = fedkd.simulate(dict(TINY), output_dir=str(tmp_path))
    kept = {p.name: p.read_bytes() for p in previous.run_dir.iterdir() if p.is_file()}
    config = tmp_path / "long.toml"
    long = {**TINY, "num_server_rounds": 500, "output_dir": str(tmp_path)}
    config.write_text(
        "\n".join(f"{k.replace('_', '-')} = {json.dumps(v)}" for k, v in long.items())
    )
    cli = [sys.executable, "-m", "fedkd.cli", "simulate", str(config), "--overwrite"]
    # Its own session, like a shell's foreground job: Ctrl-C reaches the whole group.
    proc = subprocess.Popen(
        cli, start_new_session=True, stdout=subprocess.PIPE, text=True, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            metrics = list((tmp_path / ".staging").glob("tiny-*/metrics.jsonl"))
            if metrics and metrics[0].read_text().count("\n") >= 6:  # two rounds done
                break
            assert proc.poll() is None, proc.communicate()[0]
            time.sleep(0.2)
        else:
            pytest.fail("the run never got going")
        os.killpg(proc.pid, signal.SIGINT)
        sent = time.monotonic()
        output, _ = proc.communicate(timeout=10)
        took = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, output
    assert took < 10
    assert "Traceback" not in output and "stopped: interrupted" in output
    # The previous run is untouched; the interrupted one is set aside, marked incomplete.
    assert {p.name: p.read_bytes() for p in previous.run_dir.iterdir() if p.is_file()} == kept
    (aside,) = (tmp_path / INCOMPLETE).iterdir()
    summary = _strict_json(aside / "summary.json")
    assert summary["status"] == "incomplete" and "SIGINT" in summary["incomplete_reason"]
    assert not list((tmp_path / ".staging").glob("*"))
    # Ray's processes, started in the command's session, are gone too.
    time.sleep(3)
    assert _descendants_alive(proc.pid) == []


@pytest.mark.integration
def test_a_run_in_which_no_reply_is_ever_accepted_fails_instead_of_reporting_chance(
    tmp_path: Path,
) -> None:
    import functools

    from fedkd.config import parse_run_config
    from fedkd.flower_glue.simulation import run_simulation
    from tests.integration.hostile_client import DROP, hostile_app

    settings = {k.replace("_", "-"): v for k, v in TINY.items()}
    cfg = parse_run_config({**settings, "output-dir": str(tmp_path)})
    every_node_fails = functools.partial(hostile_app, dict.fromkeys(range(3), DROP))
    with pytest.raises(RunFailed, match="no node's reply was accepted in any round"):
        run_simulation(cfg, client_app=every_node_fails)
    assert not (tmp_path / "tiny").exists()
    (aside,) = (tmp_path / INCOMPLETE).iterdir()
    summary = _strict_json(aside / "summary.json")
    assert summary["status"] == "incomplete" and summary["clients_taking_part"] == 0
    assert "Flower error" in summary["incomplete_reason"]
