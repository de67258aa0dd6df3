"""The server's side of a round, with no Flower in sight.

The Flower ServerApp asks this object for each node's request bytes, hands back whatever
came in (bytes, a Flower error, or nothing), and gets a :class:`RoundOutcome`.  The
strategy's hooks decide what each node is asked to release (``configure_round``) and what
it receives next (``aggregate``); the coordinator only carries, checks and records.  A
reply that fails to decode or validate excludes that node from the round with a specific
reason; aggregation runs on the valid replies only, so one bad client never sinks a round.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from fedkd.config import RunConfig
from fedkd.data.transfer import TransferSet
from fedkd.fusion import Contribution, Instruction, Knowledge, Release, make_fusion
from fedkd.fusion.sharpen import sharpen, sharpening_for
from fedkd.interrupt import RunFailed
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
from fedkd.privacy.node_registry import NodeRegistry, RegistryError
from fedkd.privacy.recipe import private_epochs
from fedkd.version_check import incompatibility
from fedkd.wire.errors import PayloadError
from fedkd.wire.serde import ReplyShapes, knowledge_reply_from_bytes, knowledge_request_to_bytes
from fedkd.wire.signing import verify_reply
from fedkd.wire.types import (
    EvalReport,
    FusedKnowledge,
    KnowledgeReply,
    KnowledgeRequest,
    NodeFingerprint,
    PrivacySpend,
    ReleaseKind,
    StatusCode,
    TransferSetRef,
)
from fedkd.wire.validate import (
    ReplyExpectation,
    name_problem,
    normalised_soft_labels,
    reject,
    validate_reply,
)

log = logging.getLogger(__name__)
BOUNDARY_RULE = "server.boundary"
"""The rule recorded when judging a reply failed in a way no declared rule foresaw: the
node is excluded, the round goes on (a bug to fix, never a crash)."""
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


# Statuses with which a client says it could not take part at all (nothing to validate).
_CLIENT_FAILURES = (
    StatusCode.INVALID_REQUEST,
    StatusCode.INTERNAL_ERROR,
    StatusCode.LEDGER_REFUSED,
    StatusCode.POLICY_REFUSED,
    StatusCode.UNAVAILABLE,
)
_NOTHING = Instruction(Release.NOTHING, np.zeros(0, dtype=np.uint32))


class ReleaseObserver(Protocol):
    """Told of every soft-label release the server accepts, before any strategy uses it.

    The coordinator records nothing for the audit itself: a run that keeps its releases
    (``record-releases``) attaches an observer, and the audit reads what it kept.
    """

    def record(
        self, node: str, round_: int, anchors: np.ndarray, soft_labels: np.ndarray
    ) -> None: ...


class ResumeRefused(RunFailed):
    """A checkpoint that must not be carried on: a node is not what it was."""


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
    fingerprints: dict[str, NodeFingerprint] = field(default_factory=dict)
    """What each node said it was at the run's first handshake (keyed with its secret)."""


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
    rule: str = ""
    """The declared reply rule that excluded the node (:data:`fedkd.wire.validate.REPLY_RULES`),
    or :data:`BOUNDARY_RULE` when judging it failed in a way no rule foresaw."""
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
        releases: ReleaseObserver | None = None,
        signing_keys: Mapping[str, Ed25519PublicKey] | None = None,
        roster: Mapping[str, int] | None = None,
    ) -> None:
        self.cfg = cfg
        self.roster = dict(roster) if roster is not None else None
        """Node name → partition of every node a simulation started (``None``: a
        deployment): a name outside it is nobody's, and an eval for another partition
        than its name's is refused."""
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
        self.sharpening = sharpening_for(self.strategy, cfg.fusion_sharpening)
        """Every soft-label target is sharpened at this temperature (1: as fused)."""
        self._fused: dict[int, FusedKnowledge] = {}
        self._shared: Knowledge | None = None
        self._shared_before: Knowledge | None = None
        self._shared_from: tuple[int, list[str]] | None = None
        """The round the standing shared model was made in, and from whose replies."""
        self._anchors: dict[int, np.ndarray] = {}
        self._instructions: dict[tuple[int, int], Instruction] = {}
        # Each node's last ledger head and cumulative ε as its replies reported them: a
        # node whose ledger no longer leads there refuses, and ε may never go backwards
        # within the run.  A registry carries the heads from earlier runs.
        self.registry = registry
        self._earlier_heads = registry.heads() if registry else {}
        self._earlier_epsilons = registry.epsilons() if registry else {}
        self.names: dict[int, str] = {}  # Flower node id → the node's own name
        self.contested: dict[str, set[int]] = {}
        """Names two or more nodes gave: without a key to tell them apart, none of them
        is trusted with it (their records stay under their Flower ids)."""
        self._signers: dict[int, str] = {}  # Flower node id → name on its last signed reply
        self.ledger_heads: dict[int, str] = {}
        self.epsilon_recorded: dict[int, float] = {}
        self._carried_fingerprints: dict[str, NodeFingerprint] = {}
        self.fingerprints: dict[int, NodeFingerprint] = {}
        """What each named node said it is at the handshake (config, model, data)."""
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
            fingerprints={
                **self._carried_fingerprints,
                **{named(n): f for n, f in self.fingerprints.items() if n in self.names},
            },
        )

    def resume(self, state: CoordinatorState) -> None:
        """Carry on from ``state`` with the nodes named at this run's handshake.

        Call after :meth:`hello`.  A node that does not come back keeps its record in
        the registry; its pending targets are dropped.

        Raises
        ------
        ResumeRefused
            A node's configuration, model or data is not what it was when the run
            started (its fingerprint differs): its rounds so far and the ones to come
            would not be one run.
        """
        if state.run_id != self.run_id:
            raise ValueError(f"checkpoint of run {state.run_id}, not {self.run_id}")
        changed = []
        for node_id, name in sorted(self.names.items()):
            then, now = state.fingerprints.get(name), self.fingerprints.get(node_id)
            if then is None:
                continue
            if now is None:
                changed.append(f"{name} gives no fingerprint to check against it")
                continue
            parts = now.changes_from(then)
            if not (now.data and then.data):  # a node that could not read its data
                parts = [p for p in parts if p != "data"]
            if parts:
                changed.append(f"{name}'s {' and '.join(parts)} changed since the run started")
        if changed:
            raise ResumeRefused(
                f"cannot resume after round {state.completed_round}: {'; '.join(changed)} "
                "(start it afresh with overwrite, or put them back)"
            )
        # Nodes absent now keep their fingerprints for the next resume.
        self._carried_fingerprints = dict(state.fingerprints)
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
            ask = asks.get(node_id, _NOTHING)
            # A plugin strategy may still speak the wire's enum; its words are the same.
            self._instructions[(round_, node_id)] = Instruction(
                Release(ask.release.value), ask.anchor_indices
            )
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
            release=ReleaseKind(ask.release.value),
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
        and judged on its first real reply.  A name given by two nodes is given to
        neither, and a name outside a simulation's roster is nobody's.
        """
        heard: dict[int, str] = {}
        said: dict[int, NodeFingerprint] = {}
        for delivery in deliveries:
            if delivery.payload is None:
                continue
            try:
                reply = self._decoded(0, delivery.node_id, delivery.payload)
            except PayloadError as exc:
                log.warning("handshake: node %d: %s", delivery.node_id, exc.reason)
                continue
            except Exception as exc:  # the boundary: one node's reply never ends the run
                log.error("handshake: node %d: %s", delivery.node_id, _unforeseen(exc))
                continue
            if name_problem(reply.node_name):
                log.warning(
                    "handshake: node %d: %s", delivery.node_id, name_problem(reply.node_name)
                )
                continue
            if reply.run_id == self.run_id and reply.round == 0:
                heard[delivery.node_id] = reply.node_name
                if reply.fingerprint is not None:
                    said[delivery.node_id] = reply.fingerprint
        by_name: dict[str, set[int]] = {}
        for node_id, name in heard.items():
            by_name.setdefault(name, set()).add(node_id)
        for name, node_ids in sorted(by_name.items()):
            if len(node_ids) > 1 or name in self._taken_names():
                self._contest(name, node_ids)
            elif self.roster is not None and name not in self.roster:
                log.warning(
                    "handshake: node %d names itself %r, which is no node of this simulation",
                    min(node_ids),
                    name[:80],
                )
            else:
                self._learn_name(min(node_ids), name)
        self.fingerprints = {n: said[n] for n in self.names if n in said}
        return dict(self.names)

    def _taken_names(self) -> set[str]:
        return set(self.names.values()) | set(self.contested)

    def _contest(self, name: str, node_ids: set[int]) -> None:
        holders = {n for n, known in self.names.items() if known == name}
        for node_id in holders:
            del self.names[node_id]
        claimants = self.contested.setdefault(name, set())
        claimants.update(node_ids | holders)
        log.warning(
            "nodes %s all name themselves %r: none of them is trusted with the name "
            "(give every node a signing key to tell them apart)",
            sorted(claimants),
            name[:80],
        )

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
            raise reject(
                "payload.signature",
                f"signed by {verified.node_name!r}, but node {node_id} is {known!r}",
            )
        self._signers[node_id] = verified.node_name
        return verified.reply

    def _check_signer(self, node_id: int, reply: KnowledgeReply) -> None:
        """The signed envelope and the reply inside it must name the same node."""
        signer = self._signers.get(node_id)
        if self.signing_keys is not None and reply.node_name != signer:
            raise reject(
                "payload.signature",
                f"signed by {signer!r}, but the reply names {reply.node_name[:80]!r}",
            )

    def _learn_name(self, node_id: int, name: str) -> None:
        if node_id in self.names or any(n == name for n in self.names.values()):
            return
        self.names[node_id] = name
        floor = self._earlier_epsilons.get(name)
        if floor is not None:
            self.epsilon_recorded.setdefault(node_id, floor)

    def _may_take(self, name: str) -> bool:
        """Whether a node that missed the handshake may be known by ``name`` from now on."""
        in_roster = self.roster is None or name in self.roster
        return bool(name) and name not in self.contested and in_roster

    def ingest(
        self, round_: int, deliveries: list[Delivery], bytes_down: dict[int, tuple[int, int]]
    ) -> RoundOutcome:
        """Decode, validate and fuse one round's replies; ``bytes_down`` = (fedkd, flower).

        Everything done with one node's reply runs inside one boundary: whatever goes
        wrong excludes that node with a reason, never the round.
        """
        outcome = RoundOutcome(round=round_)
        valid: dict[int, KnowledgeReply] = {}
        for delivery in deliveries:
            node = NodeRound(node_id=delivery.node_id, round=round_)
            node.bytes_down, node.flower_bytes_down = bytes_down.get(delivery.node_id, (0, 0))
            node.flower_bytes_up = delivery.flower_bytes
            outcome.nodes[delivery.node_id] = node
            try:
                reply = self._accept(round_, delivery, node)
            except (RegistryError, OSError):
                raise  # the server's own records failed: no node's fault, the run's problem
            except Exception as exc:
                node.status, node.reason, node.rule = "invalid", _unforeseen(exc), BOUNDARY_RULE
                log.error("round %d: node %d: %s", round_, delivery.node_id, node.reason)
                continue
            if reply is None:
                continue
            if reply.eval is not None:
                outcome.evals.append(self._attributed(delivery.node_id, reply.eval))
                outcome.eval_nodes.append(delivery.node_id)
            if node.status == "ok":
                valid[delivery.node_id] = reply
        # Nodes that got no fresh targets this round must not distil stale ones next round.
        for node_id in bytes_down:
            self._fused.pop(node_id, None)
        if round_ <= self.cfg.num_server_rounds:
            self._trace_non_finite(round_, outcome)
            started = time.perf_counter()
            rejected = self._aggregate(round_, valid)
            outcome.fusion_seconds = time.perf_counter() - started
            for node_id, (rule, reason) in rejected.items():
                node = outcome.nodes[node_id]
                node.status, node.reason, node.rule = "invalid", reason, rule
        for node_id, reason in outcome.excluded.items():
            log.warning(
                "round %d: node %s (%d) excluded: %s",
                round_,
                self.name_of(node_id),
                node_id,
                reason,
            )
        return outcome

    def _attributed(self, node_id: int, report: EvalReport) -> EvalReport:
        """``report`` with the partition this server can vouch for: -1 (none) without a
        roster, or for a node it could not tie to a name (the claim is unchecked)."""
        if self.roster is not None and node_id in self.names:
            return report
        return dataclasses.replace(report, partition_id=-1)

    def _decoded(self, round_: int, node_id: int, payload: bytes) -> KnowledgeReply:
        """The reply's bytes authenticated and decoded, tensors shaped as the request asked."""
        body = self._authenticated(node_id, payload)
        reply = knowledge_reply_from_bytes(
            body, max_bytes=self.cfg.max_payload_bytes, shapes=self._shapes(round_, node_id)
        )
        self._check_signer(node_id, reply)
        return reply

    def _shapes(self, round_: int, node_id: int) -> ReplyShapes:
        ask = self.instruction(round_, node_id)
        asks_weights = ask.release is Release.WEIGHTS
        model = self._shared.weights if self._shared is not None else None
        return ReplyShapes(
            soft_labels=(len(ask.anchor_indices), self.ref.num_classes),
            weights=(
                {name: tuple(np.shape(w)) for name, w in model.items()}
                if asks_weights and model is not None
                else None
            ),
            weights_allowed=asks_weights,
        )

    def _accept(self, round_: int, delivery: Delivery, node: NodeRound) -> KnowledgeReply | None:
        """The reply when every declared rule holds (``node`` says its status), else None."""
        if delivery.payload is None:
            node.status, node.reason = "missing", delivery.transport_error or "no reply"
            return None
        node.bytes_up = len(delivery.payload)
        try:
            reply = self._decoded(round_, delivery.node_id, delivery.payload)
            if reply.status.code in _CLIENT_FAILURES:
                node.status = reply.status.code.value
                node.reason = f"client reports: {reply.status.reason[:200]}"
                return None
            unsupported = incompatibility(reply.software_version, who="node")
            if unsupported:
                raise reject("software.version", unsupported)
            validate_reply(reply, self._expectation(round_, delivery.node_id))
            self._check_claim(round_, delivery.node_id, reply)
        except PayloadError as exc:
            node.status, node.reason, node.rule = "invalid", exc.reason, exc.rule
            return None
        if self._may_take(reply.node_name):
            self._learn_name(delivery.node_id, reply.node_name)
        self._record_claim(round_, delivery.node_id, reply)
        claims = self.cfg.dp and reply.privacy.mechanism == DP_MECHANISM
        node.privacy_epsilon = reply.privacy.epsilon if claims else None
        if reply.status.code in (StatusCode.OK, StatusCode.SKIPPED):
            node.status = "ok"
        else:
            node.status, node.reason = reply.status.code.value, reply.status.reason[:200]
        return reply

    def _check_claim(self, round_: int, node_id: int, reply: KnowledgeReply) -> None:
        """A DP claim checked whole: parameters the run's, release steps the plan's, ε never
        backwards and never below the composition of the releases this server recorded.

        A claim counts only in a run that asked for DP: with ``dp = false`` no ε enters
        the results, whatever a reply says.  Nothing is recorded here (a reply refused
        by a later rule leaves no trace).
        """
        spend = reply.privacy
        if not (self.cfg.dp and spend.mechanism == DP_MECHANISM):
            return
        cfg = self.cfg
        if spend.delta != cfg.dp_delta or spend.accountant != cfg.dp_accountant:
            raise reject(
                "claim.parameters",
                f"claims δ = {spend.delta:.6g} by {spend.accountant[:20]!r}; the run's is "
                f"δ = {cfg.dp_delta:g} by {cfg.dp_accountant!r}",
            )
        sigma, q = spend.noise_multiplier, spend.sample_rate
        low, high = CLAIMED_SIGMA
        per_epoch = round(1 / q) if math.isfinite(q) and 1 / MAX_STEPS_PER_EPOCH <= q <= 1 else 0
        if not low <= sigma <= high or not (per_epoch >= 1 and abs(per_epoch * q - 1) <= 1e-9):
            raise reject(
                "claim.parameters",
                f"claims σ = {sigma!r}, q = {q!r}: σ must be in [{low:g}, {high:g}], q = 1/k "
                f"for an integer k <= {MAX_STEPS_PER_EPOCH}",
            )
        trained = round_ <= cfg.num_server_rounds and reply.status.code is StatusCode.OK
        epochs = private_epochs(cfg.private_training)
        planned = epochs * per_epoch if trained else 0
        if spend.release_steps != planned:
            raise reject(
                "claim.steps",
                f"claims {spend.release_steps} DP steps this round; the plan is {planned} "
                f"({epochs} DP-SGD epochs of 1/q = {per_epoch} steps)"
                if trained
                else f"claims {spend.release_steps} DP steps in a round without training",
            )
        before = self._epsilon_floor(node_id, reply.node_name)
        if not math.isfinite(spend.epsilon) or spend.epsilon < before - 1e-9:
            raise reject(
                "claim.epsilon",
                f"privacy spend went backwards: ε {spend.epsilon:.6g} < recorded {before:.6g}",
            )
        seen = self._composed_with(node_id, spend)
        if not seen:
            return
        if cfg.dp_accountant == "prv":
            points = prv_grid_points(seen, delta=cfg.dp_delta)
            if points > PRV_MAX_GRID_POINTS:
                raise reject(
                    "claim.composition",
                    f"the releases claimed would need a PRV grid of {points:.3g} points to "
                    f"account (the server accounts up to {PRV_MAX_GRID_POINTS:.3g})",
                )
        try:
            floor = composed_epsilon(seen, delta=cfg.dp_delta, accountant=cfg.dp_accountant)
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

    def _epsilon_floor(self, node_id: int, name: str) -> float:
        """The ε a node's claim may not go below: what it claimed before in this run, or,
        for a node about to be known by ``name``, what that name claimed in earlier runs."""
        recorded = self.epsilon_recorded.get(node_id, 0.0)
        if node_id not in self.names and self._may_take(name):
            recorded = max(recorded, self._earlier_epsilons.get(name, 0.0))
        return recorded

    def _composed_with(self, node_id: int, spend: PrivacySpend) -> History:
        """The node's recorded DP releases, with this reply's (when it released any)."""
        earlier = self.composed.get(node_id, ())
        if spend.release_steps <= 0:
            return earlier
        new = DPSteps(spend.noise_multiplier, spend.sample_rate, spend.release_steps)
        return compose(earlier, new)

    def _record_claim(self, round_: int, node_id: int, reply: KnowledgeReply) -> None:
        """Keep what an accepted reply says of its spend: ε, composition, ledger head."""
        spend = reply.privacy
        if spend.mechanism == CONTROL_MECHANISM:
            self.controls.add(node_id)  # an audit's sabotaged node: no ε, ever
        claimed = self.cfg.dp and spend.mechanism == DP_MECHANISM
        if claimed:
            self.composed[node_id] = self._composed_with(node_id, spend)
            self.epsilon_recorded[node_id] = spend.epsilon
        if spend.ledger_head:
            self.ledger_heads[node_id] = spend.ledger_head
            name = self.names.get(node_id)
            if self.registry is not None and name is not None:
                self.registry.record(
                    name,
                    run_id=self.run_id,
                    round_=round_,
                    ledger_head=spend.ledger_head,
                    epsilon=spend.epsilon if claimed else None,
                )

    def _expectation(self, round_: int, node_id: int) -> ReplyExpectation:
        ask = self.instruction(round_, node_id)
        name = self.names.get(node_id)
        return ReplyExpectation(
            run_id=self.run_id,
            round=round_,
            node_id=node_id,
            transfer_digest=self.ref.digest,
            num_anchors=len(ask.anchor_indices),
            num_classes=self.ref.num_classes,
            expect_soft_labels=ask.release is Release.SOFT_LABELS,
            expect_weights=ask.release is Release.WEIGHTS,
            require_privacy=self.cfg.claims_dp,
            allowed_dtypes=frozenset({self.cfg.wire_dtype}),
            node_name=name,
            names_of_others=frozenset(n for other, n in self.names.items() if other != node_id),
            partition_id=(
                self.roster.get(name) if self.roster is not None and name is not None else None
            ),
            roster=self.roster,
        )

    # --- aggregation ----------------------------------------------------------------------

    def _aggregate(
        self, round_: int, valid: dict[int, KnowledgeReply]
    ) -> dict[int, tuple[str, str]]:
        """Fuse the valid contributions; returns the nodes the strategy excluded: the rule
        and the reason."""
        # Only replies that say they did the round's work contribute (a SKIPPED or refusal
        # reply carrying a payload is checked, never fused); rows arrive renormalised.
        # Under DP a record count is private and a claim: fusion never weighs by it.
        contributions = {
            node_id: Contribution(
                soft_labels=normalised_soft_labels(reply),
                weights=reply.weights,
                num_examples=0 if self.cfg.dp else reply.num_examples,
            )
            for node_id, reply in valid.items()
            if self.instruction(round_, node_id).release is not Release.NOTHING
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
            self._shared_before, self._shared = self._shared, result.shared
            fused = [n for n in contributions if n not in result.excluded]
            self._shared_from = (round_, sorted(self.name_of(n) for n in fused))
        for node_id, knowledge in result.per_node.items():
            if knowledge.targets is None:
                continue
            self._fused[node_id] = FusedKnowledge(
                run_id=self.run_id,
                round=round_,
                transfer_set=self.ref,
                anchor_indices=self.instruction(round_, node_id).anchor_indices,
                targets=sharpen(knowledge.targets, self.sharpening),
                strategy=self.strategy.name,
                dtype=self.cfg.wire_dtype,
            )
        return {
            node_id: (result.rules.get(node_id, "fusion.model"), reason)
            for node_id, reason in result.excluded.items()
        }

    def _trace_non_finite(self, round_: int, outcome: RoundOutcome) -> None:
        """Most nodes returning non-finite weights from the global model of the round before
        is that model's fault, not theirs: it is rolled back, and their exclusions say so."""
        asked = [
            n
            for n in outcome.nodes
            if self.instruction(round_, n).release is Release.WEIGHTS
            and outcome.nodes[n].status != "missing"
        ]
        broken = [
            n
            for n in asked
            if outcome.nodes[n].rule == "weights.values" and "non-finite" in outcome.nodes[n].reason
        ]
        if not broken or 2 * len(broken) <= len(asked) or self._shared_from is None:
            return
        made_in, contributors = self._shared_from
        blame = (
            f"{len(broken)} of {len(asked)} nodes trained the global model of round {made_in} "
            f"(averaged from {', '.join(contributors)}) into non-finite weights: that model "
            f"is rolled back to the one before it"
        )
        log.error("round %d: %s", round_, blame)
        self._shared, self._shared_before = self._shared_before, None
        self._shared_from = None
        for node_id in broken:
            outcome.nodes[node_id].reason += f" ({blame})"


def _unforeseen(exc: BaseException) -> str:
    """The reason recorded when judging a reply failed outside every declared rule."""
    return f"the server could not judge this reply ({type(exc).__name__}: {str(exc)[:200]})"
