"""One budget per store for life, measured on one node's store across runs.

The node keeps one state directory; the runs change seed, partition, α and even the
records (one fewer).  Every release composes; a release without a guarantee makes ε
unbounded; δ is fixed; a restarted run still finishes its plan within its target.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fedkd.config import RunConfig, parse_run_config
from fedkd.coordinator import Coordinator, Delivery
from fedkd.privacy.accounting import DPSteps, compose, epsilon
from fedkd.privacy.ledger import Ledger
from fedkd.wire.serde import knowledge_reply_from_bytes
from fedkd.wire.types import KnowledgeReply, ModelWeights, StatusCode
from tests.node_harness import federation, serve

CAP = 1 << 30
BASE: dict[str, Any] = {
    "dataset": "digits",
    "num-clients": 3,
    "partitioner": "dirichlet",
    "dirichlet-alpha": 0.5,
    "transfer-size": 200,
    "num-server-rounds": 2,
    "local-epochs": 1,
    "batch-size": 32,
    "model": "mlp-s",
    "strategy": "mean",
    "dp": True,
    "dp-noise-multiplier": 1.5,
    "dp-accountant": "prv",
}


def _run(cfg: RunConfig, state: Path, **section: Any) -> list[KnowledgeReply]:
    """Node 0 through every round of ``cfg``; the other nodes are not needed."""
    data = federation(cfg)
    coord = Coordinator(cfg, run_id=cfg.run_name, transfer=data.transfer, num_classes=10)
    kept: ModelWeights | None = None
    replies = []
    for round_ in range(1, cfg.num_server_rounds + 1):
        request = coord.requests(round_, [0])[0]
        raw, kept = serve(cfg, 0, request, kept, state_dir=str(state), **section)
        coord.ingest(round_, [Delivery(0, raw)], {0: (len(request), 0)})
        replies.append(knowledge_reply_from_bytes(raw, max_bytes=CAP))
    return replies


def test_every_release_from_the_store_composes_whatever_the_data(tmp_path: Path) -> None:
    state = tmp_path / "hospital"
    runs = [
        {"seed": 0},
        {"seed": 7, "partitioner": "iid"},  # another seed and partition
        {"seed": 7, "dirichlet-alpha": 0.1},  # another α
        {"seed": 0, "max-train-per-client": 100},  # fewer records
    ]
    history: tuple[DPSteps, ...] = ()
    claims = []
    for i, extra in enumerate(runs):
        cfg = parse_run_config({**BASE, **extra, "run-name": f"run-{i}"})
        replies = _run(cfg, state)
        assert all(r.status.code is StatusCode.OK for r in replies)
        for reply in replies:
            spent = DPSteps(1.5, reply.privacy.sample_rate, reply.privacy.release_steps)
            history = compose(history, spent)
            claims.append(reply.privacy.epsilon)
    assert claims == sorted(claims) and claims[-1] > claims[0]
    # The last claim is one accountant over every step of every run (PRV, within its error).
    assert claims[-1] == pytest.approx(epsilon(history, delta=1e-5, accountant="prv"), abs=0.02)
    rows = Ledger.open(state / "node-0.ledger.db").rows()
    assert len(rows) == 8 and len({r.dataset_digest for r in rows}) >= 3


def test_a_release_without_a_guarantee_makes_epsilon_unbounded_for_good(tmp_path: Path) -> None:
    state = tmp_path / "hospital"
    _run(parse_run_config({**BASE, "run-name": "dp"}), state)
    _run(
        parse_run_config({**BASE, "run-name": "plain", "dp": False, "dp-noise-multiplier": 0.0}),
        state,
    )
    later = _run(parse_run_config({**BASE, "run-name": "dp-again"}), state)
    # No budget: the node trains, but no ε can be claimed any more.
    assert [r.status.code for r in later] == [StatusCode.OK] * 2
    assert all(r.privacy.mechanism == "none" for r in later)
    assert later[0].privacy.unbounded_since_row == 3  # the first DP-off release
    # With a finite budget the store refuses.
    budgeted = parse_run_config(
        {**BASE, "run-name": "budget", "dp-target-epsilon": 50.0, "dp-noise-multiplier": 0.0}
    )
    refused = _run(budgeted, state)
    assert refused[0].status.code is StatusCode.BUDGET_EXHAUSTED
    assert "unbounded since ledger row 3" in refused[0].status.reason
    assert refused[0].soft_labels is None


def test_delta_is_fixed_per_store(tmp_path: Path) -> None:
    state = tmp_path / "hospital"
    _run(parse_run_config({**BASE, "run-name": "a"}), state)
    other = _run(parse_run_config({**BASE, "run-name": "b", "dp-delta": 1e-6}), state)
    assert other[0].status.code is StatusCode.POLICY_REFUSED
    assert "δ is fixed at 1e-05 for this store since ledger row 1" in other[0].status.reason


def test_a_restarted_run_completes_its_plan_within_the_target(tmp_path: Path) -> None:
    """Rounds 1–2 of a 4-round plan, then the node restarts with a fresh process and the
    same run continues: σ is recalibrated for what is left, and all 4 rounds fit."""
    state = tmp_path / "hospital"
    cfg = parse_run_config(
        {
            **BASE,
            "run-name": "r",
            "num-server-rounds": 4,
            "dp-noise-multiplier": 0.0,
            "dp-target-epsilon": 2.0,
            # RDP calibrates in milliseconds; what is tested is the plan across a restart,
            # which is the same for either accountant.
            "dp-accountant": "rdp",
        }
    )
    data = federation(cfg)
    coord = Coordinator(cfg, run_id="r", transfer=data.transfer, num_classes=10)
    kept: ModelWeights | None = None
    replies = []
    for round_ in range(1, 5):
        if round_ == 3:
            # A restart loses the process, the model and every cache; the ledger stays.
            from fedkd.privacy import guard

            guard.plan_for.cache_clear()
            kept = None
        request = coord.requests(round_, [0])[0]
        raw, kept = serve(cfg, 0, request, kept, state_dir=str(state))
        coord.ingest(round_, [Delivery(0, raw)], {0: (len(request), 0)})
        replies.append(knowledge_reply_from_bytes(raw, max_bytes=CAP))
    assert [r.status.code for r in replies] == [StatusCode.OK] * 4
    assert 0.8 * 2.0 < replies[-1].privacy.epsilon <= 2.0
    sigmas = {r.noise_multiplier for r in Ledger.open(state / "node-0.ledger.db").rows()}
    assert len(sigmas) == 1  # a run that follows its plan keeps one σ


def test_the_mechanism_and_every_reply_field_ignore_one_record_more_or_less(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A node with a published nominal count and a declared split: with the entropy
    patched constant, one record more changes only the soft labels (and what hashes them)."""
    from fedkd.data.public import PublicDataSpec, load_public_data
    from fedkd.privacy import entropy

    monkeypatch.setattr(entropy, "fresh_bytes", lambda n: bytes(n))
    public = load_public_data(PublicDataSpec("digits", transfer_size=200))
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(121, 1, 8, 8)).astype(np.float32)
    y = rng.integers(0, 10, size=121)
    split = np.array(["train"] * 101 + ["test"] * 20)
    replies = []
    for name, keep in (("all", slice(None)), ("one-fewer", np.arange(121) != 5)):
        path = tmp_path / f"{name}.npz"
        np.savez(path, x=x[keep], y=y[keep], split=split[keep])
        cfg = parse_run_config(
            {**BASE, "run-name": name, "num-server-rounds": 1, "dp-batch-size": 32}
        )
        section = {
            "data": "arrays",
            "data_path": str(path),
            "privacy_nominal_records": 100,
            "privacy_max_epsilon": 50.0,
            "privacy_max_delta": 1e-5,
            "state_dir": str(tmp_path / name),
        }
        data = federation(cfg)
        assert data.transfer.digest == public.transfer.digest
        coord = Coordinator(cfg, run_id="same", transfer=data.transfer, num_classes=10)
        raw, _ = serve(cfg, 0, coord.requests(1, [0])[0], None, **section)
        replies.append(knowledge_reply_from_bytes(raw, max_bytes=CAP))
    a, b = replies
    assert a.status.code is StatusCode.OK and b.status.code is StatusCode.OK
    assert a.num_examples == b.num_examples == 0
    assert a.privacy.sample_rate == b.privacy.sample_rate == 1 / 4  # ⌈100/32⌉ = 4 steps
    for field in ("mechanism", "epsilon", "delta", "noise_multiplier", "steps", "release_steps"):
        assert getattr(a.privacy, field) == getattr(b.privacy, field), field
    assert a.eval is not None and b.eval is not None
    # Only public metrics leave: local ones were redacted in both.
    assert np.isnan(a.eval.local_accuracy) and np.isnan(b.eval.local_accuracy)
    assert (a.run_id, a.round, a.node_id, a.transfer_set) == (
        b.run_id,
        b.round,
        b.node_id,
        b.transfer_set,
    )
    assert not np.array_equal(a.soft_labels, b.soft_labels)  # the records did change
