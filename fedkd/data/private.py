"""A node's private records as the rest of fedkd sees them, and its local test split.

Every provider ends here: training records, and a local test set that holds the node's own
held-out records and nothing else.  A node's local accuracy is its accuracy: a small node
is never topped up with public rows.  Where it holds fewer own test records than the stated
minimum (``min-local-test``), its accuracy is reported with its exact 95 % interval and
flagged as too few (:mod:`fedkd.reporting.summary`), not made to look more certain.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass

import numpy as np

from fedkd.data.arrays import LabelledArrays
from fedkd.data.transfer import content_digest


@dataclass(frozen=True)
class PrivateData:
    """A node's private training records and its local test set of its own records.

    ``min_test`` is the stated minimum of own test records (``min-local-test``): fewer
    do not change the test set, they make the node's local accuracy :attr:`too_few`.
    """

    train: LabelledArrays
    test: LabelledArrays
    min_test: int = 0

    @property
    def too_few(self) -> bool:
        """Fewer own test records than the stated minimum: the accuracy goes with its
        interval and a flag."""
        return len(self.test) < self.min_test

    @functools.cached_property
    def digest(self) -> str:
        """Content digest of the training records: the key the node's budget is kept under."""
        return content_digest(self.train.x, self.train.y)


def split_local(
    records: LabelledArrays,
    *,
    test_fraction: float,
    min_test: int,
    max_train: int | None,
    rng: np.random.Generator,
) -> PrivateData:
    """Hold out ``test_fraction`` of ``records`` (row order kept on both sides).

    ``rng`` is consumed by one permutation, so a caller that passes the same generator
    state gets the same split.  ``min_test`` is recorded, never filled.
    """
    order = rng.permutation(len(records))
    n_test = round(test_fraction * len(records))
    test_idx, train_idx = order[:n_test], order[n_test:]
    if max_train is not None:
        train_idx = train_idx[:max_train]
    return PrivateData(
        train=records.subset(np.sort(train_idx)),
        test=records.subset(np.sort(test_idx)),
        min_test=min_test,
    )


def held_out_by_record(records: LabelledArrays, fraction: float, *, seed: int) -> np.ndarray:
    """Which records form the local test set, decided record by record.

    A record is held out when the hash of (seed, its features, its label) falls below
    ``fraction``: adding or removing one record moves no other between training and test,
    so the training set changes by exactly that record.
    """
    salt = seed.to_bytes(8, "little", signed=True)
    rows = np.ascontiguousarray(records.x).reshape(len(records), -1)
    out = np.zeros(len(records), dtype=bool)
    for i, (row, label) in enumerate(zip(rows, records.y.tolist(), strict=True)):
        digest = hashlib.sha256(salt + row.tobytes() + int(label).to_bytes(8, "little")).digest()
        out[i] = int.from_bytes(digest[:8], "little") / 2**64 < fraction
    return out


def training_count(num_records: int, is_test: np.ndarray | None, test_fraction: float) -> int:
    """How many records :func:`split_private` leaves for training."""
    if is_test is None:
        return num_records - round(test_fraction * num_records)
    return int(np.count_nonzero(~is_test))


def split_private(
    records: LabelledArrays,
    is_test: np.ndarray | None,
    *,
    test_fraction: float,
    min_test: int,
    seed: int,
) -> PrivateData:
    """The node's training records and local test set, both of its own records only.

    With a declared hold-out (``is_test``, one bool per record) the records keep their file
    order on both sides; without one, ``test_fraction`` of them is held out record by record
    (:func:`held_out_by_record`), so one record more or less changes
    the training set by that record only.  The test set is never topped up: ``min_test``
    is the stated minimum below which the node's local accuracy is reported as too few,
    with its interval.
    """
    if is_test is None:
        is_test = held_out_by_record(records, test_fraction, seed=seed)
    return PrivateData(
        train=records.subset(np.flatnonzero(~is_test)),
        test=records.subset(np.flatnonzero(is_test)),
        min_test=min_test,
    )
