"""The server's side of a round, with no Flower in sight.

The Flower ServerApp asks this object for each node's request bytes, hands back whatever
came in (bytes, a Flower error, or nothing), and gets a :class:`RoundOutcome`.  The
strategy's hooks decide what each node is asked to release (``configure_round``) and what
it receives next (``aggregate``); the coordinator only carries, checks and records.  A
reply that fails to decode or validate excludes that node from the round with a specific
reason; aggregation runs on the valid replies only, so one bad client never sinks a round.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from fedkd.audit.releases import ReleaseLog
from fedkd.config import RunConfig
from fedkd.data.transfer import TransferSet
from fedkd.fusion import Contribution, Instruction, Knowledge, make_fusion
from fedkd.privacy.accounting import PRV_EPS_ERROR, DPSteps, History, compose
from fedkd.privacy.accounting import epsilon as epsilon_of
from fedkd.privacy.guard import CLAIMED_MECHANISMS, CONTROL_MECHANISM, DP_MECHANISM
from fedkd.privacy.node_registry import NodeRegistry
from fedkd.version_check import incompatibility
from fedkd.wire.errors import PayloadError
from fedkd.wire.serde import knowledge_reply_from_bytes, knowledge_request_to_bytes
from fedkd.wire.signing import verify_reply
from fedkd.wire.types import (
    EvalReport,
    FusedKnowledge,
    KnowledgeReply,
    KnowledgeRequest,
    PrivacySpend,
    ReleaseKind,
    StatusCode,
    TransferSetRef,
)
from fedkd.wire.validate import ReplyExpectation, normalised_soft_labels, validate_reply

log = logging.getLogger(__name__)
CLAIM_TOLERANCE = 2 * PRV_EPS_ERROR + 1e-6
"""How far below the server's composition a claim may be (the accountants' estimate error)."""


@functools.lru_cache(maxsize=1024)
def composed_epsilon(history: History, *, delta: float, accountant: str) -> float:
    """ε of ``history`` (cached: a node's history repeats across checks)."""
    return epsilon_of(history, delta=delta, accountant=accountant)


# Statuses with which a client says it could not take part at all (nothing to validate).
_CLIENT_FAILURES = (
    StatusCode.INVALID_REQUEST,
    StatusCode.INTERNAL_ERROR,
    StatusCode.LEDGER_REFUSED,
    StatusCode.POLICY_REFUSED,
    StatusCode.UNAVAILABLE,
)
_NOTHING = Instruction(ReleaseKind.NOTHING, np.zeros(0, dtype=np.uint32))


@dataclass(frozen=True)
class CoordinatorState:
    """What the coordinator carries from one round to the next, by node name.

    Flower node ids are transport addresses that change when a SuperNode restarts, so a
    checkpoint keeps everything under the names the nodes gave; :meth:`Coordinator.resume`
    maps it back onto the ids of the nodes that are online again.
    """

    run_id: str
    completed_round: int
    anchor_rng: dict[str, object]
    shared: Knowledge | None
    fused: dict[str, FusedKnowledge]
    ledger_heads: dict[str, str]
    epsilon_recorded: dict[str, float]
    composed: dict[str, History]


@dataclass(frozen=True)
class Delivery:
    """What came back from one node: bytes, or why nothing usable did."""

    node_id: int
    payload: bytes | None = None
    transport_error: str = ""
    flower_bytes: int = 0


@dataclass
class NodeRound:
    """One node's part in one round, as the results record it."""

    node_id: int
    round: int
    bytes_down: int = 0
    bytes_up: int = 0
    flower_bytes_down: int = 0
    flower_bytes_up: int = 0
    status: str = "pending"
    reason: str = ""
    privacy_epsilon: float | None = None


@dataclass
class RoundOutcome:
    round: int
    nodes: dict[int, NodeRound] = field(default_factory=dict)
    evals: list[EvalReport] = field(default_factory=list)
    eval_nodes: list[int] = field(default_factory=list)
    seconds: float = 0.0
    """The round's wall time at the server: requests sent to replies judged and fused."""
    fusion_seconds: float = 0.0
    """Of which fusing the valid contributions (the strategy's own work)."""

    @property
    def accepted(self) -> list[int]:
        return [n for n, r in self.nodes.items() if r.status == "ok"]

    @property
    def excluded(self) -> dict[int, str]:
        return {n: r.reason for n, r in self.nodes.items() if r.status != "ok"}


class Coordinator:
    """Builds requests, checks replies, fuses knowledge; keeps per-node targets between rounds."""

    def __init__(
        self,
        cfg: RunConfig,
        *,
        run_id: str,
        transfer: TransferSet,
        num_classes: int,
        registry: NodeRegistry | None = None,
        releases: ReleaseLog | None = None,
        signing_keys: Mapping[str, Ed25519PublicKey] | None = None,
    ) -> None:
        self.cfg = cfg
        self.signing_keys = signing_keys
        """Registered node name → Ed25519 key: when set, only replies signed by the key
        of the name they carry are read at all (a deployment)."""
        self.releases = releases
        """Every soft-label release received, when the run records them (the audit)."""
        self.run_id = run_id
        self.transfer = transfer
        self.ref = TransferSetRef(
            digest=transfer.digest,
            num_samples=transfer.num_samples,
            num_classes=num_classes,
            name=transfer.name,
        )
        self.strategy = make_fusion(cfg.strategy, **cfg.fusion_params())
        self._fused: dict[int, FusedKnowledge] = {}
        self._shared: Knowledge | None = None
        self._anchors: dict[int, np.ndarray] = {}
        self._instructions: dict[tuple[int, int], Instruction] = {}
        # Each node's last ledger head and cumulative ε as its replies reported them: a
        # node whose ledger no longer leads there refuses, and ε may never go backwards
        # within the run.  A registry carries the heads from earlier runs.
        self.registry = registry
        self._earlier_heads = registry.heads() if registry else {}
        self._earlier_epsilons = registry.epsilons() if registry else {}
        self.names: dict[int, str] = {}  # Flower node id → the node's own name
        self._signers: dict[int, str] = {}  # Flower node id → name on its last signed reply
        self.ledger_heads: dict[int, str] = {}
        self.epsilon_recorded: dict[int, float] = {}
        self.controls: set[int] = set()
        """Nodes whose replies said they are an audit's positive control (no guarantee)."""
        # Each node's DP releases as this server recorded them (σ, q, steps per reply).
        self.composed: dict[int, History] = {}
        self._rng = np.random.default_rng([cfg.seed, 0xA2C])
        self.resumed_after = 0
        """The round of the checkpoint this run carried on from (0: it started afresh)."""

    # --- checkpoint -----------------------------------------------------------------------

    def snapshot(self, completed_round: int) -> CoordinatorState:
        """Everything the rounds after ``completed_round`` need, keyed by node name."""
        named = self.name_of
        return CoordinatorState(
            run_id=self.run_id,
            completed_round=completed_round,
            anchor_rng=dict(self._rng.bit_generator.state),
            shared=self._shared,
            fused={named(n): f for n, f in self._fused.items()},
            ledger_heads={named(n): h for n, h in self.ledger_heads.items()},
            epsilon_recorded={named(n): e for n, e in self.epsilon_recorded.items()},
            composed={named(n): h for n, h in self.composed.items()},
        )

    def resume(self, state: CoordinatorState) -> None:
        """Carry on from ``state`` with the nodes named at this run's handshake.

        Call after :meth:`hello`.  A node that does not come back keeps its record in
        the registry; its pending targets are dropped.
        """
        if state.run_id != self.run_id:
            raise ValueError(f"checkpoint of run {state.run_id}, not {self.run_id}")
        self._rng.bit_generator.state = state.anchor_rng
        self._shared = state.shared
        for node_id, name in self.names.items():
            if name in state.fused:
                self._fused[node_id] = state.fused[name]
            if name in state.ledger_heads:
                self.ledger_heads[node_id] = state.ledger_heads[name]
            if name in state.epsilon_recorded:
                self.epsilon_recorded[node_id] = state.epsilon_recorded[name]
            if name in state.composed:
                self.composed[node_id] = state.composed[name]

    # --- requests -------------------------------------------------------------------------

    def anchors_for(self, round_: int) -> np.ndarray:
        """The round's anchors: the whole transfer set, or a seeded subset shared by all."""
        if round_ not in self._anchors:
            n, k = self.transfer.num_samples, self.cfg.anchors_per_round
            if k <= 0 or k >= n:
                idx = np.arange(n, dtype=np.uint32)
            else:
                idx = np.sort(self._rng.choice(n, size=k, replace=False)).astype(np.uint32)
            self._anchors[round_] = idx
        return self._anchors[round_]

    def requests(self, round_: int, nodes: list[int]) -> dict[int, bytes]:
        """Request bytes for each of ``nodes`` in ``round_`` (``num_server_rounds + 1``: final).

        The strategy's ``configure_round`` says what each node releases; the final
        evaluation message asks for nothing.
        """
        if 1 <= round_ <= self.cfg.num_server_rounds:
            asks = self.strategy.configure_round(round_, nodes, self.anchors_for(round_))
        else:
            asks = dict.fromkeys(nodes, _NOTHING)
        for node_id in nodes:
            self._instructions[(round_, node_id)] = asks.get(node_id, _NOTHING)
        return {node_id: self._request(node_id, round_) for node_id in nodes}

    def request_for(self, node_id: int, round_: int) -> bytes:
        """One node's request (see :meth:`requests`)."""
        return self.requests(round_, [node_id])[node_id]

    def instruction(self, round_: int, node_id: int) -> Instruction:
        return self._instructions.get((round_, node_id), _NOTHING)

    def _request(self, node_id: int, round_: int) -> bytes:
        ask = self.instruction(round_, node_id)
        shared = self._shared
        request = KnowledgeRequest(
            run_id=self.run_id,
            round=round_,
            transfer_set=self.ref,
            anchor_indices=ask.anchor_indices,
            fused=self._fused.get(node_id),
            reply_dtype=self.cfg.wire_dtype,
            global_weights=shared.weights if shared is not None else None,
            ledger_head=self.ledger_head_of(node_id),
            release=ask.release,
        )
        return knowledge_request_to_bytes(request)

    def ledger_head_of(self, node_id: int) -> str:
        """The node's last ledger head the server saw, in this run or (registry) before."""
        earlier = self._earlier_heads.get(self.name_of(node_id), "")
        return self.ledger_heads.get(node_id) or earlier

    def name_of(self, node_id: int) -> str:
        """The node's own name once it has told it, else a name from its Flower id."""
        return self.names.get(node_id) or f"flower-node-{node_id}"

    def hello(self, deliveries: list[Delivery]) -> dict[int, str]:
        """Round 0: learn each node's name (and so its recorded head and ε floor).

        A reply that cannot be read teaches nothing; the node is then asked with no head
        and judged on its first real reply.
        """
        for delivery in deliveries:
            if delivery.payload is None:
                continue
            try:
                body = self._authenticated(delivery.node_id, delivery.payload)
                reply = knowledge_reply_from_bytes(body, max_bytes=self.cfg.max_payload_bytes)
                self._check_signer(delivery.node_id, reply)
            except PayloadError as exc:
                log.warning("handshake: node %d: %s", delivery.node_id, exc.reason)
                continue
            if reply.node_name and reply.run_id == self.run_id and reply.round == 0:
                self._learn_name(delivery.node_id, reply.node_name)
        return dict(self.names)

    def _authenticated(self, node_id: int, payload: bytes) -> bytes:
        """The reply bytes once the signature checks out (as they are without signatures).

        The envelope's name must also be the one this Flower node id gave before: a node
        signing with its own key under another node's id is another node.
        """
        if self.signing_keys is None:
            return payload
        verified = verify_reply(payload, self.signing_keys, max_bytes=self.cfg.max_payload_bytes)
        known = self.names.get(node_id)
        if known is not None and known != verified.node_name:
            raise PayloadError(f"signed by {verified.node_name!r}, but node {node_id} is {known!r}")
        self._signers[node_id] = verified.node_name
        return verified.reply

    def _check_signer(self, node_id: int, reply: KnowledgeReply) -> None:
        """The signed envelope and the reply inside it must name the same node."""
        signer = self._signers.get(node_id)
        if self.signing_keys is not None and reply.node_name != signer:
            raise PayloadError(f"signed by {signer!r}, but the reply names {reply.node_name!r}")

    def _learn_name(self, node_id: int, name: str) -> None:
        if node_id in self.names:
            return
        self.names[node_id] = name
        floor = self._earlier_epsilons.get(name)
        if floor is not None:
            self.epsilon_recorded.setdefault(node_id, floor)

    # --- replies --------------------------------------------------------------------------

    def ingest(
        self, round_: int, deliveries: list[Delivery], bytes_down: dict[int, tuple[int, int]]
    ) -> RoundOutcome:
        """Decode, validate and fuse one round's replies; ``bytes_down`` = (fedkd, flower)."""
        outcome = RoundOutcome(round=round_)
        valid: dict[int, KnowledgeReply] = {}
        for delivery in deliveries:
            node = NodeRound(node_id=delivery.node_id, round=round_)
            node.bytes_down, node.flower_bytes_down = bytes_down.get(delivery.node_id, (0, 0))
            node.flower_bytes_up = delivery.flower_bytes
            outcome.nodes[delivery.node_id] = node
            reply = self._accept(round_, delivery, node)
            if reply is not None and reply.eval is not None:
                outcome.evals.append(reply.eval)
                outcome.eval_nodes.append(delivery.node_id)
            if reply is not None and node.status == "ok":
                valid[delivery.node_id] = reply
        # Nodes that got no fresh targets this round must not distil stale ones next round.
        for node_id in bytes_down:
            self._fused.pop(node_id, None)
        if round_ <= self.cfg.num_server_rounds:
            started = time.perf_counter()
            rejected = self._aggregate(round_, valid)
            outcome.fusion_seconds = time.perf_counter() - started
            for node_id, reason in rejected.items():
                outcome.nodes[node_id].status, outcome.nodes[node_id].reason = "invalid", reason
        for node_id, reason in outcome.excluded.items():
            log.warning(
                "round %d: node %s (%d) excluded: %s",
                round_,
                self.name_of(node_id),
                node_id,
                reason,
            )
        return outcome

    def _accept(self, round_: int, delivery: Delivery, node: NodeRound) -> KnowledgeReply | None:
        if delivery.payload is None:
            node.status, node.reason = "missing", delivery.transport_error or "no reply"
            return None
        node.bytes_up = len(delivery.payload)
        try:
            body = self._authenticated(delivery.node_id, delivery.payload)
            reply = knowledge_reply_from_bytes(body, max_bytes=self.cfg.max_payload_bytes)
            self._check_signer(delivery.node_id, reply)
            if reply.status.code in _CLIENT_FAILURES:
                node.status = reply.status.code.value
                node.reason = f"client reports: {reply.status.reason}"
                return None
            unsupported = incompatibility(reply.software_version, who="node")
            if unsupported:
                raise PayloadError(unsupported)
            validate_reply(reply, self._expectation(round_, delivery.node_id))
        except PayloadError as exc:
            node.status, node.reason = "invalid", exc.reason
            return None
        if reply.node_name:
            self._learn_name(delivery.node_id, reply.node_name)
        problem = self._check_spend(round_, delivery.node_id, reply)
        if problem:
            node.status, node.reason = "invalid", problem
            return None
        claims = self.cfg.dp and reply.privacy.mechanism == DP_MECHANISM
        node.privacy_epsilon = reply.privacy.epsilon if claims else None
        if reply.status.code in (StatusCode.OK, StatusCode.SKIPPED):
            node.status = "ok"
        else:
            node.status, node.reason = reply.status.code.value, reply.status.reason
        if round_ <= self.cfg.num_server_rounds and node.status == "ok":
            problem = self._missing_payload(round_, delivery.node_id, reply)
            if problem:
                node.status, node.reason = "invalid", problem
        return reply

    def _check_spend(self, round_: int, node_id: int, reply: KnowledgeReply) -> str:
        """Record the node's ledger head and ε; refuse a spend that went backwards or that
        claims less than the releases this server recorded compose to.

        A claim counts only in a run that asked for DP: with ``dp = false`` no ε enters
        the results, whatever a reply says.
        """
        spend = reply.privacy
        if spend.mechanism not in CLAIMED_MECHANISMS:
            return f"unknown privacy mechanism {spend.mechanism[:40]!r}"
        if spend.mechanism == CONTROL_MECHANISM:
            self.controls.add(node_id)  # an audit's sabotaged node: no ε, ever
        claimed = self.cfg.dp and spend.mechanism == DP_MECHANISM
        if claimed:
            before = self.epsilon_recorded.get(node_id, 0.0)
            if not np.isfinite(spend.epsilon) or spend.epsilon < before - 1e-9:
                return (
                    f"privacy spend went backwards: ε {spend.epsilon:.6g} < recorded {before:.6g}"
                )
            problem = self._check_composition(node_id, spend)
            if problem:
                return problem
            self.epsilon_recorded[node_id] = spend.epsilon
        if spend.ledger_head:
            self.ledger_heads[node_id] = spend.ledger_head
            if self.registry is not None:
                self.registry.record(
                    self.name_of(node_id),
                    run_id=self.run_id,
                    round_=round_,
                    ledger_head=spend.ledger_head,
                    epsilon=spend.epsilon if claimed else None,
                )
        return ""

    def _check_composition(self, node_id: int, spend: PrivacySpend) -> str:
        """The claim must cover every DP release of the node this server has recorded."""
        if spend.release_steps <= 0:
            return ""
        new = DPSteps(spend.noise_multiplier, spend.sample_rate, spend.release_steps)
        try:
            seen = compose(self.composed.get(node_id, ()), new)
            floor = composed_epsilon(seen, delta=spend.delta, accountant=spend.accountant)
        except ValueError as exc:
            return f"privacy spend cannot be composed: {exc}"
        if spend.epsilon < floor - CLAIM_TOLERANCE:
            return (
                f"privacy spend under-claimed: ε {spend.epsilon:.6g} < {floor:.6g}, the "
                "composition of the releases this server recorded"
            )
        self.composed[node_id] = seen
        return ""

    def _missing_payload(self, round_: int, node_id: int, reply: KnowledgeReply) -> str:
        release = self.instruction(round_, node_id).release
        if release is ReleaseKind.WEIGHTS and reply.weights is None:
            return "asked for weights but the reply carries none"
        if release is ReleaseKind.SOFT_LABELS and reply.soft_labels is None:
            return "asked for soft labels but the reply carries none"
        return ""

    def _expectation(self, round_: int, node_id: int) -> ReplyExpectation:
        ask = self.instruction(round_, node_id)
        return ReplyExpectation(
            run_id=self.run_id,
            round=round_,
            node_id=node_id,
            transfer_digest=self.ref.digest,
            num_anchors=len(ask.anchor_indices),
            num_classes=self.ref.num_classes,
            expect_soft_labels=ask.release is ReleaseKind.SOFT_LABELS,
            require_privacy=self.cfg.claims_dp,
            allowed_dtypes=frozenset({self.cfg.wire_dtype}),
        )

    # --- aggregation ----------------------------------------------------------------------

    def _aggregate(self, round_: int, valid: dict[int, KnowledgeReply]) -> dict[int, str]:
        """Fuse the valid contributions; returns the nodes the strategy excluded, and why."""
        # Only replies that say they did the round's work contribute (a SKIPPED or refusal
        # reply carrying a payload is checked, never fused); rows arrive renormalised.
        contributions = {
            node_id: Contribution(
                soft_labels=normalised_soft_labels(reply),
                weights=reply.weights,
                num_examples=reply.num_examples,
            )
            for node_id, reply in valid.items()
            if self.instruction(round_, node_id).release is not ReleaseKind.NOTHING
            and reply.status.code is StatusCode.OK
        }
        if self.releases is not None:
            for node_id, contribution in contributions.items():
                if contribution.soft_labels is not None:
                    anchors = self.instruction(round_, node_id).anchor_indices
                    name = self.name_of(node_id)
                    self.releases.record(name, round_, anchors, contribution.soft_labels)
        if not contributions:
            if not valid:
                log.warning("round %d: no valid replies; nothing to aggregate", round_)
            return {}  # or nobody was asked for anything (e.g. ``local``)
        try:
            result = self.strategy.aggregate(round_, contributions)
        except Exception as exc:  # one round's failure must not end the run
            log.error("round %d: %s could not aggregate: %s", round_, self.strategy.name, exc)
            return {}
        if result.shared is not None:
            self._shared = result.shared
        for node_id, knowledge in result.per_node.items():
            if knowledge.targets is None:
                continue
            self._fused[node_id] = FusedKnowledge(
                run_id=self.run_id,
                round=round_,
                transfer_set=self.ref,
                anchor_indices=self.instruction(round_, node_id).anchor_indices,
                targets=knowledge.targets,
                strategy=self.strategy.name,
                dtype=self.cfg.wire_dtype,
            )
        return dict(result.excluded)
