"""A node's private records as the rest of fedkd sees them, and its local test split.

Every provider ends here: training records, and a personalised local test set of the
node's own held-out records, topped up from the *public* test set to a minimum size with
rows drawn to match the node's label mix (so a small hospital still gets a stable
accuracy estimate, and no other node's records are involved).
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
    """A node's private training records and its personalised local test set.

    ``test`` = ``own_test`` of the node's own records, then ``topped_up`` rows of the public
    test set drawn to match the node's label mix.
    """

    train: LabelledArrays
    test: LabelledArrays
    own_test: int
    topped_up: int

    @functools.cached_property
    def digest(self) -> str:
        """Content digest of the training records: the key the node's budget is kept under."""
        return content_digest(self.train.x, self.train.y)


def split_local(
    records: LabelledArrays,
    public_test: LabelledArrays,
    num_classes: int,
    *,
    test_fraction: float,
    min_test: int,
    max_train: int | None,
    rng: np.random.Generator,
) -> PrivateData:
    """Hold out ``test_fraction`` of ``records`` (row order kept) and top the test set up.

    ``rng`` is consumed in a fixed order (permutation, then the top-up draw), so a caller
    that passes the same generator state gets the same split.
    """
    order = rng.permutation(len(records))
    n_test = round(test_fraction * len(records))
    test_idx, train_idx = order[:n_test], order[n_test:]
    if max_train is not None:
        train_idx = train_idx[:max_train]
    own = records.subset(np.sort(test_idx))
    return with_top_up(
        records.subset(np.sort(train_idx)),
        own,
        records.y,
        public_test,
        num_classes,
        min_test=min_test,
        rng=rng,
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


def with_top_up(
    train: LabelledArrays,
    own_test: LabelledArrays,
    label_mix: np.ndarray,
    public_test: LabelledArrays,
    num_classes: int,
    *,
    min_test: int,
    rng: np.random.Generator,
) -> PrivateData:
    """``own_test`` plus public test rows matching ``label_mix`` up to ``min_test`` rows."""
    need = max(0, min_test - len(own_test))
    extra = matching_draw(public_test, label_mix, num_classes, need, rng)
    test = LabelledArrays(
        np.concatenate([own_test.x, public_test.x[extra]]),
        np.concatenate([own_test.y, public_test.y[extra]]),
    )
    return PrivateData(train=train, test=test, own_test=len(own_test), topped_up=len(extra))


def matching_draw(
    pool: LabelledArrays,
    client_labels: np.ndarray,
    num_classes: int,
    count: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """``count`` pool rows whose labels follow the label distribution of ``client_labels``."""
    if count == 0:
        return np.zeros(0, dtype=np.int64)
    share = np.bincount(client_labels, minlength=num_classes) / max(1, len(client_labels))
    per_class = rng.multinomial(count, share)
    chosen: list[np.ndarray] = []
    for label, k in enumerate(per_class):
        if k == 0:
            continue
        candidates = np.flatnonzero(pool.y == label)
        if len(candidates) == 0:
            continue  # the public test set has no example of this class
        chosen.append(rng.choice(candidates, size=k, replace=k > len(candidates)))
    if not chosen:
        return np.zeros(0, dtype=np.int64)
    return np.concatenate(chosen).astype(np.int64)
