"""The ServerApp's checkpoint: exact round trip, atomic replacement, and which interrupted
run a restart takes back."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from fedkd.coordinator import CoordinatorState
from fedkd.fusion import Knowledge
from fedkd.privacy.accounting import DPSteps
from fedkd.run_directory import CHECKPOINT, INCOMPLETE, STAGING, RunDirectory, find_resumable
from fedkd.wire.types import FusedKnowledge, TransferSetRef, WireDType
from server.checkpoint import Checkpoint, CheckpointError, load_checkpoint, save_checkpoint

REF = TransferSetRef(digest="sha256:" + "ab" * 32, num_samples=50, num_classes=3, name="t")


def _state(round_: int) -> CoordinatorState:
    rng = np.random.default_rng(7)
    rng.random(5)
    fused = FusedKnowledge(
        run_id="42",
        round=round_,
        transfer_set=REF,
        anchor_indices=np.array([1, 4, 9], dtype=np.uint32),
        targets=np.full((3, 3), 1 / 3, dtype=np.float32),
        strategy="knfu",
        dtype=WireDType.FLOAT16,
    )
    return CoordinatorState(
        run_id="42",
        completed_round=round_,
        anchor_rng=dict(rng.bit_generator.state),
        shared=Knowledge(weights={"fc.weight": np.arange(6, dtype=np.float32).reshape(2, 3)}),
        fused={"cleveland": fused},
        ledger_heads={"cleveland": "h1", "hungary": "h2"},
        epsilon_recorded={"cleveland": 1.25},
        composed={"cleveland": (DPSteps(1.1, 0.02, 50), DPSteps(1.1, 0.02, 50))},
    )


def _checkpoint(round_: int) -> Checkpoint:
    rows = [{"round": 1, "node_id": 17, "status": "ok"}]
    return Checkpoint("fp", _state(round_), rows, names={17: "cleveland"}, elapsed_s=3.5)


def test_checkpoint_round_trips_exactly(tmp_path: Path) -> None:
    save_checkpoint(tmp_path, _checkpoint(2))
    back = load_checkpoint(tmp_path, REF)
    assert back is not None
    state, original = back.coordinator, _state(2)
    assert (state.run_id, state.completed_round) == ("42", 2)
    assert state.ledger_heads == original.ledger_heads
    assert state.epsilon_recorded == {"cleveland": 1.25}
    assert state.composed == original.composed
    fused = state.fused["cleveland"]
    assert fused.dtype is WireDType.FLOAT16 and fused.round == 2 and fused.transfer_set == REF
    np.testing.assert_array_equal(fused.anchor_indices, [1, 4, 9])
    assert fused.anchor_indices.dtype == np.uint32
    assert state.shared is not None and state.shared.weights is not None
    np.testing.assert_array_equal(state.shared.weights["fc.weight"], np.arange(6).reshape(2, 3))
    # The anchor sampler carries on exactly where it stopped.
    a, b = np.random.default_rng(), np.random.default_rng()
    a.bit_generator.state, b.bit_generator.state = original.anchor_rng, state.anchor_rng
    assert a.random() == b.random()
    assert back.names == {17: "cleveland"} and back.elapsed_s == 3.5 and back.fingerprint == "fp"


def test_a_later_checkpoint_replaces_the_earlier_one_whole(tmp_path: Path) -> None:
    save_checkpoint(tmp_path, _checkpoint(1))
    save_checkpoint(tmp_path, _checkpoint(2))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-2.npz", CHECKPOINT]
    back = load_checkpoint(tmp_path, REF)
    assert back is not None and back.coordinator.completed_round == 2


def test_no_checkpoint_is_none_and_targets_on_another_transfer_set_are_refused(
    tmp_path: Path,
) -> None:
    assert load_checkpoint(tmp_path, REF) is None
    save_checkpoint(tmp_path, _checkpoint(1))
    other = TransferSetRef(digest="sha256:" + "cd" * 32, num_samples=50, num_classes=3)
    with pytest.raises(CheckpointError, match="another transfer set"):
        load_checkpoint(tmp_path, other)
    body = json.loads((tmp_path / CHECKPOINT).read_text())
    (tmp_path / CHECKPOINT).write_text(json.dumps({**body, "format": "other/9"}))
    with pytest.raises(CheckpointError, match="format"):
        load_checkpoint(tmp_path, REF)


def _interrupted(output: Path, where: str, token: str, fingerprint: str, done: int) -> Path:
    folder = output / where / f"run-{token}"
    folder.mkdir(parents=True)
    (folder / CHECKPOINT).write_text(
        json.dumps({"fingerprint": fingerprint, "completed_round": done})
    )
    return folder


def test_a_restart_takes_back_the_furthest_interrupted_run_of_the_same_config(
    tmp_path: Path,
) -> None:
    _interrupted(tmp_path, INCOMPLETE, "20261129T100000Z-aaaaaaaa", "fp", 1)
    furthest = _interrupted(tmp_path, STAGING, "20261129T110000Z-bbbbbbbb", "fp", 3)
    _interrupted(tmp_path, INCOMPLETE, "20261129T120000Z-cccccccc", "other", 4)
    # A longer run name sharing the prefix is another run.
    _interrupted(tmp_path, INCOMPLETE, "x-20261129T130000Z-dddddddd", "fp", 5)
    assert find_resumable(tmp_path, "run", "fp") == furthest
    directory = RunDirectory.open(tmp_path, "run", overwrite=False, fingerprint="fp")
    assert directory.token == "20261129T110000Z-bbbbbbbb" and directory.resumed_from == furthest
    # Held by this live run, it is not offered to another start.
    assert find_resumable(tmp_path, "run", "fp") == tmp_path / INCOMPLETE / (
        "run-20261129T100000Z-aaaaaaaa"
    )
    directory.release()
    assert find_resumable(tmp_path, "run", "fp") == furthest
    fresh = RunDirectory.open(tmp_path, "run", overwrite=False, fingerprint=None)
    assert fresh.resumed_from is None and fresh.token != directory.token
    fresh.release()


def test_a_published_run_leaves_no_checkpoint_or_lock(tmp_path: Path) -> None:
    directory = RunDirectory.create(tmp_path, "run", overwrite=False)
    save_checkpoint(directory.staging, _checkpoint(1))
    (directory.staging / "summary.json").write_text("{}")
    target = directory.publish()
    assert os.listdir(target) == ["summary.json"]
    assert find_resumable(tmp_path, "run", "fp") is None
