"""local-test-fraction: how much of a simulated node's records it holds out as its test."""

from __future__ import annotations

import pytest

from fedkd.config import parse_run_config
from fedkd.data.federated import build_federated_data
from tests.node_harness import data_spec

BASE = {"dataset": "digits", "num-clients": 1, "partitioner": "iid", "transfer-size": 200}


@pytest.mark.parametrize(("fraction", "test"), [(0.2, 239), (0.0, 0)])
def test_a_central_run_can_train_on_every_record(fraction: float, test: int) -> None:
    spec = data_spec(parse_run_config({**BASE, "local-test-fraction": fraction}))
    client = build_federated_data(spec).clients[0]
    # digits: 1,797 records less the public test set and the 200-record transfer set.
    assert len(client.train) + len(client.test) == 1_196
    assert len(client.test) == test


@pytest.mark.parametrize("fraction", [-0.1, 1.0, 1.5])
def test_a_fraction_outside_zero_to_one_is_refused(fraction: float) -> None:
    with pytest.raises(ValueError, match=r"local-test-fraction must be in \[0, 1\)"):
        parse_run_config({**BASE, "local-test-fraction": fraction})
