"""``knfu`` (our KnFu reconstruction): every variant against a naive reference, closed forms."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from fedkd.fusion import FusionInput, make_fusion
from fedkd.fusion.knfu import KnFu
from tests.fusion._inputs import SHAPES, fuse, soft_labels

Params = dict[str, float | int | bool | str]
# The naive reference starts from the same defaults as the strategy.
DEFAULTS: Params = {f.name: f.default for f in dataclasses.fields(KnFu)}


def naive_pair_weights(
    p: np.ndarray,
    beta: float = 10.0,
    top_m: int = 0,
    threshold: float = 0.0,
    include_self: bool = True,
    smoothing: float = 1e-3,
) -> np.ndarray:
    k, t, c = p.shape
    e = [[0.0] * c for _ in range(k)]
    for j in range(k):
        for cl in range(c):
            avg = sum(p[j, a, cl] for a in range(t)) / t
            e[j][cl] = (1 - smoothing) * avg + smoothing / c
    w = np.zeros((k, k))
    for i in range(k):
        candidates = [j for j in range(k) if include_self or j != i or k == 1]
        score = {}
        for j in candidates:
            kl = sum(e[i][cl] * math.log(e[i][cl] / e[j][cl]) for cl in range(c))
            score[j] = -beta * kl
        top = max(score.values())
        z = sum(math.exp(s - top) for s in score.values())
        soft = {j: math.exp(s - top) / z for j, s in score.items()}
        kept = set(soft)
        if 0 < top_m < k:
            kept &= set(sorted(soft, key=lambda j: (-soft[j], j))[:top_m])
        if threshold > 0:
            peak = max(soft.values())
            kept &= {j for j in soft if soft[j] >= threshold * peak}
        total = sum(soft[j] for j in kept)
        for j in kept:
            w[i, j] = soft[j] / total
    return w


def naive_knfu(p: np.ndarray, params: Params) -> np.ndarray:
    params = {**DEFAULTS, **params}
    k, t, c = p.shape
    pair_keys = ("beta", "top_m", "threshold", "include_self", "smoothing")
    pair = naive_pair_weights(p, **{key: params[key] for key in pair_keys if key in params})  # type: ignore[arg-type]
    effectiveness = params.get("effectiveness", "distribution")
    gamma = float(params.get("class_power", 1.0))
    beta_s = float(params.get("sample_beta", 1.0))
    blend = float(params.get("global_blend", 0.0))
    s = float(params.get("smoothing", 1e-3))
    out = np.zeros((k, t, c))
    for i in range(k):
        for a in range(t):
            raw = []
            for j in range(k):
                if effectiveness == "per-class":
                    consensus = [sum(p[m, a, cl] for m in range(k)) / k for cl in range(c)]
                    c_t = max(range(c), key=lambda cl: (consensus[cl], -cl))
                    e_jc = (1 - s) * sum(p[j, b, c_t] for b in range(t)) / t + s / c
                    raw.append(pair[i, j] * e_jc**gamma)
                elif effectiveness == "per-sample":
                    h = -sum(
                        p[j, a, cl] * math.log(p[j, a, cl]) for cl in range(c) if p[j, a, cl] > 0
                    )
                    raw.append(pair[i, j] * math.exp(-beta_s * h))
                else:
                    raw.append(pair[i, j])
            total = sum(raw)
            for cl in range(c):
                personal = sum(raw[j] / total * p[j, a, cl] for j in range(k))
                consensus_c = sum(p[j, a, cl] for j in range(k)) / k
                out[i, a, cl] = (1 - blend) * personal + blend * consensus_c
    return out


VARIANTS: list[Params] = [
    {},
    {"beta": 3.0},
    {"smoothing": 0.05},
    {"top_m": 1},
    {"top_m": 2},
    {"threshold": 0.5},
    {"threshold": 0.9, "top_m": 3},
    {"include_self": False},
    {"include_self": False, "top_m": 2},
    {"include_self": False, "threshold": 0.3},
    {"effectiveness": "per-class"},
    {"effectiveness": "per-class", "class_power": 2.0, "include_self": False},
    {"effectiveness": "per-class", "class_power": 0.0},
    {"effectiveness": "per-sample"},
    {"effectiveness": "per-sample", "sample_beta": 3.0, "top_m": 2},
    {"global_blend": 0.3},
    {"global_blend": 1.0},
    {"effectiveness": "per-class", "global_blend": 0.5, "threshold": 0.2},
    {"effectiveness": "per-sample", "global_blend": 0.5, "include_self": False},
]


@pytest.mark.parametrize("variant", VARIANTS, ids=str)
@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("shape", SHAPES)
def test_knfu_matches_naive(shape: tuple[int, int, int], sparse: bool, variant: Params) -> None:
    p = soft_labels(shape, seed=1, sparse=sparse)
    result = make_fusion("knfu", **variant).fuse(FusionInput(p))
    np.testing.assert_allclose(result.targets, naive_knfu(p, variant), atol=1e-6)
    merged = {**DEFAULTS, **variant}
    if merged["effectiveness"] == "distribution":
        assert result.mixing is not None
        pair_keys = ("beta", "top_m", "threshold", "include_self", "smoothing")
        pair = naive_pair_weights(p, **{k: merged[k] for k in pair_keys})  # type: ignore[arg-type]
        lam = float(merged["global_blend"])
        np.testing.assert_allclose(result.mixing, (1 - lam) * pair + lam / shape[0], atol=1e-9)
    else:
        assert result.mixing is None


def test_identical_clients_get_the_mean() -> None:
    same = np.repeat(soft_labels((1, 5, 4)), 4, axis=0)
    for params in ({}, {"include_self": False}, {"effectiveness": "per-sample"}):
        np.testing.assert_allclose(fuse("knfu", same, **params), fuse("mean", same), atol=1e-6)


def test_ties_in_top_m_go_to_the_lower_index() -> None:
    same = np.repeat(soft_labels((1, 3, 5)), 4, axis=0)
    result = make_fusion("knfu", effectiveness="distribution", top_m=2).fuse(FusionInput(same))
    assert result.mixing is not None
    np.testing.assert_array_equal(result.mixing, np.tile([0.5, 0.5, 0.0, 0.0], (4, 1)))
    result = make_fusion("knfu", effectiveness="distribution", top_m=2, include_self=False).fuse(
        FusionInput(same)
    )
    assert result.mixing is not None
    expected = [[0, 0.5, 0.5, 0], [0.5, 0, 0.5, 0], [0.5, 0.5, 0, 0], [0.5, 0.5, 0, 0]]
    np.testing.assert_array_equal(result.mixing, expected)


def test_ties_beyond_small_sort_sizes_still_go_to_the_lower_index() -> None:
    # 40 clients of two kinds, interleaved (the sort must be stable, not just small).
    kinds = soft_labels((2, 3, 5), seed=13)
    result = make_fusion("knfu", effectiveness="distribution", top_m=3).fuse(
        FusionInput(np.tile(kinds, (20, 1, 1)))
    )
    assert result.mixing is not None
    expected = np.zeros((40, 40))
    expected[0::2, [0, 2, 4]] = 1 / 3
    expected[1::2, [1, 3, 5]] = 1 / 3
    np.testing.assert_allclose(result.mixing, expected, atol=1e-12)


def test_threshold_one_keeps_exactly_the_row_maxima() -> None:
    same = np.repeat(soft_labels((1, 3, 5)), 3, axis=0)
    np.testing.assert_allclose(fuse("knfu", same, threshold=1.0), fuse("mean", same), atol=1e-6)
    p = soft_labels((4, 6, 5), seed=12)
    np.testing.assert_allclose(fuse("knfu", p, threshold=1.0), p, atol=1e-6)


def test_large_beta_with_self_picks_self() -> None:
    p = soft_labels((5, 8, 6), seed=3)
    result = make_fusion("knfu", beta=1e4, effectiveness="distribution").fuse(FusionInput(p))
    assert result.mixing is not None
    np.testing.assert_allclose(result.mixing, np.eye(5), atol=1e-6)
    np.testing.assert_allclose(result.targets, p, atol=1e-5)


def test_without_self_mixes_only_within_the_cluster() -> None:
    rng = np.random.default_rng(5)
    # Clients 0-2 have seen classes {0, 1}; clients 3-5 classes {2, 3}.
    low = np.array([0.48, 0.48, 0.02, 0.02])
    p = np.stack([rng.dirichlet(200 * (low if j < 3 else low[::-1]), size=10) for j in range(6)])
    result = make_fusion("knfu", include_self=False, effectiveness="distribution", beta=10.0).fuse(
        FusionInput(p)
    )
    assert result.mixing is not None
    assert result.mixing[:3, 3:].max() < 1e-3 and result.mixing[3:, :3].max() < 1e-3
    np.testing.assert_array_equal(np.diag(result.mixing), 0.0)
    np.testing.assert_allclose(result.mixing.sum(axis=1), 1.0)
    within = (p[[1, 2]].mean(axis=0), p[[3, 4]].mean(axis=0))
    np.testing.assert_allclose(result.targets[0], within[0], atol=0.02)
    np.testing.assert_allclose(result.targets[5], within[1], atol=0.02)


def test_single_client_without_self_falls_back_to_self() -> None:
    p = soft_labels((1, 6, 4))
    for effectiveness in ("distribution", "per-class", "per-sample"):
        targets = fuse("knfu", p, include_self=False, effectiveness=effectiveness)
        np.testing.assert_allclose(targets, p, atol=1e-6)


def test_full_global_blend_is_the_mean() -> None:
    p = soft_labels((4, 6, 5), seed=8)
    np.testing.assert_allclose(fuse("knfu", p, global_blend=1.0), fuse("mean", p), atol=1e-6)


def test_per_sample_prefers_the_confident_client() -> None:
    # Same label distributions (so equal pair weights), but client 1 is sure where 0 is not.
    confident = np.array([[0.9, 0.1], [0.1, 0.9]])
    unsure = np.array([[0.6, 0.4], [0.4, 0.6]])
    p = np.stack([unsure, confident])
    pair_only = fuse("knfu", p, effectiveness="distribution")
    per_sample = fuse("knfu", p, effectiveness="per-sample", sample_beta=10.0)
    np.testing.assert_allclose(pair_only[:, 0, 0], [0.75, 0.75], atol=1e-6)
    assert per_sample[0, 0, 0] > 0.88 and per_sample[1, 0, 0] > 0.88


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"beta": -1.0}, "beta must be > 0 and finite, got -1.0"),
        ({"top_m": -2}, r"top_m must be an integer >= 0 \(0 keeps all\), got -2"),
        ({"threshold": 1.5}, r"threshold must be in \[0, 1\], got 1.5"),
        ({"smoothing": 0.0}, r"smoothing must be in \(0, 1\) so every KL stays finite, got 0.0"),
        ({"effectiveness": "per-pixel"}, "effectiveness must be one of .* got 'per-pixel'"),
        ({"class_power": -1.0}, "class_power must be >= 0 and finite, got -1.0"),
        ({"sample_beta": -0.5}, "sample_beta must be >= 0 and finite, got -0.5"),
        ({"global_blend": 2.0}, r"global_blend must be in \[0, 1\], got 2.0"),
    ],
)
def test_bad_parameters(params: Params, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make_fusion("knfu", **params)


def test_underflowing_competence_falls_back_to_the_pair_weights() -> None:
    p = soft_labels((4, 6, 5), seed=3, sparse=False)
    # β_s so large that exp(−β_s·H) is 0 for every anchor that is not one-hot.
    fused = make_fusion("knfu", effectiveness="per-sample", sample_beta=1e6).fuse(FusionInput(p))
    pair_only = make_fusion("knfu", effectiveness="distribution").fuse(FusionInput(p))
    np.testing.assert_allclose(fused.targets, pair_only.targets, atol=1e-12)


def test_per_anchor_fusion_never_builds_a_clients_by_clients_by_anchors_array() -> None:
    """At K = 400 clients and T = 500 anchors the (K, K, T) weights alone take 640 MB."""
    import tracemalloc

    k, t, c = 400, 500, 10
    p = soft_labels((k, t, c), seed=0, sparse=False)
    knfu = make_fusion("knfu", effectiveness="per-sample")
    tracemalloc.start()
    try:
        fused = knfu.fuse(FusionInput(p))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert fused.targets.shape == (k, t, c)
    assert peak < 8 * p.nbytes  # 16 MB in; the (K, K, T) path peaked at 1.9 GB
    np.testing.assert_allclose(fused.targets.sum(axis=2), 1.0, atol=1e-6)  # float32 out
