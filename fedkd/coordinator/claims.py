"""Privacy claims: each reply's stated spend checked whole, then recorded by node name.

A claim counts only in a run that asked for DP: with ``dp = false`` no ε enters the
results, whatever a reply says.  The server never trusts a stated ε: it recomposes the
releases it saw (σ, q, steps per reply) with the run's own accountant, and a claim below
that composition, below what the node claimed before, or with parameters other than the
run's, is refused.  What passes is recorded: ε, composition, ledger head, and (with a
registry) the node's record across runs.
"""

from __future__ import annotations

import functools
import math

from fedkd.privacy.accounting import (
    PRV_EPS_ERROR,
    PRV_MAX_GRID_POINTS,
    DPSteps,
    History,
    compose,
    prv_grid_points,
)
from fedkd.privacy.accounting import epsilon as epsilon_of
from fedkd.privacy.guard import CONTROL_MECHANISM, DP_MECHANISM
from fedkd.privacy.node_registry import NodeRegistry
from fedkd.privacy.recipe import PrivateTraining, private_epochs
from fedkd.wire.types import KnowledgeReply, PrivacySpend, StatusCode
from fedkd.wire.validate import reject

CLAIMED_SIGMA = (0.3, 100.0)
"""The noise multipliers a claim may state: any run's calibration lands inside, and the
accountant's own cost runs away outside (σ = 1e-6 asks it for petabytes)."""
MAX_STEPS_PER_EPOCH = 10**5
"""1/q at most: a node of 6.4 million records at batch 64 (a claimed q = 2^-24 made the
accountant take 26 s and return ε < 0)."""
CLAIM_TOLERANCE = 2 * PRV_EPS_ERROR + 1e-6
"""How far below the server's composition a claim may be (the accountants' estimate error)."""


@functools.lru_cache(maxsize=1024)
def composed_epsilon(history: History, *, delta: float, accountant: str) -> float:
    """ε of ``history`` (cached: a node's history repeats across checks)."""
    return epsilon_of(history, delta=delta, accountant=accountant)


class PrivacyClaims:
    """Each node's recorded spend in this run, and (registry) what its name spent before."""

    def __init__(
        self,
        *,
        dp: bool,
        delta: float,
        accountant: str,
        training: PrivateTraining,
        registry: NodeRegistry | None = None,
    ) -> None:
        self.dp = dp
        """Whether the run asked for DP: only then does a claim count."""
        self.delta = delta
        self.accountant = accountant
        self.training = training
        self.registry = registry
        # Each node's last ledger head and cumulative ε as its replies reported them: a
        # node whose ledger no longer leads there refuses, and ε may never go backwards
        # within the run.  A registry carries the heads from earlier runs.
        self.earlier_heads = registry.heads() if registry else {}
        self.earlier_epsilons = registry.epsilons() if registry else {}
        self.ledger_heads: dict[int, str] = {}
        self.epsilon_recorded: dict[int, float] = {}
        self.composed: dict[int, History] = {}
        """Each node's DP releases as this server recorded them (σ, q, steps per reply)."""
        self.controls: set[int] = set()
        """Nodes whose replies said they are an audit's positive control (no guarantee)."""

    def known_as(self, node_id: int, name: str) -> None:
        """``node_id`` is ``name`` from now on: what the name claimed before is its floor."""
        floor = self.earlier_epsilons.get(name)
        if floor is not None:
            self.epsilon_recorded.setdefault(node_id, floor)

    def ledger_head_of(self, node_id: int, name: str) -> str:
        """The node's last ledger head the server saw, in this run or (registry) before."""
        return self.ledger_heads.get(node_id) or self.earlier_heads.get(name, "")

    def claimed(self, reply: KnowledgeReply) -> bool:
        """Whether ``reply`` states a DP spend this run counts."""
        return self.dp and reply.privacy.mechanism == DP_MECHANISM

    def check(
        self, round_: int, node_id: int, reply: KnowledgeReply, *, may_take_name: bool
    ) -> None:
        """A DP claim checked whole: parameters the run's, release steps the plan's, ε never
        backwards and never below the composition of the releases this server recorded.

        ``may_take_name``: the node has no name yet and may be known by the reply's from
        now on, so that name's earlier ε is its floor too.  Nothing is recorded here (a
        reply refused by a later rule leaves no trace).
        """
        if not self.claimed(reply):
            return
        spend = reply.privacy
        if spend.delta != self.delta or spend.accountant != self.accountant:
            raise reject(
                "claim.parameters",
                f"claims δ = {spend.delta:.6g} by {spend.accountant[:20]!r}; the run's is "
                f"δ = {self.delta:g} by {self.accountant!r}",
            )
        per_epoch = _steps_per_epoch(spend)
        trained = round_ <= self.training.num_server_rounds and reply.status.code is StatusCode.OK
        epochs = private_epochs(self.training)
        planned = epochs * per_epoch if trained else 0
        if spend.release_steps != planned:
            raise reject(
                "claim.steps",
                f"claims {spend.release_steps} DP steps this round; the plan is {planned} "
                f"({epochs} DP-SGD epochs of 1/q = {per_epoch} steps)"
                if trained
                else f"claims {spend.release_steps} DP steps in a round without training",
            )
        before = self.epsilon_recorded.get(node_id, 0.0)
        if may_take_name:
            before = max(before, self.earlier_epsilons.get(reply.node_name, 0.0))
        if not math.isfinite(spend.epsilon) or spend.epsilon < before - 1e-9:
            raise reject(
                "claim.epsilon",
                f"privacy spend went backwards: ε {spend.epsilon:.6g} < recorded {before:.6g}",
            )
        self._check_composition(spend, self._composed_with(node_id, spend))

    def record(self, round_: int, node_id: int, reply: KnowledgeReply, name: str | None) -> None:
        """Keep what an accepted reply says of its spend: ε, composition, ledger head."""
        spend = reply.privacy
        if spend.mechanism == CONTROL_MECHANISM:
            self.controls.add(node_id)  # an audit's sabotaged node: no ε, ever
        claimed = self.claimed(reply)
        if claimed:
            self.composed[node_id] = self._composed_with(node_id, spend)
            self.epsilon_recorded[node_id] = spend.epsilon
        if spend.ledger_head:
            self.ledger_heads[node_id] = spend.ledger_head
            if self.registry is not None and name is not None:
                self.registry.record(
                    name,
                    run_id=reply.run_id,
                    round_=round_,
                    ledger_head=spend.ledger_head,
                    epsilon=spend.epsilon if claimed else None,
                )

    def _check_composition(self, spend: PrivacySpend, seen: History) -> None:
        if not seen:
            return
        if self.accountant == "prv":
            points = prv_grid_points(seen, delta=self.delta)
            if points > PRV_MAX_GRID_POINTS:
                raise reject(
                    "claim.composition",
                    f"the releases claimed would need a PRV grid of {points:.3g} points to "
                    f"account (the server accounts up to {PRV_MAX_GRID_POINTS:.3g})",
                )
        try:
            floor = composed_epsilon(seen, delta=self.delta, accountant=self.accountant)
        except (ValueError, MemoryError) as exc:
            raise reject("claim.composition", f"privacy spend cannot be composed: {exc}") from exc
        if not (math.isfinite(floor) and floor >= 0):
            raise reject("claim.composition", f"the releases claimed compose to ε = {floor!r}")
        if spend.epsilon < floor - CLAIM_TOLERANCE:
            raise reject(
                "claim.composition",
                f"privacy spend under-claimed: ε {spend.epsilon:.6g} < {floor:.6g}, the "
                "composition of the releases this server recorded",
            )

    def _composed_with(self, node_id: int, spend: PrivacySpend) -> History:
        """The node's recorded DP releases, with this reply's (when it released any)."""
        earlier = self.composed.get(node_id, ())
        if spend.release_steps <= 0:
            return earlier
        new = DPSteps(spend.noise_multiplier, spend.sample_rate, spend.release_steps)
        return compose(earlier, new)


def _steps_per_epoch(spend: PrivacySpend) -> int:
    """1/q of a claim whose σ and q are in range (q = 1/k for an integer k)."""
    sigma, q = spend.noise_multiplier, spend.sample_rate
    low, high = CLAIMED_SIGMA
    per_epoch = round(1 / q) if math.isfinite(q) and 1 / MAX_STEPS_PER_EPOCH <= q <= 1 else 0
    if not low <= sigma <= high or not (per_epoch >= 1 and abs(per_epoch * q - 1) <= 1e-9):
        raise reject(
            "claim.parameters",
            f"claims σ = {sigma!r}, q = {q!r}: σ must be in [{low:g}, {high:g}], q = 1/k "
            f"for an integer k <= {MAX_STEPS_PER_EPOCH}",
        )
    return per_epoch
