"""The fixed public-test subset the global accuracy may be measured on."""

from __future__ import annotations

import numpy as np
import pytest

from fedkd.data.arrays import LabelledArrays
from fedkd.data.public import PublicDataSpec, global_test_subset, load_public_data


def _test_set(n: int) -> LabelledArrays:
    x = np.arange(n, dtype=np.float32).reshape(n, 1)
    return LabelledArrays(x, np.arange(n, dtype=np.int64) % 10)


@pytest.mark.parametrize("size", [0, 1000, 5000])
def test_zero_or_at_least_the_whole_set_keeps_every_row(size: int) -> None:
    test = _test_set(1000)
    assert global_test_subset(test, size) is test


def test_a_subset_is_fixed_sorted_distinct_and_of_the_asked_size() -> None:
    test = _test_set(1000)
    first, again = global_test_subset(test, 200), global_test_subset(test, 200)
    rows = first.x[:, 0].astype(np.int64)
    assert len(first) == 200 and np.array_equal(first.x, again.x)
    assert np.all(np.diff(rows) > 0)  # distinct rows, in the set's own order
    assert np.array_equal(first.y, test.y[rows])
    # A spread of the whole set, not its head.
    assert rows.max() > 800 and rows.min() < 200


def test_global_evaluation_on_the_subset_of_the_real_digits_test_set() -> None:
    public = load_public_data(PublicDataSpec(dataset="digits", transfer_size=500))
    subset = global_test_subset(public.test, 100)
    assert len(subset) == 100 < len(public.test)
    # Every chosen row is a row of the public test set with its own label.
    whole = {(row.tobytes(), int(y)) for row, y in zip(public.test.x, public.test.y, strict=True)}
    assert all((row.tobytes(), int(y)) in whole for row, y in zip(subset.x, subset.y, strict=True))
