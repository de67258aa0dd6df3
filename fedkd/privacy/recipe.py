"""How a node trains with DP-SGD: the recipe, and the run's DP training settings over it.

A clipped step is at most ``lr·C`` long whatever the gradient, so the settings that serve
training without DP (lr 0.05, batch 64, one epoch a round) leave a DP-SGD model under-
trained: at σ ≈ 0, clipping alone held a client's cnn-s to the accuracy it reached at
ε = 1, 3 and 8 alike (``simulations/dp_ablation.py``).  The recipe gives DP-SGD its own
step length, batch and epochs; each is measured there and stated here with its reason.

Each setting is a run key (``dp-batch-size``, ``dp-lr``, ``dp-local-epochs``); 0 takes the
recipe's value.  The logical batch depends on the node's record count (the nominal one
where its policy states one), so q and the steps per round are still fixed by public
values before training, and the server checks them against ``dp-local-epochs`` alone.

Kept apart from :mod:`fedkd.privacy.dp_sgd` so that planning never imports torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from fedkd.distill.settings import OptimiserConfig
from fedkd.privacy.guard import TrainingPlan

if TYPE_CHECKING:
    from fedkd.config import RunConfig

RECIPE_BATCH_SIZE = 256
"""The logical batch: σ/B (the noise in the averaged gradient) falls with B at a fixed ε
until the steps run short; BatchMemoryManager keeps memory at the physical batch."""
MIN_STEPS_PER_EPOCH = 8
"""A small node's batch shrinks so an epoch still takes this many steps (q ≤ 1/8)."""
RECIPE_LR = 1.0
"""Step length lr·C = 1 at C = 1: twenty times the protocol's 0.05, which clipping turns
into steps too short to train a model in a federation's few hundred steps."""
RECIPE_EPOCH_FACTOR = 1
"""DP-SGD epochs per round, per local epoch the run asks for."""


@dataclass(frozen=True)
class DPTraining:
    """One round of a node's DP-SGD: logical batch, epochs, step size, momentum."""

    batch_size: int
    local_epochs: int
    lr: float
    momentum: float

    @property
    def optimiser(self) -> OptimiserConfig:
        return OptimiserConfig(lr=self.lr, momentum=self.momentum, batch_size=self.batch_size)


def private_epochs(run: RunConfig) -> int:
    """DP-SGD epochs per round: ``dp-local-epochs``, else the recipe's multiple of the
    run's ``local-epochs`` (0 stays 0: a run that trains nothing locally)."""
    return run.dp_local_epochs or RECIPE_EPOCH_FACTOR * run.local_epochs


def private_batch_size(run: RunConfig, records: int) -> int:
    """The logical batch for ``records`` records: ``dp-batch-size``, else the recipe's,
    shrunk so an epoch keeps :data:`MIN_STEPS_PER_EPOCH` steps."""
    if run.dp_batch_size:
        return run.dp_batch_size
    return max(1, min(RECIPE_BATCH_SIZE, records // MIN_STEPS_PER_EPOCH))


def dp_training(run: RunConfig, records: int) -> DPTraining:
    """The DP training settings for a node with ``records`` (nominal) records."""
    return DPTraining(
        batch_size=private_batch_size(run, records),
        local_epochs=private_epochs(run),
        lr=run.dp_lr or RECIPE_LR,
        momentum=run.momentum,
    )


def training_plan(run: RunConfig, records: int) -> TrainingPlan:
    """The run's planned DP-SGD on a node with ``records`` (nominal) records, which σ is
    calibrated for: every round's epochs at the recipe's logical batch."""
    return TrainingPlan(
        num_rounds=run.num_server_rounds,
        local_epochs=private_epochs(run),
        batch_size=private_batch_size(run, records),
    )
