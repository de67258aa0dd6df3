"""Every row of the declared reply rules, fuzzed through the server's real reply path.

Four nodes answer a round through :meth:`Coordinator.ingest` with real fusion (``knfu``
under DP with signed replies; ``fedavg`` without DP or keys).  Node 3's reply is mutated
by one mutation per example, each aimed at one row of :data:`REPLY_RULES` (or a valid
variation of an honest reply); hypothesis draws the values.  Every example must hold:

* nothing raises and no reply reaches the server's catch-all boundary (0 crashes);
* a mutation aimed at a rule excludes node 3 by exactly that rule (0 wrong accepts), and
  the honest nodes then receive exactly what they receive when node 3 is silent;
* a valid variation is accepted and fused; the honest nodes are always accepted.

The suite's totals are then checked: ≥ 2,000 examples, every rule hit ≥ 20 times, ≥ 25 %
of examples reaching fusion, no example over :data:`HANG_S`.  The handshake gets the
same treatment (:func:`test_the_handshake_survives_every_mutation`).
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fedkd.config import RunConfig, parse_run_config
from fedkd.coordinator import BOUNDARY_RULE, CLAIM_TOLERANCE, Coordinator, Delivery
from fedkd.data.transfer import make_transfer_set
from fedkd.privacy.accounting import DPSteps, compose
from fedkd.privacy.accounting import epsilon as epsilon_of
from fedkd.wire.serde import knowledge_reply_to_bytes, knowledge_reply_to_proto
from fedkd.wire.signing import sign_reply
from fedkd.wire.types import (
    EvalReport,
    KnowledgeReply,
    PrivacySpend,
    TransferSetRef,
    WireDType,
)
from fedkd.wire.validate import REPLY_RULES, RULES

T, C, NODES, FUZZED = 12, 10, 4, 3
CAP = 200_000
HANG_S = 5.0
NAMES = [f"node-{i}" for i in range(NODES)]
ROSTER = {name: i for i, name in enumerate(NAMES)}
KEYS = {
    name: Ed25519PrivateKey.from_private_bytes(bytes([i + 1]) * 32) for i, name in enumerate(NAMES)
}
PUBLIC_KEYS = {name: key.public_key() for name, key in KEYS.items()}
TRANSFER = make_transfer_set("fuzz-public", np.random.default_rng(0).normal(size=(40, 4)))
SIGMA, Q, STEPS, DELTA = 1.0, 0.1, 10, 1e-5
SHAPES = {"layer.weight": (6, 4), "layer.bias": (4,)}
BASE_MODEL = {
    n: np.random.default_rng(1).normal(size=s).astype(np.float32) for n, s in SHAPES.items()
}
COMMON: dict[str, Any] = {
    "dataset": "digits",
    "num-clients": NODES,
    "num-server-rounds": 3,
    "anchors-per-round": T,
    "max-payload-bytes": CAP,
    "local-epochs": 1,
    "run-name": "fuzz",
}
DP_CFG = parse_run_config(
    {**COMMON, "strategy": "knfu", "dp": True, "dp-noise-multiplier": SIGMA,
     "dp-accountant": "rdp", "dp-delta": DELTA}
)  # fmt: skip
WEIGHTS_CFG = parse_run_config({**COMMON, "strategy": "fedavg"})


def _epsilon(rounds: int) -> float:
    history: tuple[DPSteps, ...] = ()
    for _ in range(rounds):
        history = compose(history, DPSteps(SIGMA, Q, STEPS))
    return epsilon_of(history, delta=DELTA, accountant="rdp") if rounds else 0.0


EPSILON = {r: _epsilon(r) for r in range(4)}


# --- what a mutation returns --------------------------------------------------------------


@dataclass(frozen=True)
class Raw:
    """Reply bytes as they are (signed like any reply where the harness signs)."""

    data: bytes


@dataclass(frozen=True)
class Envelope:
    """What goes on the wire exactly (no signing)."""

    data: bytes


Produced = KnowledgeReply | Raw | Envelope


@dataclass(frozen=True)
class Harness:
    name: str
    cfg: RunConfig
    keyed: bool


DP = Harness("dp-knfu-signed", DP_CFG, keyed=True)
WEIGHTS = Harness("fedavg-unsigned", WEIGHTS_CFG, keyed=False)


@dataclass(frozen=True)
class Context:
    harness: Harness
    round: int
    honest: KnowledgeReply


Make = Callable[[st.DataObject, Context], Produced]


@dataclass(frozen=True)
class Mutation:
    name: str
    rule: str | None  # None: a valid variation, accepted and fused
    harness: Harness
    round: int
    make: Make


# --- honest replies -------------------------------------------------------------------------


def _coordinator(harness: Harness) -> Coordinator:
    coord = Coordinator(
        harness.cfg,
        run_id="fuzz-run",
        transfer=TRANSFER,
        num_classes=C,
        signing_keys=PUBLIC_KEYS if harness.keyed else None,
        roster=ROSTER,
    )
    coord.hello([Delivery(n, _wire(harness, _hello(n), n)) for n in range(NODES)])
    return coord


def _ref() -> TransferSetRef:
    return TransferSetRef(digest=TRANSFER.digest, num_samples=TRANSFER.num_samples, num_classes=C)


def _hello(node: int) -> KnowledgeReply:
    return KnowledgeReply(
        run_id="fuzz-run", round=0, node_id=node, transfer_set=_ref(), soft_labels=None,
        num_examples=0, privacy=PrivacySpend(ledger_head=f"head-{node}-0"),
        node_name=NAMES[node],
    )  # fmt: skip


def _honest(harness: Harness, node: int, round_: int, seed: int = 0) -> KnowledgeReply:
    rng = np.random.default_rng([node, round_, seed])
    if harness is DP:
        privacy = PrivacySpend(
            mechanism="dp-sgd", epsilon=EPSILON[round_], delta=DELTA, accountant="rdp",
            noise_multiplier=SIGMA, sample_rate=Q, steps=STEPS * round_,
            ledger_head=f"head-{node}-{round_}", release_steps=STEPS,
        )  # fmt: skip
        labels = rng.dirichlet(np.full(C, 0.5), size=T).astype(np.float32)
        report = EvalReport(round_ - 1, node, math.nan, math.nan, 0, 0.4, 1.2)
        return KnowledgeReply(
            run_id="fuzz-run", round=round_, node_id=node, transfer_set=_ref(),
            soft_labels=labels, num_examples=0, privacy=privacy, eval=report,
            node_name=NAMES[node],
        )  # fmt: skip
    weights = {
        n: (w + rng.normal(scale=0.05, size=w.shape)).astype(np.float32)
        for n, w in BASE_MODEL.items()
    }
    report = EvalReport(round_ - 1, node, 0.5, 1.0, 30, 0.4, 1.2, phase_seconds={"train": 0.1})
    return KnowledgeReply(
        run_id="fuzz-run", round=round_, node_id=node, transfer_set=_ref(), soft_labels=None,
        num_examples=100 + 10 * node, weights=weights, eval=report, node_name=NAMES[node],
    )  # fmt: skip


def _wire(harness: Harness, produced: Produced, node: int = FUZZED) -> bytes:
    """What ``node`` sends: signed with its own key where the harness signs."""
    if isinstance(produced, Envelope):
        return produced.data
    data = produced.data if isinstance(produced, Raw) else knowledge_reply_to_bytes(produced)
    if not harness.keyed:
        return data
    return sign_reply(data, node_name=NAMES[node], key=KEYS[NAMES[node]])


def _round(harness: Harness, coord: Coordinator, round_: int, fuzzed: bytes | None) -> Any:
    coord.requests(round_, list(range(NODES)))
    deliveries = [
        Delivery(n, _wire(harness, _honest(harness, n, round_), n)) for n in range(NODES - 1)
    ]
    deliveries.append(Delivery(FUZZED, fuzzed, transport_error="" if fuzzed else "silent"))
    return coord.ingest(round_, deliveries, dict.fromkeys(range(NODES), (1, 1)))


# --- mutations, one group per rule --------------------------------------------------------


def _proto(reply: KnowledgeReply, edit: Callable[[Any], None]) -> Raw:
    message = knowledge_reply_to_proto(reply)
    edit(message)
    return Raw(bytes(message.SerializeToString()))


def _other_text(data: st.DataObject, avoid: str) -> str:
    return data.draw(st.text(min_size=1, max_size=30).filter(lambda s: s != avoid))


def _replace(**changes: Any) -> Make:
    return lambda data, ctx: dataclasses.replace(ctx.honest, **changes)


def _oversize(data: st.DataObject, ctx: Context) -> Produced:
    return Raw(b"\x0a" + bytes(CAP + data.draw(st.integers(1, 4096))))


def _garbage(data: st.DataObject, ctx: Context) -> Produced:
    return Raw(b"\x00" + data.draw(st.binary(max_size=200)))


def _unsigned(data: st.DataObject, ctx: Context) -> Produced:
    return Envelope(knowledge_reply_to_bytes(ctx.honest))


def _wrong_key(data: st.DataObject, ctx: Context) -> Produced:
    impostor = KEYS[NAMES[data.draw(st.integers(0, FUZZED - 1))]]
    body = knowledge_reply_to_bytes(ctx.honest)
    return Envelope(sign_reply(body, node_name=NAMES[FUZZED], key=impostor))


def _other_signer(data: st.DataObject, ctx: Context) -> Produced:
    victim = NAMES[data.draw(st.integers(0, FUZZED - 1))]
    body = knowledge_reply_to_bytes(dataclasses.replace(ctx.honest, node_name=victim))
    return Envelope(sign_reply(body, node_name=victim, key=KEYS[victim]))


def _flipped_signature(data: st.DataObject, ctx: Context) -> Produced:
    signed = bytearray(_wire(DP, ctx.honest))
    where = len(signed) - 70 + data.draw(st.integers(0, 63))  # inside the 64-byte signature
    signed[where] ^= 1 << data.draw(st.integers(0, 7))
    return Envelope(bytes(signed))


def _schema(data: st.DataObject, ctx: Context) -> Produced:
    version = data.draw(st.integers(0, 2**32 - 1).filter(lambda v: v != 1))
    return _proto(ctx.honest, lambda m: setattr(m, "schema_version", version))


def _status_code(data: st.DataObject, ctx: Context) -> Produced:
    code = data.draw(st.integers(9, 2**31 - 1))
    return _proto(ctx.honest, lambda m: setattr(m.status, "code", code))


def _no_privacy(data: st.DataObject, ctx: Context) -> Produced:
    return _proto(ctx.honest, lambda m: m.ClearField("privacy"))


def _dtype_code(data: st.DataObject, ctx: Context) -> Produced:
    code = data.draw(st.integers(4, 2**31 - 1))
    return _proto(ctx.honest, lambda m: setattr(m.soft_labels, "dtype", code))


def _declared_shape(data: st.DataObject, ctx: Context) -> Produced:
    """A shape other than (T, C), data to match where it can, or an overflowing one."""
    huge = st.integers(2**31, 2**32 - 1)
    shape = data.draw(
        st.one_of(
            st.tuples(st.just(0), huge, huge),
            st.tuples(st.integers(1, 64), st.integers(1, 64)).filter(lambda s: s != (T, C)),
            st.lists(st.integers(0, 2**32 - 1), min_size=3, max_size=12).map(tuple),
            st.tuples(huge, st.just(0)),
        )
    )

    def edit(m: Any) -> None:
        del m.soft_labels.shape[:]
        m.soft_labels.shape.extend(shape)
        elements = math.prod(shape)
        m.soft_labels.data = bytes(4 * elements) if elements * 4 <= 16_384 else b""

    return _proto(ctx.honest, edit)


def _unasked_weights(data: st.DataObject, ctx: Context) -> Produced:
    rows = data.draw(st.integers(1, 50))
    return dataclasses.replace(ctx.honest, weights={"w": np.ones((rows, 3), np.float32)})


def _model_shape(data: st.DataObject, ctx: Context) -> Produced:
    return _other_model(data, ctx, ["shape", "extra", "missing", "zero-dim"])


def _architecture(data: st.DataObject, ctx: Context) -> Produced:
    return _other_model(data, ctx, ["shape", "extra", "missing"])


def _other_model(data: st.DataObject, ctx: Context, kinds: list[str]) -> Produced:
    weights = dict(ctx.honest.weights or {})
    kind = data.draw(st.sampled_from(kinds))
    if kind == "shape":
        weights["layer.weight"] = np.ones(
            (data.draw(st.integers(1, 9).filter(lambda r: r != 6)), 4), np.float32
        )
    elif kind == "extra":
        weights[data.draw(st.text(min_size=1, max_size=20).filter(lambda n: n not in SHAPES))] = (
            np.ones(2, np.float32)
        )
    elif kind == "missing":
        del weights[data.draw(st.sampled_from(sorted(SHAPES)))]
    else:
        return _proto(ctx.honest, _zero_dim_weight)
    return dataclasses.replace(ctx.honest, weights=weights)


def _zero_dim_weight(m: Any) -> None:
    tensor = m.weights.tensors[0].tensor
    del tensor.shape[:]
    tensor.shape.extend([0, 2**32 - 1, 2**32 - 1])
    tensor.data = b""


def _round_one_zero_dim(data: st.DataObject, ctx: Context) -> Produced:
    return _proto(ctx.honest, _zero_dim_weight)


def _run_id(data: st.DataObject, ctx: Context) -> Produced:
    return dataclasses.replace(ctx.honest, run_id=_other_text(data, "fuzz-run"))


def _round_number(data: st.DataObject, ctx: Context) -> Produced:
    other = data.draw(st.integers(0, 2**32 - 1).filter(lambda r: r != ctx.round))
    return dataclasses.replace(ctx.honest, round=other)


def _node_id(data: st.DataObject, ctx: Context) -> Produced:
    other = data.draw(st.integers(0, 2**64 - 1).filter(lambda n: n != FUZZED))
    return dataclasses.replace(ctx.honest, node_id=other)


def _node_name(data: st.DataObject, ctx: Context) -> Produced:
    name = data.draw(st.one_of(st.sampled_from(NAMES[:FUZZED]), st.text(max_size=30)))
    return dataclasses.replace(ctx.honest, node_name=name if name != NAMES[FUZZED] else "")


def _bad_name(data: st.DataObject, ctx: Context) -> Produced:
    name = data.draw(
        st.one_of(
            st.sampled_from(["../../x", "a/b", "a\\b", ".", "..", "flower-node-7", "x" * 65]),
            st.text(min_size=1, max_size=20).map(lambda t: t + "/"),
            st.text(alphabet=st.characters(categories=["Cc"]), min_size=1, max_size=5),
        )
    )
    return dataclasses.replace(ctx.honest, node_name=name)


def _transfer_digest(data: st.DataObject, ctx: Context) -> Produced:
    ref = dataclasses.replace(ctx.honest.transfer_set, digest=_other_text(data, TRANSFER.digest))
    return dataclasses.replace(ctx.honest, transfer_set=ref)


def _version(data: st.DataObject, ctx: Context) -> Produced:
    major = data.draw(st.integers(0, 99).filter(lambda v: v != 0))
    return dataclasses.replace(
        ctx.honest, software_version=f"{major}.{data.draw(st.integers(0, 9))}.0"
    )


def _records(data: st.DataObject, ctx: Context) -> Produced:
    return dataclasses.replace(
        ctx.honest, num_examples=data.draw(st.integers(10**9 + 1, 2**64 - 1))
    )


def _eval_values(data: st.DataObject, ctx: Context) -> Produced:
    assert ctx.honest.eval is not None
    bad_accuracy = st.one_of(
        st.floats(max_value=-1e-9), st.floats(min_value=1 + 1e-9), st.just(math.inf)
    )
    bad_loss = st.one_of(st.floats(max_value=-1e-9), st.just(math.inf))
    field = data.draw(
        st.sampled_from(
            [
                "local_accuracy",
                "global_accuracy",
                "global_loss",
                "train_loss",
                "seconds",
                "examples",
            ]
        )
    )
    if field.endswith("accuracy"):
        report = dataclasses.replace(ctx.honest.eval, **{field: data.draw(bad_accuracy)})
    elif field.endswith("loss"):
        report = dataclasses.replace(ctx.honest.eval, **{field: data.draw(bad_loss)})
    elif field == "seconds":
        value = data.draw(
            st.one_of(st.floats(max_value=-1e-9), st.just(math.nan), st.just(math.inf))
        )
        report = dataclasses.replace(ctx.honest.eval, phase_seconds={"train": value})
    else:
        report = dataclasses.replace(
            ctx.honest.eval, local_test_examples=data.draw(st.integers(10**9 + 1, 2**32 - 1))
        )
    return dataclasses.replace(ctx.honest, eval=report)


def _eval_round(data: st.DataObject, ctx: Context) -> Produced:
    assert ctx.honest.eval is not None
    other = data.draw(st.integers(0, 2**32 - 1).filter(lambda r: r != ctx.round - 1))
    return dataclasses.replace(
        ctx.honest, eval=dataclasses.replace(ctx.honest.eval, evaluated_round=other)
    )


def _eval_partition(data: st.DataObject, ctx: Context) -> Produced:
    assert ctx.honest.eval is not None
    other = data.draw(st.integers(0, 2**32 - 1).filter(lambda p: p != FUZZED))
    return dataclasses.replace(
        ctx.honest, eval=dataclasses.replace(ctx.honest.eval, partition_id=other)
    )


def _label_values(data: st.DataObject, ctx: Context) -> Produced:
    labels = np.array(ctx.honest.soft_labels, dtype=np.float32)
    row, col = data.draw(st.integers(0, T - 1)), data.draw(st.integers(0, C - 1))
    kind = data.draw(st.sampled_from(["nan", "negative", "row-sum", "dtype"]))
    if kind == "nan":
        labels[row, col] = data.draw(st.sampled_from([math.nan, math.inf, -math.inf]))
    elif kind == "negative":
        shift = data.draw(st.floats(0.01, 10.0))
        labels[row, col] -= shift
        labels[row, (col + 1) % C] += shift
    elif kind == "row-sum":
        labels[row] *= np.float32(
            1 + data.draw(st.floats(0.01, 100.0)) * data.draw(st.sampled_from([1, -0.5]))
        )
        labels = np.abs(labels)
    else:
        return dataclasses.replace(
            ctx.honest, dtype=data.draw(st.sampled_from([WireDType.FLOAT16, WireDType.INT8]))
        )
    return dataclasses.replace(ctx.honest, soft_labels=labels)


def _weight_values(data: st.DataObject, ctx: Context) -> Produced:
    weights = {n: np.array(w) for n, w in (ctx.honest.weights or {}).items()}
    value = data.draw(
        st.one_of(
            st.sampled_from([math.nan, math.inf, -math.inf, 3e38]), st.floats(1.0001e6, 3.4e38)
        )
    )
    name = data.draw(st.sampled_from(sorted(weights)))
    weights[name].flat[data.draw(st.integers(0, weights[name].size - 1))] = value
    return dataclasses.replace(ctx.honest, weights=weights)


def _mechanism(data: st.DataObject, ctx: Context) -> Produced:
    text = data.draw(st.one_of(st.text(max_size=40), st.just("none")))
    if text in ("dp-sgd", "control: no guarantee"):
        text = "lol"
    return dataclasses.replace(
        ctx.honest, privacy=dataclasses.replace(ctx.honest.privacy, mechanism=text)
    )


def _parameters(data: st.DataObject, ctx: Context) -> Produced:
    bad_rate = st.one_of(
        st.sampled_from([2.0, 0.0, -0.1, math.nan, math.inf, 0.3, 0.15, 2.0**-24, 5e-324]),
        st.floats(1.0001, 1e9),
        st.integers(10**5 + 1, 2**60).map(lambda k: 1 / k),  # the accountant's cost runs away
    )
    bad_sigma = st.one_of(
        st.sampled_from([0.0, math.nan, math.inf, -math.inf, 1e-6, 1e4]),
        st.floats(max_value=0.2999),
        st.floats(min_value=100.0001),
    )
    field = data.draw(st.sampled_from(["delta", "accountant", "noise_multiplier", "sample_rate"]))
    value: Any
    if field == "delta":
        value = data.draw(st.floats(allow_nan=True).filter(lambda d: d != DELTA))
    elif field == "accountant":
        value = data.draw(
            st.one_of(st.just("prv"), st.text(max_size=10)).filter(lambda a: a != "rdp")
        )
    elif field == "noise_multiplier":
        value = data.draw(bad_sigma)
    else:
        value = data.draw(bad_rate)
    return dataclasses.replace(
        ctx.honest, privacy=dataclasses.replace(ctx.honest.privacy, **{field: value})
    )


def _steps(data: st.DataObject, ctx: Context) -> Produced:
    steps = data.draw(st.integers(0, 2**32 - 1).filter(lambda s: s != STEPS))
    return dataclasses.replace(
        ctx.honest, privacy=dataclasses.replace(ctx.honest.privacy, release_steps=steps)
    )


def _epsilon_backwards(data: st.DataObject, ctx: Context) -> Produced:
    value = data.draw(
        st.one_of(st.sampled_from([math.nan, math.inf]), st.floats(-1e9, EPSILON[1] - 1e-6))
    )
    return dataclasses.replace(
        ctx.honest, privacy=dataclasses.replace(ctx.honest.privacy, epsilon=value)
    )


def _under_claim(data: st.DataObject, ctx: Context) -> Produced:
    recorded = EPSILON[ctx.round - 1]
    value = data.draw(st.floats(recorded, EPSILON[ctx.round] - CLAIM_TOLERANCE - 1e-6))
    return dataclasses.replace(
        ctx.honest, privacy=dataclasses.replace(ctx.honest.privacy, epsilon=value)
    )


def _outlier(data: st.DataObject, ctx: Context) -> Produced:
    kind = data.draw(st.sampled_from(["zero", "scaled", "shifted"]))
    weights = ctx.honest.weights or {}
    if kind == "zero":
        changed = {n: np.zeros_like(w) for n, w in weights.items()}
    elif kind == "scaled":
        factor = data.draw(st.floats(30.0, 1e5)) * data.draw(st.sampled_from([1, -1]))
        changed = {n: (w * factor).astype(np.float32) for n, w in weights.items()}
    else:
        offset = data.draw(st.floats(5.0, 1e5))
        changed = {n: (w + offset).astype(np.float32) for n, w in weights.items()}
    return dataclasses.replace(ctx.honest, weights=changed)


def _valid_labels(data: st.DataObject, ctx: Context) -> Produced:
    seed = data.draw(st.integers(0, 2**32 - 1))
    concentration = data.draw(st.floats(0.01, 100.0))
    labels = np.random.default_rng(seed).dirichlet(np.full(C, concentration), size=T)
    labels = np.clip(labels, 0.0, None)
    labels = (labels / labels.sum(axis=1, keepdims=True)).astype(np.float32)
    count = data.draw(st.integers(0, 10**9))
    over = data.draw(st.floats(0.0, 1e6))
    privacy = dataclasses.replace(ctx.honest.privacy, epsilon=EPSILON[ctx.round] + over)
    return dataclasses.replace(ctx.honest, soft_labels=labels, num_examples=count, privacy=privacy)


def _valid_weights(data: st.DataObject, ctx: Context) -> Produced:
    scale = data.draw(st.floats(0.0, 0.1))
    seed = data.draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    weights = {
        n: (w + rng.normal(scale=scale, size=w.shape)).astype(np.float32)
        for n, w in BASE_MODEL.items()
    }
    return dataclasses.replace(
        ctx.honest, weights=weights, num_examples=data.draw(st.integers(1, 10**9))
    )


def _valid_eval(data: st.DataObject, ctx: Context) -> Produced:
    assert ctx.honest.eval is not None
    accuracy = data.draw(st.one_of(st.just(math.nan), st.floats(0.0, 1.0)))
    report = dataclasses.replace(ctx.honest.eval, global_accuracy=accuracy, global_loss=math.nan)
    return dataclasses.replace(ctx.honest, eval=report)


M = Mutation
MUTATIONS: tuple[Mutation, ...] = (
    M("oversize", "payload.size", DP, 1, _oversize),
    M("oversize-unsigned", "payload.size", WEIGHTS, 2, _oversize),
    M("unsigned", "payload.signature", DP, 1, _unsigned),
    M("wrong-key", "payload.signature", DP, 1, _wrong_key),
    M("another-node's-envelope", "payload.signature", DP, 1, _other_signer),
    M("flipped-signature", "payload.signature", DP, 1, _flipped_signature),
    M("garbage", "payload.decode", DP, 1, _garbage),
    M("garbage-unsigned", "payload.decode", WEIGHTS, 2, _garbage),
    M("schema-version", "payload.decode", DP, 1, _schema),
    M("status-code", "payload.decode", WEIGHTS, 2, _status_code),
    M("no-privacy", "payload.decode", DP, 1, _no_privacy),
    M("dtype-code", "payload.decode", DP, 1, _dtype_code),
    M("declared-shape", "tensor.shape", DP, 1, _declared_shape),
    M("unasked-weights", "tensor.shape", DP, 1, _unasked_weights),
    M("model-shape", "tensor.shape", WEIGHTS, 2, _model_shape),
    M("run-id", "identity.run", DP, 1, _run_id),
    M("round", "identity.round", WEIGHTS, 2, _round_number),
    M("node-id", "identity.node", DP, 1, _node_id),
    M("node-name", "identity.node", WEIGHTS, 2, _node_name),
    M("bad-name", "identity.node", WEIGHTS, 2, _bad_name),
    M("transfer-digest", "identity.transfer-set", DP, 1, _transfer_digest),
    M("version", "software.version", WEIGHTS, 2, _version),
    M("records", "count.records", WEIGHTS, 2, _records),
    M("records-dp", "count.records", DP, 1, _records),
    M("eval-values", "eval.values", WEIGHTS, 2, _eval_values),
    M("eval-round", "eval.round", DP, 1, _eval_round),
    M("eval-partition", "eval.partition", WEIGHTS, 2, _eval_partition),
    M("label-values", "soft-labels.values", DP, 1, _label_values),
    M("no-labels", "payload.missing", DP, 1, _replace(soft_labels=None)),
    M("no-weights", "payload.missing", WEIGHTS, 2, _replace(weights=None)),
    M("weight-values", "weights.values", WEIGHTS, 2, _weight_values),
    M("mechanism", "claim.mechanism", DP, 1, _mechanism),
    M("parameters", "claim.parameters", DP, 1, _parameters),
    M("steps", "claim.steps", DP, 1, _steps),
    M("epsilon-backwards", "claim.epsilon", DP, 2, _epsilon_backwards),
    M("under-claim", "claim.composition", DP, 1, _under_claim),
    M("under-claim-later", "claim.composition", DP, 2, _under_claim),
    M("outlier", "fusion.outlier", WEIGHTS, 2, _outlier),
    M("architecture", "fusion.model", WEIGHTS, 1, _architecture),
    M("round-one-zero-dim", "tensor.shape", WEIGHTS, 1, _round_one_zero_dim),
    M("valid-labels", None, DP, 1, _valid_labels),
    M("valid-labels-later", None, DP, 2, _valid_labels),
    M("valid-eval", None, DP, 1, _valid_eval),
    M("valid-weights", None, WEIGHTS, 2, _valid_weights),
    M("valid-weights-first", None, WEIGHTS, 1, _valid_weights),
)
INVALID_EXAMPLES, VALID_EXAMPLES, HANDSHAKE_EXAMPLES = 26, 200, 106
"""Per mutation: every rule ≥ 20 hits, valid variations ≥ a quarter of the suite, and
≥ 2,000 handshakes."""


@dataclass
class Tally:
    examples: int = 0
    fused: int = 0
    slowest: float = 0.0
    rules: Counter[str] = dataclasses.field(default_factory=Counter)


TALLY = Tally()
HANDSHAKE = Tally()


def _targets(coord: Coordinator, nodes: range) -> list[np.ndarray | None]:
    out: list[np.ndarray | None] = []
    for n in nodes:
        fused = coord.knowledge.fused.get(n)
        out.append(None if fused is None else fused.targets)
    shared = coord.knowledge.shared
    if shared is not None and shared.weights is not None:
        out.append(np.concatenate([w.ravel() for _, w in sorted(shared.weights.items())]))
    return out


def _one_example(mutation: Mutation, data: st.DataObject) -> None:
    harness = mutation.harness
    coord, silent = _coordinator(harness), _coordinator(harness)
    for earlier in range(1, mutation.round):
        for c in (coord, silent):
            _round(harness, c, earlier, _wire(harness, _honest(harness, FUZZED, earlier)))
    seed = data.draw(st.integers(0, 2**32 - 1), label="honest reply's seed")
    ctx = Context(harness, mutation.round, _honest(harness, FUZZED, mutation.round, seed))
    payload = _wire(harness, mutation.make(data, ctx))
    started = time.perf_counter()
    outcome = _round(harness, coord, mutation.round, payload)
    TALLY.slowest = max(TALLY.slowest, time.perf_counter() - started)
    TALLY.examples += 1
    judged = outcome.nodes[FUZZED]
    assert judged.rule != BOUNDARY_RULE, judged.reason
    assert outcome.accepted[: NODES - 1] == list(range(NODES - 1)), outcome.excluded
    if mutation.rule is None:
        assert judged.status == "ok", (mutation.name, judged.reason)
        fused_in = FUZZED in coord.knowledge.fused or (
            harness is WEIGHTS
            and coord.knowledge.shared is not None
            and coord.knowledge.shared_from is not None
            and NAMES[FUZZED] in coord.knowledge.shared_from[1]
        )
        assert fused_in, mutation.name
        TALLY.fused += 1
        return
    assert judged.status == "invalid" and judged.rule == mutation.rule, (
        mutation.name,
        judged.rule,
        judged.reason,
    )
    TALLY.rules[judged.rule] += 1
    # A refused reply moves nothing: the honest nodes get what they get with node 3 silent.
    _round(harness, silent, mutation.round, None)
    for got, want in zip(
        _targets(coord, range(NODES - 1)), _targets(silent, range(NODES - 1)), strict=True
    ):
        if want is None:
            assert got is None
        else:
            assert got is not None
            np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)


def _fuzz(
    mutation: Mutation, example: Callable[[Mutation, st.DataObject], None], examples: int
) -> None:
    """``examples`` hypothesis examples of ``example`` for one mutation."""

    @settings(
        max_examples=examples, deadline=None, derandomize=True, database=None,
        suppress_health_check=list(HealthCheck),
    )  # fmt: skip
    @given(data=st.data())
    def run(data: st.DataObject) -> None:
        example(mutation, data)

    run()


def test_every_reply_rule_holds_under_fuzzing() -> None:
    for mutation in MUTATIONS:
        examples = VALID_EXAMPLES if mutation.rule is None else INVALID_EXAMPLES
        _fuzz(mutation, _one_example, examples)
    every_rule = {rule.name for rule in REPLY_RULES}
    print(f"\nreply fuzz: {TALLY.examples} examples, {TALLY.fused} reached fusion, "
          f"slowest {TALLY.slowest:.3f} s, hits {dict(sorted(TALLY.rules.items()))}")  # fmt: skip
    assert TALLY.examples >= 2000
    assert TALLY.fused >= 0.25 * TALLY.examples
    assert TALLY.slowest < HANG_S
    assert {name for name, hits in TALLY.rules.items() if hits >= 20} == every_rule


def test_every_declared_rule_has_a_mutation() -> None:
    """A new row in REPLY_RULES without a mutation here fails at once."""
    aimed = {m.rule for m in MUTATIONS if m.rule}
    assert aimed == {rule.name for rule in REPLY_RULES}


# --- the handshake ----------------------------------------------------------------------------


def _named(ctx: Context, name: str) -> KnowledgeReply:
    return dataclasses.replace(ctx.honest, node_name=name)


def _squat(data: st.DataObject, ctx: Context) -> Produced:
    return _named(ctx, NAMES[data.draw(st.integers(0, FUZZED - 1))])


def _stranger(data: st.DataObject, ctx: Context) -> Produced:
    return _named(ctx, "x-" + data.draw(st.text(max_size=9)))


HANDSHAKE_MUTATIONS: tuple[Mutation, ...] = (
    *(m for m in MUTATIONS if m.rule and RULES[m.rule].stage == "decode"),
    M("squat", "name", DP, 0, _squat),
    M("squat-unsigned", "name", WEIGHTS, 0, _squat),
    M("stranger", "name", WEIGHTS, 0, _stranger),
)


def _handshake_example(mutation: Mutation, data: st.DataObject) -> None:
    harness = mutation.harness
    coord = Coordinator(
        harness.cfg, run_id="fuzz-run", transfer=TRANSFER, num_classes=C,
        signing_keys=PUBLIC_KEYS if harness.keyed else None, roster=ROSTER,
    )  # fmt: skip
    base = _hello(FUZZED)
    if mutation.rule == "tensor.shape":  # something for the mutation to reshape
        base = dataclasses.replace(_honest(harness, FUZZED, 1), round=0, eval=None)
    records = data.draw(st.integers(0, 10**6), label="records")
    ctx = Context(harness, 0, dataclasses.replace(base, num_examples=records))
    produced = mutation.make(data, ctx)
    deliveries = [Delivery(n, _wire(harness, _hello(n), n)) for n in range(NODES - 1)]
    deliveries.append(Delivery(FUZZED, _wire(harness, produced)))
    started = time.perf_counter()
    names = coord.hello(deliveries)
    HANDSHAKE.slowest = max(HANDSHAKE.slowest, time.perf_counter() - started)
    HANDSHAKE.examples += 1
    assert FUZZED not in names
    unsigned_squat = mutation.name.startswith("squat") and mutation.harness is WEIGHTS
    if unsigned_squat or mutation.name == "another-node's-envelope":
        # Two nodes giving one name (without keys, or with a stolen one): neither is
        # trusted with it.
        (victim,) = coord.contested
        assert victim not in names.values() and coord.contested[victim] == {FUZZED, ROSTER[victim]}
        assert len(names) == NODES - 2
    else:
        assert names == {n: NAMES[n] for n in range(NODES - 1)}
    HANDSHAKE.rules[mutation.name] += 1


def test_the_handshake_survives_every_mutation() -> None:
    for mutation in HANDSHAKE_MUTATIONS:
        _fuzz(mutation, _handshake_example, HANDSHAKE_EXAMPLES)
    print(f"\nhandshake fuzz: {HANDSHAKE.examples} examples, slowest {HANDSHAKE.slowest:.3f} s")
    assert HANDSHAKE.examples >= 2000 and HANDSHAKE.slowest < HANG_S
    assert all(HANDSHAKE.rules[m.name] >= 20 for m in HANDSHAKE_MUTATIONS)


@pytest.mark.parametrize("round_", [1, 2])
def test_honest_rounds_are_accepted_whole(round_: int) -> None:
    """The harness itself: honest replies pass every rule in both harnesses."""
    for harness in (DP, WEIGHTS):
        coord = _coordinator(harness)
        for r in range(1, round_ + 1):
            outcome = _round(harness, coord, r, _wire(harness, _honest(harness, FUZZED, r)))
            assert outcome.accepted == list(range(NODES)), outcome.excluded
