"""The federated view: disjoint partitions, a stable transfer set, honest local tests."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from fedkd.data.federated import DataSpec, build_federated_data
from fedkd.data.partition import partition_indices
from fedkd.data.transfer import make_transfer_set, row_hashes, transfer_digest

DIGITS = DataSpec(
    "digits", num_clients=6, partitioner="dirichlet", seed=0, dirichlet_alpha=0.3, transfer_size=300
)


def test_partitions_are_disjoint_and_cover_the_pool() -> None:
    labels = np.random.default_rng(0).integers(0, 10, 3000)
    for scheme in ("iid", "dirichlet", "pathological"):
        parts = partition_indices(labels, scheme=scheme, num_partitions=10, seed=1, alpha=0.3)
        joined = np.concatenate(parts)
        assert len(joined) == len(np.unique(joined)), scheme
        # Pathological drops the rows of classes no partition was dealt; the others cover all.
        assert len(joined) == 3000 or scheme == "pathological", scheme


def _skew(labels: np.ndarray, parts: list[np.ndarray]) -> float:
    """Mean total-variation distance between each partition's label mix and the pool's."""
    pool = np.bincount(labels, minlength=10) / len(labels)
    mixes = [np.bincount(labels[p], minlength=10) / len(p) for p in parts]
    return float(np.mean([0.5 * np.abs(m - pool).sum() for m in mixes]))


def test_small_dirichlet_alpha_skews_labels_and_iid_does_not() -> None:
    labels = np.random.default_rng(0).integers(0, 10, 5000)
    iid = partition_indices(labels, scheme="iid", num_partitions=10, seed=0)
    skewed = partition_indices(labels, scheme="dirichlet", num_partitions=10, seed=0, alpha=0.1)
    assert _skew(labels, iid) < 0.05
    assert _skew(labels, skewed) > 0.5


def test_pathological_gives_each_client_two_classes() -> None:
    labels = np.repeat(np.arange(10), 100)
    parts = partition_indices(
        labels, scheme="pathological", num_partitions=5, seed=0, classes_per_partition=2
    )
    assert [len(np.unique(labels[p])) for p in parts] == [2] * 5


def test_natural_partition_is_the_hospitals() -> None:
    data = build_federated_data(DataSpec("heart", num_clients=4, partitioner="natural", seed=0))
    sizes = [len(c.train) + len(c.test) for c in data.clients]
    assert sizes == [212, 182, 32, 92]
    with pytest.raises(ValueError, match="4 groups but num-clients is 3"):
        build_federated_data(DataSpec("heart", num_clients=3, partitioner="natural", seed=0))


def test_transfer_set_is_disjoint_from_every_client() -> None:
    data = build_federated_data(DIGITS)
    public = row_hashes(data.transfer.x)
    for client in data.clients:
        assert public.isdisjoint(row_hashes(client.train.x))
        assert public.isdisjoint(row_hashes(client.test.x))
    assert public.isdisjoint(row_hashes(data.global_test.x))


def test_transfer_digest_is_stable_across_seeds_and_tracks_content() -> None:
    a = build_federated_data(DIGITS)
    b = build_federated_data(dataclasses.replace(DIGITS, seed=7))
    assert a.transfer.digest == b.transfer.digest
    changed = a.transfer.x.copy()
    changed[0, 0, 0, 0] += 1e-3
    assert transfer_digest(changed) != a.transfer.digest
    assert make_transfer_set("t", a.transfer.x).digest == a.transfer.digest


def test_local_tests_hold_only_the_clients_own_records() -> None:
    data = build_federated_data(DIGITS)
    pool = row_hashes(data.global_test.x)
    for client in data.clients:
        own = row_hashes(client.test.x)
        # A fifth of the client's records, none from the public test set, none in training.
        assert len(client.test) == round(0.2 * (len(client.train) + len(client.test)))
        assert own.isdisjoint(pool) and own.isdisjoint(row_hashes(client.train.x))
        assert client.min_test == DIGITS.min_local_test
        assert client.too_few == (len(client.test) < DIGITS.min_local_test)


def test_same_spec_same_arrays_and_seed_changes_partition() -> None:
    a = build_federated_data(DIGITS)
    b = build_federated_data(dataclasses.replace(DIGITS))
    np.testing.assert_array_equal(a.clients[2].train.y, b.clients[2].train.y)
    c = build_federated_data(dataclasses.replace(DIGITS, seed=1))
    assert [len(x.train) for x in a.clients] != [len(x.train) for x in c.clients]
