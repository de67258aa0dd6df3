"""What every strategy shares: input validation, the simplex contract, mixing, the registry."""

from __future__ import annotations

import numpy as np
import pytest

from fedkd.fusion import FUSION_REGISTRY, FusionInput, FusionStrategy, make_fusion
from fedkd.fusion.knfu import KnFu
from tests.fusion._inputs import fuse, soft_labels

# Every registered soft-label strategy with its defaults (a new strategy file is covered
# without touching this one), plus variants worth holding to the same contract.
SOFT_LABEL_STRATEGIES: list[tuple[str, dict[str, float | int | bool | str]]] = [
    *(
        (name, {})
        for name, cls in sorted(FUSION_REGISTRY.items())
        if issubclass(cls, FusionStrategy)
    ),
    ("mean", {"weighted": True}),
    ("knfu", {"top_m": 2, "include_self": False}),
    ("knfu", {"threshold": 0.5, "global_blend": 0.2}),
    ("knfu", {"effectiveness": "per-class"}),
    ("knfu", {"effectiveness": "per-sample"}),
]


def test_every_strategy_file_registers_its_strategy() -> None:
    import pkgutil

    import fedkd.fusion

    modules = {m.name for m in pkgutil.iter_modules(fedkd.fusion.__path__)} - {
        "base",
        "registry",
        "outliers",
        "sharpen",  # a step after any strategy, not one
    }
    registered = {cls.__module__.rsplit(".", 1)[1] for cls in FUSION_REGISTRY.values()}
    assert modules <= registered
    builtin = {"dsfl", "fedavg", "knfu", "local", "mean", "median", "trimmed-mean"}
    assert builtin <= set(FUSION_REGISTRY)
    assert all(FUSION_REGISTRY[name].name == name for name in FUSION_REGISTRY)
    personal = {name for name, cls in FUSION_REGISTRY.items() if cls.personalised}
    assert {"knfu", "local"} <= personal and not personal & {"mean", "dsfl", "fedavg"}


def test_make_fusion_errors() -> None:
    with pytest.raises(ValueError, match=r"unknown fusion strategy 'nope'; known: \['dsfl'"):
        make_fusion("nope")
    with pytest.raises(ValueError, match=r"knfu has no parameter\(s\) \['gamma'\]"):
        make_fusion("knfu", gamma=1.0)
    with pytest.raises(ValueError, match=r"knfu parameter top_m must be int, got 2.5 \(float\)"):
        make_fusion("knfu", top_m=2.5)
    with pytest.raises(ValueError, match="knfu parameter include_self must be bool, got 'no'"):
        make_fusion("knfu", include_self="no")
    with pytest.raises(ValueError, match="dsfl parameter temperature must be float, got True"):
        make_fusion("dsfl", temperature=True)


def test_make_fusion_accepts_an_int_for_a_float() -> None:
    strategy = make_fusion("knfu", beta=3, top_m=2)
    assert strategy == make_fusion("knfu", beta=3.0, top_m=2)
    assert isinstance(strategy, KnFu) and isinstance(strategy.beta, float)


@pytest.mark.parametrize(("name", "params"), SOFT_LABEL_STRATEGIES, ids=str)
@pytest.mark.parametrize("sparse", [False, True])
def test_outputs_are_on_the_simplex(
    name: str, params: dict[str, float | int | bool | str], sparse: bool
) -> None:
    p = soft_labels((5, 9, 7), seed=7, sparse=sparse).astype(np.float32)
    result = make_fusion(name, **params).fuse(FusionInput(p, np.arange(1.0, 6.0)))
    assert result.targets.shape == p.shape and result.targets.dtype == np.float32
    assert np.all(result.targets >= 0)
    np.testing.assert_allclose(result.targets.sum(axis=2), 1.0, atol=1e-6)
    if result.mixing is not None:
        # The contract of `mixing`: row-stochastic and it reproduces the targets.
        assert np.all(result.mixing >= 0)
        np.testing.assert_allclose(result.mixing.sum(axis=1), 1.0, atol=1e-12)
        np.testing.assert_allclose(
            result.targets, np.einsum("kj,jtc->ktc", result.mixing, p), atol=1e-6
        )


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (np.full((2, 3, 4), np.nan), "NaN or inf"),
        (np.full((2, 3, 4), np.inf), "NaN or inf"),
        (np.full((3, 4), 0.25), r"must have shape \(clients, anchors, classes\), got shape"),
        (np.zeros((0, 3, 4)), "at least one client and one class"),
        (np.zeros((2, 3, 0)), "at least one client and one class"),
        (np.array([[[1.5, -0.5]]]), "must be nonnegative, got min -0.5"),
        (np.full((2, 3, 4), 0.5), r"rows must sum to 1 \(within 0.001\), got a max deviation"),
    ],
)
def test_bad_soft_labels_are_rejected(bad: np.ndarray, message: str) -> None:
    for name in ("mean", "knfu", "median"):
        with pytest.raises(ValueError, match=message):
            make_fusion(name).fuse(FusionInput(bad))


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        (np.ones(3), r"weights must have shape \(2,\), got \(3,\)"),
        (np.array([1.0, -1.0]), "weights must be finite, nonnegative and not all zero"),
        (np.array([0.0, 0.0]), "weights must be finite, nonnegative and not all zero"),
        (np.array([1.0, np.nan]), "weights must be finite, nonnegative and not all zero"),
    ],
)
def test_bad_weights_are_rejected(weights: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make_fusion("mean", weighted=True).fuse(FusionInput(soft_labels((2, 3, 4)), weights))


def test_rows_within_tolerance_are_renormalised() -> None:
    p = soft_labels((3, 4, 5)) * 1.0008  # an fp16 payload's round-off
    np.testing.assert_allclose(fuse("local", p), p / 1.0008, atol=1e-6)


def test_no_anchors_gives_empty_targets() -> None:
    for name in ("mean", "dsfl", "knfu", "median"):
        targets = fuse(name, np.zeros((3, 0, 4)))
        assert targets.shape == (3, 0, 4) and targets.dtype == np.float32


def test_inputs_are_not_modified() -> None:
    p = soft_labels((4, 5, 6), seed=11)
    before = p.copy()
    for name, params in SOFT_LABEL_STRATEGIES:
        make_fusion(name, **params).fuse(FusionInput(p))
    np.testing.assert_array_equal(p, before)
