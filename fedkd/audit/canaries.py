"""Canaries: records whose secret is their input pattern and label, inserted into one
target client's private data, with never-inserted references drawn the same way.

Two kinds (Carlini et al. 2019's secret sharer, adapted to classification):

* ``ood`` — out-of-distribution inputs (uniform noise over the data's range) with a
  uniformly random label;
* ``mislabelled`` — in-distribution inputs (one of the target's own training records plus
  a small noise pattern, so every canary is a distinct input) with a label other than the
  record's.

Per kind there are ``candidates`` canaries, each inserted independently with probability
½ (the one-run bound's coin, recorded here), and ``references`` more that are never
inserted.  Inserted canaries are repeated ``repeats`` times.  Everything is drawn from
one seeded generator: the audit, not the run, owns this randomness.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable

import numpy as np

from fedkd.data.canary_set import KINDS, CanarySet

__all__ = ["KINDS", "CanarySet", "candidates_for_share", "draw_canaries", "row_digests"]

MAX_AUTO_CANDIDATES = 1000
"""Per kind, the most :func:`candidates_for_share` proposes: beyond ~2,000 candidates in
all the one-run ceiling stops growing (``one_run_bound``)."""
MISLABELLED_NOISE = 0.1
"""Noise added to a base record, as a fraction of the data's range."""


def draw_canaries(
    *,
    kinds: Iterable[str],
    candidates: int,
    references: int,
    repeats: int,
    num_classes: int,
    base_x: np.ndarray,
    base_y: np.ndarray,
    seed: int,
    insert: bool = True,
) -> CanarySet:
    """``candidates`` + ``references`` canaries of every kind in ``kinds``.

    ``base_x``/``base_y`` are the target's training records: they fix the input shape and
    range, and the mislabelled kind starts from them.  ``insert=False`` draws the same
    canaries and coins but inserts none (the negative control).
    """
    rng = np.random.default_rng([seed, 0xCA7A])
    lo, hi = float(base_x.min()), float(base_x.max())
    xs, ys, ks, cands = [], [], [], []
    for kind in kinds:
        if kind not in KINDS:
            raise ValueError(f"unknown canary kind {kind!r}; known: {list(KINDS)}")
        n = candidates + references
        if kind == "ood":
            x = rng.uniform(lo, hi, size=(n, *base_x.shape[1:])).astype(np.float32)
            y = rng.integers(0, num_classes, size=n)
        else:
            pick = rng.integers(0, len(base_x), size=n)
            noise = rng.normal(0.0, MISLABELLED_NOISE * (hi - lo), size=(n, *base_x.shape[1:]))
            x = np.clip(base_x[pick] + noise, lo, hi).astype(np.float32)
            shift = rng.integers(1, num_classes, size=n)
            y = (base_y[pick] + shift) % num_classes
        xs.append(x)
        ys.append(y.astype(np.int64))
        ks.append(np.full(n, KINDS.index(kind)))
        cands.append(np.r_[np.ones(candidates, bool), np.zeros(references, bool)])
    candidate = np.concatenate(cands)
    coin = candidate & (rng.random(len(candidate)) < 0.5)
    return CanarySet(
        x=np.concatenate(xs),
        y=np.concatenate(ys),
        kind=np.concatenate(ks),
        candidate=candidate,
        coin=coin,
        inserted=coin & insert,
        repeats=repeats,
        seed=seed,
    )


def candidates_for_share(records: int, *, share: float, kinds: int, repeats: int) -> int:
    """Candidates per kind such that the inserted rows — about half the candidates, each
    ``repeats`` times — stay within ``share`` of ``records`` even three standard
    deviations above the expected count of IN coins (at most MAX_AUTO_CANDIDATES)."""
    allowed = share * records / repeats
    total = 0
    # The largest m with m/2 + 3·√m/2 ≤ allowed (Binomial(m, ½): mean m/2, sd √m/2).
    if allowed > 0:
        root = (-1.5 + math.sqrt(2.25 + 2 * allowed)) / 0.5 / 2
        total = int(root**2)
        while total > 0 and total / 2 + 1.5 * math.sqrt(total) > allowed:
            total -= 1
    return min(MAX_AUTO_CANDIDATES, total // kinds)


def row_digests(x: np.ndarray) -> set[str]:
    """A digest per input row (float32 bytes), to show canaries collide with nothing."""
    rows = np.ascontiguousarray(np.asarray(x, np.float32).reshape(len(x), -1))
    return {hashlib.sha256(row.tobytes()).hexdigest() for row in rows}
