"""Split a training pool among clients with flwr-datasets' partitioners.

The partitioners run on an in-memory ``datasets.Dataset`` holding only labels and group
ids (never pixels), which keeps partitioning fast and entirely offline.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import datasets

SCHEMES = ("iid", "dirichlet", "pathological", "natural")
MIN_PARTITION_SIZE = 10
"""The fewest records a simulated client is dealt (the Dirichlet partitioner redraws
until every client has as many): num-clients times this must fit the records to share."""
SPLIT_VERSION = 1
"""Bump when this module changes which rows a partition gets: cached splits
(:mod:`fedkd.data.partition_cache`) are keyed by it."""


def partition_indices(
    labels: np.ndarray,
    *,
    scheme: str,
    num_partitions: int,
    seed: int,
    alpha: float = 0.5,
    classes_per_partition: int = 2,
    groups: np.ndarray | None = None,
    min_partition_size: int = MIN_PARTITION_SIZE,
) -> list[np.ndarray]:
    """Sorted, disjoint int64 row indices into ``labels``, one array per partition.

    ``iid``, ``dirichlet`` and ``natural`` cover every row.  ``pathological`` deals each
    partition ``classes_per_partition`` classes (the first one deterministically, so with at
    least as many partitions as classes every class is used); rows of a class no partition
    was dealt are left out, and flwr-datasets warns about it.
    """
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import datasets
    from flwr_datasets import partitioner as fp

    datasets.disable_progress_bars()
    from fedkd.known_names import check_name

    check_name("partitioner", scheme, SCHEMES)
    columns: dict[str, np.ndarray] = {
        "row": np.arange(len(labels), dtype=np.int64),
        "label": np.asarray(labels, dtype=np.int64),
    }
    if scheme == "natural":
        if groups is None:
            raise ValueError("the natural partitioner needs a dataset with natural groups")
        n_groups = len(np.unique(groups))
        if n_groups != num_partitions:
            raise ValueError(
                f"natural split has {n_groups} groups but num-clients is {num_partitions}"
            )
        columns["group"] = np.asarray(groups, dtype=np.int64)
        part: fp.Partitioner = fp.NaturalIdPartitioner(partition_by="group")
    elif scheme == "iid":
        part = fp.IidPartitioner(num_partitions=num_partitions)
    elif scheme == "dirichlet":
        if not alpha > 0:
            raise ValueError(f"dirichlet-alpha must be > 0, got {alpha}")
        part = fp.DirichletPartitioner(
            num_partitions=num_partitions,
            partition_by="label",
            alpha=alpha,
            min_partition_size=min_partition_size,
            self_balancing=True,
            seed=seed,
        )
    else:
        part = fp.PathologicalPartitioner(
            num_partitions=num_partitions,
            partition_by="label",
            num_classes_per_partition=classes_per_partition,
            class_assignment_mode="first-deterministic",
            seed=seed,
        )
    dataset = datasets.Dataset.from_dict(columns)
    if scheme == "iid":
        # IidPartitioner takes contiguous shards; shuffle first so the seed matters.
        dataset = dataset.shuffle(seed=seed)
    part.dataset = dataset
    if scheme == "natural":
        # Partition ids follow sorted group ids, so client k is group k (e.g. a hospital).
        by_group = {int(part.load_partition(pid)["group"][0]): pid for pid in range(num_partitions)}
        order = [by_group[g] for g in sorted(by_group)]
    else:
        order = list(range(num_partitions))
    return [np.sort(_rows(part.load_partition(pid))) for pid in order]


def _rows(partition: datasets.Dataset) -> np.ndarray:
    """A partition's row ids, read as one numpy column (not row by row through Python)."""
    return np.asarray(partition.with_format("numpy")[:]["row"], dtype=np.int64)
