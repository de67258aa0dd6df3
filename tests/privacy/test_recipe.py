"""The DP training recipe: its defaults, the run keys over it, and the plan built from it."""

from __future__ import annotations

import math

import pytest

from fedkd.config import parse_run_config
from fedkd.privacy.recipe import (
    MIN_STEPS_PER_EPOCH,
    RECIPE_BATCH_SIZE,
    RECIPE_LR,
    RECIPE_MAX_GRAD_NORM,
    dp_training,
    private_batch_size,
    private_epochs,
)
from fedkd.privacy.sampling import sample_rate, steps_per_epoch
from tests.node_harness import plan_of

BASE = {"dataset": "digits", "num-clients": 3, "dp": True, "dp-target-epsilon": 3.0}


def test_the_recipe_is_what_a_dp_run_trains_with_by_default() -> None:
    run = parse_run_config({**BASE, "batch-size": 64, "lr": 0.05, "local-epochs": 3})
    training = dp_training(run, 5_400)
    # The non-DP keys keep serving training without DP and distillation.
    assert (training.batch_size, training.lr) == (RECIPE_BATCH_SIZE, RECIPE_LR) == (256, 4.0)
    assert training.local_epochs == 3 and training.momentum == run.momentum
    assert training.optimiser.batch_size == 256 and training.optimiser.lr == 4.0
    # Every gradient clipped to 0.1: a step is lr·C = 0.4 long.
    assert run.dp_max_grad_norm == RECIPE_MAX_GRAD_NORM == 0.1
    assert steps_per_epoch(5_400, training.batch_size) == 22


@pytest.mark.parametrize(
    ("records", "batch", "steps"),
    [(5_400, 256, 22), (2_048, 256, 8), (2_047, 255, 9), (100, 12, 9), (8, 1, 8), (3, 1, 3)],
)
def test_a_small_node_keeps_enough_steps_per_epoch(records: int, batch: int, steps: int) -> None:
    run = parse_run_config(BASE)
    assert private_batch_size(run, records) == batch
    assert steps_per_epoch(records, batch) == steps
    assert steps >= min(records, MIN_STEPS_PER_EPOCH)


def test_run_keys_override_the_recipe() -> None:
    run = parse_run_config(
        {**BASE, "dp-batch-size": 64, "dp-lr": 0.05, "dp-local-epochs": 4, "local-epochs": 1}
    )
    training = dp_training(run, 5_400)
    assert (training.batch_size, training.lr, training.local_epochs) == (64, 0.05, 4)
    assert private_epochs(parse_run_config({**BASE, "local-epochs": 0})) == 0


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("dp-batch-size", -1, "dp-batch-size must be >= 0"),
        ("dp-local-epochs", -2, "dp-local-epochs must be >= 0"),
        ("dp-lr", -0.1, "dp-lr must be >= 0"),
        ("dp-lr", math.nan, "dp-lr must be a finite number"),
    ],
)
def test_bad_dp_training_keys_are_refused(key: str, value: float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_run_config({**BASE, key: value})


def test_the_nodes_plan_fixes_q_and_steps_from_the_recipe() -> None:
    run = parse_run_config({**BASE, "num-server-rounds": 4, "local-epochs": 2})
    plan = plan_of(run, 600)
    batch = private_batch_size(run, 600)
    assert batch == 75
    assert plan.sample_rate == sample_rate(600, 75) == 1 / 8
    assert plan.steps_per_round == 2 * 8
    assert plan.mechanism_records == 600
