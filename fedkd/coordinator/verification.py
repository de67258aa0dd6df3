"""Reply verification: every declared rule a reply must pass before its claim is read.

In order: the signature (a deployment with node keys), decoding at the shapes the request
asked for, the signer being the node the reply names, the software version, and the
validation table (:mod:`fedkd.wire.validate`).  Each failure is a :class:`PayloadError`
naming its rule; the coordinator excludes the node with it and the round goes on.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from fedkd.coordinator.names import NodeNames
from fedkd.fusion import Instruction, ModelState, Release
from fedkd.version_check import incompatibility
from fedkd.wire.serde import ReplyShapes, knowledge_reply_from_bytes
from fedkd.wire.signing import verify_reply
from fedkd.wire.types import KnowledgeReply, TransferSetRef, WireDType
from fedkd.wire.validate import ReplyExpectation, reject, validate_reply


class ReplyVerifier:
    """Checks replies against the run, the request each answers, and who sent it."""

    def __init__(
        self,
        *,
        ref: TransferSetRef,
        names: NodeNames,
        max_bytes: int,
        dtype: WireDType,
        require_privacy: bool,
        signing_keys: Mapping[str, Ed25519PublicKey] | None = None,
    ) -> None:
        self.ref = ref
        self.max_bytes = max_bytes
        self.dtype = dtype
        """The one tensor encoding the run's replies may use."""
        self.require_privacy = require_privacy
        """Every reply must state a DP spend (a run whose releases claim ε)."""
        self.names = names
        self.signing_keys = signing_keys
        """Registered node name → Ed25519 key: when set, only replies signed by the key
        of the name they carry are read at all (a deployment)."""
        self._signers: dict[int, str] = {}  # Flower node id → name on its last signed reply

    def decoded(
        self, node_id: int, payload: bytes, ask: Instruction, model: ModelState | None
    ) -> KnowledgeReply:
        """The reply's bytes authenticated and decoded, tensors shaped as ``ask`` asked
        (``model``: the standing shared model, whose shapes asked-for weights must have)."""
        body = self._authenticated(node_id, payload)
        reply = knowledge_reply_from_bytes(
            body, max_bytes=self.max_bytes, shapes=_shapes(ask, model, self.ref)
        )
        signer = self._signers.get(node_id)
        if self.signing_keys is not None and reply.node_name != signer:
            raise reject(
                "payload.signature",
                f"signed by {signer!r}, but the reply names {reply.node_name[:80]!r}",
            )
        return reply

    def validate(
        self, run_id: str, round_: int, node_id: int, reply: KnowledgeReply, ask: Instruction
    ) -> None:
        """The software version and the validation table, for ``reply`` to ``ask``."""
        unsupported = incompatibility(reply.software_version, who="node")
        if unsupported:
            raise reject("software.version", unsupported)
        validate_reply(reply, self._expectation(run_id, round_, node_id, ask))

    def _authenticated(self, node_id: int, payload: bytes) -> bytes:
        """The reply bytes once the signature checks out (as they are without signatures).

        The envelope's name must also be the one this Flower node id gave before: a node
        signing with its own key under another node's id is another node.
        """
        if self.signing_keys is None:
            return payload
        verified = verify_reply(payload, self.signing_keys, max_bytes=self.max_bytes)
        known = self.names.names.get(node_id)
        if known is not None and known != verified.node_name:
            raise reject(
                "payload.signature",
                f"signed by {verified.node_name!r}, but node {node_id} is {known!r}",
            )
        self._signers[node_id] = verified.node_name
        return verified.reply

    def _expectation(
        self, run_id: str, round_: int, node_id: int, ask: Instruction
    ) -> ReplyExpectation:
        names = self.names
        return ReplyExpectation(
            run_id=run_id,
            round=round_,
            node_id=node_id,
            transfer_digest=self.ref.digest,
            num_anchors=len(ask.anchor_indices),
            num_classes=self.ref.num_classes,
            expect_soft_labels=ask.release is Release.SOFT_LABELS,
            expect_weights=ask.release is Release.WEIGHTS,
            require_privacy=self.require_privacy,
            allowed_dtypes=frozenset({self.dtype}),
            node_name=names.names.get(node_id),
            names_of_others=frozenset(n for other, n in names.names.items() if other != node_id),
            partition_id=names.partition_of(node_id),
            roster=names.roster,
        )


def _shapes(ask: Instruction, model: ModelState | None, ref: TransferSetRef) -> ReplyShapes:
    asks_weights = ask.release is Release.WEIGHTS
    return ReplyShapes(
        soft_labels=(len(ask.anchor_indices), ref.num_classes),
        weights=(
            {name: tuple(np.shape(w)) for name, w in model.items()}
            if asks_weights and model is not None
            else None
        ),
        weights_allowed=asks_weights,
    )
