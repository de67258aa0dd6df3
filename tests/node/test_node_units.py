"""The node's small pieces, each alone: config, budget refusal, redaction, ledger writes, logs."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from fedkd.node.budget import budget_refusal
from fedkd.node.config import parse_node_config
from fedkd.node.local_log import NodeLog
from fedkd.node.records import record_reply
from fedkd.node.redaction import redact_report, reported_record_count
from fedkd.privacy.accounting import Budget, DPSteps, epsilon
from fedkd.privacy.guard import PrivacyPlan
from fedkd.privacy.ledger import Ledger
from fedkd.privacy.policy import PrivacyPolicy, PrivacyRequest, resolve_privacy
from fedkd.wire.types import EvalReport, KnowledgeReply, PrivacySpend, TransferSetRef

REPORT = EvalReport(
    evaluated_round=2,
    partition_id=1,
    local_accuracy=0.9,
    local_loss=0.3,
    local_test_examples=120,
    global_accuracy=0.8,
    global_loss=0.5,
    train_loss=0.2,
    distill_loss=0.1,
    phase_seconds={"train": 1.5},
    model="mlp-s",
)


def test_node_config_reads_a_file_and_inline_keys_override_it(tmp_path: Path) -> None:
    path = tmp_path / "node.toml"
    path.write_text(
        'name = "cleveland"\ndata = "csv"\ndata-path = "/d/c.csv"\n'
        "privacy-max-epsilon = 3\nprivacy-max-delta = 1e-5\nprivacy-dp-required = true\n"
    )
    cfg = parse_node_config({"config": str(path), "state-dir": str(tmp_path / "s")})
    assert cfg.name == "cleveland" and cfg.data == "csv"
    assert dict(cfg.data_options) == {"path": "/d/c.csv"}
    assert cfg.policy.max_epsilon == 3.0 and cfg.policy.requires_dp
    assert cfg.ledger_path == tmp_path / "s" / "cleveland.ledger.db"
    assert parse_node_config(cfg.to_flat()) == cfg  # round trip
    # 0 in a file means no cap; Flower's --node-config may pass booleans as text.
    loose = parse_node_config({"privacy-max-epsilon": 0, "privacy-dp-required": "false"})
    assert math.isinf(loose.policy.max_epsilon) and not loose.policy.requires_dp


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"colour": "red"}, "unknown node config key 'colour'"),
        ({"privacy-max-epsilon": "three"}, "privacy-max-epsilon must be float"),
        ({"privacy-max-delta": 0.5, "privacy-nominal-records": 100}, "below 1/n"),
        ({"name": "../etc"}, "file-name-safe"),
        ({"config": "/nowhere/node.toml"}, "does not exist"),
    ],
)
def test_node_config_errors_are_specific(raw: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_node_config(raw)


def test_budget_refusal_refuses_exactly_the_round_that_would_overspend() -> None:
    step = DPSteps(noise_multiplier=1.0, sample_rate=0.05, steps=20)
    budget = Budget(
        epsilon=epsilon((step, step), delta=1e-5, accountant="rdp") + 1e-9,
        delta=1e-5,
        accountant="rdp",
    )
    plan = PrivacyPlan(1.0, 0.05, 20, budget)
    assert budget_refusal(plan, ()) == ""
    assert budget_refusal(plan, (step,)) == ""  # the second round just fits
    reason = budget_refusal(plan, (DPSteps(1.0, 0.05, 40),))
    assert reason.startswith(f"another round would spend ε > {budget.epsilon}")
    assert budget_refusal(None, (step,)) == ""  # no DP: nothing to refuse
    assert budget_refusal(PrivacyPlan(1.0, 0.05, 20, None), (step,) * 50) == ""


def test_redaction_keeps_only_public_metrics_under_dp() -> None:
    assert redact_report(REPORT, dp=False) == REPORT
    sent = redact_report(REPORT, dp=True)
    assert (sent.global_accuracy, sent.global_loss) == (0.8, 0.5)
    assert math.isnan(sent.local_accuracy) and math.isnan(sent.local_loss)
    assert math.isnan(sent.train_loss) and math.isnan(sent.distill_loss)
    assert sent.local_test_examples == 0 and sent.phase_seconds == {}
    assert reported_record_count(4321, dp=False) == 4321
    assert reported_record_count(4321, dp=True) == 0


def test_a_reply_is_recorded_with_the_nodes_policy_before_it_goes(tmp_path: Path) -> None:
    policy = PrivacyPolicy(max_epsilon=3.0)
    privacy = resolve_privacy(policy, PrivacyRequest(dp=True, target_epsilon=2.0))
    assert privacy.budget == 2.0  # the stricter of request and policy
    ledger = Ledger.open(tmp_path / "n.ledger.db")
    reply = KnowledgeReply(
        run_id="r",
        round=1,
        node_id=7,
        transfer_set=TransferSetRef("sha256:t", 10, 2),
        soft_labels=None,
        num_examples=0,
        privacy=PrivacySpend(mechanism="dp-sgd", epsilon=0.5, delta=1e-5, accountant="prv"),
    )
    stamped = record_reply(
        ledger,
        reply,
        privacy=privacy,
        dataset_digest="sha256:d",
        transfer_digest="sha256:t",
        taken=DPSteps(1.1, 0.02, 50),
    )
    (row,) = ledger.rows()
    assert stamped.privacy.ledger_head == row.row_hash == ledger.verify()
    assert json.loads(row.policy)["max_epsilon"] == 3.0
    assert (row.steps, row.noise_multiplier, row.epsilon) == (50, 1.1, 0.5)


def test_a_ledger_from_before_policies_still_verifies_and_grows(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "old.ledger.db"
    ledger = Ledger.open(path)
    privacy = resolve_privacy(PrivacyPolicy(), PrivacyRequest())
    reply = KnowledgeReply("r", 1, 1, TransferSetRef("t", 1, 2), None, 0)
    record_reply(
        ledger, reply, privacy=privacy, dataset_digest="d", transfer_digest="t", taken=None
    )
    # Rewrite it as an old ledger: no policy column, rows hashed without the field.
    db = sqlite3.connect(path)
    old_rows = db.execute("SELECT * FROM releases").fetchall()
    assert len(old_rows) == 1
    db.close()
    row = ledger.rows()[0]
    from dataclasses import replace

    from fedkd.privacy.ledger import Release, row_digest

    fields = {f: getattr(row, f) for f in Release.__dataclass_fields__}
    old_hash = row_digest(
        "0" * 64,
        replace(Release(**fields), policy="", randomness=""),
        seq=1,
        created_at=row.created_at,
    )
    path.unlink()
    db = sqlite3.connect(path)
    db.executescript(
        "CREATE TABLE releases (seq INTEGER PRIMARY KEY, run_id TEXT NOT NULL, round INTEGER NOT "
        "NULL, node_id TEXT NOT NULL, dataset_digest TEXT NOT NULL, transfer_digest TEXT NOT NULL,"
        " mechanism TEXT NOT NULL, accountant TEXT NOT NULL, noise_multiplier REAL NOT NULL, "
        "sample_rate REAL NOT NULL, steps INTEGER NOT NULL, epsilon REAL, delta REAL NOT NULL, "
        "payload_sha256 TEXT NOT NULL, fields_sent TEXT NOT NULL, created_at TEXT NOT NULL, "
        "prev_hash TEXT NOT NULL, row_hash TEXT NOT NULL UNIQUE);"
    )
    db.execute(
        "INSERT INTO releases VALUES (1,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        (
            row.run_id,
            row.round,
            str(row.node_id),
            row.dataset_digest,
            row.transfer_digest,
            row.mechanism,
            row.accountant,
            row.noise_multiplier,
            row.sample_rate,
            row.steps,
            row.epsilon,
            row.delta,
            row.payload_sha256,
            json.dumps(list(row.fields_sent)),
            row.created_at,
            row.prev_hash,
            old_hash,
        ),
    )
    db.commit()
    db.close()
    reopened = Ledger.open(path, expected_head=old_hash)
    record_reply(
        reopened, reply, privacy=privacy, dataset_digest="d", transfer_digest="t", taken=None
    )
    rows = reopened.rows()
    assert rows[0].policy == "" and rows[1].policy == PrivacyPolicy().to_json()
    assert reopened.verify() == rows[1].row_hash


def test_the_local_log_keeps_evaluations_and_problems(tmp_path: Path) -> None:
    log = NodeLog(eval_path=tmp_path / "n.eval.jsonl", log_path=tmp_path / "n.log")
    log.evaluation(REPORT)
    log.evaluation(REPORT)
    assert log.evaluations() == [REPORT, REPORT]
    log.problem("column 'age' is missing")
    assert log.log_path.read_text().strip().endswith("column 'age' is missing")


def test_building_a_model_leaves_the_global_random_state_alone() -> None:
    import torch

    from fedkd.node.model import init_model, model_state

    before = torch.random.get_rng_state()
    a = init_model("mlp-s", input_shape=(1, 8, 8), num_classes=10, run_seed=3)
    assert torch.equal(before, torch.random.get_rng_state())
    b = init_model("mlp-s", input_shape=(1, 8, 8), num_classes=10, run_seed=3)
    c = init_model("mlp-s", input_shape=(1, 8, 8), num_classes=10, run_seed=4)
    sa, sb, sc = model_state(a), model_state(b), model_state(c)
    assert all((sa[k] == sb[k]).all() for k in sa)  # same seed and architecture: same start
    assert any((sa[k] != sc[k]).any() for k in sa)
