"""Deliberately naive reference implementations: loops over clients, anchors and classes."""

from __future__ import annotations

import math

import numpy as np


def ref_mean(p: np.ndarray, w: np.ndarray | None = None) -> np.ndarray:
    k, t, c = p.shape
    w = np.full(k, 1 / k) if w is None else w / w.sum()
    out = np.zeros((k, t, c))
    for i in range(k):
        for a in range(t):
            for cl in range(c):
                out[i, a, cl] = sum(w[j] * p[j, a, cl] for j in range(k))
    return out


def ref_dsfl(p: np.ndarray, temperature: float) -> np.ndarray:
    k, t, c = p.shape
    out = np.zeros((k, t, c))
    for a in range(t):
        logits = [
            math.log(max(sum(p[j, a, cl] for j in range(k)) / k, 1e-12)) / temperature
            for cl in range(c)
        ]
        top = max(logits)
        z = sum(math.exp(v - top) for v in logits)
        for i in range(k):
            for cl in range(c):
                out[i, a, cl] = math.exp(logits[cl] - top) / z
    return out


def ref_knfu_pairs(
    p: np.ndarray,
    *,
    beta: float,
    top_m: int,
    threshold: float,
    include_self: bool,
    smoothing: float,
) -> np.ndarray:
    k, t, c = p.shape
    e = [
        [
            (1 - smoothing) * sum(p[j, a, cl] for a in range(t)) / t + smoothing / c
            for cl in range(c)
        ]
        for j in range(k)
    ]
    w = np.zeros((k, k))
    for i in range(k):
        scores = {}
        for j in range(k):
            if j == i and not include_self and k > 1:
                continue
            kl = sum(e[i][cl] * math.log(e[i][cl] / e[j][cl]) for cl in range(c))
            scores[j] = -beta * kl
        top = max(scores.values())
        z = sum(math.exp(v - top) for v in scores.values())
        soft = {j: math.exp(v - top) / z for j, v in scores.items()}
        kept = dict(soft)
        if 0 < top_m < k:
            ranked = sorted(soft, key=lambda j: (-soft[j], j))[:top_m]
            kept = {j: soft[j] for j in ranked}
        if threshold > 0:
            peak = max(soft.values())
            kept = {j: v for j, v in kept.items() if v >= threshold * peak}
        total = sum(kept.values())
        for j, v in kept.items():
            w[i, j] = v / total
    return w


def ref_knfu(p: np.ndarray, **params: object) -> np.ndarray:
    k, t, c = p.shape
    effectiveness = params.pop("effectiveness", "distribution")
    class_power = float(params.pop("class_power", 1.0))  # type: ignore[arg-type]
    sample_beta = float(params.pop("sample_beta", 1.0))  # type: ignore[arg-type]
    blend = float(params.pop("global_blend", 0.0))  # type: ignore[arg-type]
    smoothing = float(params.get("smoothing", 1e-3))  # type: ignore[arg-type]
    w = ref_knfu_pairs(p, **params)  # type: ignore[arg-type]
    out = np.zeros((k, t, c))
    for i in range(k):
        for a in range(t):
            weights = []
            for j in range(k):
                if effectiveness == "distribution":
                    comp = 1.0
                elif effectiveness == "per-class":
                    consensus = [sum(p[m, a, cl] for m in range(k)) / k for cl in range(c)]
                    ca = int(np.argmax(consensus))
                    e_jc = (1 - smoothing) * sum(p[j, b, ca] for b in range(t)) / t + smoothing / c
                    comp = e_jc**class_power
                else:
                    ent = -sum(p[j, a, cl] * math.log(max(p[j, a, cl], 1e-12)) for cl in range(c))
                    comp = math.exp(-sample_beta * ent)
                weights.append(w[i, j] * comp)
            total = sum(weights)
            if total <= 0:
                weights, total = [w[i, j] for j in range(k)], 1.0
            for cl in range(c):
                personal = sum(weights[j] / total * p[j, a, cl] for j in range(k))
                mean = sum(p[j, a, cl] for j in range(k)) / k
                out[i, a, cl] = (1 - blend) * personal + blend * mean
    return out


def ref_median(p: np.ndarray) -> np.ndarray:
    k, t, c = p.shape
    out = np.zeros((k, t, c))
    for a in range(t):
        row = [float(np.median([p[j, a, cl] for j in range(k)])) for cl in range(c)]
        s = sum(row)
        for i in range(k):
            out[i, a] = [v / s for v in row]
    return out


def ref_trimmed_mean(p: np.ndarray, trim: float) -> np.ndarray:
    k, t, c = p.shape
    b = math.floor(trim * k)
    out = np.zeros((k, t, c))
    for a in range(t):
        row = []
        for cl in range(c):
            vals = sorted(p[j, a, cl] for j in range(k))[b : k - b]
            row.append(sum(vals) / len(vals))
        s = sum(row)
        for i in range(k):
            out[i, a] = [v / s for v in row]
    return out
