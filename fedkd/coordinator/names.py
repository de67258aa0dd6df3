"""Who is who: the names nodes give, and the names no node may be trusted with.

Flower node ids are transport addresses; a node's records (ledger head, ε, fingerprint)
live under the name it gives.  A name two nodes give is given to neither, and in a
simulation a name outside the roster is nobody's.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

log = logging.getLogger("fedkd.coordinator")


class NodeNames:
    """Flower node id → the node's own name, and the names that are contested."""

    def __init__(self, roster: Mapping[str, int] | None = None) -> None:
        self.roster = dict(roster) if roster is not None else None
        """Node name → partition of every node a simulation started (``None``: a
        deployment): a name outside it is nobody's."""
        self.names: dict[int, str] = {}
        self.contested: dict[str, set[int]] = {}
        """Names two or more nodes gave: without a key to tell them apart, none of them
        is trusted with it (their records stay under their Flower ids)."""

    def name_of(self, node_id: int) -> str:
        """The node's own name once it has told it, else a name from its Flower id."""
        return self.names.get(node_id) or f"flower-node-{node_id}"

    def settle(self, heard: Mapping[int, str]) -> list[int]:
        """Learn the names given at a handshake; returns the node ids that got theirs."""
        by_name: dict[str, set[int]] = {}
        for node_id, name in heard.items():
            by_name.setdefault(name, set()).add(node_id)
        learned = []
        for name, node_ids in sorted(by_name.items()):
            if len(node_ids) > 1 or name in self._taken():
                self._contest(name, node_ids)
            elif self.roster is not None and name not in self.roster:
                log.warning(
                    "handshake: node %d names itself %r, which is no node of this simulation",
                    min(node_ids),
                    name[:80],
                )
            elif self.learn(min(node_ids), name):
                learned.append(min(node_ids))
        return learned

    def learn(self, node_id: int, name: str) -> bool:
        """Know ``node_id`` as ``name`` unless either is known already; True if learned."""
        if node_id in self.names or any(n == name for n in self.names.values()):
            return False
        self.names[node_id] = name
        return True

    def may_take(self, name: str) -> bool:
        """Whether a node that missed the handshake may be known by ``name`` from now on."""
        in_roster = self.roster is None or name in self.roster
        return bool(name) and name not in self.contested and in_roster

    def partition_of(self, node_id: int) -> int | None:
        """The partition a simulation's roster gives the node's name (None: no roster, or
        no name)."""
        name = self.names.get(node_id)
        return self.roster.get(name) if self.roster is not None and name is not None else None

    def _taken(self) -> set[str]:
        return set(self.names.values()) | set(self.contested)

    def _contest(self, name: str, node_ids: set[int]) -> None:
        holders = {n for n, known in self.names.items() if known == name}
        for node_id in holders:
            del self.names[node_id]
        claimants = self.contested.setdefault(name, set())
        claimants.update(node_ids | holders)
        log.warning(
            "nodes %s all name themselves %r: none of them is trusted with the name "
            "(give every node a signing key to tell them apart)",
            sorted(claimants),
            name[:80],
        )
