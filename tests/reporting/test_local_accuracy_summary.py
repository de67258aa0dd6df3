"""The summary reports each node's local accuracy with its n and exact interval, and says
how ALMA treats nodes with fewer own test records than min-local-test."""

from __future__ import annotations

from typing import Any

import pytest
from scipy.stats import binomtest

from fedkd.audit.clopper_pearson import clopper_pearson_interval
from fedkd.config import parse_run_config
from fedkd.reporting.summary import summarise


def _row(node: int, accuracy: float | None, n: int | None) -> dict[str, Any]:
    return {
        "round": 1,
        "node_id": node,
        "partition_id": node - 100,
        "local_accuracy": accuracy,
        "local_test_examples": n,
        "global_accuracy": 0.5,
        "status": "ok",
        "epsilon": None,
        "bytes_up": 0,
        "bytes_down": 0,
        "flower_bytes_up": 0,
        "flower_bytes_down": 0,
    }


def _summary(rows: list[dict[str, Any]], minimum: int = 30) -> dict[str, Any]:
    cfg = parse_run_config({"num-server-rounds": 1, "min-local-test": minimum})
    return summarise(cfg, rows, num_nodes=len(rows), wall_s=0.0)


@pytest.mark.parametrize(("k", "n"), [(0, 1), (1, 1), (0, 7), (3, 7), (7, 7), (29, 40), (1, 300)])
def test_the_interval_is_clopper_pearson(k: int, n: int) -> None:
    reference = binomtest(k, n).proportion_ci(confidence_level=0.95, method="exact")
    low, high = clopper_pearson_interval(k, n)
    assert low == pytest.approx(reference.low, abs=1e-12)
    assert high == pytest.approx(reference.high, abs=1e-12)


def test_bad_counts_are_refused() -> None:
    for k, n in ((1, 0), (-1, 3), (4, 3)):
        with pytest.raises(ValueError, match="need 0 <= successes <= trials"):
            clopper_pearson_interval(k, n)


def test_each_node_has_its_n_and_interval_and_too_few_nodes_are_flagged() -> None:
    rows = [_row(100, 0.9, 200), _row(101, 0.8, 50), _row(102, 5 / 7, 7), _row(103, None, 0)]
    summary = _summary(rows)
    nodes = summary["local_accuracy_per_node"]
    assert set(nodes) == {"100", "101", "102"}  # a node reporting no accuracy has no entry
    small = nodes["102"]
    assert (small["partition_id"], small["n"], small["correct"], small["too_few"]) == (
        2,
        7,
        5,
        True,
    )
    reference = binomtest(5, 7).proportion_ci(method="exact")
    assert small["ci95"] == pytest.approx([reference.low, reference.high], abs=1e-12)
    assert nodes["100"]["too_few"] is False and nodes["100"]["correct"] == 180
    assert nodes["101"]["ci95"][0] < 0.8 < nodes["101"]["ci95"][1]
    # ALMA counts every node once, as measured; alma_at_min only the nodes with >= 30.
    assert summary["alma"] == pytest.approx((0.9 + 0.8 + 5 / 7) / 3)
    assert summary["alma_clients"] == 3
    assert summary["alma_at_min"] == pytest.approx(0.85)
    assert summary["alma_at_min_clients"] == 2
    assert summary["alma_too_few_clients"] == ["102"]
    assert summary["alma_min_local_test"] == 30
    rule = summary["alma_rule"]
    assert "min-local-test = 30" in rule and "1 of them" in rule and "never topped up" in rule


def test_with_no_node_at_the_minimum_alma_at_min_is_null_and_a_missing_n_is_too_few() -> None:
    summary = _summary([_row(100, 0.5, 10), _row(101, 1.0, None)], minimum=100)
    assert summary["alma"] == pytest.approx(0.75)
    assert summary["alma_at_min"] is None and summary["alma_at_min_clients"] == 0
    assert summary["alma_too_few_clients"] == ["100", "101"]
    unknown = summary["local_accuracy_per_node"]["101"]
    assert (unknown["n"], unknown["ci95"], unknown["too_few"]) == (None, None, True)


def test_the_minimum_is_stated_even_without_local_accuracies() -> None:
    summary = _summary([_row(100, None, None)])
    assert summary["alma"] is None and summary["local_accuracy_per_node"] == {}
    assert "min-local-test = 30" in summary["alma_rule"]
