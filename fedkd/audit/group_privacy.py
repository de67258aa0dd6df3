"""Group privacy: what an (ε, δ)-DP guarantee for one record promises for ``k`` records.

A canary inserted ``k`` times changes ``k`` records at once, so a bound measured on such
canaries is about a group of ``k`` and must be compared with the group's claim.  Chaining
the one-record guarantee through ``k`` neighbouring datasets D₀ … D_k gives, for every
event S (Vadhan, "The Complexity of Differential Privacy", 2017, Lemma 2.2; Dwork & Roth,
"The Algorithmic Foundations of Differential Privacy", 2014, Thm 2.2 for δ = 0)::

    P[M(D₀) ∈ S] ≤ e^{kε} P[M(D_k) ∈ S] + δ · (1 + e^ε + … + e^{(k−1)ε})

so the group of ``k`` is (ε_k, δ_k)-DP with::

    ε_k = k·ε,    δ_k = δ · (e^{kε} − 1) / (e^ε − 1)    (= k·δ at ε = 0)

which is never looser than the often quoted k·e^{(k−1)ε}·δ.  At the ε of practical runs
δ_k explodes (ε = 8, δ = 1e-5, k = 4: δ_k ≈ 2.6·10⁵, a promise of nothing), and the
one-run bound's δ term (2·m·δ_k times a binomial tail) then keeps every p-value above
the significance level: even perfect guesses cannot reject ε = 0, the ceiling is 0, and
the audit answers "not testable" rather than compare numbers that mean nothing.
"""

from __future__ import annotations

import math


def group_claim(epsilon: float, delta: float, group: int) -> tuple[float, float]:
    """(ε_k, δ_k) for a group of ``group`` records under a per-record (ε, δ) claim
    (δ_k capped at 1, where it says nothing)."""
    if group < 1:
        raise ValueError(f"a group has at least one record, got {group}")
    if epsilon < 0 or not 0 <= delta <= 1:
        raise ValueError(f"need epsilon >= 0 and delta in [0, 1], got {epsilon}, {delta}")
    if group == 1:
        return epsilon, delta
    if epsilon == 0:
        return 0.0, group * delta
    try:
        growth = math.expm1(group * epsilon) / math.expm1(epsilon)
    except OverflowError:
        growth = math.inf
    # δ ≥ 1 promises nothing; it is capped there so the bound's arithmetic stays defined.
    return group * epsilon, min(1.0, delta * growth) if delta else 0.0
