"""Which online nodes take part in a training round (client sampling).

With ``clients-per-round = m`` (0: every node), round r asks a uniformly random m of the
online nodes, drawn from the run seed and r alone: a resumed run asks the same nodes, and
two strategies compared on one seed see the same participants.  The final evaluation asks
every node, so ALMA always covers all of them.  A personalised strategy fuses only among a
round's participants: a node distils what was fused for it in the last round it took part
in, and one never asked before starts from its own training.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

_STREAM = 0xC11E47


def round_participants(
    nodes: Sequence[int], *, per_round: int, seed: int, round_: int
) -> list[int]:
    """The sorted node ids asked in ``round_`` (all of ``nodes`` when ``per_round`` is 0
    or at least their number)."""
    if per_round < 0:
        raise ValueError(f"clients-per-round must be >= 0, got {per_round}")
    ordered = sorted(nodes)
    if per_round == 0 or per_round >= len(ordered):
        return ordered
    rng = np.random.default_rng([seed, round_, _STREAM])
    chosen = rng.choice(len(ordered), size=per_round, replace=False)
    return [ordered[i] for i in sorted(chosen.tolist())]
