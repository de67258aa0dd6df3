"""Each strategy against its naive reference, plus closed forms and validation."""

from __future__ import annotations

import numpy as np
import pytest

from fedkd.fusion import FUSION_REGISTRY, FusionInput, make_fusion
from fedkd.fusion.fedavg import fedavg_weights
from tests.fusion.reference import (
    ref_dsfl,
    ref_knfu,
    ref_mean,
    ref_median,
    ref_trimmed_mean,
)

SHAPES = [(1, 4, 3), (3, 7, 5), (6, 12, 10)]


def _soft_labels(shape: tuple[int, int, int], seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    # Skewed per-client label distributions, so the clients really differ.
    k, t, c = shape
    prior = rng.dirichlet(np.full(c, 0.5), size=k)
    return np.stack([rng.dirichlet(1 + 20 * prior[j], size=t) for j in range(k)])


def _fuse(name: str, p: np.ndarray, **params: object) -> np.ndarray:
    return make_fusion(name, **params).fuse(FusionInput(p)).targets  # type: ignore[arg-type]


def test_registry_has_every_strategy() -> None:
    assert sorted(FUSION_REGISTRY) == sorted(
        ["local", "mean", "dsfl", "knfu", "median", "trimmed-mean", "fedavg"]
    )


@pytest.mark.parametrize("shape", SHAPES)
def test_mean_matches_reference(shape: tuple[int, int, int]) -> None:
    p = _soft_labels(shape)
    np.testing.assert_allclose(_fuse("mean", p), ref_mean(p), atol=1e-6)
    w = np.arange(1, shape[0] + 1, dtype=float)
    weighted = make_fusion("mean", weighted=True).fuse(FusionInput(p, w)).targets
    np.testing.assert_allclose(weighted, ref_mean(p, w), atol=1e-6)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("temperature", [0.1, 0.5, 1.0])
def test_dsfl_matches_reference(shape: tuple[int, int, int], temperature: float) -> None:
    p = _soft_labels(shape)
    np.testing.assert_allclose(
        _fuse("dsfl", p, temperature=temperature), ref_dsfl(p, temperature), atol=1e-6
    )


KNFU_VARIANTS: list[dict[str, object]] = [
    {},
    {"beta": 3.0},
    {"top_m": 2},
    {"threshold": 0.5},
    {"include_self": False},
    {"include_self": False, "top_m": 3},
    {"effectiveness": "per-class"},
    {"effectiveness": "per-class", "class_power": 2.0, "include_self": False},
    {"effectiveness": "per-sample", "sample_beta": 2.0},
    {"global_blend": 0.3},
    {"effectiveness": "per-sample", "global_blend": 0.5, "top_m": 2},
]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("variant", KNFU_VARIANTS, ids=str)
def test_knfu_matches_reference(shape: tuple[int, int, int], variant: dict[str, object]) -> None:
    p = _soft_labels(shape, seed=1)
    params = {
        "beta": 10.0,
        "top_m": 0,
        "threshold": 0.0,
        "include_self": True,
        "smoothing": 1e-3,
        **variant,
    }
    np.testing.assert_allclose(_fuse("knfu", p, **params), ref_knfu(p, **params), atol=1e-6)


@pytest.mark.parametrize("shape", SHAPES)
def test_robust_strategies_match_reference(shape: tuple[int, int, int]) -> None:
    p = _soft_labels(shape, seed=2)
    np.testing.assert_allclose(_fuse("median", p), ref_median(p), atol=1e-6)
    np.testing.assert_allclose(
        _fuse("trimmed-mean", p, trim_fraction=0.2), ref_trimmed_mean(p, 0.2), atol=1e-6
    )


def test_closed_forms() -> None:
    one_hot = np.array([[[1.0, 0.0]], [[0.0, 1.0]]])
    np.testing.assert_allclose(_fuse("mean", one_hot)[0, 0], [0.5, 0.5])
    same = np.repeat(_soft_labels((1, 5, 4)), 4, axis=0)
    np.testing.assert_allclose(_fuse("knfu", same), _fuse("mean", same), atol=1e-6)
    p = _soft_labels((5, 8, 6), seed=3)
    np.testing.assert_allclose(_fuse("knfu", p, beta=1e4), p, atol=1e-5)  # self dominates
    np.testing.assert_allclose(_fuse("dsfl", p, temperature=1.0), _fuse("mean", p), atol=1e-6)
    np.testing.assert_allclose(
        _fuse("trimmed-mean", p, trim_fraction=0.0), _fuse("mean", p), atol=1e-6
    )
    np.testing.assert_allclose(_fuse("local", p), p, atol=1e-6)


def test_dsfl_is_sharper_than_mean() -> None:
    p = _soft_labels((4, 20, 10), seed=4)

    def entropy(q: np.ndarray) -> float:
        return float(-(q * np.log(np.clip(q, 1e-12, None))).sum(-1).mean())

    assert entropy(_fuse("dsfl", p, temperature=0.3)) < entropy(_fuse("mean", p)) - 0.1


def test_knfu_mixes_within_semantic_clusters() -> None:
    rng = np.random.default_rng(5)
    # Clients 0-2 know classes {0, 1}; clients 3-5 know classes {2, 3}.
    low = np.array([0.48, 0.48, 0.02, 0.02])
    high = low[::-1].copy()
    p = np.stack([rng.dirichlet(200 * (low if j < 3 else high), size=10) for j in range(6)])
    result = make_fusion("knfu", include_self=False).fuse(FusionInput(p))
    assert result.mixing is not None
    assert result.mixing[:3, 3:].max() < 1e-3 and result.mixing[3:, :3].max() < 1e-3
    np.testing.assert_allclose(result.mixing.sum(axis=1), 1.0)
    assert np.all(np.diag(result.mixing) == 0)


def test_median_resists_one_poisoned_client() -> None:
    rng = np.random.default_rng(6)
    base = rng.dirichlet(np.ones(5), size=10)
    p = np.stack([np.stack([rng.dirichlet(500 * row) for row in base]) for _ in range(7)])
    honest = p[1:].mean(axis=0)
    p[0] = np.eye(5)[np.zeros(10, dtype=int)]  # a poisoner always voting class 0
    median_err = np.abs(_fuse("median", p)[0] - honest).max()
    mean_err = np.abs(_fuse("mean", p)[0] - honest).max()
    assert median_err < 0.5 * mean_err


@pytest.mark.parametrize("name", ["mean", "dsfl", "knfu", "median", "trimmed-mean"])
def test_outputs_are_distributions(name: str) -> None:
    out = _fuse(name, _soft_labels((5, 9, 7), seed=7))
    assert out.dtype == np.float32 and np.all(out >= 0)
    np.testing.assert_allclose(out.sum(axis=2), 1.0, atol=1e-5)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (np.full((2, 3, 4), np.nan), "NaN"),
        (np.full((3, 4), 0.25), "shape"),
        (np.array([[[1.5, -0.5]]]), "nonnegative"),
        (np.full((2, 3, 4), 0.5), "sum to 1"),
    ],
)
def test_bad_inputs_are_rejected(bad: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make_fusion("mean").fuse(FusionInput(bad))


def test_bad_parameters_are_rejected() -> None:
    with pytest.raises(ValueError, match="unknown fusion strategy 'nope'"):
        make_fusion("nope")
    with pytest.raises(ValueError, match=r"no parameter\(s\) \['gamma'\]"):
        make_fusion("knfu", gamma=1.0)
    with pytest.raises(ValueError, match="beta must be > 0, got -1"):
        make_fusion("knfu", beta=-1.0)


def test_fedavg_weights() -> None:
    a = {"w": np.array([1.0, 2.0], np.float32), "b": np.array([0.0], np.float32)}
    b = {"w": np.array([3.0, 6.0], np.float32), "b": np.array([4.0], np.float32)}
    avg = fedavg_weights([a, b], np.array([1.0, 3.0]))
    np.testing.assert_allclose(avg["w"], [2.5, 5.0])
    np.testing.assert_allclose(avg["b"], [3.0])
    assert avg["w"].dtype == np.float32
    with pytest.raises(ValueError, match="'w' has different shapes"):
        fedavg_weights([a, {"w": np.zeros(3, np.float32), "b": np.zeros(1, np.float32)}])
    with pytest.raises(ValueError, match="fedavg averages model weights"):
        make_fusion("fedavg").fuse(FusionInput(np.full((1, 1, 2), 0.5)))
