"""The coordinator: one round's conductor over the parts that do the work.

Per round it asks the plan what each node releases and builds the requests
(:mod:`~fedkd.coordinator.plan`), runs each reply through verification
(:mod:`~fedkd.coordinator.verification`) and the privacy claim checks
(:mod:`~fedkd.coordinator.claims`), and hands the valid ones to the knowledge keeper
(:mod:`~fedkd.coordinator.knowledge`), which fuses and keeps what is delivered next.
Names (:mod:`~fedkd.coordinator.names`) tie Flower ids to nodes; a checkpoint
(:mod:`~fedkd.coordinator.state`) carries it all by name.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Mapping

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from fedkd.config import RunConfig
from fedkd.coordinator.claims import PrivacyClaims
from fedkd.coordinator.knowledge import KnowledgeKeeper, ReleaseObserver
from fedkd.coordinator.names import NodeNames
from fedkd.coordinator.plan import RoundPlan
from fedkd.coordinator.round import BOUNDARY_RULE, Delivery, NodeRound, RoundOutcome, unforeseen
from fedkd.coordinator.state import CoordinatorState, ResumeRefused, fingerprint_changes
from fedkd.coordinator.verification import ReplyVerifier
from fedkd.data.transfer import TransferSet
from fedkd.fusion import Instruction, Strategy, make_fusion
from fedkd.fusion.sharpen import sharpening_for
from fedkd.privacy.node_registry import NodeRegistry, RegistryError
from fedkd.wire.errors import PayloadError
from fedkd.wire.serde import knowledge_request_to_bytes
from fedkd.wire.types import (
    EvalReport,
    KnowledgeReply,
    KnowledgeRequest,
    NodeFingerprint,
    ReleaseKind,
    StatusCode,
    TransferSetRef,
)
from fedkd.wire.validate import name_problem

log = logging.getLogger("fedkd.coordinator")

# Statuses with which a client says it could not take part at all (nothing to validate).
_CLIENT_FAILURES = (
    StatusCode.INVALID_REQUEST,
    StatusCode.INTERNAL_ERROR,
    StatusCode.LEDGER_REFUSED,
    StatusCode.POLICY_REFUSED,
    StatusCode.UNAVAILABLE,
)


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
        self.run_id = run_id
        self.ref = TransferSetRef(
            digest=transfer.digest,
            num_samples=transfer.num_samples,
            num_classes=num_classes,
            name=transfer.name,
        )
        strategy = make_fusion(cfg.strategy, **cfg.fusion_params())
        self.identities = NodeNames(roster)
        self.plan = RoundPlan(
            strategy,
            num_rounds=cfg.num_server_rounds,
            transfer_size=transfer.num_samples,
            per_round=cfg.anchors_per_round,
            seed=cfg.seed,
        )
        self.verifier = ReplyVerifier(
            ref=self.ref,
            names=self.identities,
            max_bytes=cfg.max_payload_bytes,
            dtype=cfg.wire_dtype,
            require_privacy=cfg.claims_dp,
            signing_keys=signing_keys,
        )
        self.claims = PrivacyClaims(
            dp=cfg.dp,
            delta=cfg.dp_delta,
            accountant=cfg.dp_accountant,
            training=cfg.private_training,
            registry=registry,
        )
        self.knowledge = KnowledgeKeeper(
            strategy,
            sharpening=sharpening_for(strategy, cfg.fusion_sharpening),
            ref=self.ref,
            dtype=cfg.wire_dtype,
            weigh_by_records=not cfg.dp,
            observer=releases,
        )
        self.releases = releases
        """Every soft-label release received, when the run records them (the audit)."""
        self._carried_fingerprints: dict[str, NodeFingerprint] = {}
        self.fingerprints: dict[int, NodeFingerprint] = {}
        """What each named node said it is at the handshake (config, model, data)."""
        self.resumed_after = 0
        """The round of the checkpoint this run carried on from (0: it started afresh)."""

    # --- the parts' records, as the server app and the results read them -----------------

    @property
    def strategy(self) -> Strategy:
        return self.plan.strategy

    @property
    def names(self) -> dict[int, str]:
        return self.identities.names

    @property
    def contested(self) -> dict[str, set[int]]:
        return self.identities.contested

    @property
    def roster(self) -> dict[str, int] | None:
        return self.identities.roster

    @property
    def registry(self) -> NodeRegistry | None:
        return self.claims.registry

    @property
    def ledger_heads(self) -> dict[int, str]:
        return self.claims.ledger_heads

    @property
    def epsilon_recorded(self) -> dict[int, float]:
        return self.claims.epsilon_recorded

    @property
    def controls(self) -> set[int]:
        return self.claims.controls

    def name_of(self, node_id: int) -> str:
        return self.identities.name_of(node_id)

    def ledger_head_of(self, node_id: int) -> str:
        return self.claims.ledger_head_of(node_id, self.name_of(node_id))

    # --- checkpoint -----------------------------------------------------------------------

    def snapshot(self, completed_round: int) -> CoordinatorState:
        """Everything the rounds after ``completed_round`` need, keyed by node name."""
        named, claims, knowledge = self.name_of, self.claims, self.knowledge
        return CoordinatorState(
            run_id=self.run_id,
            completed_round=completed_round,
            anchor_rng=dict(self.plan.rng.bit_generator.state),
            shared=knowledge.shared,
            fused={named(n): f for n, f in knowledge.fused.items()},
            ledger_heads={named(n): h for n, h in claims.ledger_heads.items()},
            epsilon_recorded={named(n): e for n, e in claims.epsilon_recorded.items()},
            composed={named(n): h for n, h in claims.composed.items()},
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
        now = {self.names[n]: f for n, f in self.fingerprints.items() if n in self.names}
        changed = fingerprint_changes(
            state.fingerprints, now, [name for _, name in sorted(self.names.items())]
        )
        if changed:
            raise ResumeRefused(
                f"cannot resume after round {state.completed_round}: {'; '.join(changed)} "
                "(start it afresh with overwrite, or put them back)"
            )
        # Nodes absent now keep their fingerprints for the next resume.
        self._carried_fingerprints = dict(state.fingerprints)
        self.plan.rng.bit_generator.state = state.anchor_rng
        self.knowledge.shared = state.shared
        claims = self.claims
        for node_id, name in self.names.items():
            if name in state.fused:
                self.knowledge.fused[node_id] = state.fused[name]
            if name in state.ledger_heads:
                claims.ledger_heads[node_id] = state.ledger_heads[name]
            if name in state.epsilon_recorded:
                claims.epsilon_recorded[node_id] = state.epsilon_recorded[name]
            if name in state.composed:
                claims.composed[node_id] = state.composed[name]

    # --- requests -------------------------------------------------------------------------

    def requests(self, round_: int, nodes: list[int]) -> dict[int, bytes]:
        """Request bytes for each of ``nodes`` in ``round_`` (``num_server_rounds + 1``: final).

        The strategy's ``configure_round`` says what each node releases; the final
        evaluation message asks for nothing.
        """
        self.plan.configure(round_, nodes)
        return {node_id: self._request(node_id, round_) for node_id in nodes}

    def _request(self, node_id: int, round_: int) -> bytes:
        ask = self.plan.instruction(round_, node_id)
        request = KnowledgeRequest(
            run_id=self.run_id,
            round=round_,
            transfer_set=self.ref,
            anchor_indices=ask.anchor_indices,
            fused=self.knowledge.fused.get(node_id),
            reply_dtype=self.cfg.wire_dtype,
            global_weights=self.knowledge.shared_weights,
            ledger_head=self.ledger_head_of(node_id),
            release=ReleaseKind(ask.release.value),
        )
        return knowledge_request_to_bytes(request)

    # --- replies --------------------------------------------------------------------------

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
                log.error("handshake: node %d: %s", delivery.node_id, unforeseen(exc))
                continue
            problem = name_problem(reply.node_name)
            if problem:
                log.warning("handshake: node %d: %s", delivery.node_id, problem)
                continue
            if reply.run_id == self.run_id and reply.round == 0:
                heard[delivery.node_id] = reply.node_name
                if reply.fingerprint is not None:
                    said[delivery.node_id] = reply.fingerprint
        for node_id in self.identities.settle(heard):
            self.claims.known_as(node_id, self.names[node_id])
        self.fingerprints = {n: said[n] for n in self.names if n in said}
        return dict(self.names)

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
                node.status, node.reason, node.rule = "invalid", unforeseen(exc), BOUNDARY_RULE
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
            self.knowledge.fused.pop(node_id, None)
        if round_ <= self.cfg.num_server_rounds:
            self._fuse(round_, valid, outcome)
        for node_id, reason in outcome.excluded.items():
            log.warning(
                "round %d: node %s (%d) excluded: %s",
                round_,
                self.name_of(node_id),
                node_id,
                reason,
            )
        return outcome

    def _fuse(self, round_: int, valid: dict[int, KnowledgeReply], outcome: RoundOutcome) -> None:
        def instruction(node_id: int) -> Instruction:
            return self.plan.instruction(round_, node_id)

        self.knowledge.trace_non_finite(round_, outcome, instruction)
        started = time.perf_counter()
        rejected = self.knowledge.aggregate(self.run_id, round_, valid, instruction, self.name_of)
        outcome.fusion_seconds = time.perf_counter() - started
        for node_id, (rule, reason) in rejected.items():
            node = outcome.nodes[node_id]
            node.status, node.reason, node.rule = "invalid", reason, rule

    def _attributed(self, node_id: int, report: EvalReport) -> EvalReport:
        """``report`` with the partition this server can vouch for: -1 (none) without a
        roster, or for a node it could not tie to a name (the claim is unchecked)."""
        if self.roster is not None and node_id in self.names:
            return report
        return dataclasses.replace(report, partition_id=-1)

    def _decoded(self, round_: int, node_id: int, payload: bytes) -> KnowledgeReply:
        ask = self.plan.instruction(round_, node_id)
        return self.verifier.decoded(node_id, payload, ask, self.knowledge.shared_weights)

    def _accept(self, round_: int, delivery: Delivery, node: NodeRound) -> KnowledgeReply | None:
        """The reply when every declared rule holds (``node`` says its status), else None."""
        if delivery.payload is None:
            node.status, node.reason = "missing", delivery.transport_error or "no reply"
            return None
        node.bytes_up = len(delivery.payload)
        node_id, names = delivery.node_id, self.identities
        try:
            reply = self._decoded(round_, node_id, delivery.payload)
            if reply.status.code in _CLIENT_FAILURES:
                node.status = reply.status.code.value
                node.reason = f"client reports: {reply.status.reason[:200]}"
                return None
            ask = self.plan.instruction(round_, node_id)
            self.verifier.validate(self.run_id, round_, node_id, reply, ask)
            may_take = node_id not in names.names and names.may_take(reply.node_name)
            self.claims.check(round_, node_id, reply, may_take_name=may_take)
        except PayloadError as exc:
            node.status, node.reason, node.rule = "invalid", exc.reason, exc.rule
            return None
        if names.may_take(reply.node_name) and names.learn(node_id, reply.node_name):
            self.claims.known_as(node_id, reply.node_name)
        self.claims.record(round_, node_id, reply, names.names.get(node_id))
        node.privacy_epsilon = reply.privacy.epsilon if self.claims.claimed(reply) else None
        if reply.status.code in (StatusCode.OK, StatusCode.SKIPPED):
            node.status = "ok"
        else:
            node.status, node.reason = reply.status.code.value, reply.status.reason[:200]
        return reply
