"""A ClientApp in which chosen partitions are hostile nodes, for the zero-trust simulation.

Each attack rewrites the honest reply its node produced (handshake, training rounds, the
final evaluation), so everything else about it went through the real node code and
schema; ``None`` from an attack leaves that reply honest.  ``SILENT`` nodes fail every
message: the clean federation the attacked one is compared with.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping

import numpy as np
from flwr.app import Context, Message
from flwr.clientapp import ClientApp

from client.app import NodeConfigOf, RunConfigOf, serve
from fedkd.flower_glue.messages import pack, unpack
from fedkd.wire.serde import (
    knowledge_reply_from_bytes,
    knowledge_reply_to_bytes,
    knowledge_reply_to_proto,
)
from fedkd.wire.types import KnowledgeReply

Attack = Callable[[KnowledgeReply], KnowledgeReply | bytes | None]
SILENT = "silent"


def _weights(reply: KnowledgeReply, value: float) -> KnowledgeReply | None:
    if reply.weights is None:
        return None
    return dataclasses.replace(
        reply, weights={k: np.full_like(v, value) for k, v in reply.weights.items()}
    )


def zero_model_grab(reply: KnowledgeReply) -> KnowledgeReply | None:
    """A zero model, claiming one record so that count weighting would give it all."""
    zeroed = _weights(reply, 0.0)
    return None if zeroed is None else dataclasses.replace(zeroed, num_examples=1)


def huge_weights(reply: KnowledgeReply) -> KnowledgeReply | None:
    """3e38 everywhere: finite, so no NaN check refuses it; the average overflows."""
    return _weights(reply, 3e38)


def under_claim(reply: KnowledgeReply) -> KnowledgeReply | None:
    """A tenth of the ε its releases compose to."""
    if reply.round == 0 or reply.privacy.mechanism != "dp-sgd":
        return None
    privacy = dataclasses.replace(reply.privacy, epsilon=reply.privacy.epsilon / 10)
    return dataclasses.replace(reply, privacy=privacy)


def nan_claim(reply: KnowledgeReply) -> KnowledgeReply | None:
    """σ = NaN on a DP release (once built outside any try: the run failed)."""
    if reply.privacy.release_steps <= 0:
        return None
    privacy = dataclasses.replace(reply.privacy, noise_multiplier=float("nan"))
    return dataclasses.replace(reply, privacy=privacy)


def wrong_partition(reply: KnowledgeReply) -> KnowledgeReply | None:
    """Its evaluations filed under partition 0 (another node's)."""
    if reply.eval is None:
        return None
    return dataclasses.replace(reply, eval=dataclasses.replace(reply.eval, partition_id=0))


def huge_shape(reply: KnowledgeReply) -> bytes | None:
    """Soft labels declared [0, 2^32-1, 2^32-1] with no data: a byte count of 0 matches."""
    if reply.soft_labels is None:
        return None
    message = knowledge_reply_to_proto(reply)
    del message.soft_labels.shape[:]
    message.soft_labels.shape.extend([0, 2**32 - 1, 2**32 - 1])
    message.soft_labels.data = b""
    return bytes(message.SerializeToString())


def huge_weight_shape(reply: KnowledgeReply) -> bytes | None:
    """A weights tensor declared [0, 2^32-1, 2^32-1] with no data."""
    if reply.weights is None:
        return None
    message = knowledge_reply_to_proto(reply)
    tensor = message.weights.tensors[0].tensor
    del tensor.shape[:]
    tensor.shape.extend([0, 2**32 - 1, 2**32 - 1])
    tensor.data = b""
    return bytes(message.SerializeToString())


def name_squat(reply: KnowledgeReply) -> KnowledgeReply | None:
    """Node 0's name at the handshake and after, and node 0's partition in its evals."""
    squatted = dataclasses.replace(reply, node_name="node-0")
    if squatted.eval is not None:
        squatted = dataclasses.replace(
            squatted, eval=dataclasses.replace(squatted.eval, partition_id=0)
        )
    return squatted


def hostile_nodes_app(
    attacks: Mapping[int, Attack | str], node_of: NodeConfigOf, run_of: RunConfigOf
) -> ClientApp:
    """fedkd's ClientApp; partition ``p`` applies ``attacks[p]`` to every reply it sends."""
    app = ClientApp()

    def answer(msg: Message, context: Context, *, train: bool) -> Message:
        attack = attacks.get(int(context.node_config["partition-id"]))
        if attack == SILENT:
            raise RuntimeError("this node is not part of the clean federation")
        honest = serve(msg, context, node_of, run_of, train=train)
        payload = unpack(honest.content)
        if attack is None or isinstance(attack, str) or payload is None:
            return honest
        crafted = attack(knowledge_reply_from_bytes(payload, max_bytes=1 << 30))
        if crafted is None:
            return honest
        data = crafted if isinstance(crafted, bytes) else knowledge_reply_to_bytes(crafted)
        return Message(pack(data), reply_to=msg)

    @app.train()
    def train(msg: Message, context: Context) -> Message:
        return answer(msg, context, train=True)

    @app.query()
    def query(msg: Message, context: Context) -> Message:
        return answer(msg, context, train=False)

    @app.evaluate()
    def evaluate(msg: Message, context: Context) -> Message:
        return answer(msg, context, train=False)

    return app
