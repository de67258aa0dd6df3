"""What an audit may say about a claim: violated, consistent, or not testable at this size.

A lower bound can refute a claim, never confirm it, and only where it could have reached
it.  So every claim tested gets one of three verdicts:

* **violated** — the bound exceeds the claimed ε: the guarantee does not hold (at the
  bound's confidence);
* **consistent** — the bound could have exceeded the claim (its ceiling, the bound with
  every guess right, is above the claimed ε) and did not;
* **not testable at this size** — even a perfect attack could not have refuted the claim
  with these canaries: the ceiling is at most ε (0 where the δ term is vacuous).  The audit then
  says how many canaries would make it testable in one run, or — where no canary count
  suffices — how many independent runs an audit over runs would need.

Two more say that the audit itself cannot be read: **invalid** (the audited model
collapsed, or a control did not behave as a control must) and, where nothing is claimed,
**no guarantee claimed** (the attack's figures are reported, with no verdict).

What a claim is depends on the run: the accountant's ε for an ordinary DP run; the
nominal ε a positive control's sabotaged mechanism pretends to; ε = 0, δ = 0 for a
negative control (nothing was inserted, so the run cannot depend on the canaries' coins
at all).  Canaries inserted ``k`` times are tested against the group's claim
(:mod:`fedkd.audit.group_privacy`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

from fedkd.audit.clopper_pearson import runs_needed
from fedkd.audit.group_privacy import group_claim
from fedkd.audit.one_run_bound import canaries_needed, ceiling


class Verdict(StrEnum):
    VIOLATED = "violated"
    CONSISTENT = "consistent"
    NOT_TESTABLE = "not testable at this size"
    INVALID = "invalid"
    NO_CLAIM = "no guarantee claimed"


EXIT_CODES = {Verdict.VIOLATED: 3, Verdict.NOT_TESTABLE: 4, Verdict.INVALID: 5}
"""``fedkd audit``'s exit status per verdict (0 for consistent or nothing claimed); with
several configurations the first of violated, invalid, not testable decides."""
EXIT_PRIORITY = (Verdict.VIOLATED, Verdict.INVALID, Verdict.NOT_TESTABLE)


class ClaimSource(StrEnum):
    ACCOUNTANT = "the accountant's ε for the target"
    NOMINAL = "the nominal ε a positive control's sabotaged mechanism pretends to"
    NOTHING_INSERTED = (
        "ε = 0: a negative control inserts nothing, so nothing can depend on the coins"
    )


@dataclass(frozen=True)
class ClaimUnderTest:
    """The (ε, δ) the bound is compared with, and the per-record claim it came from."""

    epsilon: float
    delta: float
    group: int
    per_record_epsilon: float
    per_record_delta: float
    source: ClaimSource

    @property
    def odds(self) -> float:
        """e^ε: how many times likelier any outcome may become because of one unit."""
        return math.exp(self.epsilon) if self.epsilon < 700 else math.inf


def claim_under_test(
    per_record_epsilon: float, per_record_delta: float, *, group: int, source: ClaimSource
) -> ClaimUnderTest:
    epsilon, delta = group_claim(per_record_epsilon, per_record_delta, group)
    return ClaimUnderTest(epsilon, delta, group, per_record_epsilon, per_record_delta, source)


@dataclass(frozen=True)
class Reach:
    """Whether ``canaries`` one-run canaries can refute the claim, and what would."""

    canaries: int
    ceiling: float
    """The one-run bound with every guess right, at the claim's δ and the audit's level."""
    testable: bool
    canaries_needed: int | None
    """The fewest one-run canaries whose ceiling exceeds the claim (None: no count does)."""
    runs_needed: int | None
    """Where no canary count suffices: runs with and runs without one canary (each) that
    an audit over independent runs would need, every run classified right (None: δ alone
    keeps that bound below the claim too)."""

    @property
    def vacuous(self) -> bool:
        """The δ term alone keeps every p-value above the level: not even ε = 0 can be
        rejected (the group claims of practical runs, see ``group_privacy``)."""
        return self.ceiling == 0.0


def reach(claim: ClaimUnderTest, *, canaries: int, level: float) -> Reach:
    """``level`` is the significance each bound is computed at, after every correction."""
    top = ceiling(canaries, delta=claim.delta, alpha=level)
    needed = None if claim.delta >= 1 else canaries_needed(
        claim.epsilon, delta=claim.delta, alpha=level
    )  # fmt: skip
    runs = None
    if needed is None and claim.delta < 1:
        runs = runs_needed(claim.epsilon, delta=claim.delta, confidence=1 - level)
    return Reach(canaries, top, top > claim.epsilon, needed, runs)


def judge(bound: float, claim: ClaimUnderTest | None, able: Reach | None) -> Verdict:
    """The verdict for one view's bound."""
    if claim is None or able is None:
        return Verdict.NO_CLAIM
    if bound > claim.epsilon:
        return Verdict.VIOLATED
    return Verdict.CONSISTENT if able.testable else Verdict.NOT_TESTABLE


def combine(verdicts: list[Verdict]) -> Verdict:
    """A configuration's verdict from its views': any violation decides; consistent
    where some view could test the claim; otherwise not testable."""
    if not verdicts or all(v is Verdict.NO_CLAIM for v in verdicts):
        return Verdict.NO_CLAIM
    for verdict in (Verdict.VIOLATED, Verdict.CONSISTENT):
        if verdict in verdicts:
            return verdict
    return Verdict.NOT_TESTABLE


def exit_code(verdicts: list[Verdict]) -> int:
    for verdict in EXIT_PRIORITY:
        if verdict in verdicts:
            return EXIT_CODES[verdict]
    return 0
