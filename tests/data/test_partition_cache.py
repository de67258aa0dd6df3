"""The on-disk partition cache: the same split as computing it, read back instead of
recomputed, and never trusted when the file is not a valid split for its key."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from fedkd.data import partition_cache
from fedkd.data.partition import partition_indices
from fedkd.data.partition_cache import cached_partition_indices, partition_key

LABELS = np.random.default_rng(7).integers(0, 10, size=3000)
SPLIT = {"scheme": "dirichlet", "num_partitions": 12, "seed": 3, "alpha": 0.3}


def _same(a: list[np.ndarray], b: list[np.ndarray]) -> bool:
    return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


def _no_recompute(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> list[np.ndarray]:
        raise AssertionError("the split was recomputed instead of read")

    monkeypatch.setattr(partition_cache, "partition_indices", refuse)


def test_the_cached_split_is_the_computed_one_and_is_read_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    computed = partition_indices(LABELS, **SPLIT)  # type: ignore[arg-type]
    first = cached_partition_indices(LABELS, cache_dir=tmp_path, **SPLIT)  # type: ignore[arg-type]
    assert _same(first, computed)
    assert len(list(tmp_path.glob("*.npz"))) == 1
    _no_recompute(monkeypatch)
    again = cached_partition_indices(LABELS, cache_dir=tmp_path, **SPLIT)  # type: ignore[arg-type]
    assert _same(again, computed)
    assert all(p.dtype == np.int64 for p in again)


def test_anything_the_split_depends_on_changes_the_key() -> None:
    base = partition_key(LABELS, None, **SPLIT)
    assert partition_key(LABELS, None, **{**SPLIT, "seed": 4}) != base
    assert partition_key(LABELS, None, **{**SPLIT, "alpha": 0.31}) != base
    assert partition_key(LABELS, None, **{**SPLIT, "num_partitions": 13}) != base
    relabelled = LABELS.copy()
    relabelled[0] = (relabelled[0] + 1) % 10
    assert partition_key(relabelled, None, **SPLIT) != base
    assert partition_key(LABELS, np.zeros(len(LABELS), dtype=np.int64), **SPLIT) != base
    assert partition_key(LABELS.astype(np.int32), None, **SPLIT) == base


@pytest.mark.parametrize(
    "damage",
    [
        "garbage bytes",
        "rows out of range",
        "a row in two partitions",
        "wrong partition count",
    ],
)
def test_a_file_that_is_not_this_split_is_recomputed_and_replaced(
    tmp_path: Path, damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    computed = cached_partition_indices(LABELS, cache_dir=tmp_path, **SPLIT)  # type: ignore[arg-type]
    (path,) = tmp_path.glob("*.npz")
    rows = np.concatenate(computed)
    bounds = np.concatenate([[0], np.cumsum([len(p) for p in computed])]).astype(np.int64)
    if damage == "garbage bytes":
        path.write_bytes(b"not an npz file")
    elif damage == "rows out of range":
        rows = rows.copy()
        rows[0] = len(LABELS) + 5
        np.savez(path, rows=rows, bounds=bounds)
    elif damage == "a row in two partitions":
        rows = rows.copy()
        rows[1] = rows[0]
        np.savez(path, rows=rows, bounds=bounds)
    else:
        np.savez(path, rows=rows, bounds=bounds[:-1])
    with caplog.at_level(logging.WARNING, logger="fedkd.data.partition_cache"):
        again = cached_partition_indices(LABELS, cache_dir=tmp_path, **SPLIT)  # type: ignore[arg-type]
    assert _same(again, computed)
    assert "computing" in caplog.text
    # The file now holds the valid split: the next read trusts it.
    with np.load(path) as stored:
        assert np.array_equal(stored["rows"], np.concatenate(computed))


def test_a_cache_that_cannot_be_written_still_gives_the_split(tmp_path: Path) -> None:
    blocked = tmp_path / "a-file"
    blocked.write_text("the cache directory's place is taken by a file")
    got = cached_partition_indices(LABELS, cache_dir=blocked / "partitions", **SPLIT)  # type: ignore[arg-type]
    assert _same(got, partition_indices(LABELS, **SPLIT))  # type: ignore[arg-type]


def test_federated_data_builds_the_same_clients_with_and_without_a_cached_split(
    tmp_path: Path,
) -> None:
    from fedkd.data.federated import DataSpec, _build

    spec = DataSpec(
        dataset="digits", num_clients=5, partitioner="dirichlet", seed=2, data_dir=str(tmp_path)
    )
    fresh = _build(spec)
    assert len(list((tmp_path / "partitions").glob("*.npz"))) == 1
    _build.cache_clear()
    cached = _build(spec)
    for a, b in zip(fresh.clients, cached.clients, strict=True):
        assert np.array_equal(a.train.y, b.train.y) and np.array_equal(a.train.x, b.train.x)
