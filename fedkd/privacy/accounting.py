"""One accountant per client for the whole federation, rebuilt from a persisted history.

Flower re-creates the ClientApp for every message, so an Opacus accountant object cannot
live across rounds.  What persists instead is the *history* Opacus accountants are defined
by — a list of ``(noise_multiplier, sample_rate, steps)`` — kept in node state (simulation)
or in the on-disk ledger (deployment).  ε is always recomputed from the whole history, so
round r's spend is the composition of rounds 1..r, never a per-round figure.

Consecutive entries with the same ``(σ, q)`` are merged, exactly as ``PRVAccountant.step``
merges them, so the ε of R rounds of k steps equals, bit for bit, the ε of one accountant
that took R·k steps.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

from fedkd.privacy.modes import ACCOUNTANTS

__all__ = ["ACCOUNTANTS"]
# PRV's ε is an upper estimate within eps_error; calibrate below the target by this much
# (plus a relative margin) so that recomputing ε round by round never refuses the last
# planned round because of discretisation or the binary search's tolerance.
PRV_EPS_ERROR = 0.01
CALIBRATION_RELATIVE_MARGIN = 0.01
# Opacus's default RDP orders stop at 63; small ε needs larger orders for a tight bound.
_RDP_ORDER_WARNING = r".*Optimal order is the largest alpha.*"
RDP_ORDERS = [1 + x / 10.0 for x in range(1, 100)] + list(range(12, 64)) + [80, 128, 256, 512]


@dataclass(frozen=True)
class DPSteps:
    """``steps`` DP-SGD steps at noise multiplier σ and Poisson sample rate q."""

    noise_multiplier: float
    sample_rate: float
    steps: int

    def __post_init__(self) -> None:
        if not self.noise_multiplier > 0 or not math.isfinite(self.noise_multiplier):
            raise ValueError(f"noise multiplier must be > 0, got {self.noise_multiplier}")
        if not 0 < self.sample_rate <= 1:
            raise ValueError(f"sample rate must be in (0, 1], got {self.sample_rate}")
        if self.steps < 0:
            raise ValueError(f"steps must be >= 0, got {self.steps}")


History = tuple[DPSteps, ...]


def _check_accountant(accountant: str) -> None:
    if accountant not in ACCOUNTANTS:
        raise ValueError(f"accountant must be one of {ACCOUNTANTS}, got {accountant!r}")


def compose(history: History, new: DPSteps) -> History:
    """``history`` followed by ``new``, merged with the last entry when (σ, q) match."""
    if new.steps == 0:
        return history
    if history:
        last = history[-1]
        if (last.noise_multiplier, last.sample_rate) == (new.noise_multiplier, new.sample_rate):
            merged = DPSteps(last.noise_multiplier, last.sample_rate, last.steps + new.steps)
            return (*history[:-1], merged)
    return (*history, new)


def total_steps(history: History) -> int:
    return sum(entry.steps for entry in history)


def epsilon(history: History, *, delta: float, accountant: str = "prv") -> float:
    """ε spent by ``history`` at ``delta`` under ``accountant`` (0 for an empty history)."""
    _check_accountant(accountant)
    if not 0 < delta < 1:
        raise ValueError(f"delta must be in (0, 1), got {delta}")
    if total_steps(history) == 0:
        return 0.0
    # Opacus imports torch (seconds): a server that never meets a DP reply never pays it.
    from opacus.accountants import create_accountant

    acc = create_accountant(mechanism=accountant)
    acc.history = [(h.noise_multiplier, h.sample_rate, h.steps) for h in history if h.steps]
    with warnings.catch_warnings():
        # PRV bounds its domain with an RDP pass whose order range warning says nothing
        # about the PRV estimate itself.
        warnings.filterwarnings("ignore", message=_RDP_ORDER_WARNING)
        if accountant == "prv":
            return float(acc.get_epsilon(delta=delta, eps_error=PRV_EPS_ERROR))
        return float(acc.get_epsilon(delta=delta, alphas=RDP_ORDERS))


PRV_MAX_GRID_POINTS = 2**21
"""The largest discretisation the PRV accountant is asked to build for someone else's
claim.  Its cost follows the grid (measured: 1.1e5 points, 0.25 s, for σ = 1, q = 1/54,
540 steps; 3e6 points, 4.5 s; 1.9e7 points, 36 s and gigabytes), and the grid grows with
ε and the number of steps: every history a run plans is far below this."""


def prv_grid_points(history: History, *, delta: float) -> int:
    """Points of the discretised PRV that :func:`epsilon` would build for ``history``.

    Computed as Opacus's ``PRVAccountant`` computes its domain (an RDP pass: milliseconds),
    so a server can refuse to account a claimed history before the accountant allocates.
    """
    from opacus.accountants.analysis.prv.domain import compute_safe_domain_size
    from opacus.accountants.analysis.prv.prvs import PoissonSubsampledGaussianPRV

    entries = [h for h in history if h.steps]
    if not entries:
        return 0
    delta_error = delta / 1000
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_RDP_ORDER_WARNING)
        half_width = compute_safe_domain_size(
            [PoissonSubsampledGaussianPRV(h.sample_rate, h.noise_multiplier) for h in entries],
            [h.steps for h in entries],
            PRV_EPS_ERROR,
            delta_error,
        )
    mesh = PRV_EPS_ERROR / math.sqrt(total_steps(history) * math.log(12 / delta_error) / 2)
    return math.ceil(2 * float(half_width) / mesh)


def calibrated_target(target_epsilon: float, *, accountant: str) -> float:
    """The ε to calibrate for: the target minus the margin that absorbs estimate error."""
    slack = CALIBRATION_RELATIVE_MARGIN * target_epsilon
    if accountant == "prv":
        slack += 2 * PRV_EPS_ERROR
    return target_epsilon - slack


def calibrate_noise_multiplier(
    *,
    target_epsilon: float,
    target_delta: float,
    sample_rate: float,
    steps: int,
    accountant: str = "prv",
) -> float:
    """σ such that ``steps`` steps at ``sample_rate`` spend at most ``target_epsilon``.

    ``steps`` is the whole federation's planned work on this client (rounds × local epochs ×
    steps per epoch, plus any private steps inside distillation), not one round's.
    """
    _check_accountant(accountant)
    if not target_epsilon > 0 or not math.isfinite(target_epsilon):
        raise ValueError(f"target epsilon must be > 0 and finite, got {target_epsilon}")
    if steps <= 0:
        raise ValueError(f"planned steps must be > 0, got {steps}")
    aim = calibrated_target(target_epsilon, accountant=accountant)
    if aim <= 0:
        raise ValueError(f"target epsilon {target_epsilon} is below the accounting margin")
    extra: dict[str, object] = (
        {"eps_error": PRV_EPS_ERROR} if accountant == "prv" else {"alphas": RDP_ORDERS}
    )
    from opacus.accountants.utils import get_noise_multiplier

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_RDP_ORDER_WARNING)
        sigma = get_noise_multiplier(
            target_epsilon=aim,
            target_delta=target_delta,
            sample_rate=sample_rate,
            steps=steps,
            accountant=accountant,
            epsilon_tolerance=0.005 * aim,
            **extra,
        )
    return float(sigma)


class BudgetSpentError(ValueError):
    """The history alone already reaches the target: no σ makes the planned work fit."""


def calibrate_after(
    history: History,
    *,
    target_epsilon: float,
    target_delta: float,
    sample_rate: float,
    steps: int,
    accountant: str = "prv",
) -> float:
    """σ such that ``history`` then ``steps`` more steps spend at most ``target_epsilon``.

    With no history this is :func:`calibrate_noise_multiplier`.  After earlier spend (a
    restarted run, an earlier run on the same store) the last σ is kept when the rest of
    the plan still fits with it, so a run that follows its plan keeps one σ; otherwise σ
    is found by bisection on the composed ε.

    Raises
    ------
    BudgetSpentError
        The history alone spends the target (minus the accounting margin).
    """
    if total_steps(history) == 0:
        return calibrate_noise_multiplier(
            target_epsilon=target_epsilon,
            target_delta=target_delta,
            sample_rate=sample_rate,
            steps=steps,
            accountant=accountant,
        )
    aim = calibrated_target(target_epsilon, accountant=accountant)

    def spent_with(sigma: float) -> float:
        planned = compose(history, DPSteps(sigma, sample_rate, steps))
        return epsilon(planned, delta=target_delta, accountant=accountant)

    last = history[-1]
    if last.sample_rate == sample_rate and spent_with(last.noise_multiplier) <= target_epsilon:
        return last.noise_multiplier
    if epsilon(history, delta=target_delta, accountant=accountant) >= aim:
        raise BudgetSpentError(
            f"the store's history already spends ε ≥ {aim:.4g} of the target {target_epsilon}"
        )
    low, high = 0.3, 1.0
    while spent_with(high) > aim:
        low, high = high, 2 * high
        if high > 1e4:
            raise BudgetSpentError(f"no σ ≤ 1e4 fits the plan within ε = {target_epsilon}")
    for _ in range(40):
        mid = (low + high) / 2
        if spent_with(mid) > aim:
            low = mid
        else:
            high = mid
        if high - low < 1e-3 * high:
            break
    return high


@dataclass(frozen=True)
class Budget:
    """A client's (ε, δ) budget for the federation, and the accountant that measures it."""

    epsilon: float
    delta: float
    accountant: str = "prv"

    def __post_init__(self) -> None:
        _check_accountant(self.accountant)
        if not self.epsilon > 0:
            raise ValueError(f"budget epsilon must be > 0, got {self.epsilon}")
        if not 0 < self.delta < 1:
            raise ValueError(f"budget delta must be in (0, 1), got {self.delta}")

    def spent(self, history: History) -> float:
        return epsilon(history, delta=self.delta, accountant=self.accountant)

    def allows(self, history: History, planned: DPSteps) -> bool:
        """Whether taking ``planned`` after ``history`` stays within the budget."""
        return self.spent(compose(history, planned)) <= self.epsilon
