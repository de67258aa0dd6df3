"""`reply-timeout` means something: a node's first rounds (handshake, first training round,
where it starts its app, loads data and builds its model) also get `startup-timeout`, and
every exclusion for silence says which deadline it missed."""

from __future__ import annotations

import time
from collections.abc import Iterable
from types import SimpleNamespace
from typing import Any

import pytest

import server.app
from fedkd.config import parse_run_config
from fedkd.coordinator import Coordinator
from fedkd.data.public import load_public_data
from server.app import Deadline, exchange


class SilentGrid:
    """A Grid whose nodes never answer (only what the round loop calls)."""

    def __init__(self) -> None:
        self.pulls = 0

    def push_messages(self, messages: Iterable[Any]) -> list[str]:
        return [m.metadata.message_id for m in messages]

    def pull_messages(self, message_ids: Iterable[str]) -> list[Any]:
        self.pulls += 1
        return []


def test_the_first_rounds_wait_for_start_up_and_later_rounds_do_not() -> None:
    cfg = parse_run_config({"reply-timeout": 15, "startup-timeout": 300})
    assert Deadline.of_round(cfg, 0).seconds == 315
    assert Deadline.of_round(cfg, 1).seconds == 315
    assert Deadline.of_round(cfg, 2).seconds == 15
    assert "startup-timeout 300 s" in Deadline.of_round(cfg, 1).silence()
    assert Deadline.of_round(cfg, 2).silence() == "no reply within 15 s (reply-timeout 15 s)"


def _message(content: Any, dst_node_id: int, message_type: str) -> SimpleNamespace:
    """What the round loop reads of a Flower Message (a real one needs a running run)."""
    return SimpleNamespace(
        metadata=SimpleNamespace(message_id=f"m{dst_node_id}", dst_node_id=dst_node_id)
    )


def test_silence_is_an_exclusion_that_names_the_deadline_missed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(server.app, "Message", _message)
    monkeypatch.setattr(server.app, "flower_size", lambda message: 0)
    cfg = parse_run_config(
        {"num-clients": 2, "reply-timeout": 0.2, "startup-timeout": 0.3, "transfer-size": 50}
    )
    public = load_public_data(cfg.public_spec)
    coordinator = Coordinator(
        cfg, run_id="r", transfer=public.transfer, num_classes=public.num_classes
    )
    grid = SilentGrid()
    started = time.monotonic()
    first = exchange(grid, coordinator, [1, 2], 1, "train")  # type: ignore[arg-type]
    waited_first = time.monotonic() - started
    assert 0.5 <= waited_first < 2.0
    assert first.excluded == {
        n: "no reply within 0.5 s (reply-timeout 0.2 s + startup-timeout 0.3 s, "
        "a node's first rounds)"
        for n in (1, 2)
    }
    started = time.monotonic()
    later = exchange(grid, coordinator, [1, 2], 2, "train")  # type: ignore[arg-type]
    assert 0.2 <= time.monotonic() - started < 1.5
    assert set(later.excluded.values()) == {"no reply within 0.2 s (reply-timeout 0.2 s)"}
