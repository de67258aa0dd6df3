"""Partitions remembered on disk, so that a simulation's processes and its re-runs read
a split instead of recomputing it.

flwr-datasets' partitioners take seconds on a 60,000-label pool, and every Ray worker of
a simulation needs the same split (each builds its clients' data independently).  The
split is a pure function of the labels, the groups, the scheme's parameters and the
partitioner's code, so the key is exactly that: a digest of the labels and groups, the
parameters, and flwr-datasets' version.  A cache that cannot be read or written is
skipped (the split is computed as if there were none); a file that does not hold a valid
split for its key is recomputed and replaced.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import tempfile
from importlib import metadata
from pathlib import Path

import numpy as np

from fedkd.data.partition import SPLIT_VERSION, partition_indices

log = logging.getLogger(__name__)


def partition_key(labels: np.ndarray, groups: np.ndarray | None, **params: object) -> str:
    """The cache key: SHA-256 over the labels, the groups, the parameters, flwr-datasets'
    version and fedkd's own (:data:`fedkd.data.partition.SPLIT_VERSION`)."""
    digest = hashlib.sha256()
    for array in (labels, groups if groups is not None else np.zeros(0, dtype=np.int64)):
        values = np.ascontiguousarray(array, dtype=np.int64)
        digest.update(f"{values.shape}|".encode())
        digest.update(values.tobytes())
    described = {
        **params,
        "flwr-datasets": metadata.version("flwr-datasets"),
        "fedkd-split": SPLIT_VERSION,
    }
    digest.update(json.dumps(described, sort_keys=True, default=str).encode())
    return digest.hexdigest()


def cached_partition_indices(
    labels: np.ndarray,
    *,
    cache_dir: Path | None,
    scheme: str,
    num_partitions: int,
    seed: int,
    alpha: float = 0.5,
    classes_per_partition: int = 2,
    groups: np.ndarray | None = None,
) -> list[np.ndarray]:
    """:func:`fedkd.data.partition.partition_indices`, read from ``cache_dir`` when it was
    computed before (``None``: no cache)."""
    params: dict[str, object] = {
        "scheme": scheme,
        "num_partitions": num_partitions,
        "seed": seed,
        "alpha": alpha,
        "classes_per_partition": classes_per_partition,
    }

    def compute() -> list[np.ndarray]:
        return partition_indices(
            labels,
            scheme=scheme,
            num_partitions=num_partitions,
            seed=seed,
            alpha=alpha,
            classes_per_partition=classes_per_partition,
            groups=groups,
        )

    if cache_dir is None:
        return compute()
    path = cache_dir / f"{partition_key(labels, groups, **params)}.npz"
    stored = _read(path, num_partitions, len(labels))
    if stored is not None:
        return stored
    parts = compute()
    _write(path, parts)
    return parts


def _read(path: Path, num_partitions: int, num_rows: int) -> list[np.ndarray] | None:
    """The split stored at ``path``, or ``None`` when absent or not a valid split."""
    try:
        with np.load(path, allow_pickle=False) as stored:
            rows, bounds = stored["rows"], stored["bounds"]
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError) as exc:
        log.warning("partition cache %s unreadable (%s): computing the split again", path, exc)
        return None
    valid = (
        rows.dtype == np.int64
        and bounds.shape == (num_partitions + 1,)
        and bounds[0] == 0
        and bounds[-1] == len(rows)
        and bool(np.all(np.diff(bounds) >= 0))
        and (len(rows) == 0 or (rows.min() >= 0 and rows.max() < num_rows))
        and len(np.unique(rows)) == len(rows)
    )
    if not valid:
        log.warning("partition cache %s does not hold this split: computing it again", path)
        return None
    return [rows[bounds[i] : bounds[i + 1]] for i in range(num_partitions)]


def _write(path: Path, parts: list[np.ndarray]) -> None:
    """Store the split atomically (concurrent writers of one key write the same bytes)."""
    rows = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
    bounds = np.concatenate([[0], np.cumsum([len(p) for p in parts])]).astype(np.int64)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, suffix=".npz.tmp")
    except OSError as exc:
        log.info("partition cache %s not writable (%s): not cached", path.parent, exc)
        return
    try:
        with os.fdopen(handle, "wb") as out:
            np.savez(out, rows=rows.astype(np.int64), bounds=bounds)
        os.replace(temporary, path)
    except OSError as exc:
        log.info("partition cache %s not written (%s)", path, exc)
        with contextlib.suppress(OSError):
            os.unlink(temporary)
