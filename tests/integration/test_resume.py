"""A run stopped after round 2 of 4 resumes at round 3 when started again.

The ServerApp checkpoints after every round; started again on the same configuration, it
finds the interrupted run, carries on under the same fedkd run id, and the nodes answer a
round they had already answered from their reply caches.  So the metrics have every round
once, every node's ledger one release per round, and the ε of a run never interrupted.
"""

from __future__ import annotations

import functools
import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from fedkd.api import RunResult
from fedkd.config import parse_run_config
from fedkd.flower_glue.simulation import run_simulation
from fedkd.interrupt import RunFailed, RunInterrupted
from fedkd.privacy.ledger import ReadOnlyLedger
from fedkd.run_directory import CHECKPOINT, INCOMPLETE, STAGING

ROUNDS = 4
DP_FOUR_ROUNDS: dict[str, Any] = {
    "dataset": "heart",
    "partitioner": "natural",
    "num-clients": 4,
    "num-server-rounds": ROUNDS,
    "model": "mlp-s",
    "strategy": "knfu",
    "batch-size": 16,
    "dp": True,
    "dp-target-epsilon": 6.0,
    "run-name": "resumed",
}


def _stop_after_round(output_dir: Path, round_: int, stop: threading.Event) -> threading.Thread:
    """Set ``stop`` as soon as the staged run's checkpoint says ``round_`` is done."""

    def watch() -> None:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and not stop.is_set():
            for path in (output_dir / STAGING).glob(f"*/{CHECKPOINT}"):
                try:
                    done = json.loads(path.read_text())["completed_round"]
                except (OSError, ValueError, KeyError):
                    continue
                if done >= round_:
                    stop.set()
            time.sleep(0.05)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def _metrics(run_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def _ledger_rounds(run_dir: Path) -> dict[str, list[tuple[int, bool]]]:
    """Each node's ledger rows as (round, spent DP steps)."""
    state = RunResult.load(run_dir).node_state_dirs[0]
    return {
        path.name.removesuffix(".ledger.db"): [
            (r.round, r.steps > 0) for r in ReadOnlyLedger.read(path).rows()
        ]
        for path in sorted(state.glob("*.ledger.db"))
    }


@pytest.mark.integration
def test_stopped_after_round_two_resumes_at_round_three(tmp_path: Path) -> None:
    cfg = parse_run_config({**DP_FOUR_ROUNDS, "output-dir": str(tmp_path / "resumed")})
    stop = threading.Event()
    _stop_after_round(tmp_path / "resumed", 2, stop)
    with pytest.raises(RunInterrupted):
        run_simulation(cfg, stop=stop)
    (interrupted,) = (tmp_path / "resumed" / INCOMPLETE).iterdir()
    checkpoint = json.loads((interrupted / CHECKPOINT).read_text())
    assert checkpoint["completed_round"] in (2, 3)  # the stop lands within one poll
    done_before = checkpoint["completed_round"]

    run_dir = run_simulation(cfg)  # the same configuration, started again
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "complete"
    assert summary["resumed_after_round"] == done_before
    assert not any((tmp_path / "resumed" / INCOMPLETE).iterdir())  # taken back, not copied
    assert not (run_dir / CHECKPOINT).exists()

    rows = _metrics(run_dir)
    rounds = sorted((r["round"], r["node_id"]) for r in rows)
    assert len(rounds) == len(set(rounds))  # no duplicate
    per_round = {k: sum(1 for r, _ in rounds if r == k) for k in range(ROUNDS + 1)}
    # No gap, no round past the last, the same four nodes in every round.
    assert per_round == dict.fromkeys(range(ROUNDS + 1), 4) and len(rounds) == 4 * (ROUNDS + 1)
    trained = [r for r in rows if r["round"] >= 1]
    assert all(r["status"] == "ok" for r in trained)
    assert all(r["local_accuracy"] is not None for r in rows)

    # One release per round in every ledger; ε as in a run that was never interrupted.
    # (The final evaluation's reply is recorded too: nothing released, no step spent.)
    ledgers = _ledger_rounds(run_dir)
    expected = [(r, True) for r in range(1, ROUNDS + 1)] + [(ROUNDS + 1, False)]
    assert len(ledgers) == 4 and all(rows == expected for rows in ledgers.values())
    whole = run_simulation(
        parse_run_config({**DP_FOUR_ROUNDS, "output-dir": str(tmp_path / "whole")})
    )
    eps = {n: v["epsilon"] for n, v in summary["privacy"]["nodes"].items()}
    eps_whole = {
        n: v["epsilon"]
        for n, v in json.loads((whole / "summary.json").read_text())["privacy"]["nodes"].items()
    }
    by_name = {summary["privacy"]["nodes"][n]["name"]: e for n, e in eps.items()}
    whole_summary = json.loads((whole / "summary.json").read_text())
    by_name_whole = {whole_summary["privacy"]["nodes"][n]["name"]: e for n, e in eps_whole.items()}
    assert by_name.keys() == by_name_whole.keys() and len(by_name) == 4
    for name, value in by_name.items():
        assert value == pytest.approx(by_name_whole[name], rel=1e-9), name
        assert 3.0 < value <= 6.0


SMALL: dict[str, Any] = {
    "dataset": "digits",
    "num-clients": 3,
    "num-server-rounds": 3,
    "model": "mlp-s",
    "strategy": "mean",
    "transfer-size": 100,
}


def _interrupted_after_round_one(cfg: Any, output_dir: Path) -> Path:
    stop = threading.Event()
    _stop_after_round(output_dir, 1, stop)
    with pytest.raises(RunInterrupted):
        run_simulation(cfg, stop=stop)
    (interrupted,) = (output_dir / INCOMPLETE).iterdir()
    return interrupted


@pytest.mark.integration
def test_a_node_with_another_model_refuses_to_resume_and_the_checkpoint_is_kept(
    tmp_path: Path,
) -> None:
    out = tmp_path / "swap"
    cfg = parse_run_config({**SMALL, "run-name": "swap", "output-dir": str(out)})
    interrupted = _interrupted_after_round_one(cfg, out)
    before = {p.name: p.read_bytes() for p in interrupted.iterdir() if p.is_file()}
    with pytest.raises(RunFailed) as refused:
        run_simulation(cfg, node_sections={"1": {"model": "mlp-m"}})
    message = str(refused.value)
    assert "\n" not in message
    assert "cannot resume after round" in message and "node-1's model changed" in message
    # The checkpoint and what the interrupted run wrote are as they were.
    (kept,) = (out / INCOMPLETE).iterdir()
    after = {p.name: p.read_bytes() for p in kept.iterdir() if p.is_file()}
    assert {k: v for k, v in after.items() if k != ".lock"} == {
        k: v for k, v in before.items() if k != ".lock"
    }
    # Put back, the run resumes and completes.
    run_dir = run_simulation(cfg)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "complete" and summary["resumed_after_round"] >= 1


@pytest.mark.integration
def test_a_run_nobody_answers_after_the_resume_is_incomplete(tmp_path: Path) -> None:
    from tests.integration.hostile_client import DROP, hostile_app

    out = tmp_path / "mute"
    cfg = parse_run_config({**SMALL, "run-name": "mute", "output-dir": str(out)})
    _interrupted_after_round_one(cfg, out)
    # Every node still answers the handshake, then fails every training message.
    mute = functools.partial(hostile_app, dict.fromkeys(range(3), DROP))
    with pytest.raises(RunFailed, match=r"no node's reply was accepted in round\(s\) 2-3"):
        run_simulation(cfg, client_app=mute)
    (kept,) = (out / INCOMPLETE).iterdir()
    summary = json.loads((kept / "summary.json").read_text())
    assert summary["status"] == "incomplete"
    assert "resumed after round" in summary["incomplete_reason"]
    assert not (out / "mute").exists()  # nothing published
