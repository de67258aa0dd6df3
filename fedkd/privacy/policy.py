"""A node's own privacy policy, what a run asks for, and what the node then does.

The node owns its policy (its configuration, never the server's).  The server's run
config is a *request*: it can ask for more protection than the policy demands, never
less.  :func:`resolve_privacy` returns the settings the node will use, or raises
:class:`PolicyRefusal` naming what the request lacks, which the node answers with the
typed status ``policy-refused``.

"More protection" is ordered component-wise: DP on over off; a smaller ε budget; a
smaller δ; a larger noise multiplier; a swing scorer the policy allows.  (Reproducible,
seeded DP randomness is no request at all: only the node's own configuration can turn it
on, and only for simulated data.)
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass


class PolicyRefusal(ValueError):
    """The request asks for less protection than the node's policy allows."""


ALL_SCORERS = "*"


@dataclass(frozen=True)
class PrivacyPolicy:
    """What a node demands of every run it takes part in.

    Attributes
    ----------
    dp_required
        Only DP-SGD releases; implied by a finite ``max_epsilon``.
    max_epsilon
        The node's ε budget for its records, for life (``inf``: none).
    max_delta
        The largest δ the node accepts.
    nominal_records
        A public, round record count the node states instead of its true one; when set,
        δ must stay below ``1 / nominal_records`` (0: not stated).
    min_noise_multiplier
        The smallest DP-SGD σ the node accepts.
    allowed_scorers
        Comma-separated swing scorers the node may run, ``"*"`` for any, ``""`` for none.
    """

    dp_required: bool = False
    max_epsilon: float = math.inf
    max_delta: float = 1e-5
    nominal_records: int = 0
    min_noise_multiplier: float = 0.0
    allowed_scorers: str = ALL_SCORERS

    def __post_init__(self) -> None:
        if not self.max_epsilon > 0:
            raise ValueError(f"privacy-max-epsilon must be > 0, got {self.max_epsilon}")
        if not 0 < self.max_delta < 1:
            raise ValueError(f"privacy-max-delta must be in (0, 1), got {self.max_delta}")
        if self.nominal_records < 0 or self.min_noise_multiplier < 0:
            raise ValueError("privacy-nominal-records and privacy-min-noise-multiplier >= 0")
        if self.nominal_records and self.max_delta >= 1 / self.nominal_records:
            raise ValueError(
                f"privacy-max-delta {self.max_delta} must be below 1/n = "
                f"{1 / self.nominal_records:.3g} for the stated {self.nominal_records} records"
            )

    @property
    def requires_dp(self) -> bool:
        return self.dp_required or math.isfinite(self.max_epsilon)

    def allows_scorer(self, name: str) -> bool:
        if not name or self.allowed_scorers == ALL_SCORERS:
            return True
        return name in {s.strip() for s in self.allowed_scorers.split(",")}

    def to_json(self) -> str:
        """Canonical text of the policy, as the ledger records it with every release."""
        body = asdict(self)
        body["max_epsilon"] = None if math.isinf(self.max_epsilon) else self.max_epsilon
        return json.dumps(body, sort_keys=True, separators=(",", ":"))


@dataclass(frozen=True)
class PrivacyRequest:
    """The privacy settings a run asks for (from the server's run config)."""

    dp: bool = False
    target_epsilon: float = 0.0
    noise_multiplier: float = 0.0
    delta: float = 1e-5
    max_grad_norm: float = 0.1
    accountant: str = "prv"
    swing_scorer: str = ""


@dataclass(frozen=True)
class EffectivePrivacy:
    """What the node does: the request, bounded by the policy.

    ``budget`` is the stricter of the requested target ε and the policy's ``max_epsilon``
    (``inf``: no budget); ``min_noise_multiplier`` is checked once σ is known.
    """

    dp: bool
    budget: float
    noise_multiplier: float
    min_noise_multiplier: float
    delta: float
    max_grad_norm: float
    accountant: str
    swing_scorer: str
    policy: PrivacyPolicy

    @property
    def calibrates(self) -> bool:
        """σ is calibrated to the budget (no fixed σ was asked for)."""
        return self.noise_multiplier <= 0


def resolve_privacy(policy: PrivacyPolicy, request: PrivacyRequest) -> EffectivePrivacy:
    """The settings the node uses for this run.

    Raises
    ------
    PolicyRefusal
        DP off where the policy requires it; ε, δ or σ weaker than the policy's; a swing
        scorer it does not allow.
    """
    if policy.requires_dp and not request.dp:
        raise PolicyRefusal(
            f"the node's policy requires DP-SGD (ε ≤ {policy.max_epsilon}); the run asks for "
            "dp = false"
        )
    if not policy.allows_scorer(request.swing_scorer):
        raise PolicyRefusal(
            f"swing-scorer {request.swing_scorer!r} is not allowed by the node's policy "
            f"(allowed: {policy.allowed_scorers or 'none'})"
        )
    if not request.dp:
        return _effective(policy, request, budget=math.inf)
    if request.target_epsilon > policy.max_epsilon:
        raise PolicyRefusal(
            f"the run asks for ε = {request.target_epsilon:g}; the node's policy allows at "
            f"most ε = {policy.max_epsilon:g}"
        )
    if request.delta > policy.max_delta:
        raise PolicyRefusal(
            f"the run asks for δ = {request.delta:g}; the node's policy allows at most "
            f"δ = {policy.max_delta:g}"
        )
    if policy.nominal_records and request.delta >= 1 / policy.nominal_records:
        raise PolicyRefusal(
            f"δ = {request.delta:g} is not below 1/n for the node's {policy.nominal_records} "
            "stated records"
        )
    if 0 < request.noise_multiplier < policy.min_noise_multiplier:
        raise PolicyRefusal(
            f"the run asks for σ = {request.noise_multiplier:g}; the node's policy needs "
            f"σ ≥ {policy.min_noise_multiplier:g}"
        )
    budget = min(request.target_epsilon or math.inf, policy.max_epsilon)
    return _effective(policy, request, budget=budget)


def _effective(
    policy: PrivacyPolicy, request: PrivacyRequest, *, budget: float
) -> EffectivePrivacy:
    return EffectivePrivacy(
        dp=request.dp,
        budget=budget,
        noise_multiplier=request.noise_multiplier,
        min_noise_multiplier=policy.min_noise_multiplier,
        delta=request.delta,
        max_grad_norm=request.max_grad_norm,
        accountant=request.accountant,
        swing_scorer=request.swing_scorer,
        policy=policy,
    )
