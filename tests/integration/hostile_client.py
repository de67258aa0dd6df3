"""A ClientApp in which chosen partitions send crafted replies (or drop out), for the
integration test that drives every crafted reply through Flower's simulation engine.

The crafted replies are the ones of :mod:`tests.test_hostile_replies`, built from the
honest reply each node produced, so everything else about them went through the schema.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from flwr.app import Context, Message
from flwr.clientapp import ClientApp

from client.app import NodeConfigOf, RunConfigOf, serve
from fedkd.flower_glue.messages import pack, unpack
from fedkd.wire.serde import knowledge_reply_from_bytes, knowledge_reply_to_bytes

DROP = "drop"
"""Instead of a crafted reply, fail the message (Flower's error reply): the baseline in
which the node's replies are dropped before fusion."""


def hostile_app(
    attacks: Mapping[int, str], node_of: NodeConfigOf, run_of: RunConfigOf
) -> ClientApp:
    """fedkd's ClientApp; partition ``p`` applies attack ``attacks[p]`` to its replies."""
    app = ClientApp()

    @app.train()
    def train(msg: Message, context: Context) -> Message:
        attack = attacks.get(int(context.node_config["partition-id"]))
        if attack == DROP:
            raise RuntimeError("this node's replies are dropped")
        honest = serve(msg, context, node_of, run_of, train=True)
        payload = unpack(honest.content)
        if attack is None or payload is None:
            return honest
        corrupt = attack if callable(attack) else _named(attack)
        return Message(pack(corrupt(payload)), reply_to=msg)

    @app.query()
    def query(msg: Message, context: Context) -> Message:
        return serve(msg, context, node_of, run_of, train=False)

    @app.evaluate()
    def evaluate(msg: Message, context: Context) -> Message:
        return serve(msg, context, node_of, run_of, train=False)

    return app


def _named(attack: str) -> Callable[[bytes], bytes]:
    from tests.test_hostile_replies import SOFT_LABEL_ATTACKS, WEIGHT_ATTACKS

    craft, _ = {**SOFT_LABEL_ATTACKS, **WEIGHT_ATTACKS}[attack]

    def corrupt(payload: bytes) -> bytes:
        crafted = craft(knowledge_reply_from_bytes(payload, max_bytes=1 << 30))
        return crafted if isinstance(crafted, bytes) else knowledge_reply_to_bytes(crafted)

    return corrupt
