"""Poisoned releases, for measuring what a strategy does with malicious clients.

A poisoned node trains as usual and then replaces the soft labels it releases with valid
probability rows (every row on the simplex, so no validation can tell them apart)::

    random           P[t] ~ Dirichlet(1, …, 1)
    label-flip       P[t, (c + 1) mod C] = P_honest[t, c]        (every class relabelled)
    confident-wrong  P[t] = 0.97 on argmin_c P_honest[t, c], the rest spread evenly
    mimic            confident (0.97) rows whose class mix equals a target client's label
                     profile π, each on a class other than the honest prediction: the mean
                     row ≈ π, so KnFu's distance to the target is ≈ 0 and the poisoner wins
                     a large fusion weight in the target's mixture (and, being confident,
                     a large per-sample weight), while every row is wrong.

The mimic attacker is given π (side information, e.g. the target's case mix); the bench
computes it from the target's training labels.  Simulation only: a node reading real data
refuses the option (:class:`fedkd.node.config.NodeConfig`).
"""

from __future__ import annotations

import numpy as np

ATTACKS = ("random", "label-flip", "confident-wrong", "mimic")
CONFIDENCE = 0.97


def poison(
    honest: np.ndarray, attack: str, *, rng: np.random.Generator, profile: np.ndarray | None = None
) -> np.ndarray:
    """The rows a poisoned node releases instead of ``honest`` (T, C); float32."""
    t, c = honest.shape
    if attack == "random":
        rows = rng.dirichlet(np.ones(c), size=t)
    elif attack == "label-flip":
        rows = np.roll(honest, 1, axis=1)
    elif attack == "confident-wrong":
        rows = _confident(np.argmin(honest, axis=1), c)
    elif attack == "mimic":
        if profile is None or profile.shape != (c,):
            raise ValueError(f"the mimic attack needs a label profile of {c} classes")
        rows = _confident(_classes_matching(profile, np.argmax(honest, axis=1), rng), c)
    else:
        raise ValueError(f"unknown attack {attack!r}; known: {list(ATTACKS)}")
    released: np.ndarray = (rows / rows.sum(axis=1, keepdims=True)).astype(np.float32)
    return released


def _confident(classes: np.ndarray, num_classes: int) -> np.ndarray:
    rest = (1.0 - CONFIDENCE) / (num_classes - 1)
    rows = np.full((len(classes), num_classes), rest)
    rows[np.arange(len(classes)), classes] = CONFIDENCE
    return rows


def _classes_matching(
    profile: np.ndarray, honest_top: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """One class per anchor, with counts ∝ ``profile`` (largest remainder), placed so as
    few anchors as possible get their honest top class."""
    t = len(honest_top)
    share = np.clip(profile, 0, None) / max(float(np.clip(profile, 0, None).sum()), 1e-12)
    counts = np.floor(share * t).astype(int)
    counts[np.argsort(-(share * t - counts))[: t - counts.sum()]] += 1
    classes = rng.permutation(np.repeat(np.arange(len(profile)), counts))
    # Swap a collision with any anchor whose class and honest class both differ from it.
    for i in np.flatnonzero(classes == honest_top):
        swaps = np.flatnonzero((classes != classes[i]) & (honest_top != classes[i]))
        swaps = swaps[classes[swaps] != honest_top[i]]
        if len(swaps):
            j = rng.choice(swaps)
            classes[i], classes[j] = classes[j], classes[i]
    return classes
