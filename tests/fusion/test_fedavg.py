"""``fedavg`` (McMahan et al. 2017): weight averaging against a manual average, mismatches."""

from __future__ import annotations

import numpy as np
import pytest

from fedkd.fusion import Contribution, Release, fedavg_weights, make_fusion


def test_matches_a_manual_weighted_average() -> None:
    a = {"w": np.array([1.0, 2.0], np.float32), "b": np.array([0.0], np.float32)}
    b = {"w": np.array([3.0, 6.0], np.float32), "b": np.array([4.0], np.float32)}
    avg = fedavg_weights([a, b], np.array([1.0, 3.0]))
    np.testing.assert_allclose(avg["w"], [0.25 * 1 + 0.75 * 3, 0.25 * 2 + 0.75 * 6])
    np.testing.assert_allclose(avg["b"], [3.0])
    assert list(avg) == ["w", "b"] and avg["w"].dtype == np.float32


def test_uniform_by_default_and_key_order_free() -> None:
    rng = np.random.default_rng(0)
    models = [{"x": rng.normal(size=(3, 2)), "y": rng.normal(size=4)} for _ in range(4)]
    models[2] = {"y": models[2]["y"], "x": models[2]["x"]}
    avg = fedavg_weights(models)
    for key in ("x", "y"):
        manual = sum(m[key] for m in models) / 4
        np.testing.assert_allclose(avg[key], manual, atol=1e-12)


def test_integer_tensors_are_rounded() -> None:
    steps = [{"n": np.array(3, np.int64)}, {"n": np.array(4, np.int64)}]
    avg = fedavg_weights(steps, np.array([1.0, 3.0]))
    assert avg["n"].dtype == np.int64 and int(avg["n"]) == 4


def test_mismatches_name_the_key() -> None:
    a = {"w": np.zeros(2), "b": np.zeros(1)}
    with pytest.raises(ValueError, match=r"tensor 'w' has different shapes"):
        fedavg_weights([a, {"w": np.zeros(3), "b": np.zeros(1)}])
    with pytest.raises(ValueError, match=r"missing keys \['b'\], extra keys \['c'\]"):
        fedavg_weights([a, {"w": np.zeros(2), "c": np.zeros(1)}])
    with pytest.raises(ValueError, match="at least one model"):
        fedavg_weights([])
    with pytest.raises(ValueError, match="fedavg weights must be 2 finite nonnegative"):
        fedavg_weights([a, a], np.array([1.0, np.nan]))


def test_fedavg_asks_for_weights_and_gives_every_node_the_count_weighted_average() -> None:
    strategy = make_fusion("fedavg")
    assert strategy.identical_architectures
    asks = strategy.configure_round(1, [4, 7], np.arange(5, dtype=np.uint32))
    assert {a.release for a in asks.values()} == {Release.WEIGHTS}
    assert all(len(a.anchor_indices) == 0 for a in asks.values())
    result = strategy.aggregate(
        1,
        {
            4: Contribution(weights={"w": np.array([0.0, 3.0])}, num_examples=1),
            7: Contribution(weights={"w": np.array([4.0, 7.0])}, num_examples=3),
        },
    )
    assert result.per_node == {}
    assert result.shared is not None and result.shared.weights is not None
    np.testing.assert_allclose(result.shared.weights["w"], [3.0, 6.0])
    # Under DP nodes report no counts: uniform.
    uniform = strategy.aggregate(
        1, {4: Contribution(weights={"w": np.zeros(2)}), 7: Contribution(weights={"w": np.ones(2)})}
    )
    assert uniform.shared is not None and uniform.shared.weights is not None
    np.testing.assert_allclose(uniform.shared.weights["w"], [0.5, 0.5])


def test_fedavg_excludes_a_node_whose_weights_do_not_fit_and_averages_the_rest() -> None:
    good = {"w": np.array([1.0, 3.0]), "b": np.zeros(1)}
    result = make_fusion("fedavg").aggregate(
        1,
        {
            1: Contribution(weights=good),
            2: Contribution(weights={"w": np.array([3.0, 5.0]), "b": np.ones(1)}),
            3: Contribution(weights={"w": np.zeros(3), "b": np.zeros(1)}),  # another shape
            4: Contribution(weights={"w": np.zeros(2)}),  # a key missing
            5: Contribution(soft_labels=np.ones((1, 1))),  # no weights at all
        },
    )
    assert sorted(result.excluded) == [3, 4, 5]
    assert "other shapes [('w', (3,), (2,))]" in result.excluded[3]
    assert "missing ['b']" in result.excluded[4]
    assert "no weights" in result.excluded[5]
    assert result.shared is not None and result.shared.weights is not None
    np.testing.assert_allclose(result.shared.weights["w"], [2.0, 4.0])
    with pytest.raises(ValueError, match="no node contributed weights"):
        make_fusion("fedavg").aggregate(1, {3: Contribution(soft_labels=np.ones((1, 1)))})


def test_a_reported_record_count_cannot_take_the_weight() -> None:
    from fedkd.fusion.base import contribution_weights

    claims = {
        1: Contribution(num_examples=100),
        2: Contribution(num_examples=120),
        3: Contribution(num_examples=2**64 - 1),
    }
    w = contribution_weights(claims, [1, 2, 3])
    np.testing.assert_allclose(w, [100.0, 120.0, 360.0])  # capped at 3 × the median
