"""The coordinator's parts alone, each without a run: names, the plan, privacy claims."""

from __future__ import annotations

import numpy as np
import pytest

from fedkd.coordinator import NodeNames, PrivacyClaims, RoundPlan
from fedkd.fusion import Instruction, Release, make_fusion
from fedkd.privacy.accounting import DPSteps, epsilon
from fedkd.privacy.recipe import PrivateTraining
from fedkd.wire.errors import PayloadError
from fedkd.wire.types import (
    KnowledgeReply,
    PrivacySpend,
    ReleaseKind,
    Status,
    StatusCode,
    TransferSetRef,
)


def test_a_name_two_nodes_give_is_given_to_neither_and_stays_contested() -> None:
    names = NodeNames()
    assert names.settle({1: "a", 2: "a", 3: "b"}) == [3]
    assert names.names == {3: "b"} and names.contested == {"a": {1, 2}}
    assert not names.may_take("a") and names.name_of(1) == "flower-node-1"
    # A later claimant of a held name takes it from its holder: nobody keeps it.
    names.settle({4: "b"})
    assert names.names == {} and names.contested["b"] == {3, 4}


def test_a_roster_makes_a_name_outside_it_nobodys() -> None:
    names = NodeNames(roster={"node-0": 0})
    assert names.settle({7: "node-9", 8: "node-0"}) == [8]
    assert names.partition_of(8) == 0 and names.partition_of(7) is None
    assert not names.may_take("node-9")


def test_the_plan_shares_one_seeded_anchor_draw_and_speaks_fusions_words() -> None:
    plan = RoundPlan(make_fusion("knfu"), num_rounds=2, transfer_size=100, per_round=10, seed=3)
    again = RoundPlan(make_fusion("knfu"), num_rounds=2, transfer_size=100, per_round=10, seed=3)
    np.testing.assert_array_equal(plan.anchors_for(1), again.anchors_for(1))
    assert len(plan.anchors_for(1)) == 10 and len(set(plan.anchors_for(1))) == 10
    plan.configure(1, [0, 1])
    assert plan.instruction(1, 0).release is Release.SOFT_LABELS
    plan.configure(3, [0])  # after the last round: the final evaluation asks nothing
    assert plan.instruction(3, 0).release is Release.NOTHING
    assert plan.instruction(2, 5).release is Release.NOTHING  # never asked


class _WireSpeakingStrategy:
    """A plugin written against the wire's enum, as older strategies were."""

    name = "wire-speaker"

    def configure_round(
        self, round_: int, nodes: list[int], anchors: np.ndarray
    ) -> dict[int, Instruction]:
        return {n: Instruction(ReleaseKind.WEIGHTS, anchors[:0]) for n in nodes}  # type: ignore[arg-type]


def test_a_plugin_speaking_the_wires_enum_is_translated_once() -> None:
    plan = RoundPlan(
        _WireSpeakingStrategy(),  # type: ignore[arg-type]
        num_rounds=1,
        transfer_size=5,
        per_round=0,
        seed=0,
    )
    plan.configure(1, [0])
    assert plan.instruction(1, 0).release is Release.WEIGHTS


SIGMA, Q = 1.0, 1 / 8
STEPS = 8  # one DP-SGD epoch at q = 1/8


def _claim(eps: float, *, steps: int = STEPS, name: str = "node-0") -> KnowledgeReply:
    return KnowledgeReply(
        run_id="r",
        round=1,
        node_id=0,
        transfer_set=TransferSetRef(digest="t", num_samples=5, num_classes=2),
        soft_labels=None,
        num_examples=0,
        status=Status(StatusCode.OK),
        node_name=name,
        privacy=PrivacySpend(
            mechanism="dp-sgd",
            epsilon=eps,
            delta=1e-5,
            accountant="rdp",
            noise_multiplier=SIGMA,
            sample_rate=Q,
            release_steps=steps,
            ledger_head="h1",
        ),
    )


def _claims() -> PrivacyClaims:
    return PrivacyClaims(
        dp=True, delta=1e-5, accountant="rdp", training=PrivateTraining(num_server_rounds=3)
    )


def test_a_claim_below_the_servers_own_composition_is_refused() -> None:
    truth = epsilon((DPSteps(SIGMA, Q, STEPS),), delta=1e-5, accountant="rdp")
    claims = _claims()
    with pytest.raises(PayloadError) as refused:
        claims.check(1, 0, _claim(truth / 2), may_take_name=False)
    assert refused.value.rule == "claim.composition"
    claims.check(1, 0, _claim(truth), may_take_name=False)
    claims.record(1, 0, _claim(truth), "node-0")
    assert claims.epsilon_recorded[0] == pytest.approx(truth)
    assert claims.ledger_heads[0] == "h1"


def test_a_claim_of_other_steps_than_the_plan_or_spend_going_backwards_is_refused() -> None:
    claims = _claims()
    with pytest.raises(PayloadError) as refused:
        claims.check(1, 0, _claim(5.0, steps=STEPS - 1), may_take_name=False)
    assert refused.value.rule == "claim.steps"
    claims.epsilon_recorded[0] = 9.0
    with pytest.raises(PayloadError) as refused:
        claims.check(1, 0, _claim(5.0), may_take_name=False)
    assert refused.value.rule == "claim.epsilon"


def test_a_name_carries_its_earlier_epsilon_as_a_floor() -> None:
    claims = _claims()
    claims.earlier_epsilons = {"node-0": 7.5}
    with pytest.raises(PayloadError) as refused:
        claims.check(1, 0, _claim(5.0), may_take_name=True)
    assert refused.value.rule == "claim.epsilon"
    claims.known_as(0, "node-0")
    assert claims.epsilon_recorded[0] == 7.5


def test_without_dp_no_claim_counts_whatever_it_says() -> None:
    claims = PrivacyClaims(
        dp=False, delta=1e-5, accountant="rdp", training=PrivateTraining(num_server_rounds=3)
    )
    claims.check(1, 0, _claim(-1.0), may_take_name=False)  # not even read
    claims.record(1, 0, _claim(-1.0), "node-0")
    assert claims.epsilon_recorded == {} and claims.ledger_heads == {0: "h1"}
