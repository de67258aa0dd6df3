"""Public data: everything the server ever loads, and what every node agrees on.

A federation shares exactly three things that are not private: the *transfer set*
(unlabelled inputs the nodes release soft labels on), the class list, and a *public test
set* (the global accuracy every node reports, and the pool a node may top up a too-small
local test set from).  They come either from a built-in dataset's public split (a
simulation convenience) or from a *public bundle*, an ``.npz`` file the coordinating site
distributes (``fedkd data heart-hospitals`` writes one).  Digests identify them on the
wire; no party ever compares anything else.
"""

from __future__ import annotations

import functools
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fedkd.data.arrays import LabelledArrays
from fedkd.data.sources import SPLIT_SEED, SourceDataset, load_source
from fedkd.data.transfer import TransferSet, content_digest, make_transfer_set

BUNDLE_SUFFIX = ".npz"
_BUNDLE_KEYS = ("name", "classes", "transfer_name", "transfer_x", "test_x", "test_y")


@dataclass(frozen=True)
class PublicData:
    """The transfer set, the class list and the public test set.

    Attributes
    ----------
    name
        Where it came from: a built-in dataset's name or a bundle's declared name.
    classes
        Class names in label order; label ``i`` is ``classes[i]``.
    transfer
        Unlabelled public inputs and their digest.
    test
        The public test set (inputs and labels).
    """

    name: str
    classes: tuple[str, ...]
    transfer: TransferSet
    test: LabelledArrays

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self.transfer.x.shape[1:])

    @functools.cached_property
    def test_digest(self) -> str:
        return content_digest(self.test.x, self.test.y)


@dataclass(frozen=True)
class PublicDataSpec:
    """Which public data a run uses.

    ``bundle`` (a path to an ``.npz`` public bundle) wins; otherwise the public split of the
    built-in ``dataset`` (its named public split, or a fixed ``transfer_size`` carve-out of
    its training pool that no simulated node ever receives).
    """

    dataset: str = "digits"
    transfer_size: int = 500
    data_dir: str = ""
    bundle: str = ""


def load_public_data(spec: PublicDataSpec) -> PublicData:
    """The public data named by ``spec``; cached per process (nodes serve many messages)."""
    return _load(spec)


@functools.lru_cache(maxsize=4)
def _load(spec: PublicDataSpec) -> PublicData:
    if spec.bundle:
        return load_public_bundle(Path(spec.bundle))
    source = load_source(spec.dataset, data_dir=Path(spec.data_dir) if spec.data_dir else None)
    transfer, _ = carve_transfer(source, spec.transfer_size)
    return PublicData(
        name=source.name,
        classes=source.class_names or tuple(str(i) for i in range(source.num_classes)),
        transfer=transfer,
        test=source.test,
    )


def global_test_subset(test: LabelledArrays, size: int) -> LabelledArrays:
    """The public test rows the global accuracy is measured on: all of them (``size`` 0 or
    at least the set's size), or a fixed subset of ``size`` in the set's order, the same for
    every run seed so that runs compare on the same images."""
    if size <= 0 or size >= len(test):
        return test
    chosen = np.random.default_rng([SPLIT_SEED, size]).choice(len(test), size, replace=False)
    return test.subset(np.sort(chosen))


def carve_transfer(source: SourceDataset, transfer_size: int) -> tuple[TransferSet, np.ndarray]:
    """The source's public transfer set and the training-pool rows left for private use.

    A source with a named public split uses it (the whole training pool stays private);
    otherwise a fixed-seed carve-out of ``transfer_size`` rows, the same for every
    experiment seed, is removed from the pool before any simulated node sees it.
    """
    n = len(source.train)
    if source.public is not None:
        return make_transfer_set(source.public_name, source.public.x), np.arange(n)
    if not 0 < transfer_size < n:
        raise ValueError(
            f"transfer-size must be in (0, {n}) for {source.name}, got {transfer_size}"
        )
    order = np.random.default_rng([SPLIT_SEED, transfer_size]).permutation(n)
    public_idx, private_idx = np.sort(order[:transfer_size]), np.sort(order[transfer_size:])
    name = f"{source.name}/train-holdout-{transfer_size}"
    return make_transfer_set(name, source.train.x[public_idx]), private_idx


def save_public_bundle(public: PublicData, path: Path) -> Path:
    """Write ``public`` as a bundle (plain arrays, no pickles) and return its path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as fh:
        np.savez(
            fh,
            name=np.array(public.name),
            classes=np.array(public.classes),
            transfer_name=np.array(public.transfer.name),
            transfer_x=public.transfer.x,
            test_x=public.test.x,
            test_y=public.test.y,
        )
    return path


def load_public_bundle(path: Path) -> PublicData:
    """Read a public bundle written by :func:`save_public_bundle`.

    Raises
    ------
    FileNotFoundError
        No file at ``path``.
    ValueError
        Not an ``.npz`` bundle, a key missing, or arrays of the wrong type or shape.
    """
    if not path.is_file():
        raise FileNotFoundError(f"public data bundle {path} does not exist")
    sys.audit("fedkd.public_data.load", str(path))
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = [k for k in _BUNDLE_KEYS if k not in npz.files]
            if missing:
                raise ValueError(f"public data bundle {path} lacks {missing}")
            arrays = {k: npz[k] for k in _BUNDLE_KEYS}
    except (OSError, EOFError) as exc:  # not a zip / truncated
        raise ValueError(f"public data bundle {path} is unreadable: {exc}") from exc
    classes = tuple(str(c) for c in arrays["classes"].tolist())
    test = LabelledArrays(
        np.ascontiguousarray(arrays["test_x"], dtype=np.float32),
        np.asarray(arrays["test_y"], dtype=np.int64),
    )
    transfer_x = arrays["transfer_x"]
    if transfer_x.ndim < 2 or transfer_x.shape[1:] != test.x.shape[1:]:
        raise ValueError(
            f"public data bundle {path}: transfer inputs {transfer_x.shape} and test inputs "
            f"{test.x.shape} differ in shape"
        )
    if len(test) and (test.y.min() < 0 or test.y.max() >= len(classes)):
        raise ValueError(
            f"public data bundle {path}: test labels outside the {len(classes)} classes"
        )
    return PublicData(
        name=str(arrays["name"]),
        classes=classes,
        transfer=make_transfer_set(str(arrays["transfer_name"]), transfer_x),
        test=test,
    )
