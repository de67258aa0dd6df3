"""The ServerApp's checkpoint: written after every round, read when the run starts again.

A checkpoint is two files in the run's staging folder: ``checkpoint-<round>.npz`` (the
arrays: fused targets, anchors, shared weights) and ``checkpoint.json`` (everything else,
and the name of its ``.npz``).  Each is written to a temporary name and renamed into
place, the JSON last, so the JSON always names a complete, matching ``.npz``: a crash at
any instant leaves the previous round's checkpoint or the new one, never half of one.
Nothing in it executes when read (``allow_pickle=False``; plain JSON).
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fedkd.coordinator import CoordinatorState
from fedkd.fusion import Knowledge
from fedkd.privacy.accounting import DPSteps
from fedkd.run_directory import CHECKPOINT
from fedkd.wire.types import (
    FusedKnowledge,
    ModelWeights,
    NodeFingerprint,
    TransferSetRef,
    WireDType,
)

FORMAT = "fedkd-server-checkpoint/1"


class CheckpointError(ValueError):
    """A checkpoint that cannot be resumed from (another format, run or transfer set)."""


@dataclass(frozen=True)
class Checkpoint:
    """The state after ``coordinator.completed_round`` rounds, and the metrics so far."""

    fingerprint: str
    coordinator: CoordinatorState
    rows: list[dict[str, Any]]
    names: dict[int, str]
    """Flower node id → node name, for the ids in ``rows``."""
    elapsed_s: float


def save_checkpoint(folder: Path, checkpoint: Checkpoint) -> Path:
    """Write ``checkpoint`` into ``folder`` atomically; return the JSON's path."""
    state = checkpoint.coordinator
    arrays: dict[str, np.ndarray] = {}
    fused_meta = []
    for i, (name, fused) in enumerate(sorted(state.fused.items())):
        arrays[f"fused{i}_anchors"] = fused.anchor_indices
        arrays[f"fused{i}_targets"] = fused.targets
        fused_meta.append(
            {"node": name, "round": fused.round, "strategy": fused.strategy,
             "dtype": fused.dtype.value, "transfer_digest": fused.transfer_set.digest}
        )  # fmt: skip
    shared = state.shared
    if shared is not None and shared.targets is not None:
        arrays["shared_targets"] = shared.targets
    for key, value in (shared.weights if shared is not None and shared.weights else {}).items():
        arrays[f"shared_weight:{key}"] = value
    arrays_name = f"checkpoint-{state.completed_round}.npz"
    _write_atomic(folder / arrays_name, lambda path: np.savez(path, **arrays))  # type: ignore[arg-type]
    body = {
        "format": FORMAT,
        "fingerprint": checkpoint.fingerprint,
        "run_id": state.run_id,
        "completed_round": state.completed_round,
        "arrays": arrays_name,
        "anchor_rng": state.anchor_rng,
        "has_shared": shared is not None,
        "fused": fused_meta,
        "ledger_heads": state.ledger_heads,
        "epsilon_recorded": state.epsilon_recorded,
        "composed": {
            name: [[s.noise_multiplier, s.sample_rate, s.steps] for s in history]
            for name, history in state.composed.items()
        },
        "node_fingerprints": {
            name: dataclasses.asdict(f) for name, f in state.fingerprints.items()
        },
        "rows": checkpoint.rows,
        "names": {str(k): v for k, v in checkpoint.names.items()},
        "elapsed_s": checkpoint.elapsed_s,
    }
    text = json.dumps(body, indent=1, sort_keys=True, allow_nan=False)
    path = _write_atomic(folder / CHECKPOINT, lambda p: p.write_text(text))
    for old in folder.glob("checkpoint-*.npz"):
        if old.name != arrays_name:
            old.unlink(missing_ok=True)
    return path


def load_checkpoint(folder: Path, ref: TransferSetRef) -> Checkpoint | None:
    """The checkpoint in ``folder`` (None when there is none), checked against ``ref``."""
    path = folder / CHECKPOINT
    if not path.exists():
        return None
    body = json.loads(path.read_text())
    if body.get("format") != FORMAT:
        raise CheckpointError(f"{path}: format {body.get('format')!r}, expected {FORMAT!r}")
    with np.load(folder / body["arrays"], allow_pickle=False) as stored:
        arrays = {key: stored[key] for key in stored.files}
    fused = {}
    for i, meta in enumerate(body["fused"]):
        if meta["transfer_digest"] != ref.digest:
            raise CheckpointError(f"{path}: targets on another transfer set")
        fused[meta["node"]] = FusedKnowledge(
            run_id=body["run_id"],
            round=int(meta["round"]),
            transfer_set=ref,
            anchor_indices=arrays[f"fused{i}_anchors"],
            targets=arrays[f"fused{i}_targets"],
            strategy=meta["strategy"],
            dtype=WireDType(meta["dtype"]),
        )
    state = CoordinatorState(
        run_id=body["run_id"],
        completed_round=int(body["completed_round"]),
        anchor_rng=body["anchor_rng"],
        shared=_shared(body, arrays),
        fused=fused,
        ledger_heads=dict(body["ledger_heads"]),
        epsilon_recorded={k: float(v) for k, v in body["epsilon_recorded"].items()},
        composed={
            name: tuple(DPSteps(float(s), float(q), int(n)) for s, q, n in steps)
            for name, steps in body["composed"].items()
        },
        fingerprints={
            name: NodeFingerprint(**parts)
            for name, parts in body.get("node_fingerprints", {}).items()
        },
    )
    return Checkpoint(
        fingerprint=body["fingerprint"],
        coordinator=state,
        rows=list(body["rows"]),
        names={int(k): v for k, v in body["names"].items()},
        elapsed_s=float(body["elapsed_s"]),
    )


def _shared(body: dict[str, Any], arrays: dict[str, np.ndarray]) -> Knowledge | None:
    if not body["has_shared"]:
        return None
    prefix = "shared_weight:"
    weights: ModelWeights = {k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)}
    return Knowledge(targets=arrays.get("shared_targets"), weights=weights or None)


def _write_atomic(path: Path, write: Callable[[Path], object]) -> Path:
    partial = path.with_name(f".{path.name}.partial{path.suffix}")
    write(partial)
    with open(partial, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(partial, path)
    return path
