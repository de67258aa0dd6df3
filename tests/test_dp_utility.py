"""The DP reporting tables' verdicts: what the headline says must follow from the seeds."""

from __future__ import annotations

from tests.simulation_scripts import load_script


def test_monotone_only_when_every_seed_of_a_larger_budget_beats_every_seed_below() -> None:
    utility = load_script("dp_utility")
    epsilons = (1.0, 3.0, 8.0, None)
    separated = {
        ("knfu", 1.0): [0.90, 0.91],
        ("knfu", 3.0): [0.92, 0.93],
        ("knfu", 8.0): [0.94, 0.95],
        ("knfu", None): [0.97, 0.98],
    }
    overlapping = {**separated, ("knfu", 3.0): [0.905, 0.93]}
    said = utility._federated_headline(separated, epsilons)
    assert "knfu at ε = 3: global accuracy 0.925 ± 0.007" in said
    assert "ε = 8 is 0.030 below no DP" in said
    assert "monotone in ε outside the seeds' spread" in said
    assert "not monotone" in utility._federated_headline(overlapping, epsilons)


def test_every_strategy_gets_its_own_verdict() -> None:
    utility = load_script("dp_utility")
    glob = {
        ("knfu", 3.0): [0.92],
        ("mean", 1.0): [0.91],
        ("mean", 3.0): [0.94],
        ("mean", 8.0): [0.95],
        ("mean", None): [0.96],
    }
    said = utility._federated_headline(glob, (1.0, 3.0, 8.0, None))
    knfu, mean = said.split("; ")
    assert knfu.startswith("knfu at ε = 3") and "below no DP" not in knfu
    assert mean.startswith("mean at ε = 3") and "ε = 8 is 0.010 below no DP" in mean
    assert "monotone in ε outside" in mean


def test_central_rows_compare_every_model_on_mnist_and_the_chosen_one_elsewhere() -> None:
    utility = load_script("dp_utility")
    assert utility.central_models("mnist", smoke=False) == list(utility.CENTRAL_MODELS)
    assert utility.central_models("fashion-mnist", smoke=False) == ["scatnet-linear"]
    assert utility.central_models("digits", smoke=True) == ["cnn-s"]
