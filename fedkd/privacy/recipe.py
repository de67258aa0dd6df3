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

from fedkd.distill.settings import OptimiserConfig
from fedkd.privacy.guard import TrainingPlan

RECIPE_BATCH_SIZE = 256
"""The logical batch: σ/B (the noise in the averaged gradient) falls with B at a fixed ε
until the steps run short; BatchMemoryManager keeps memory at the physical batch."""
MIN_STEPS_PER_EPOCH = 8
"""A small node's batch shrinks so an epoch still takes this many steps (q ≤ 1/8)."""
RECIPE_MAX_GRAD_NORM = 0.1
"""C small enough that every per-sample gradient is clipped: each record then pulls with
the same force (normalised SGD), and on ScatterNet features it gained 0.04 centrally over
C = 1 at ε = 3 on the proxy (Tramèr & Boneh clip at 0.1 too); cnn-s tied."""
RECIPE_LR = 4.0
"""Step length lr·C = 0.4: eight times the protocol's 0.05 at C = 1, which clipping turns
into steps too short to train a model in a federation's few hundred steps; cnn-s tied
over lr·C ∈ [0.5, 2] on the proxy, scatnet-linear was best at 0.4."""
RECIPE_FUSION_SHARPEN = 0.1
"""Fused targets sharpened at T_s = 0.1 under DP (:mod:`fedkd.fusion.sharpen`): DP models
release flat soft labels, and their unsharpened mean collapsed the students it taught;
0.1 is DS-FL's own ERA temperature."""
RECIPE_EPOCH_FACTOR = 1
"""DP-SGD epochs per round, per local epoch the run asks for."""
DP_MODEL_DATASETS = ("mnist", "fashion-mnist")
"""Data whose images suit ScatterNet (16 pixels a side or more), where the DP defaults below
were measured; any other data keeps :data:`PLAIN_DEFAULTS` under DP too."""


@dataclass(frozen=True)
class RunDefaults:
    """What a run gets for the keys it leaves at "the default" ("", 0, or -1 for
    ``distill-epochs``, whose 0 means no distillation)."""

    strategy: str
    model: str
    num_server_rounds: int
    transfer_size: int
    distill_epochs: int


PLAIN_DEFAULTS = RunDefaults(
    strategy="knfu", model="mlp-m", num_server_rounds=5, transfer_size=500, distill_epochs=1
)
"""Without DP (and under DP on data the DP defaults were not measured on)."""
DP_DEFAULTS = RunDefaults(
    strategy="mean",
    model="scatnet-linear",
    num_server_rounds=10,
    transfer_size=1000,
    distill_epochs=2,
)
"""Under DP on MNIST-like images.  ScatterNet + linear: DP-SGD learns the head's 40,000
weights, not a CNN's features, and the noise, which grows with √d, costs least (Tramèr &
Boneh, ICLR 2021: 98.7 % on MNIST at ε = 3); on one client's Fashion-MNIST records it beat
cnn-s by 0.06 at ε = 3.  Ten rounds, 1,000 anchors and two distillation epochs a round:
distillation on public anchors spends no budget, and it is what carries the federation's
knowledge to each DP-trained model (sharpened mean, MNIST tuning seed: global accuracy
0.894 at 5 rounds, 500 anchors, 1 epoch; 0.941 at these).  ``mean``, sharpened: every DP
teacher is noisy, and the plain average over all of them is the least noisy target; on
the tuning seed it beat knfu (sharpened) at ε = 3 in global accuracy (0.941 against 0.923)
and in local accuracy (0.952 against 0.925)."""


def run_defaults(*, dp: bool, dataset: str) -> RunDefaults:
    """The defaults of a run with or without DP on ``dataset``."""
    return DP_DEFAULTS if dp and dataset in DP_MODEL_DATASETS else PLAIN_DEFAULTS


@dataclass(frozen=True)
class PrivateTraining:
    """What a run asks of its nodes' DP-SGD, as the ``dp-*`` keys say it (0: the recipe's).

    The node trains by it and the server checks each claim's steps against it, so both
    read the same typed settings, never the whole run config.
    """

    num_server_rounds: int
    local_epochs: int = 1
    momentum: float = 0.9
    dp_local_epochs: int = 0
    dp_batch_size: int = 0
    dp_lr: float = 0.0
    dp_physical_batch_size: int = 256
    dp_grad_sample_mode: str = ""


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


def private_epochs(run: PrivateTraining) -> int:
    """DP-SGD epochs per round: ``dp-local-epochs``, else the recipe's multiple of the
    run's ``local-epochs`` (0 stays 0: a run that trains nothing locally)."""
    return run.dp_local_epochs or RECIPE_EPOCH_FACTOR * run.local_epochs


def private_batch_size(run: PrivateTraining, records: int) -> int:
    """The logical batch for ``records`` records: ``dp-batch-size``, else the recipe's,
    shrunk so an epoch keeps :data:`MIN_STEPS_PER_EPOCH` steps."""
    if run.dp_batch_size:
        return run.dp_batch_size
    return max(1, min(RECIPE_BATCH_SIZE, records // MIN_STEPS_PER_EPOCH))


def dp_training(run: PrivateTraining, records: int) -> DPTraining:
    """The DP training settings for a node with ``records`` (nominal) records."""
    return DPTraining(
        batch_size=private_batch_size(run, records),
        local_epochs=private_epochs(run),
        lr=run.dp_lr or RECIPE_LR,
        momentum=run.momentum,
    )


def training_plan(run: PrivateTraining, records: int) -> TrainingPlan:
    """The run's planned DP-SGD on a node with ``records`` (nominal) records, which σ is
    calibrated for: every round's epochs at the recipe's logical batch."""
    return TrainingPlan(
        num_rounds=run.num_server_rounds,
        local_epochs=private_epochs(run),
        batch_size=private_batch_size(run, records),
    )
