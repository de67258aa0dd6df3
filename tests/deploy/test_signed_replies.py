"""Signed replies on the server's real validation path (the Coordinator): honest signed
replies are fused; unsigned, forged, other-node and replayed ones are excluded with a
reason and move nothing."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from fedkd.config import RunConfig, parse_run_config
from fedkd.coordinator import Coordinator, Delivery
from fedkd.data.public import load_public_data
from fedkd.deploy.certs import make_node_keys
from fedkd.deploy.keyring import register, signing_keys
from fedkd.wire.signing import sign_reply, verify_reply
from fedkd.wire.v1 import signed_pb2
from tests.node_harness import serve

NAMES = ("cleveland", "hungary", "switzerland")


@pytest.fixture
def site(tmp_path: Path) -> dict[str, Any]:
    register_file = tmp_path / "site" / "nodes.toml"
    keys = {}
    for name in NAMES:
        auth, sign = make_node_keys(tmp_path / name, name)
        assert auth.public_key and sign.public_key
        register(register_file, name, auth=auth.public_key, sign=sign.public_key)
        keys[name] = str(sign.private_key)
    cfg = parse_run_config(
        {"dataset": "digits", "num-clients": 3, "partitioner": "iid", "transfer-size": 100,
         "num-server-rounds": 2, "model": "mlp-s", "strategy": "mean",
         "node-keys": str(register_file), "output-dir": str(tmp_path / "runs")}
    )  # fmt: skip
    return {"cfg": cfg, "keys": keys, "register": register_file, "tmp": tmp_path}


def _coordinator(cfg: RunConfig, register_file: Path) -> Coordinator:
    public = load_public_data(cfg.public_spec)
    return Coordinator(
        cfg, run_id="run-1", transfer=public.transfer, num_classes=public.num_classes,
        signing_keys=signing_keys(register_file),
    )  # fmt: skip


def _reply(site: dict[str, Any], coord: Coordinator, pid: int, round_: int) -> bytes:
    name = NAMES[pid]
    reply, _ = serve(
        site["cfg"], pid, coord.requests(round_, [pid])[pid], None, train=round_ >= 1,
        name=name, signing_key=site["keys"][name], state_dir=str(site["tmp"] / "state" / name),
    )  # fmt: skip
    return reply


def _handshake(site: dict[str, Any]) -> Coordinator:
    coord = _coordinator(site["cfg"], site["register"])
    names = coord.hello([Delivery(pid, _reply(site, coord, pid, 0)) for pid in range(3)])
    assert names == dict(enumerate(NAMES))
    return coord


def _round_with(site: dict[str, Any], coord: Coordinator, third: bytes | None) -> Any:
    replies = [_reply(site, coord, pid, 1) for pid in range(2)]
    deliveries = [Delivery(0, replies[0]), Delivery(1, replies[1]), Delivery(2, third)]
    return coord.ingest(1, deliveries, {pid: (0, 0) for pid in range(3)})


def test_honest_signed_replies_are_accepted(site: dict[str, Any]) -> None:
    coord = _handshake(site)
    outcome = _round_with(site, coord, _reply(site, coord, 2, 1))
    assert outcome.accepted == [0, 1, 2] and outcome.excluded == {}


def _inner(envelope: bytes) -> bytes:
    message = signed_pb2.SignedReply()
    message.ParseFromString(envelope)
    return bytes(message.reply)


def test_an_unsigned_reply_is_refused(site: dict[str, Any]) -> None:
    coord = _handshake(site)
    bare = _inner(_reply(site, coord, 2, 1))
    outcome = _round_with(site, coord, bare)
    assert outcome.accepted == [0, 1]
    assert "unsigned reply" in outcome.excluded[2] or "not a signed reply" in outcome.excluded[2]


def test_a_forged_reply_is_refused(site: dict[str, Any]) -> None:
    coord = _handshake(site)
    message = signed_pb2.SignedReply()
    message.ParseFromString(_reply(site, coord, 2, 1))
    tampered = bytearray(message.reply)
    tampered[-1] ^= 0x01
    message.reply = bytes(tampered)
    outcome = _round_with(site, coord, message.SerializeToString())
    assert outcome.accepted == [0, 1]
    assert "does not verify with the key registered for 'switzerland'" in outcome.excluded[2]


def test_another_nodes_signed_reply_under_this_node_id_is_refused(site: dict[str, Any]) -> None:
    coord = _handshake(site)
    hungary = _reply(site, coord, 1, 1)  # validly signed by hungary, sent as node 2
    outcome = _round_with(site, coord, hungary)
    assert outcome.accepted == [0, 1]
    assert "signed by 'hungary', but node 2 is 'switzerland'" in outcome.excluded[2]


def test_a_node_signing_under_another_name_is_refused(site: dict[str, Any]) -> None:
    coord = _handshake(site)
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_private_key(Path(site["keys"]["switzerland"]).read_bytes(), None)
    inner = _inner(_reply(site, coord, 2, 1))  # names switzerland inside
    claimed = sign_reply(inner, node_name="hungary", key=key)  # type: ignore[arg-type]
    outcome = _round_with(site, coord, claimed)
    assert "does not verify with the key registered for 'hungary'" in outcome.excluded[2]


def test_replays_of_an_earlier_round_or_run_are_refused(site: dict[str, Any]) -> None:
    coord = _handshake(site)
    round_one = _reply(site, coord, 2, 1)
    _round_with(site, coord, round_one)
    # Round 2: the node's genuine round-1 reply again.
    replies = [_reply(site, coord, pid, 2) for pid in range(2)]
    coord.requests(2, [2])[2]  # node 2 was asked too: its answer is a replay
    outcome = coord.ingest(
        2, [Delivery(0, replies[0]), Delivery(1, replies[1]), Delivery(2, round_one)],
        {pid: (0, 0) for pid in range(3)},
    )  # fmt: skip
    assert outcome.accepted == [0, 1] and "round" in outcome.excluded[2]
    # Another run's coordinator never accepts this run's signed reply.
    other = dataclasses.replace(site["cfg"])
    elsewhere = _coordinator(other, site["register"])
    elsewhere.run_id = "run-2"
    elsewhere.hello([Delivery(2, _reply(site, elsewhere, 2, 0))])
    elsewhere.requests(1, [2])[2]
    late = elsewhere.ingest(1, [Delivery(2, round_one)], {2: (0, 0)})
    assert 2 in late.excluded and "run" in late.excluded[2]
    assert verify_reply(round_one, signing_keys(site["register"]), max_bytes=1 << 30)
