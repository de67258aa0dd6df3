"""ε composes across rounds exactly as one accountant would, and calibration has a margin."""

from __future__ import annotations

import math

import pytest
from opacus.accountants import PRVAccountant, RDPAccountant

from fedkd.privacy.accounting import (
    PRV_EPS_ERROR,
    Budget,
    DPSteps,
    calibrate_noise_multiplier,
    compose,
    epsilon,
    total_steps,
)

DELTA = 1e-5


def test_known_rdp_value_opacus_mnist_setting() -> None:
    # σ = 1, q = 256/60000, 60 epochs, δ = 1e-5: ε ≈ 3.08 under RDP (Opacus MNIST example).
    q = 256 / 60000
    history = (DPSteps(1.0, q, int(60 / q)),)
    assert epsilon(history, delta=DELTA, accountant="rdp") == pytest.approx(3.08, abs=0.01)


@pytest.mark.parametrize("accountant", ["rdp", "prv"])
def test_rounds_compose_like_one_accountant(accountant: str) -> None:
    sigma, q, steps_per_round, rounds = 1.1, 64 / 6000, 94, 10
    history: tuple[DPSteps, ...] = ()
    for _ in range(rounds):
        history = compose(history, DPSteps(sigma, q, steps_per_round))
    one = RDPAccountant() if accountant == "rdp" else PRVAccountant()
    for _ in range(rounds * steps_per_round):
        one.step(noise_multiplier=sigma, sample_rate=q)
    if accountant == "rdp":
        from fedkd.privacy.accounting import RDP_ORDERS

        reference = one.get_epsilon(delta=DELTA, alphas=RDP_ORDERS)
        assert epsilon(history, delta=DELTA, accountant="rdp") == pytest.approx(reference, abs=1e-9)
    else:
        reference = one.get_epsilon(delta=DELTA, eps_error=PRV_EPS_ERROR)
        assert abs(epsilon(history, delta=DELTA, accountant="prv") - reference) <= PRV_EPS_ERROR
    assert total_steps(history) == rounds * steps_per_round


def test_compose_merges_equal_mechanisms_only() -> None:
    a, b = DPSteps(1.0, 0.01, 5), DPSteps(2.0, 0.01, 3)
    assert compose(compose((), a), a) == (DPSteps(1.0, 0.01, 10),)
    assert compose(compose((), a), b) == (a, b)
    assert compose((a,), DPSteps(1.0, 0.01, 0)) == (a,)


def test_epsilon_grows_with_steps_and_is_zero_without() -> None:
    assert epsilon((), delta=DELTA) == 0.0
    few = epsilon((DPSteps(1.0, 0.01, 100),), delta=DELTA, accountant="rdp")
    many = epsilon((DPSteps(1.0, 0.01, 1000),), delta=DELTA, accountant="rdp")
    assert 0 < few < many


@pytest.mark.parametrize("accountant", ["rdp", "prv"])
@pytest.mark.parametrize("target", [1.0, 3.0, 8.0])
def test_calibration_never_refuses_the_last_planned_round(accountant: str, target: float) -> None:
    q, per_round, rounds = 64 / 6000, 94, 10
    sigma = calibrate_noise_multiplier(
        target_epsilon=target,
        target_delta=DELTA,
        sample_rate=q,
        steps=rounds * per_round,
        accountant=accountant,
    )
    budget = Budget(epsilon=target, delta=DELTA, accountant=accountant)
    history: tuple[DPSteps, ...] = ()
    for _ in range(rounds):
        planned = DPSteps(sigma, q, per_round)
        assert budget.allows(history, planned)
        history = compose(history, planned)
    spent = budget.spent(history)
    # Used most of the budget (the margin is small), never more than all of it.
    assert 0.9 * target < spent <= target
    assert not budget.allows(history, DPSteps(sigma, q, 3 * per_round))


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="noise multiplier"):
        DPSteps(0.0, 0.1, 1)
    with pytest.raises(ValueError, match="sample rate"):
        DPSteps(1.0, 1.5, 1)
    with pytest.raises(ValueError, match="accountant"):
        epsilon((DPSteps(1.0, 0.1, 1),), delta=DELTA, accountant="gdp")
    with pytest.raises(ValueError, match="target epsilon"):
        calibrate_noise_multiplier(
            target_epsilon=math.inf, target_delta=DELTA, sample_rate=0.1, steps=10
        )
    with pytest.raises(ValueError, match="delta"):
        Budget(epsilon=1.0, delta=0.0)
