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
from fedkd.data.partition import partition_indices
from fedkd.data.sources import SPLIT_SEED, SourceDataset, load_source
from fedkd.data.transfer import TransferSet, make_transfer_set


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
    max_train_per_client: int | None = None
    data_dir: str = ""


@dataclass(frozen=True)
class ClientData:
    """A client's private training split and its personalised test set.

    ``test`` = ``own_test`` rows from the client's own split, then ``topped_up`` rows from
    the held-out pool drawn to match the client's label distribution.
    """

    train: LabelledArrays
    test: LabelledArrays
    own_test: int
    topped_up: int


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
    parts = partition_indices(
        pool.y,
        scheme=spec.partitioner,
        num_partitions=spec.num_clients,
        seed=spec.seed,
        alpha=spec.dirichlet_alpha,
        classes_per_partition=spec.classes_per_client,
        groups=groups,
    )
    rng = np.random.default_rng([spec.seed, 0xDA7A])
    clients = tuple(
        _client_split(pool.subset(idx), source.test, source.num_classes, spec, rng) for idx in parts
    )
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
    """The public set: the source's named split, or a fixed carve-out of the training pool.

    The carve-out uses a fixed seed, so the transfer set (and its digest) is the same for
    every experiment seed; it is removed from the pool before any client sees it.
    """
    if source.public is not None:
        return (
            make_transfer_set(source.public_name, source.public.x),
            source.train,
            (source.train_groups),
        )
    n = len(source.train)
    if not 0 < spec.transfer_size < n:
        raise ValueError(
            f"transfer-size must be in (0, {n}) for {source.name}, got {spec.transfer_size}"
        )
    order = np.random.default_rng([SPLIT_SEED, spec.transfer_size]).permutation(n)
    public_idx, private_idx = (
        np.sort(order[: spec.transfer_size]),
        np.sort(order[spec.transfer_size :]),
    )
    name = f"{source.name}/train-holdout-{spec.transfer_size}"
    groups = None if source.train_groups is None else source.train_groups[private_idx]
    return (
        make_transfer_set(name, source.train.x[public_idx]),
        source.train.subset(private_idx),
        groups,
    )


def _client_split(
    part: LabelledArrays,
    held_out: LabelledArrays,
    num_classes: int,
    spec: DataSpec,
    rng: np.random.Generator,
) -> ClientData:
    order = rng.permutation(len(part))
    n_test = round(spec.local_test_fraction * len(part))
    test_idx, train_idx = order[:n_test], order[n_test:]
    if spec.max_train_per_client is not None:
        train_idx = train_idx[: spec.max_train_per_client]
    own = part.subset(np.sort(test_idx))
    need = max(0, spec.min_local_test - len(own))
    extra = _matching_draw(held_out, part.y, num_classes, need, rng)
    test = LabelledArrays(
        np.concatenate([own.x, held_out.x[extra]]), np.concatenate([own.y, held_out.y[extra]])
    )
    return ClientData(
        train=part.subset(np.sort(train_idx)), test=test, own_test=len(own), topped_up=len(extra)
    )


def _matching_draw(
    pool: LabelledArrays,
    client_labels: np.ndarray,
    num_classes: int,
    count: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """``count`` pool rows whose labels follow the client's label distribution."""
    if count == 0:
        return np.zeros(0, dtype=np.int64)
    share = np.bincount(client_labels, minlength=num_classes) / max(1, len(client_labels))
    per_class = rng.multinomial(count, share)
    chosen: list[np.ndarray] = []
    for label, k in enumerate(per_class):
        if k == 0:
            continue
        candidates = np.flatnonzero(pool.y == label)
        chosen.append(rng.choice(candidates, size=k, replace=k > len(candidates)))
    return np.concatenate(chosen).astype(np.int64)
