"""The public transfer set: unlabelled inputs every party agrees on by content digest."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np


def content_digest(*arrays: np.ndarray) -> str:
    """``sha256:`` over dtype, shape and the C-contiguous bytes of each array in turn."""
    h = hashlib.sha256()
    for x in arrays:
        arr = np.ascontiguousarray(x)
        h.update(f"{arr.dtype.str}|{arr.shape}|".encode())
        h.update(arr.tobytes())
    return f"sha256:{h.hexdigest()}"


def transfer_digest(x: np.ndarray) -> str:
    """The transfer set's identity: :func:`content_digest` of its inputs."""
    return content_digest(x)


def row_hashes(x: np.ndarray) -> set[bytes]:
    """SHA-256 of each row, for disjointness checks between splits."""
    arr = np.ascontiguousarray(x).reshape(len(x), -1)
    return {hashlib.sha256(row.tobytes()).digest() for row in arr}


@dataclass(frozen=True)
class TransferSet:
    """Public inputs (no labels: the server never needs them) and their digest."""

    name: str
    x: np.ndarray
    digest: str

    @property
    def num_samples(self) -> int:
        return len(self.x)


def make_transfer_set(name: str, x: np.ndarray) -> TransferSet:
    x = np.ascontiguousarray(x, dtype=np.float32)
    return TransferSet(name=name, x=x, digest=transfer_digest(x))
