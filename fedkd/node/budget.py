"""Budget refusal: a node refuses a round that would take its ε past its budget."""

from __future__ import annotations

from fedkd.privacy.accounting import History
from fedkd.privacy.guard import PrivacyPlan


def budget_refusal(
    plan: PrivacyPlan | None, history: History, *, unbounded_since: int | None = None
) -> str:
    """Why another round of ``plan`` may not run on top of ``history`` ("" if it may).

    The check is on the ε *after* the round's planned steps, so the last round that fits
    runs and the one after it is refused before any private record is touched.  A store
    whose ε is unbounded (``unbounded_since`` names the ledger row of a release without
    a formal guarantee) can keep no finite budget at all.
    """
    if plan is None or plan.budget is None:
        return ""
    budget = plan.budget
    if unbounded_since is not None:
        return (
            f"the store's ε is unbounded since ledger row {unbounded_since} (a release "
            f"without a formal guarantee): no budget of ε = {budget.epsilon} can be kept"
        )
    if budget.allows(history, plan.round_steps):
        return ""
    return (
        f"another round would spend ε > {budget.epsilon} "
        f"(spent {budget.spent(history):.3f} at δ = {budget.delta})"
    )
