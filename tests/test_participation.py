"""Client sampling: which nodes a round asks, and what a sampled node distils."""

from __future__ import annotations

import pytest

from fedkd.config import parse_run_config
from fedkd.coordinator import Coordinator, Delivery
from fedkd.participation import round_participants
from fedkd.wire.serde import knowledge_request_from_bytes
from fedkd.wire.types import ModelWeights
from tests.node_harness import federation, serve

CAP = 1 << 30
NODES = [907, 13, 55, 4, 1200, 78, 300, 61, 2, 999]


def test_every_node_when_not_sampling() -> None:
    for per_round in (0, len(NODES), len(NODES) + 5):
        assert round_participants(NODES, per_round=per_round, seed=0, round_=3) == sorted(NODES)


def test_a_round_asks_exactly_m_distinct_online_nodes_fixed_by_seed_and_round() -> None:
    got = round_participants(NODES, per_round=4, seed=7, round_=2)
    assert len(got) == len(set(got)) == 4 and set(got) <= set(NODES) and got == sorted(got)
    assert round_participants(list(reversed(NODES)), per_round=4, seed=7, round_=2) == got
    rounds = [tuple(round_participants(NODES, per_round=4, seed=7, round_=r)) for r in range(20)]
    assert len(set(rounds)) > 10  # drawn afresh each round
    assert rounds != [tuple(round_participants(NODES, per_round=4, seed=8, round_=r))
                      for r in range(20)]  # fmt: skip


def test_sampling_is_uniform_over_nodes() -> None:
    counts = dict.fromkeys(NODES, 0)
    for r in range(2000):
        for node in round_participants(NODES, per_round=3, seed=1, round_=r):
            counts[node] += 1
    # 600 expected per node; a binomial's 4.5σ is about 92.
    assert all(abs(c - 600) < 92 for c in counts.values()), counts


def test_a_negative_count_is_refused_and_the_config_names_the_key() -> None:
    with pytest.raises(ValueError, match="clients-per-round"):
        round_participants(NODES, per_round=-1, seed=0, round_=1)
    with pytest.raises(ValueError, match="clients-per-round must be >= 0"):
        parse_run_config({"clients-per-round": -2})


def test_a_sampled_node_distils_what_was_fused_for_it_in_its_last_round() -> None:
    cfg = parse_run_config({
        "dataset": "digits", "num-clients": 6, "partitioner": "iid", "transfer-size": 200,
        "num-server-rounds": 3, "model": "mlp-s", "strategy": "knfu", "seed": 5,
        "clients-per-round": 3,
    })  # fmt: skip
    data = federation(cfg)
    coord = Coordinator(cfg, run_id="r", transfer=data.transfer, num_classes=10)
    nodes = list(range(6))
    states: dict[int, ModelWeights | None] = dict.fromkeys(nodes)
    last_round: dict[int, int] = {}
    for round_ in (1, 2, 3):
        asked = round_participants(nodes, per_round=3, seed=cfg.seed, round_=round_)
        requests = coord.requests(round_, asked)
        for node, payload in requests.items():
            fused = knowledge_request_from_bytes(payload, max_bytes=CAP).fused
            if node in last_round:
                assert fused is not None and fused.round == last_round[node]
            else:
                assert fused is None  # never asked before: starts from its own training
        replies = {}
        for node, payload in requests.items():
            replies[node], states[node] = serve(cfg, node, payload, states[node], train=True)
        outcome = coord.ingest(
            round_,
            [Delivery(n, replies[n]) for n in asked],
            {n: (len(b), 0) for n, b in requests.items()},
        )
        assert outcome.accepted == asked
        last_round.update(dict.fromkeys(asked, round_))
    assert len(last_round) > 3  # sampling reached more nodes than one round holds
