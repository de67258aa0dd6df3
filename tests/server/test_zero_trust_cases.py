"""Each reply that once sank a run or took the fusion, as a named test of the server.

Built on the fuzz suite's harness (:mod:`tests.server.test_reply_rules_fuzz`): four nodes,
node 3 hostile, through :meth:`Coordinator.ingest` with real fusion.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest

from fedkd.coordinator import Coordinator, Delivery
from fedkd.fusion import Contribution
from fedkd.fusion.base import contribution_weights
from fedkd.privacy.node_registry import NodeRegistry
from fedkd.wire.serde import knowledge_reply_to_proto
from fedkd.wire.types import KnowledgeReply
from tests.server.test_reply_rules_fuzz import (
    DP,
    EPSILON,
    FUZZED,
    NAMES,
    NODES,
    PUBLIC_KEYS,
    ROSTER,
    TRANSFER,
    WEIGHTS,
    Harness,
    Raw,
    _coordinator,
    _hello,
    _honest,
    _round,
    _wire,
)


def _attacked(
    harness: Harness, round_: int, craft: KnowledgeReply | Raw
) -> tuple[Coordinator, object]:
    coord = _coordinator(harness)
    for earlier in range(1, round_):
        _round(harness, coord, earlier, _wire(harness, _honest(harness, FUZZED, earlier)))
    return coord, _round(harness, coord, round_, _wire(harness, craft))


def _excluded(outcome: object, rule: str) -> str:
    node = outcome.nodes[FUZZED]  # type: ignore[attr-defined]
    assert (node.status, node.rule) == ("invalid", rule), node.reason
    assert outcome.accepted == [0, 1, 2]  # type: ignore[attr-defined]
    return str(node.reason)


def _privacy(reply: KnowledgeReply, **changes: object) -> KnowledgeReply:
    return dataclasses.replace(reply, privacy=dataclasses.replace(reply.privacy, **changes))


def test_a_soft_label_tensor_declared_0_by_2_32_by_2_32_is_refused_before_reshaping() -> None:
    message = knowledge_reply_to_proto(_honest(DP, FUZZED, 1))
    del message.soft_labels.shape[:]
    message.soft_labels.shape.extend([0, 2**32 - 1, 2**32 - 1])
    message.soft_labels.data = b""
    _, outcome = _attacked(DP, 1, Raw(bytes(message.SerializeToString())))
    assert "expected (12, 10)" in _excluded(outcome, "tensor.shape")


def test_the_same_tensor_at_the_handshake_teaches_nothing_and_ends_nothing() -> None:
    message = knowledge_reply_to_proto(dataclasses.replace(_honest(DP, FUZZED, 1), round=0))
    del message.soft_labels.shape[:]
    message.soft_labels.shape.extend([0, 2**32 - 1, 2**32 - 1])
    message.soft_labels.data = b""
    coord = Coordinator(
        DP.cfg, run_id="fuzz-run", transfer=TRANSFER, num_classes=10, signing_keys=PUBLIC_KEYS
    )
    deliveries = [Delivery(n, _wire(DP, _hello(n), n)) for n in range(NODES - 1)]
    deliveries.append(Delivery(FUZZED, _wire(DP, Raw(bytes(message.SerializeToString())))))
    assert coord.hello(deliveries) == {n: NAMES[n] for n in range(NODES - 1)}


@pytest.mark.parametrize(
    ("field", "value"),
    [("noise_multiplier", math.nan), ("sample_rate", 2.0), ("sample_rate", math.nan)],
)
def test_a_dp_claim_with_impossible_parameters_is_excluded(field: str, value: float) -> None:
    _, outcome = _attacked(DP, 1, _privacy(_honest(DP, FUZZED, 1), **{field: value}))
    _excluded(outcome, "claim.parameters")


def test_release_steps_0_does_not_skip_the_composition() -> None:
    liar = _privacy(_honest(DP, FUZZED, 1), release_steps=0, epsilon=0.001)
    _, outcome = _attacked(DP, 1, liar)
    assert "plan is 10" in _excluded(outcome, "claim.steps")


def test_a_claim_under_another_delta_is_excluded() -> None:
    _, outcome = _attacked(DP, 1, _privacy(_honest(DP, FUZZED, 1), delta=1e-3))
    _excluded(outcome, "claim.parameters")


@pytest.mark.parametrize("mechanism", ["lol", "", "DP-SGD"])
def test_a_mechanism_outside_the_closed_set_is_excluded(mechanism: str) -> None:
    reply = _privacy(_honest(DP, FUZZED, 1), mechanism=mechanism, epsilon=0.0)
    _, outcome = _attacked(DP, 1, reply)
    _excluded(outcome, "claim.mechanism")


def test_an_under_claim_later_in_the_run_is_excluded() -> None:
    liar = _privacy(_honest(DP, FUZZED, 2), epsilon=EPSILON[1])
    coord, outcome = _attacked(DP, 2, liar)
    _excluded(outcome, "claim.composition")
    assert coord.epsilon_recorded[FUZZED] == EPSILON[1]  # nothing recorded from the lie


def test_under_dp_a_node_claiming_one_record_gets_no_more_weight_than_any() -> None:
    grab = dataclasses.replace(_honest(DP, FUZZED, 1), num_examples=1)
    coord, outcome = _attacked(DP, 1, grab)
    assert outcome.accepted == [0, 1, 2, 3]  # type: ignore[attr-defined]
    honest = _coordinator(DP)
    _round(DP, honest, 1, _wire(DP, _honest(DP, FUZZED, 1)))
    for n in range(NODES):  # exactly the targets of the round where it claimed nothing
        np.testing.assert_array_equal(
            coord.knowledge.fused[n].targets, honest.knowledge.fused[n].targets
        )


def test_outside_dp_a_count_of_10_to_the_9_holds_at_most_3_of_7() -> None:
    claims = {n: Contribution(num_examples=100) for n in range(4)}
    claims[4] = Contribution(num_examples=10**9)
    weights = contribution_weights(claims, list(range(5)))
    assert weights[4] / weights.sum() == pytest.approx(3 / 7)


def test_a_zero_model_is_excluded_as_an_outlier() -> None:
    zero = _honest(WEIGHTS, FUZZED, 2)
    zeros = {k: np.zeros_like(v) for k, v in (zero.weights or {}).items()}
    zero = dataclasses.replace(zero, weights=zeros, num_examples=1)
    _, outcome = _attacked(WEIGHTS, 2, zero)
    _excluded(outcome, "fusion.outlier")


def test_weights_of_3e38_are_excluded_and_the_average_stays_finite() -> None:
    huge = _honest(WEIGHTS, FUZZED, 1)
    huge = dataclasses.replace(
        huge, weights={k: np.full_like(v, 3e38) for k, v in (huge.weights or {}).items()}
    )
    coord, outcome = _attacked(WEIGHTS, 1, huge)
    _excluded(outcome, "weights.values")
    assert coord.knowledge.shared is not None and coord.knowledge.shared.weights is not None
    assert all(np.all(np.isfinite(w)) for w in coord.knowledge.shared.weights.values())


def test_honest_non_finite_weights_after_a_poisoned_average_are_traced_to_it() -> None:
    coord = _coordinator(WEIGHTS)
    _round(WEIGHTS, coord, 1, _wire(WEIGHTS, _honest(WEIGHTS, FUZZED, 1)))
    before = coord.knowledge.shared
    coord.requests(2, list(range(NODES)))
    broken = []
    for n in range(NODES):
        reply = _honest(WEIGHTS, n, 2)
        nan = {k: v * np.nan for k, v in (reply.weights or {}).items()}
        broken.append(Delivery(n, _wire(WEIGHTS, dataclasses.replace(reply, weights=nan), n)))
    outcome = coord.ingest(2, broken, dict.fromkeys(range(NODES), (1, 1)))
    reasons = [outcome.nodes[n].reason for n in range(NODES)]
    assert all("trained the global model of round 1" in r and "rolled back" in r for r in reasons)
    assert coord.knowledge.shared is not before  # the average of round 1 is no longer handed out


def test_eval_reports_for_another_partition_or_round_are_excluded() -> None:
    reply = _honest(WEIGHTS, FUZZED, 2)
    assert reply.eval is not None
    wrong_round = dataclasses.replace(
        reply, eval=dataclasses.replace(reply.eval, evaluated_round=4294967295)
    )
    _, outcome = _attacked(WEIGHTS, 2, wrong_round)
    _excluded(outcome, "eval.round")
    wrong_partition = dataclasses.replace(
        reply, eval=dataclasses.replace(reply.eval, partition_id=0)
    )
    _, outcome = _attacked(WEIGHTS, 2, wrong_partition)
    _excluded(outcome, "eval.partition")


def test_two_nodes_giving_one_name_without_keys_neither_holds_it() -> None:
    coord = Coordinator(
        WEIGHTS.cfg, run_id="fuzz-run", transfer=TRANSFER, num_classes=10, roster=ROSTER
    )
    deliveries = [Delivery(n, _wire(WEIGHTS, _hello(n), n)) for n in range(NODES - 1)]
    squat = _privacy(dataclasses.replace(_hello(FUZZED), node_name="node-0"), ledger_head="x")
    deliveries.append(Delivery(FUZZED, _wire(WEIGHTS, squat)))
    names = coord.hello(deliveries)
    assert names == {1: "node-1", 2: "node-2"} and coord.contested == {"node-0": {0, FUZZED}}
    # The impostor's later replies under the name store nothing under it either.
    _round(
        WEIGHTS,
        coord,
        1,
        _wire(WEIGHTS, dataclasses.replace(_honest(WEIGHTS, FUZZED, 1), node_name="node-0")),
    )
    assert coord.snapshot(1).ledger_heads.get("node-0") is None


@pytest.mark.parametrize(
    ("sigma", "q", "steps"), [(1.0, 2.0**-24, 2**24), (1e-6, 0.5, 2), (1e4, 0.5, 2)]
)
def test_a_claim_the_accountant_would_choke_on_is_refused_at_once(
    sigma: float, q: float, steps: int
) -> None:
    """σ = 1e-6 once asked the PRV accountant for petabytes; q = 2^-24, 26 s and ε < 0."""
    liar = _privacy(
        _honest(DP, FUZZED, 1), noise_multiplier=sigma, sample_rate=q, release_steps=steps
    )
    _, outcome = _attacked(DP, 1, liar)
    _excluded(outcome, "claim.parameters")


def test_a_history_whose_prv_grid_is_too_large_is_not_accounted() -> None:
    """Within the parameter bounds, a history the PRV accountant would need 4e6 points for."""
    from fedkd.privacy.accounting import PRV_MAX_GRID_POINTS, DPSteps, compose, prv_grid_points

    assert prv_grid_points(compose((), DPSteps(0.3, 1e-5, 10**5)), delta=1e-5) > PRV_MAX_GRID_POINTS
    cfg = dataclasses.replace(DP.cfg, dp_accountant="prv", local_epochs=1)
    harness = Harness("prv", cfg, keyed=True)
    liar = _privacy(
        _honest(DP, FUZZED, 1), accountant="prv", noise_multiplier=0.3, sample_rate=1e-5,
        release_steps=10**5,
    )  # fmt: skip
    coord = _coordinator(harness)
    coord.requests(1, list(range(NODES)))
    outcome = coord.ingest(1, [Delivery(FUZZED, _wire(harness, liar))], {FUZZED: (1, 1)})
    node = outcome.nodes[FUZZED]
    assert node.rule == "claim.composition" and "PRV grid of" in node.reason, node.reason


@pytest.mark.parametrize("name", ["../../x", "a/b", "flower-node-0", "x" * 65, "tab\there"])
def test_a_name_that_is_no_plain_file_name_is_refused(name: str) -> None:
    reply = dataclasses.replace(_honest(WEIGHTS, FUZZED, 2), node_name=name)
    _, outcome = _attacked(WEIGHTS, 2, reply)
    _excluded(outcome, "identity.node")


def test_outside_dp_a_zero_count_counts_as_one_not_as_a_uniform_round() -> None:
    claims = {n: Contribution(num_examples=100 * (n + 1)) for n in range(3)}
    claims[3] = Contribution(num_examples=0)
    weights = contribution_weights(claims, list(range(4)))
    np.testing.assert_allclose(weights, [100.0, 200.0, 300.0, 1.0])


def test_a_node_that_skips_the_handshake_keeps_its_names_earlier_epsilon_floor(
    tmp_path: Path,
) -> None:
    registry = NodeRegistry.open(tmp_path / "registry.db")
    registry.record(NAMES[FUZZED], run_id="before", round_=9, ledger_head="h", epsilon=50.0)
    coord = Coordinator(
        DP.cfg, run_id="fuzz-run", transfer=TRANSFER, num_classes=10,
        signing_keys=PUBLIC_KEYS, roster=ROSTER, registry=registry,
    )  # fmt: skip
    coord.hello([Delivery(n, _wire(DP, _hello(n), n)) for n in range(NODES - 1)])
    outcome = _round(DP, coord, 1, _wire(DP, _honest(DP, FUZZED, 1)))  # ε 3.x < 50
    assert "recorded 50" in _excluded(outcome, "claim.epsilon")
