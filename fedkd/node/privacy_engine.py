"""The node's privacy engine: train privately → account → record → release, per request.

Opacus's ``PrivacyEngine`` owns what makes one model's training private; this owns what
makes one *message* private, the node's counterpart of the server's strategy interface.
:meth:`NodePrivacyEngine.begin` settles everything before a private record is touched —
the node's policy against the run's request (``policy-refused``), its ledger against the
head the server last saw (``ledger-refused``), δ fixed per store, the DP plan and its
budget — and returns a :class:`PrivateRound`, which the node trains through and closes
with its reply: the spend stated, what may not leave redacted, the row in the ledger
before the reply goes.  Every privacy decision of a round is made here, once.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from fedkd.node.budget import budget_refusal
from fedkd.node.local_log import NodeLog
from fedkd.node.records import record_reply
from fedkd.node.redaction import redact_report, reported_record_count
from fedkd.node.refusal import Refused
from fedkd.privacy.accounting import BudgetSpentError, DPSteps, History, compose
from fedkd.privacy.guard import DP_MECHANISM, PrivacyPlan, plan_for, reporting_plan, spend_after
from fedkd.privacy.ledger import GENESIS, Ledger, LedgerError
from fedkd.privacy.policy import (
    EffectivePrivacy,
    PolicyRefusal,
    PrivacyPolicy,
    PrivacyRequest,
    resolve_privacy,
)
from fedkd.privacy.recipe import PrivateTraining, training_plan
from fedkd.wire.types import KnowledgeReply, StatusCode


@dataclass
class PrivateRound:
    """One request's privacy, from the settled plan to the recorded reply."""

    privacy: EffectivePrivacy
    ledger: Ledger
    history: History
    """The store's DP releases so far (and this round's, once :meth:`took` is told)."""
    plan: PrivacyPlan | None
    """What DP-SGD runs at this round (None: no DP, or no training)."""
    exhausted: str
    """Why the round may not train ("" when it may): the reply is then a budget refusal."""
    unbounded_since: int | None
    control: bool
    reproducible: bool
    log: NodeLog
    taken: DPSteps | None = None

    def took(self, steps: DPSteps | None) -> None:
        """Account the DP steps training took (None: it took none)."""
        if steps is not None:
            self.taken = steps
            self.history = compose(self.history, steps)

    def close(
        self, reply: KnowledgeReply, *, dataset_digest: str, transfer_digest: str
    ) -> KnowledgeReply:
        """``reply`` (with the node's true record count and full evaluation) as it may
        leave: its spend stated, private measurements redacted (the full evaluation kept in
        the node's own log), its row in the ledger, stamped with the new head."""
        dp = self.privacy.dp
        spend = spend_after(
            self.privacy,
            self.history,
            self.plan,
            unbounded_since=self.unbounded_since,
            control=self.control,
        )
        if self.taken is not None and spend.mechanism == DP_MECHANISM:
            spend = replace(spend, release_steps=self.taken.steps)
        report = reply.eval
        if report is not None and dp:
            self.log.evaluation(report)  # the full measurement stays on the node
        released = replace(
            reply,
            privacy=spend,
            num_examples=reported_record_count(reply.num_examples, dp=dp),
            eval=redact_report(report, dp=dp) if report is not None else None,
        )
        return record_reply(
            self.ledger,
            released,
            privacy=self.privacy,
            dataset_digest=self.ledger.keyed(dataset_digest),
            transfer_digest=transfer_digest,
            taken=self.taken,
            reproducible=self.reproducible,
        )


@dataclass(frozen=True)
class NodePrivacyEngine:
    """A node's privacy: its policy, its ledger, and the run's request and DP settings.

    ``control`` marks an audit's positive control (DP-SGD sabotaged): its budget is
    checked on the steps it pretends to take, and every claim says no guarantee.
    """

    node_name: str
    policy: PrivacyPolicy
    request: PrivacyRequest
    training: PrivateTraining
    ledger_path: Path
    log: NodeLog
    control: bool = False
    reproducible: bool = False

    def resolve(self) -> EffectivePrivacy:
        """The privacy this node grants the run's request, or a policy refusal."""
        try:
            return resolve_privacy(self.policy, self.request)
        except PolicyRefusal as exc:
            raise self._refused(StatusCode.POLICY_REFUSED, str(exc)) from exc

    def open_ledger(self, expected_head: str) -> Ledger:
        """The node's ledger, verified to lead to ``expected_head`` (the server's record)."""
        try:
            return Ledger.open(self.ledger_path, expected_head=expected_head or GENESIS)
        except LedgerError as exc:
            self.log.problem(f"node {self.node_name}: {exc}")
            raise Refused(StatusCode.LEDGER_REFUSED, str(exc)) from exc

    def begin(
        self, *, ledger_head: str, num_records: int, round_: int, train: bool
    ) -> PrivateRound:
        """Settle round ``round_``'s privacy before any private record is touched.

        Raises
        ------
        Refused
            ``policy-refused`` (the policy, δ, or the plan) or ``ledger-refused``.
        """
        privacy = self.resolve()
        ledger = self.open_ledger(ledger_head)
        history = ledger.history()
        unbounded = ledger.unbounded_since()
        plan: PrivacyPlan | None = None
        exhausted = ""
        if privacy.dp:
            self._check_delta(ledger, privacy)
            plan = reporting_plan(history)
        if privacy.dp and train:
            try:
                remaining = self.training.num_server_rounds - round_ + 1
                plan = self._plan(privacy, num_records, history, remaining)
                # A positive control goes on as a silently broken node would: its nominal
                # budget is checked on the steps it pretends to take, round after round.
                exhausted = budget_refusal(
                    plan, history, unbounded_since=None if self.control else unbounded
                )
            except BudgetSpentError as exc:
                exhausted = str(exc)
        return PrivateRound(
            privacy=privacy,
            ledger=ledger,
            history=history,
            plan=plan,
            exhausted=exhausted,
            unbounded_since=unbounded,
            control=self.control,
            reproducible=self.reproducible,
            log=self.log,
        )

    def _check_delta(self, ledger: Ledger, privacy: EffectivePrivacy) -> None:
        """δ is fixed per store at its first DP release: a changed one is refused."""
        fixed = ledger.fixed_delta()
        if fixed is not None and fixed[0] != privacy.delta:
            raise self._refused(
                StatusCode.POLICY_REFUSED,
                f"δ is fixed at {fixed[0]:g} for this store since ledger row {fixed[1]}; "
                f"the run asks for δ = {privacy.delta:g}",
            )

    def _plan(
        self, privacy: EffectivePrivacy, num_records: int, history: History, remaining: int
    ) -> PrivacyPlan:
        nominal = privacy.policy.nominal_records or num_records
        try:
            return plan_for(
                privacy,
                training_plan(self.training, nominal),
                num_records,
                history=history,
                remaining_rounds=remaining,
            )
        except PolicyRefusal as exc:
            raise self._refused(StatusCode.POLICY_REFUSED, str(exc)) from exc

    def _refused(self, code: StatusCode, reason: str) -> Refused:
        self.log.problem(f"node {self.node_name} refused the run: {reason}")
        return Refused(code, reason)
