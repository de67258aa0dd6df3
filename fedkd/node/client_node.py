"""A client node: its own data, model and privacy policy, driven by one request at a time.

The node is built from its own :class:`~fedkd.node.config.NodeConfig` (data provider,
architecture, privacy policy, state directory) and the run's protocol
(:class:`~fedkd.node.protocol.RunProtocol`: epochs, learning rates, and the privacy the
run *asks* for; never the server's own settings).  The request says what to
release; the node never sees a fusion strategy.  Per message:

1. decode and check the request against the public data (``invalid-request``);
2. load its private records through its provider (``unavailable``: details stay local);
3. resolve the run's privacy request against its policy (``policy-refused``);
4. open and verify its ledger (``ledger-refused``), refuse a round past its budget
   (``budget-exhausted``);
5. absorb, evaluate, train, release (:mod:`fedkd.node.round_work`);
6. redact what may not leave, record the reply in the ledger, return it.

Flower re-creates the ClientApp for every message, so the model's state comes in and goes
out as arrays; public and private data are cached per process.
"""

from __future__ import annotations

import functools
import json
import time
import traceback
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from fedkd.data.private import PrivateData
from fedkd.data.providers import DataValidationError, PrivateDataProvider, make_provider
from fedkd.data.public import PublicData, PublicDataSpec, load_public_data
from fedkd.distill.device import pick_device
from fedkd.node import round_work
from fedkd.node.config import NodeConfig
from fedkd.node.isolation import failure_reply
from fedkd.node.local_log import NodeLog
from fedkd.node.model import init_model, load_state, model_state, save_model
from fedkd.node.privacy_engine import NodePrivacyEngine, PrivateRound
from fedkd.node.protocol import RunProtocol
from fedkd.node.refusal import Refused
from fedkd.node.reply_cache import ReplyCache
from fedkd.node.round_progress import RoundProgress
from fedkd.privacy.guard import (
    fields_sent,
)
from fedkd.privacy.ledger import Ledger
from fedkd.version_check import __version__, incompatibility
from fedkd.wire.errors import PayloadError
from fedkd.wire.serde import (
    knowledge_reply_from_bytes,
    knowledge_reply_to_bytes,
    knowledge_request_from_bytes,
)
from fedkd.wire.signing import sign_reply
from fedkd.wire.types import (
    EvalReport,
    KnowledgeReply,
    KnowledgeRequest,
    ModelWeights,
    NodeFingerprint,
    PrivacySpend,
    Status,
    StatusCode,
    TransferSetRef,
    WireDType,
)

_NOT_FINGERPRINTED = frozenset(
    {"model", "device", "keep-model", "signing-key", "bundle-sha256", "transfer-digest",
     "state-dir", "public-data"}
)  # fmt: skip
"""Node-config keys outside the configuration fingerprint: the model has a tag of its own;
the others change how or where the node runs, not what it computes (its store's secret
keys every tag, and the public data is pinned by digest)."""
HELLO_ROUND = 0
"""A request for round 0 is the server's handshake: the node answers with its name and
ledger head only, so the first real request can carry the head the server recorded."""
UNAVAILABLE_REASON = "the node is not taking part (see its local log)"
"""Fixed text: the server learns that a node is absent, never why in terms of its records."""


@dataclass(frozen=True)
class _Loaded:
    public: PublicData
    private: PrivateData


class ClientNode:
    """One node: ``handle`` serves a request and returns the reply and the state to keep."""

    def __init__(self, config: NodeConfig, protocol: RunProtocol, *, node_id: int) -> None:
        self.config = config
        self.protocol = protocol
        self.node_id = node_id
        # Keyed by the run's fingerprint, not every key: a run resumed with a longer
        # reply-timeout is the same run, and must get its answered rounds back.
        context = __version__ + protocol.fingerprint
        self.replies = ReplyCache(config.state_path / f"{config.name}.replies", context=context)
        progress_dir = config.state_path / f"{config.name}.progress"
        self.progress = RoundProgress(progress_dir, context=context)
        self.log = NodeLog(
            eval_path=config.eval_log_path,
            log_path=config.log_path,
            sent_path=config.sent_log_path,
            runs_path=config.runs_log_path,
        )
        self.privacy = NodePrivacyEngine(
            node_name=config.name,
            policy=config.policy,
            request=protocol.privacy,
            training=protocol.private_training,
            ledger_path=config.ledger_path,
            log=self.log,
            control=config.audit_control_noise_off,
            reproducible=config.reproducible_dp,
        )

    @property
    def public_spec(self) -> PublicDataSpec:
        """The node's local copy of the public bundle, else what the run names."""
        if self.config.public_data:
            return replace(self.protocol.public, bundle=self.config.public_data)
        return self.protocol.public

    def transfer_digest(self) -> str:
        """The digest of the transfer set this node would release knowledge on."""
        return load_public_data(self.public_spec).transfer.digest

    @property
    def architecture(self) -> str:
        return self.config.model or self.protocol.model

    def check(self) -> PrivateData:
        """Load and validate everything the node needs before it joins (``fedkd node check``).

        Raises
        ------
        DataValidationError
            Its records (or its configuration of them) cannot be used.
        ValueError, FileNotFoundError
            Its public data or provider configuration is wrong.
        """
        provider = make_provider(self.config.data, dict(self.config.data_options))
        # Read afresh (no per-process cache): the hospital may just have fixed its files.
        return provider.load(load_public_data(self.public_spec))

    def handle(
        self, request_bytes: bytes, state: ModelWeights | None, *, train: bool = True
    ) -> tuple[bytes, ModelWeights | None]:
        """Serve one request; a refusal leaves ``state`` untouched.

        This is the node's isolation boundary (:mod:`fedkd.node.isolation`): an exception
        anywhere in serving becomes the one fixed ``internal-error`` reply, its detail
        written to the node's local log only.
        """
        try:
            return self._handle(request_bytes, state, train=train)
        except Exception:
            detail = traceback.format_exc()
            self.log.problem(f"node {self.config.name} could not serve a request:\n{detail}")
            reply = failure_reply(
                request_bytes,
                node_id=self.node_id,
                node_name=self.config.name,
                max_bytes=self.protocol.max_payload_bytes,
            )
            payload = self._sealed(self._bytes(reply))
            self._log_sent(reply, payload)
            return payload, state

    def _handle(
        self, request_bytes: bytes, state: ModelWeights | None, *, train: bool
    ) -> tuple[bytes, ModelWeights | None]:
        try:
            request = knowledge_request_from_bytes(
                request_bytes, max_bytes=self.protocol.max_payload_bytes
            )
        except PayloadError as exc:
            ref = TransferSetRef(digest="", num_samples=0, num_classes=0)
            return self._bytes(_refusal(0, "", ref, StatusCode.INVALID_REQUEST, exc.reason)), state
        unsupported = incompatibility(request.software_version, who="server")
        if unsupported:
            self.log.problem(f"node {self.config.name} refused run {request.run_id}: {unsupported}")
            refusal = self._refusal(request, StatusCode.POLICY_REFUSED, unsupported)
            return self._bytes(replace(refusal, node_name=self.config.name)), state
        if state is None and request.round > 1:
            # A new Flower run carrying on an interrupted one: the model from the node's disk.
            state = self.progress.load(request.run_id)
        cached = None if request.round == HELLO_ROUND else self.replies.get(
            request.run_id, request.round
        )  # fmt: skip
        if cached is not None:
            # Asked again for a round it answered: the same reply, no second training.
            self.log.note(
                f"node {self.config.name}: round {request.round} of run {request.run_id} "
                "asked again; resent the reply already given"
            )
            return self._sealed(self._readdressed(cached)), state
        try:
            if request.round == HELLO_ROUND:
                reply, new_state = self._hello(request), state
            else:
                reply, new_state = self._serve(request, state, train=train)
        except Refused as refused:
            reply = self._refusal(request, refused.code, refused.reason)
            new_state = state
        named = replace(reply, node_name=self.config.name)
        unsigned = self._bytes(named)
        payload = self._sealed(unsigned)
        self._log_sent(named, payload)
        if request.round != HELLO_ROUND and named.status.code in _ANSWERED:
            self.replies.put(request.run_id, request.round, unsigned)
        self._keep_progress(request, new_state)
        return payload, new_state

    def _log_sent(self, reply: KnowledgeReply, payload: bytes) -> None:
        """Keep what left the node with ``reply``: its fields and its size on the wire."""
        self.log.sent(
            run_id=reply.run_id,
            round_=reply.round,
            status=reply.status.code.value,
            fields=fields_sent(reply),
            size=len(payload),
        )

    def _poisoned(self, honest: np.ndarray, round_: int) -> np.ndarray:
        """A benchmark's malicious client: valid rows, chosen to do harm."""
        from fedkd.node.adversary import poison

        profile = np.array(self.config.profile()) if self.config.adversary == "mimic" else None
        rng = np.random.default_rng([self.protocol.seed, self.config.partition_id, round_, 0xBAD])
        return poison(honest, self.config.adversary, rng=rng, profile=profile)

    def _sealed(self, reply_bytes: bytes) -> bytes:
        """The reply as it leaves: signed whole when the node has a signing key (Ed25519
        is deterministic, so a resent reply carries the same signature)."""
        if not self.config.signing_key:
            return reply_bytes
        key = signing_key(Path(self.config.signing_key).expanduser())
        return sign_reply(reply_bytes, node_name=self.config.name, key=key)

    def _readdressed(self, cached: bytes) -> bytes:
        """A cached reply under the Flower node id this node has now (a SuperNode that
        restarted, or a resumed run, may have another); nothing else changes."""
        reply = knowledge_reply_from_bytes(cached, max_bytes=self.protocol.max_payload_bytes)
        if reply.node_id == self.node_id:
            return cached
        return self._bytes(replace(reply, node_id=self.node_id))

    def _keep_progress(self, request: KnowledgeRequest, state: ModelWeights | None) -> None:
        if request.round > self.protocol.num_server_rounds:
            self.progress.clear(request.run_id)  # the final message: nothing to resume
        elif request.round != HELLO_ROUND and state is not None:
            self.progress.save(request.run_id, state)

    def _hello(self, request: KnowledgeRequest) -> KnowledgeReply:
        """Round 0: who the node is, where its ledger stands, and its fingerprint."""
        ledger = self.privacy.open_ledger(request.ledger_head)
        head = ledger.head()
        self.log.joined(
            run_id=request.run_id,
            settings={
                "rounds": self.protocol.num_server_rounds,
                "dp": self.protocol.privacy.dp,
                "dp_target_epsilon": self.protocol.privacy.target_epsilon,
                "transfer_digest": request.transfer_set.digest,
                "ledger_head": head,
            },
        )
        return replace(
            self._refusal(request, StatusCode.OK, ""),
            privacy=PrivacySpend(ledger_head=head),
            fingerprint=self._fingerprint(ledger),
        )

    def _fingerprint(self, ledger: Ledger) -> NodeFingerprint:
        """The node's configuration, model and data, keyed with its ledger's secret: a
        resumed run refuses a node whose model or data changed, and the server learns no
        digest it could test a candidate dataset against."""
        flat = {k: v for k, v in self.config.to_flat().items() if k not in _NOT_FINGERPRINTED}
        config = json.dumps(flat, sort_keys=True, default=str)
        try:
            data = self._load().private.digest
        except Exception:  # a node that cannot read its data stands aside in round 1
            data = ""
        return NodeFingerprint(
            config=ledger.keyed(f"config:{config}"),
            model=ledger.keyed(f"model:{self.architecture}"),
            data=ledger.keyed(f"data:{data}") if data else "",
        )

    # --- one message ----------------------------------------------------------------------

    def _serve(
        self, request: KnowledgeRequest, state: ModelWeights | None, *, train: bool
    ) -> tuple[KnowledgeReply, ModelWeights | None]:
        loaded = self._load_or_stand_aside()
        _check_request(request, loaded.public)
        private = self.privacy.begin(
            ledger_head=request.ledger_head,
            num_records=len(loaded.private.train),
            round_=request.round,
            train=train,
        )
        if private.exhausted:
            refusal = self._refusal(request, StatusCode.BUDGET_EXHAUSTED, private.exhausted)
            return self._closed(private, refusal, loaded), state

        work = self._work(loaded, private, state)
        report, released, weights = self._phases(work, request, private, train=train)
        reply = KnowledgeReply(
            run_id=request.run_id,
            round=request.round,
            node_id=self.node_id,
            transfer_set=_ref(loaded.public),
            soft_labels=released,
            num_examples=len(loaded.private.train),
            status=Status(StatusCode.OK if train else StatusCode.SKIPPED),
            dtype=request.reply_dtype,
            weights=weights,
            eval=report,
        )
        new_state = model_state(work.model)
        if self.config.keep_model:
            save_model(self.config.model_path, self.architecture, new_state)
        return self._closed(private, reply, loaded), new_state

    def _work(
        self, loaded: _Loaded, private: PrivateRound, state: ModelWeights | None
    ) -> round_work.RoundWork:
        """The round's model (from ``state``, on the node's device) with its data."""
        model = init_model(
            self.architecture,
            input_shape=loaded.public.input_shape,
            num_classes=loaded.public.num_classes,
            run_seed=self.protocol.seed,
        )
        if state is not None:
            load_state(model, state)
        model.to(pick_device(self.config.device))
        return round_work.RoundWork(
            protocol=self.protocol,
            privacy=private.privacy,
            public=loaded.public,
            private=loaded.private,
            model=model,
            node_index=self.config.partition_id,
            architecture=self.architecture,
            reproducible=self.config.reproducible_dp,
            noise_off=self.config.audit_control_noise_off,
        )

    def _phases(
        self,
        work: round_work.RoundWork,
        request: KnowledgeRequest,
        private: PrivateRound,
        *,
        train: bool,
    ) -> tuple[EvalReport, np.ndarray | None, ModelWeights | None]:
        """Absorb, evaluate, train (through the privacy engine), release; each timed."""
        seconds: dict[str, float] = {}
        tick = time.perf_counter()
        distill_loss = round_work.absorb(work, request)
        seconds["distill"] = time.perf_counter() - tick

        tick = time.perf_counter()
        report = round_work.evaluate(work, request.round - 1, distill_loss)
        seconds["evaluate"] = time.perf_counter() - tick

        train_loss = float("nan")
        tick = time.perf_counter()
        if train:
            train_loss, taken = round_work.train(work, request.round, private.plan)
            private.took(taken)
        seconds["train"] = time.perf_counter() - tick

        tick = time.perf_counter()
        released, weights = round_work.release(work, request)
        if released is not None and self.config.adversary:
            released = self._poisoned(released, request.round)
        seconds["extract"] = time.perf_counter() - tick
        report = replace(report, train_loss=train_loss, phase_seconds=seconds)
        return report, released, weights

    def _closed(
        self, private: PrivateRound, reply: KnowledgeReply, loaded: _Loaded
    ) -> KnowledgeReply:
        return private.close(
            reply,
            dataset_digest=loaded.private.digest,
            transfer_digest=loaded.public.transfer.digest,
        )

    # --- the units a message goes through -------------------------------------------------

    def _load(self) -> _Loaded:
        provider = make_provider(self.config.data, dict(self.config.data_options))
        return _load_data(provider, self.public_spec)

    def _load_or_stand_aside(self) -> _Loaded:
        try:
            return self._load()
        except DataValidationError as exc:
            self.log.problem(f"node {self.config.name} is not taking part: {exc}")
        except (ValueError, OSError) as exc:
            self.log.problem(f"node {self.config.name} cannot load its data: {exc}")
        raise Refused(StatusCode.UNAVAILABLE, UNAVAILABLE_REASON)

    def _refusal(self, request: KnowledgeRequest, code: StatusCode, reason: str) -> KnowledgeReply:
        return _refusal(self.node_id, request.run_id, request.transfer_set, code, reason, request)

    @staticmethod
    def _bytes(reply: KnowledgeReply) -> bytes:
        return knowledge_reply_to_bytes(reply)


_ANSWERED = (StatusCode.OK, StatusCode.SKIPPED)
"""Replies that did the round's work (refusals are not kept: the cause may be fixed)."""


@functools.lru_cache(maxsize=4)
def signing_key(path: Path) -> Ed25519PrivateKey:
    """The node's reply-signing key (read once per process)."""
    key = serialization.load_pem_private_key(path.read_bytes(), None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path} is not an Ed25519 private key (fedkd certs node makes one)")
    return key


@functools.lru_cache(maxsize=8)
def _load_data(provider: PrivateDataProvider, public_spec: PublicDataSpec) -> _Loaded:
    """Public and private data, once per process (Flower makes a new app per message)."""
    public = load_public_data(public_spec)
    private = provider.load(public)
    _ = private.digest  # hashed once here, not on every message
    return _Loaded(public=public, private=private)


def _ref(public: PublicData) -> TransferSetRef:
    return TransferSetRef(
        digest=public.transfer.digest,
        num_samples=public.transfer.num_samples,
        num_classes=public.num_classes,
        name=public.transfer.name,
    )


def _refusal(
    node_id: int,
    run_id: str,
    ref: TransferSetRef,
    code: StatusCode,
    reason: str,
    request: KnowledgeRequest | None = None,
) -> KnowledgeReply:
    return KnowledgeReply(
        run_id=run_id,
        round=request.round if request is not None else 0,
        node_id=node_id,
        transfer_set=ref,
        soft_labels=None,
        num_examples=0,
        status=Status(code, reason),
        dtype=request.reply_dtype if request is not None else WireDType.FLOAT32,
    )


def _check_request(request: KnowledgeRequest, public: PublicData) -> None:
    """A request the node cannot serve is refused before any private record is touched."""
    try:
        _check_against_public(request, public)
    except PayloadError as exc:
        raise Refused(StatusCode.INVALID_REQUEST, exc.reason) from exc


def _check_against_public(request: KnowledgeRequest, public: PublicData) -> None:
    digest = public.transfer.digest
    if request.transfer_set.digest != digest:
        raise PayloadError(
            f"request transfer-set digest {request.transfer_set.digest!r} "
            f"does not match this node's {digest!r}"
        )
    index_sets = {"anchor": request.anchor_indices}
    if request.fused is not None:
        index_sets["fused anchor"] = request.fused.anchor_indices
    for what, idx in index_sets.items():
        if len(idx) and int(idx.max()) >= public.transfer.num_samples:
            raise PayloadError(f"{what} index {int(idx.max())} outside the transfer set")
    if request.fused is not None:
        want = (len(request.fused.anchor_indices), public.num_classes)
        if request.fused.targets.shape != want:
            raise PayloadError(
                f"fused targets shape {request.fused.targets.shape}, expected {want}"
            )
        if not np.all(np.isfinite(request.fused.targets)):
            raise PayloadError("fused targets contain non-finite values")
