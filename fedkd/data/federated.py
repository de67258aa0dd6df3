"""From a named source to what a federation needs: client splits, transfer set, test sets.

Deterministic from :class:`DataSpec`, so the server and every client process build the
same view independently (nothing but the transfer-set digest is ever compared).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fedkd.data.arrays import LabelledArrays
from fedkd.data.partition_cache import cached_partition_indices
from fedkd.data.private import PrivateData, split_local
from fedkd.data.public import carve_transfer
from fedkd.data.sources import SourceDataset, default_data_dir, load_source
from fedkd.data.transfer import TransferSet


@dataclass(frozen=True)
class DataSpec:
    dataset: str
    num_clients: int
    partitioner: str
    seed: int
    dirichlet_alpha: float = 0.5
    classes_per_client: int = 2
    transfer_size: int = 500
    local_test_fraction: float = 0.2
    min_local_test: int = 100
    """The stated minimum of own test records (flagged below it; no local test set is
    ever topped up)."""
    max_train_per_client: int | None = None
    data_dir: str = ""


ClientData = PrivateData
"""A simulated client's split: what the ``partition`` provider gives its node."""


@dataclass(frozen=True)
class FederatedData:
    spec: DataSpec
    num_classes: int
    input_shape: tuple[int, ...]
    clients: tuple[ClientData, ...]
    transfer: TransferSet
    global_test: LabelledArrays


def build_federated_data(spec: DataSpec) -> FederatedData:
    """Cached per process: every message of a simulated client reuses the same arrays."""
    return _build(spec)


@functools.lru_cache(maxsize=4)
def _build(spec: DataSpec) -> FederatedData:
    source = load_source(spec.dataset, data_dir=Path(spec.data_dir) if spec.data_dir else None)
    transfer, pool, groups = _carve_transfer(source, spec)
    parts = cached_partition_indices(
        pool.y,
        cache_dir=(Path(spec.data_dir) if spec.data_dir else default_data_dir()) / "partitions",
        scheme=spec.partitioner,
        num_partitions=spec.num_clients,
        seed=spec.seed,
        alpha=spec.dirichlet_alpha,
        classes_per_partition=spec.classes_per_client,
        groups=groups,
    )
    rng = np.random.default_rng([spec.seed, 0xDA7A])
    clients = tuple(_client_split(pool.subset(idx), spec, rng) for idx in parts)
    return FederatedData(
        spec=spec,
        num_classes=source.num_classes,
        input_shape=source.input_shape,
        clients=clients,
        transfer=transfer,
        global_test=source.test,
    )


def _carve_transfer(
    source: SourceDataset, spec: DataSpec
) -> tuple[TransferSet, LabelledArrays, np.ndarray | None]:
    """The public transfer set, and the private pool (with its groups) the clients split."""
    transfer, private_idx = carve_transfer(source, spec.transfer_size)
    groups = None if source.train_groups is None else source.train_groups[private_idx]
    return transfer, source.train.subset(private_idx), groups


def _client_split(part: LabelledArrays, spec: DataSpec, rng: np.random.Generator) -> ClientData:
    """The client's training records and its own held-out records (never topped up)."""
    return split_local(
        part,
        test_fraction=spec.local_test_fraction,
        min_test=spec.min_local_test,
        max_train=spec.max_train_per_client,
        rng=rng,
    )
