"""DP-SGD through whole rounds, no Flower: composition, budget refusal, ledger, restarts."""

from __future__ import annotations

import math
import multiprocessing
from pathlib import Path
from typing import Any

import pytest

from fedkd.config import RunConfig, parse_run_config
from fedkd.coordinator import Coordinator, Delivery, RoundOutcome
from fedkd.data.transfer import content_digest
from fedkd.privacy.accounting import DPSteps, compose, epsilon
from fedkd.privacy.ledger import Ledger
from fedkd.privacy.node_registry import NodeRegistry
from fedkd.privacy.sampling import sample_rate, steps_per_epoch
from fedkd.wire.serde import knowledge_reply_from_bytes
from fedkd.wire.types import KnowledgeReply, ModelWeights, StatusCode
from tests.node_harness import federation, node_config, plan_of, serve

CAP = 1 << 30


def _cfg(**extra: object) -> RunConfig:
    base: dict[str, object] = {
        "dataset": "digits",
        "num-clients": 3,
        "partitioner": "iid",
        "transfer-size": 200,
        "num-server-rounds": 3,
        "local-epochs": 1,
        "batch-size": 32,
        "dp-batch-size": 32,
        "model": "mlp-s",
        "strategy": "mean",
        "seed": 5,
        "dp": True,
        "dp-target-epsilon": 3.0,
        "dp-accountant": "rdp",
    }
    return parse_run_config({**base, **extra})


def _run_round(
    cfg: RunConfig,
    coord: Coordinator,
    states: dict[int, ModelWeights | None],
    round_: int,
    **section: Any,
) -> tuple[RoundOutcome, dict[int, KnowledgeReply]]:
    payloads, down = {}, {}
    for n in states:
        request = coord.requests(round_, [n])[n]
        down[n] = (len(request), 0)
        payloads[n], states[n] = serve(
            cfg, n, request, states[n], train=round_ <= cfg.num_server_rounds, **section
        )
    outcome = coord.ingest(round_, [Delivery(n, payloads[n]) for n in states], down)
    return outcome, {n: knowledge_reply_from_bytes(b, max_bytes=CAP) for n, b in payloads.items()}


def test_epsilon_composes_round_by_round_and_matches_the_ledger() -> None:
    cfg = _cfg()
    data = federation(cfg)
    coord = Coordinator(cfg, run_id="dp", transfer=data.transfer, num_classes=10)
    states: dict[int, ModelWeights | None] = dict.fromkeys(range(3))
    n = len(data.clients[0].train)
    plan = plan_of(cfg, n)
    per_round = steps_per_epoch(n, cfg.dp_batch_size)
    history: tuple[DPSteps, ...] = ()
    previous = 0.0
    for round_ in range(1, cfg.num_server_rounds + 1):
        outcome, replies = _run_round(cfg, coord, states, round_)
        assert outcome.accepted == [0, 1, 2]
        history = compose(history, DPSteps(plan.noise_multiplier, sample_rate(n, 32), per_round))
        reply = replies[0]
        assert reply.privacy.mechanism == "dp-sgd"
        assert reply.privacy.steps == round_ * per_round
        assert reply.privacy.epsilon == pytest.approx(
            epsilon(history, delta=1e-5, accountant="rdp"), abs=1e-9
        )
        assert reply.privacy.epsilon > previous
        previous = reply.privacy.epsilon
        # Nothing computed on private data crosses the wire unaccounted.
        assert reply.num_examples == 0
        assert reply.eval is not None and math.isnan(reply.eval.local_accuracy)
        assert reply.eval.local_test_examples == 0 and not reply.eval.phase_seconds
        assert 0 <= reply.eval.global_accuracy <= 1
    # Calibrated for exactly the planned rounds: all of them ran, inside the budget.
    assert 0.8 * 3.0 < previous <= 3.0
    rows = Ledger.open(node_config(cfg, 0).ledger_path).rows()
    assert [r.round for r in rows] == [1, 2, 3]
    assert [r.steps for r in rows] == [per_round] * 3
    assert all(r.sample_rate == sample_rate(n, 32) for r in rows)
    assert rows[-1].epsilon == pytest.approx(previous)
    assert rows[-1].row_hash == coord.ledger_heads[0]
    assert "soft_labels" in rows[0].fields_sent
    assert "eval.local_accuracy" not in rows[0].fields_sent
    assert "num_examples" not in rows[0].fields_sent
    # Local metrics went to the node's own log instead.
    assert len(node_config(cfg, 0).eval_log_path.read_text().splitlines()) == 3


def test_a_round_past_the_budget_is_refused_with_a_typed_status() -> None:
    planned = _cfg(**{"num-server-rounds": 2})
    data = federation(planned)
    # Same σ as planned for 2 rounds, but the server asks for a third.
    sigma = plan_of(planned, len(data.clients[0].train)).noise_multiplier
    longer = _cfg(**{"num-server-rounds": 3, "dp-noise-multiplier": sigma})
    coord = Coordinator(longer, run_id="dp", transfer=data.transfer, num_classes=10)
    states: dict[int, ModelWeights | None] = dict.fromkeys(range(3))
    for round_ in (1, 2):
        outcome, _ = _run_round(longer, coord, states, round_)
        assert outcome.accepted == [0, 1, 2]
    kept = dict(states)
    outcome, replies = _run_round(longer, coord, states, 3)
    assert outcome.accepted == []
    for n in range(3):
        assert replies[n].status.code is StatusCode.BUDGET_EXHAUSTED
        assert replies[n].soft_labels is None
        assert "ε > 3.0" in outcome.excluded[n]
        assert states[n] is kept[n]  # no training happened
    rows = Ledger.open(node_config(longer, 0).ledger_path).rows()
    assert [r.steps for r in rows][-1] == 0 and rows[-1].payload_sha256
    assert rows[-1].epsilon == rows[-2].epsilon  # the refusal spent nothing


def _serve_in_new_process(args: tuple[RunConfig, bytes, ModelWeights | None, str]) -> bytes:
    cfg, request, state, cwd = args
    import os

    os.chdir(cwd)
    reply, _ = serve(cfg, 0, request, state)
    return reply


def test_a_restarted_node_continues_from_its_recorded_spend(tmp_path: Path) -> None:
    cfg = _cfg()
    data = federation(cfg)
    coord = Coordinator(cfg, run_id="dp", transfer=data.transfer, num_classes=10)
    states: dict[int, ModelWeights | None] = dict.fromkeys(range(3))
    _, first = _run_round(cfg, coord, states, 1)
    # Round 2 for node 0 served by a brand-new process: only the ledger carries the spend.
    context = multiprocessing.get_context("spawn")
    with context.Pool(1) as pool:
        raw = pool.map(
            _serve_in_new_process,
            [(cfg, coord.requests(2, [0])[0], states[0], str(Path.cwd()))],
        )[0]
    second = knowledge_reply_from_bytes(raw, max_bytes=CAP)
    assert second.status.code is StatusCode.OK
    assert second.privacy.steps == 2 * first[0].privacy.steps
    assert second.privacy.epsilon > first[0].privacy.epsilon


@pytest.mark.parametrize("damage", ["delete", "corrupt"])
def test_a_lost_or_corrupted_ledger_makes_the_node_refuse(damage: str) -> None:
    cfg = _cfg()
    data = federation(cfg)
    coord = Coordinator(cfg, run_id="dp", transfer=data.transfer, num_classes=10)
    states: dict[int, ModelWeights | None] = dict.fromkeys(range(3))
    _run_round(cfg, coord, states, 1)
    path = node_config(cfg, 1).ledger_path
    if damage == "delete":
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
    else:
        import sqlite3

        db = sqlite3.connect(path)
        db.execute("DROP TRIGGER releases_no_update")
        db.execute("UPDATE releases SET steps = 1")
        db.commit()
        db.close()
    outcome, replies = _run_round(cfg, coord, states, 2)
    assert outcome.accepted == [0, 2]
    assert replies[1].status.code is StatusCode.LEDGER_REFUSED
    assert replies[1].soft_labels is None
    assert "ledger" in outcome.excluded[1]


def test_the_registry_carries_heads_across_runs_and_catches_a_ledger_lost_between_them(
    tmp_path: Path,
) -> None:
    # Nodes that outlive runs: ledgers under a state-dir of their own, and the server's
    # record in a registry file.  A fixed σ and a budget that three runs fit in.
    nodes_dir = str(tmp_path / "nodes")
    cfg = _cfg(
        **{"num-server-rounds": 1},
        **{"dp-noise-multiplier": 1.0, "dp-target-epsilon": 100.0},
        **{"privacy-registry": str(tmp_path / "server" / "registry.db")},
    )
    data = federation(cfg)

    def hello(coord: Coordinator) -> None:
        """Round 0: the nodes say their names (and so which recorded heads are theirs)."""
        answers = [
            Delivery(n, serve(cfg, n, coord.requests(0, [n])[n], None, state_dir=nodes_dir)[0])
            for n in range(3)
        ]
        assert coord.hello(answers) == {n: f"node-{n}" for n in range(3)}

    def one_run(run_id: str) -> dict[int, KnowledgeReply]:
        registry = NodeRegistry.open(cfg.privacy_registry)
        coord = Coordinator(
            cfg, run_id=run_id, transfer=data.transfer, num_classes=10, registry=registry
        )
        hello(coord)
        states: dict[int, ModelWeights | None] = dict.fromkeys(range(3))
        _, replies = _run_round(cfg, coord, states, 1, state_dir=nodes_dir)
        return replies

    replies = one_run("run-1")
    heads = {f"node-{n}": r.privacy.ledger_head for n, r in replies.items()}
    assert NodeRegistry.open(cfg.privacy_registry).heads() == heads

    # After the handshake the next run's first request carries each node's head from the
    # last run (by the node's name, not Flower's per-run id), and the nodes' spend
    # continues from their ledgers.
    second_coord = Coordinator(
        cfg,
        run_id="run-2",
        transfer=data.transfer,
        num_classes=10,
        registry=NodeRegistry.open(cfg.privacy_registry),
    )
    assert second_coord.ledger_head_of(2) == ""  # not known to be node-2 yet
    hello(second_coord)
    assert second_coord.ledger_head_of(2) == heads["node-2"]
    second = one_run("run-2")
    assert all(r.status.code is StatusCode.OK for r in second.values())
    assert second[0].privacy.steps == 2 * replies[0].privacy.steps

    # Node 1 loses its ledger between runs: the third run refuses it, not restarts it.
    for suffix in ("", "-wal", "-shm"):
        Path(f"{node_config(cfg, 1, state_dir=nodes_dir).ledger_path}{suffix}").unlink(
            missing_ok=True
        )
    third = one_run("run-3")
    assert third[1].status.code is StatusCode.LEDGER_REFUSED
    assert third[0].status.code is StatusCode.OK and third[2].status.code is StatusCode.OK
    runs = [o.run_id for o in NodeRegistry.open(cfg.privacy_registry).observations("node-0")]
    assert runs == ["run-1", "run-2", "run-3"]


def test_a_scorer_reading_private_records_drops_the_epsilon_claim() -> None:
    cfg = _cfg(**{"swing-scorer": "proximity", "swing-noise-scale": 0.01})
    assert not cfg.claims_dp
    data = federation(cfg)
    coord = Coordinator(cfg, run_id="dp", transfer=data.transfer, num_classes=10)
    states: dict[int, ModelWeights | None] = dict.fromkeys(range(3))
    outcome, replies = _run_round(cfg, coord, states, 1)
    assert outcome.accepted == [0, 1, 2]
    assert replies[0].privacy.mechanism == "none"
    assert outcome.nodes[0].privacy_epsilon is None
    ledger = Ledger.open(node_config(cfg, 0).ledger_path)
    row = ledger.rows()[0]
    assert row.epsilon is None and row.mechanism == "dp-sgd-unclaimed" and row.steps > 0
    # The records' digest appears only keyed with the node's secret.
    digest = content_digest(data.clients[0].train.x, data.clients[0].train.y)
    assert row.dataset_digest == ledger.keyed(digest) != digest
    # From that release on, the store's ε is unbounded: later claims carry no ε.
    assert ledger.unbounded_since() == 1


def test_the_confidence_scorer_keeps_the_claim() -> None:
    cfg = _cfg(**{"swing-scorer": "confidence", "swing-noise-scale": 0.01})
    assert cfg.claims_dp
    data = federation(cfg)
    coord = Coordinator(cfg, run_id="dp", transfer=data.transfer, num_classes=10)
    states: dict[int, ModelWeights | None] = dict.fromkeys(range(3))
    outcome, replies = _run_round(cfg, coord, states, 1)
    assert outcome.accepted == [0, 1, 2]
    assert replies[0].privacy.epsilon > 0
    labels = replies[0].soft_labels
    assert labels is not None and abs(float(labels.sum(axis=1).mean()) - 1) < 1e-4


def test_a_reply_claiming_no_spend_is_rejected_when_the_run_requires_dp() -> None:
    import dataclasses

    from fedkd.wire.serde import knowledge_reply_to_bytes
    from fedkd.wire.types import PrivacySpend

    cfg = _cfg()
    data = federation(cfg)
    coord = Coordinator(cfg, run_id="dp", transfer=data.transfer, num_classes=10)
    states: dict[int, ModelWeights | None] = dict.fromkeys(range(3))
    payloads = {}
    for n in range(3):
        payloads[n], states[n] = serve(cfg, n, coord.requests(1, [n])[n], states[n])
    liar = knowledge_reply_from_bytes(payloads[2], max_bytes=CAP)
    payloads[2] = knowledge_reply_to_bytes(dataclasses.replace(liar, privacy=PrivacySpend()))
    outcome = coord.ingest(1, [Delivery(n, payloads[n]) for n in range(3)], {})
    assert outcome.accepted == [0, 1]
    assert "claims no privacy spend" in outcome.excluded[2]


def test_every_step_that_saw_a_private_record_is_accounted_and_in_the_ledger(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A hook on every model the node builds counts training-mode forward passes whose
    batch holds at least one private training record; accountant and ledger must agree."""
    import hashlib

    import numpy as np
    import torch

    cfg = _cfg(**{"distill-ce-weight": 1.0, "local-epochs": 2})
    data = federation(cfg)
    private = {
        hashlib.sha256(np.ascontiguousarray(row).tobytes()).digest()
        for row in data.clients[0].train.x
    }
    steps_seen: list[int] = []

    def counting_init(*args: object, **kwargs: object) -> torch.nn.Module:
        model = original_init(*args, **kwargs)  # type: ignore[arg-type]

        def hook(module: torch.nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
            if not module.training:
                return
            rows = inputs[0].detach().cpu().numpy().reshape(len(inputs[0]), -1)
            if any(hashlib.sha256(r.tobytes()).digest() in private for r in rows):
                steps_seen.append(len(rows))

        model.register_forward_pre_hook(hook)
        return model

    from fedkd.node.model import init_model as original_init

    monkeypatch.setattr("fedkd.node.client_node.init_model", counting_init)
    coord = Coordinator(cfg, run_id="dp", transfer=data.transfer, num_classes=10)
    states: dict[int, ModelWeights | None] = {0: None}
    replies: dict[int, KnowledgeReply] = {}
    for round_ in range(1, cfg.num_server_rounds + 2):
        request = coord.requests(round_, [0])[0]
        raw, states[0] = serve(cfg, 0, request, states[0], train=round_ <= cfg.num_server_rounds)
        coord.ingest(round_, [Delivery(0, raw)], {0: (len(request), 0)})
        replies[round_] = knowledge_reply_from_bytes(raw, max_bytes=CAP)
    rows = Ledger.open(node_config(cfg, 0).ledger_path).rows()
    final = replies[cfg.num_server_rounds + 1].privacy
    # Distillation's CE-on-private term is off under DP: DP-SGD steps are the only ones.
    assert len(steps_seen) == final.steps == sum(r.steps for r in rows)
    n = len(data.clients[0].train)
    assert {r.sample_rate for r in rows if r.steps} == {sample_rate(n, cfg.dp_batch_size)}
    assert final.epsilon == pytest.approx(
        epsilon(
            (DPSteps(final.noise_multiplier, final.sample_rate, len(steps_seen)),),
            delta=cfg.dp_delta,
            accountant="rdp",
        ),
        abs=1e-9,
    )


def test_swing_on_the_receiving_side_changes_what_is_distilled() -> None:
    released: dict[bool, list[object]] = {}
    for receive in (False, True):
        cfg = _cfg(
            **{
                "dp": False,
                "dp-target-epsilon": 0.0,
                "swing-scorer": "confidence",
                "swing-max-temperature": 20.0,
                "swing-receive": receive,
                "num-server-rounds": 2,
            }
        )
        data = federation(cfg)
        coord = Coordinator(cfg, run_id="sw", transfer=data.transfer, num_classes=10)
        states: dict[int, ModelWeights | None] = dict.fromkeys(range(3))
        released[receive] = [_run_round(cfg, coord, states, r)[1][0].soft_labels for r in (1, 2)]
    import numpy as np

    # Round 1 has nothing to receive: identical.  Round 2 follows a distillation toward
    # hotter targets: different.
    np.testing.assert_array_equal(released[False][0], released[True][0])
    assert not np.array_equal(released[False][1], released[True][1])  # type: ignore[arg-type]


def test_a_reply_under_claiming_its_composed_epsilon_is_rejected() -> None:
    import dataclasses

    from fedkd.wire.serde import knowledge_reply_to_bytes

    cfg = _cfg()
    data = federation(cfg)
    coord = Coordinator(cfg, run_id="dp", transfer=data.transfer, num_classes=10)
    states: dict[int, ModelWeights | None] = dict.fromkeys(range(3))
    outcome, honest = _run_round(cfg, coord, states, 1)
    assert outcome.accepted == [0, 1, 2]
    payloads, down = {}, {}
    for n in range(3):
        request = coord.requests(2, [n])[n]
        down[n] = (len(request), 0)
        payloads[n], states[n] = serve(cfg, n, request, states[n])
    # Node 2 claims no more than after round 1, although it released round 2's steps too.
    reply = knowledge_reply_from_bytes(payloads[2], max_bytes=CAP)
    assert reply.privacy.release_steps > 0
    forged = dataclasses.replace(reply.privacy, epsilon=honest[2].privacy.epsilon)
    payloads[2] = knowledge_reply_to_bytes(dataclasses.replace(reply, privacy=forged))
    outcome = coord.ingest(2, [Delivery(n, payloads[n]) for n in range(3)], down)
    assert outcome.accepted == [0, 1]
    assert "under-claimed" in outcome.excluded[2]


def test_a_run_with_dp_off_reports_no_epsilon_whatever_a_reply_claims() -> None:
    import dataclasses

    from fedkd.wire.serde import knowledge_reply_to_bytes
    from fedkd.wire.types import PrivacySpend

    cfg = _cfg(**{"dp": False, "dp-target-epsilon": 0.0})
    data = federation(cfg)
    coord = Coordinator(cfg, run_id="off", transfer=data.transfer, num_classes=10)
    request = coord.requests(1, [0])[0]
    raw, _ = serve(cfg, 0, request, None)
    reply = knowledge_reply_from_bytes(raw, max_bytes=CAP)
    claim = PrivacySpend(mechanism="dp-sgd", epsilon=0.002, delta=1e-5, accountant="rdp")
    forged = knowledge_reply_to_bytes(dataclasses.replace(reply, privacy=claim))
    outcome = coord.ingest(1, [Delivery(0, forged)], {0: (len(request), 0)})
    assert outcome.accepted == [0] and outcome.nodes[0].privacy_epsilon is None
    assert coord.epsilon_recorded == {}
