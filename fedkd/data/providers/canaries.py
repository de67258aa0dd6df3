"""``with-canaries``: another provider's records plus the audit's inserted canaries.

A wrapper, so the same path serves a simulated node and a hospital's node: the node's
config names the base provider and the canary file; every other ``data-`` option is the
base provider's::

    data = "with-canaries"
    data-canaries = "audit/canaries.npz"
    data-base = "csv"
    data-path = "/data/cleveland.csv"
    data-schema = "/data/heart.schema.toml"

Only the canaries marked inserted enter the training records (each ``repeats`` times);
the local test set is the base provider's, untouched.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fedkd.data.arrays import LabelledArrays
from fedkd.data.canary_set import CanarySet
from fedkd.data.private import PrivateData
from fedkd.data.providers.base import (
    DataValidationError,
    PrivateDataProvider,
    make_provider,
    register_provider,
)
from fedkd.data.public import PublicData
from fedkd.plugins import Param


@register_provider
@dataclass(frozen=True)
class WithCanaries(PrivateDataProvider):
    """The ``base`` provider's records with the inserted canaries of ``canaries`` added."""

    name = "with-canaries"
    wraps_provider = True
    canaries: str = ""
    base: str = "partition"
    base_options: tuple[tuple[str, Param], ...] = ()

    def load(self, public: PublicData) -> PrivateData:
        if self.base == self.name:
            raise DataValidationError(self.name, ["data-base cannot be with-canaries itself"])
        records = make_provider(self.base, dict(self.base_options)).load(public)
        path = Path(self.canaries).expanduser()
        if not path.is_file():
            raise DataValidationError(self.name, [f"canary file {path} does not exist"])
        canaries = CanarySet.load(path)
        x, y = canaries.inserted_rows()
        problems = []
        if x.shape[1:] != records.train.x.shape[1:]:
            problems.append(f"canary inputs {x.shape[1:]} ≠ records {records.train.x.shape[1:]}")
        if len(y) and not (y.min() >= 0 and y.max() < public.num_classes):
            problems.append(f"canary labels outside [0, {public.num_classes})")
        if problems:
            raise DataValidationError(f"{self.name} {path}", problems)
        train = LabelledArrays(
            np.concatenate([records.train.x, x.astype(records.train.x.dtype)]),
            np.concatenate([records.train.y, y.astype(records.train.y.dtype)]),
        )
        return PrivateData(train=train, test=records.test, min_test=records.min_test)
