"""What each node is asked for, round by round: the anchors, and the strategy's instruction."""

from __future__ import annotations

import numpy as np

from fedkd.fusion import Instruction, Release, Strategy

NOTHING = Instruction(Release.NOTHING, np.zeros(0, dtype=np.uint32))
"""The instruction of a node the strategy asked nothing of (and of the final evaluation)."""


class RoundPlan:
    """The rounds' anchors (one seeded schedule shared by every node) and instructions."""

    def __init__(
        self, strategy: Strategy, *, num_rounds: int, transfer_size: int, per_round: int, seed: int
    ) -> None:
        self.strategy = strategy
        self.num_rounds = num_rounds
        self.transfer_size = transfer_size
        self.per_round = per_round
        self.rng = np.random.default_rng([seed, 0xA2C])
        self._anchors: dict[int, np.ndarray] = {}
        self._instructions: dict[tuple[int, int], Instruction] = {}

    def anchors_for(self, round_: int) -> np.ndarray:
        """The round's anchors: the whole transfer set, or a seeded subset shared by all."""
        if round_ not in self._anchors:
            n, k = self.transfer_size, self.per_round
            if k <= 0 or k >= n:
                idx = np.arange(n, dtype=np.uint32)
            else:
                idx = np.sort(self.rng.choice(n, size=k, replace=False)).astype(np.uint32)
            self._anchors[round_] = idx
        return self._anchors[round_]

    def configure(self, round_: int, nodes: list[int]) -> None:
        """Ask the strategy what each of ``nodes`` releases in ``round_`` (after the last
        training round: nothing, the final evaluation)."""
        if 1 <= round_ <= self.num_rounds:
            asks = self.strategy.configure_round(round_, nodes, self.anchors_for(round_))
        else:
            asks = dict.fromkeys(nodes, NOTHING)
        for node_id in nodes:
            ask = asks.get(node_id, NOTHING)
            # A plugin strategy may still speak the wire's enum; its words are the same.
            self._instructions[(round_, node_id)] = Instruction(
                Release(ask.release.value), ask.anchor_indices
            )

    def instruction(self, round_: int, node_id: int) -> Instruction:
        return self._instructions.get((round_, node_id), NOTHING)
