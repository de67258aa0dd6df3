"""The node's privacy policy: a run may ask for more protection, never less."""

from __future__ import annotations

import json
import math

import pytest

from fedkd.config import parse_run_config
from fedkd.coordinator import Coordinator, Delivery
from fedkd.privacy.ledger import Ledger
from fedkd.privacy.policy import PolicyRefusal, PrivacyPolicy, PrivacyRequest, resolve_privacy
from fedkd.wire.serde import knowledge_reply_from_bytes
from fedkd.wire.types import KnowledgeReply, StatusCode
from tests.node_harness import federation, node_config, serve

STRICT = PrivacyPolicy(dp_required=True, max_epsilon=3.0, max_delta=1e-5, min_noise_multiplier=0.5)


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (PrivacyRequest(dp=False), "requires DP-SGD"),
        (PrivacyRequest(dp=True, target_epsilon=8.0), "asks for ε = 8; .* at most ε = 3"),
        (PrivacyRequest(dp=True, target_epsilon=3.0, delta=1e-4), "δ = 0.0001"),
        (PrivacyRequest(dp=True, noise_multiplier=0.3), "σ ≥ 0.5"),
        (PrivacyRequest(dp=True, target_epsilon=1.0, swing_scorer="proximity"), "not allowed"),
    ],
)
def test_a_request_weaker_than_the_policy_is_refused(
    request_: PrivacyRequest, message: str
) -> None:
    policy = PrivacyPolicy(**{**STRICT.__dict__, "allowed_scorers": "confidence"})
    with pytest.raises(PolicyRefusal, match=message):
        resolve_privacy(policy, request_)


def test_a_request_for_more_protection_is_taken_and_bounded_by_the_policy() -> None:
    stricter = resolve_privacy(STRICT, PrivacyRequest(dp=True, target_epsilon=1.0, delta=1e-6))
    assert (stricter.budget, stricter.delta) == (1.0, 1e-6)
    # A fixed σ without a target: the node's own cap is the budget.
    fixed = resolve_privacy(STRICT, PrivacyRequest(dp=True, noise_multiplier=1.2))
    assert fixed.budget == 3.0 and not fixed.calibrates
    # No policy: the run's request is all there is; DP off means no budget.
    free = resolve_privacy(PrivacyPolicy(), PrivacyRequest(dp=False))
    assert not free.dp and math.isinf(free.budget)


RUN = {
    "dataset": "digits",
    "num-clients": 2,
    "partitioner": "iid",
    "transfer-size": 200,
    "num-server-rounds": 1,
    "batch-size": 32,
    "model": "mlp-s",
    "strategy": "mean",
    "dp-accountant": "rdp",
}
POLICY = {"privacy-dp-required": True, "privacy-max-epsilon": 3.0}


def _one_round(extra: dict[str, object]) -> tuple[dict[int, KnowledgeReply], dict[int, str]]:
    cfg = parse_run_config({**RUN, **extra})
    data = federation(cfg)
    coord = Coordinator(cfg, run_id="policy", transfer=data.transfer, num_classes=10)
    replies, down = {}, {}
    for n in range(2):
        request = coord.requests(1, [n])[n]
        down[n] = (len(request), 0)
        # Node 0 has the strict policy; node 1 has none of its own.
        section = POLICY if n == 0 else {}
        replies[n], _ = serve(cfg, n, request, None, **section)
    outcome = coord.ingest(1, [Delivery(n, replies[n]) for n in range(2)], down)
    decoded = {n: knowledge_reply_from_bytes(b, max_bytes=1 << 30) for n, b in replies.items()}
    return decoded, outcome.excluded


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"dp": True, "dp-target-epsilon": 8.0}, "asks for ε = 8"),
        ({"dp": False, "dp-target-epsilon": 0.0}, "requires DP-SGD"),
    ],
)
def test_a_node_refuses_a_run_asking_for_less_and_the_others_go_on(
    extra: dict[str, object], message: str
) -> None:
    replies, excluded = _one_round(extra)
    assert replies[0].status.code is StatusCode.POLICY_REFUSED
    assert replies[0].soft_labels is None
    assert list(excluded) == [0] and message in excluded[0]
    assert replies[1].status.code is StatusCode.OK


def test_a_run_within_the_policy_is_served_and_the_policy_is_in_every_ledger_row() -> None:
    cfg = parse_run_config({**RUN, "dp": True, "dp-target-epsilon": 3.0})
    replies, excluded = _one_round({"dp": True, "dp-target-epsilon": 3.0})
    assert excluded == {}
    assert 0 < replies[0].privacy.epsilon <= 3.0
    rows = Ledger.open(node_config(cfg, 0, **POLICY).ledger_path).rows()
    recorded = json.loads(rows[-1].policy)
    assert recorded["dp_required"] is True and recorded["max_epsilon"] == 3.0
    free = Ledger.open(node_config(cfg, 1).ledger_path).rows()
    assert json.loads(free[-1].policy)["max_epsilon"] is None
