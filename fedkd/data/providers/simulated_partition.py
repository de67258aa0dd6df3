"""``partition``: one simulated node's share of a built-in dataset.

The simulation's provider: the training pool of a built-in dataset (minus its public
transfer set) is split among ``num_partitions`` nodes by a flwr-datasets partitioner,
and the node takes part ``partition_id``.  Computing one part needs the pool's labels, so
the split is built (and cached) whole inside the node's process — a simulation has all
the data by construction; a hospital uses ``csv`` or ``arrays`` instead.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

from fedkd.data.federated import DataSpec, build_federated_data
from fedkd.data.private import PrivateData
from fedkd.data.providers.base import (
    DataValidationError,
    PrivateDataProvider,
    register_provider,
)
from fedkd.data.public import PublicData


@register_provider
@dataclass(frozen=True)
class SimulatedPartition(PrivateDataProvider):
    """Part ``partition_id`` of ``dataset`` split ``partitioner``-wise into ``num_partitions``.

    The options mirror the run-config keys of the same names; the simulation fills them
    in for each simulated node.  The node's local test set is its own held-out records
    only; ``min_local_test`` is recorded as the stated minimum, never filled up to.
    """

    name = "partition"
    dataset: str = "digits"
    num_partitions: int = 10
    partition_id: int = 0
    partitioner: str = "dirichlet"
    seed: int = 0
    dirichlet_alpha: float = 0.5
    classes_per_client: int = 2
    transfer_size: int = 500
    min_local_test: int = 100
    local_test_fraction: float = 0.2
    max_train_per_client: int = 0
    data_dir: str = ""

    @property
    def spec(self) -> DataSpec:
        return DataSpec(
            dataset=self.dataset,
            num_clients=self.num_partitions,
            partitioner=self.partitioner,
            seed=self.seed,
            dirichlet_alpha=self.dirichlet_alpha,
            classes_per_client=self.classes_per_client,
            transfer_size=self.transfer_size,
            min_local_test=self.min_local_test,
            local_test_fraction=self.local_test_fraction,
            max_train_per_client=self.max_train_per_client or None,
            data_dir=self.data_dir,
        )

    def load(self, public: PublicData) -> PrivateData:
        where = f"partition {self.partition_id} of {self.dataset}"
        if not 0 <= self.partition_id < self.num_partitions:
            raise DataValidationError(
                where, [f"partition-id must be in [0, {self.num_partitions})"]
            )
        sys.audit("fedkd.private_data.load", self.name, self.dataset)
        data = build_federated_data(self.spec)
        if data.transfer.digest != public.transfer.digest:
            raise DataValidationError(
                where,
                [
                    f"this split's transfer set {data.transfer.digest} is not the federation's "
                    f"{public.transfer.digest}: its private pool may overlap the public data"
                ],
            )
        return data.clients[self.partition_id]
