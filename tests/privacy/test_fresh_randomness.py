"""Every private draw (Poisson masks, DP noise, swing noise) comes from fresh OS entropy.

Patched to a constant, the entropy source makes two runs bit-identical, which shows the
test sees every random draw; unpatched, each mechanism differs between two runs of one
configuration, and a server replaying a node's release from the run config cannot match.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import torch

from fedkd.config import RunConfig, parse_run_config
from fedkd.coordinator import Coordinator
from fedkd.privacy import entropy
from fedkd.privacy.guard import FRESH_RANDOMNESS
from fedkd.privacy.ledger import Ledger
from fedkd.wire.serde import knowledge_reply_from_bytes
from fedkd.wire.types import KnowledgeReply
from tests.node_harness import federation, node_config, serve

BASE: dict[str, Any] = {
    "dataset": "digits",
    "num-clients": 3,
    "partitioner": "iid",
    "transfer-size": 200,
    "num-server-rounds": 1,
    "local-epochs": 1,
    "model": "mlp-s",
    "strategy": "mean",
    "dp-accountant": "rdp",
}
DP = {"dp": True, "dp-noise-multiplier": 1.0, "batch-size": 32}


def _release(cfg: RunConfig, **section: Any) -> KnowledgeReply:
    """Node 0's round-1 reply, from a fresh state directory each call."""
    data = federation(cfg)
    coord = Coordinator(cfg, run_id="r", transfer=data.transfer, num_classes=10)
    raw, _ = serve(cfg, 0, coord.requests(1, [0])[0], None, **section)
    return knowledge_reply_from_bytes(raw, max_bytes=1 << 30)


def _runs(extra: dict[str, Any], tag: str = "", **section: Any) -> Iterator[KnowledgeReply]:
    # Distinct run names: a node resends its reply to a round it already answered.
    for name in ("first", "second"):
        yield _release(parse_run_config({**BASE, **extra, "run-name": name + tag}), **section)


def _labels(reply: KnowledgeReply) -> np.ndarray:
    assert reply.soft_labels is not None
    return reply.soft_labels


@pytest.mark.parametrize(
    "extra",
    [
        DP,  # Poisson masks and DP noise
        {
            "dp": False,
            "dp-target-epsilon": 0.0,
            "swing-scorer": "confidence",
            "swing-noise-scale": 0.05,
        },
    ],
    ids=["dp-sgd", "swing"],
)
def test_patched_entropy_replays_and_fresh_entropy_does_not(
    extra: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    fresh = list(_runs(extra))
    assert not np.array_equal(_labels(fresh[0]), _labels(fresh[1]))
    monkeypatch.setattr(entropy, "fresh_bytes", lambda n: bytes(range(n)))
    patched = list(_runs(extra, tag="-patched"))
    np.testing.assert_array_equal(_labels(patched[0]), _labels(patched[1]))


def test_dp_noise_alone_differs_between_runs() -> None:
    """With q = 1 every record is in every Poisson batch: only the noise can differ."""
    cfg = parse_run_config({**BASE, **DP, "batch-size": 4096})
    n = len(federation(cfg).clients[0].train)
    assert n < 4096
    assert not np.array_equal(*(_labels(r) for r in _runs({**DP, "batch-size": 4096})))


def test_poisson_masks_differ_between_runs_and_every_step_is_accounted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A hook on every model the node builds records each DP-SGD batch's records."""
    import fedkd.node.client_node as client_node

    batches: list[list[frozenset[bytes]]] = []
    original = client_node.init_model

    def recording_init(*args: Any, **kwargs: Any) -> torch.nn.Module:
        model = original(*args, **kwargs)
        seen: list[frozenset[bytes]] = []
        batches.append(seen)

        def hook(module: torch.nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
            if module.training:
                rows = inputs[0].detach().cpu().numpy().reshape(len(inputs[0]), -1)
                seen.append(frozenset(hashlib.sha256(r.tobytes()).digest() for r in rows))

        model.register_forward_pre_hook(hook)
        return model

    monkeypatch.setattr(client_node, "init_model", recording_init)
    replies = list(_runs({**DP, "distill-ce-weight": 0.0}))
    assert len(batches) == 2 and batches[0] != batches[1]
    for reply, seen in zip(replies, batches, strict=True):
        assert len(seen) == reply.privacy.steps > 0  # hook-counted steps = accounted steps


def test_a_server_replaying_the_release_from_the_run_config_cannot_match_it() -> None:
    """The old attack: rebuild the node's release from what the server knows (the run
    config and a candidate dataset, randomness derived from the run seed)."""
    cfg = parse_run_config({**BASE, **DP, "run-name": "real"})
    released = _release(cfg)
    replayed = _release(
        parse_run_config({**BASE, **DP, "run-name": "replay"}), reproducible_dp=True
    )
    assert (
        hashlib.sha256(_labels(released).tobytes()).digest()
        != hashlib.sha256(_labels(replayed).tobytes()).digest()
    )


def test_reproducible_mode_is_node_local_and_written_into_every_ledger_row() -> None:
    cfg = parse_run_config({**BASE, **DP, "run-name": "rep"})
    a = _release(cfg, reproducible_dp=True)
    b = _release(parse_run_config({**BASE, **DP, "run-name": "rep2"}), reproducible_dp=True)
    np.testing.assert_array_equal(_labels(a), _labels(b))
    row = Ledger.open(node_config(cfg, 0, reproducible_dp=True).ledger_path).rows()[-1]
    assert "ε not valid against anyone who knows the seed" in row.randomness
    fresh_cfg = parse_run_config({**BASE, **DP, "run-name": "fresh"})
    _release(fresh_cfg)
    fresh_row = Ledger.open(node_config(fresh_cfg, 0).ledger_path).rows()[-1]
    assert fresh_row.randomness == FRESH_RANDOMNESS
    with pytest.raises(ValueError, match="only for simulated data"):
        node_config(cfg, 0, reproducible_dp=True, data="csv", data_path="x.csv")
    with pytest.raises(ValueError, match="unknown config key 'dp-reproducible'"):
        parse_run_config({**BASE, "dp-reproducible": True})
