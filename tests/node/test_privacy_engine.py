"""The node's privacy engine alone: no model, no data provider, no server.

Each test drives :class:`NodePrivacyEngine` as :class:`ClientNode` does — begin, train
(here: say which DP steps were taken), close with the reply — and checks one decision it
owns: refusals, the budget, the spend it states, what it redacts, what it records.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from fedkd.node.local_log import NodeLog
from fedkd.node.privacy_engine import NodePrivacyEngine
from fedkd.node.refusal import Refused
from fedkd.privacy.ledger import Ledger
from fedkd.privacy.policy import PrivacyPolicy, PrivacyRequest
from fedkd.privacy.recipe import PrivateTraining
from fedkd.wire.types import (
    EvalReport,
    KnowledgeReply,
    Status,
    StatusCode,
    TransferSetRef,
)

RECORDS = 1_000
DP_REQUEST = PrivacyRequest(dp=True, target_epsilon=3.0, delta=1e-5)


def _engine(
    tmp_path: Path,
    *,
    request: PrivacyRequest = DP_REQUEST,
    policy: PrivacyPolicy | None = None,
    rounds: int = 3,
) -> NodePrivacyEngine:
    log = NodeLog(
        eval_path=tmp_path / "eval.jsonl",
        log_path=tmp_path / "node.log",
        sent_path=tmp_path / "sent.jsonl",
    )
    return NodePrivacyEngine(
        node_name="node-0",
        policy=policy or PrivacyPolicy(),
        request=request,
        training=PrivateTraining(num_server_rounds=rounds),
        ledger_path=tmp_path / "ledger.db",
        log=log,
    )


def _reply(round_: int) -> KnowledgeReply:
    report = EvalReport(
        evaluated_round=round_ - 1,
        partition_id=0,
        local_accuracy=0.9,
        local_loss=0.3,
        local_test_examples=200,
        global_accuracy=0.8,
        global_loss=0.5,
    )
    return KnowledgeReply(
        run_id="r",
        round=round_,
        node_id=0,
        transfer_set=TransferSetRef(digest="t", num_samples=10, num_classes=2),
        soft_labels=np.full((10, 2), 0.5, np.float32),
        num_examples=RECORDS,
        status=Status(StatusCode.OK),
        eval=report,
    )


def test_a_dp_round_states_its_spend_redacts_and_records_before_the_reply_leaves(
    tmp_path: Path,
) -> None:
    engine = _engine(tmp_path)
    private = engine.begin(ledger_head="", num_records=RECORDS, round_=1, train=True)
    assert private.exhausted == "" and private.plan is not None
    taken = private.plan.round_steps
    private.took(taken)
    sent = private.close(_reply(1), dataset_digest="d", transfer_digest="t")
    # The spend: DP-SGD, this round's steps, ε of exactly what the ledger now holds.
    assert sent.privacy.mechanism == "dp-sgd"
    assert sent.privacy.release_steps == taken.steps > 0
    ledger = Ledger.open(tmp_path / "ledger.db", expected_head=sent.privacy.ledger_head)
    assert len(ledger.history()) == 1
    assert 0 < sent.privacy.epsilon <= 3.0
    # Redaction: no record count and no private measurement leave; the node keeps them.
    assert sent.num_examples == 0
    assert sent.eval is not None and math.isnan(sent.eval.local_accuracy)
    assert sent.eval.global_accuracy == pytest.approx(0.8)
    kept = json.loads((tmp_path / "eval.jsonl").read_text().splitlines()[-1])
    assert kept["local_accuracy"] == pytest.approx(0.9)


def test_without_dp_nothing_is_redacted_and_no_epsilon_is_claimed(tmp_path: Path) -> None:
    engine = _engine(tmp_path, request=PrivacyRequest())
    private = engine.begin(ledger_head="", num_records=RECORDS, round_=1, train=True)
    assert private.plan is None
    sent = private.close(_reply(1), dataset_digest="d", transfer_digest="t")
    assert sent.num_examples == RECORDS and sent.eval == _reply(1).eval
    assert sent.privacy.mechanism == "none" and sent.privacy.epsilon == 0.0
    assert sent.privacy.ledger_head  # recorded all the same


def test_a_policy_that_demands_dp_refuses_a_run_without_it(tmp_path: Path) -> None:
    engine = _engine(tmp_path, request=PrivacyRequest(), policy=PrivacyPolicy(dp_required=True))
    with pytest.raises(Refused) as refused:
        engine.begin(ledger_head="", num_records=RECORDS, round_=1, train=True)
    assert refused.value.code is StatusCode.POLICY_REFUSED
    assert "refused the run" in (tmp_path / "node.log").read_text()


def test_a_ledger_that_does_not_lead_to_the_servers_head_is_refused(tmp_path: Path) -> None:
    engine = _engine(tmp_path)
    with pytest.raises(Refused) as refused:
        engine.begin(ledger_head="f" * 64, num_records=RECORDS, round_=1, train=True)
    assert refused.value.code is StatusCode.LEDGER_REFUSED


def test_the_round_past_the_lifetime_budget_is_refused_before_training(tmp_path: Path) -> None:
    # A fixed σ and a lifetime budget of ε = 2: rounds run while the next one fits, and the
    # first that would not is refused with the spend so far, before any step.
    engine = _engine(
        tmp_path,
        request=PrivacyRequest(dp=True, noise_multiplier=2.0, delta=1e-5),
        policy=PrivacyPolicy(max_epsilon=2.0),
        rounds=50,
    )
    head, spent, rounds_run = "", 0.0, 0
    for round_ in range(1, 51):
        private = engine.begin(ledger_head=head, num_records=RECORDS, round_=round_, train=True)
        if private.exhausted:
            break
        assert private.plan is not None
        private.took(private.plan.round_steps)
        sent = private.close(_reply(round_), dataset_digest="d", transfer_digest="t")
        head, spent, rounds_run = sent.privacy.ledger_head, sent.privacy.epsilon, round_
    assert 1 <= rounds_run < 50 and 0 < spent <= 2.0
    assert "another round would spend" in private.exhausted
    refusal = KnowledgeReply(
        run_id="r",
        round=rounds_run + 1,
        node_id=0,
        transfer_set=TransferSetRef(digest="t", num_samples=10, num_classes=2),
        soft_labels=None,
        num_examples=0,
        status=Status(StatusCode.BUDGET_EXHAUSTED, private.exhausted),
    )
    recorded = private.close(refusal, dataset_digest="d", transfer_digest="t")
    assert recorded.privacy.release_steps == 0
    assert recorded.privacy.epsilon == pytest.approx(spent, rel=1e-9)
    ledger = Ledger.open(tmp_path / "ledger.db", expected_head=recorded.privacy.ledger_head)
    assert sum(steps.steps for steps in ledger.history()) == 8 * rounds_run  # q = 1/8
