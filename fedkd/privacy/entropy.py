"""Where a node's private randomness comes from: the operating system, fresh every time.

Poisson sampling masks, DP-SGD noise and swing noise are drawn from PRNGs (torch's and
numpy's) seeded with 64 bits of fresh OS entropy per message and phase.  Nothing in any
configuration determines them and the seeds are never stored, so a server that knows
the run config and a candidate dataset cannot replay a node's release.  This is a
computational guarantee (a PRNG with a secret, unpredictable seed), not a CSPRNG stream
(Opacus's ``secure_mode`` needs ``torchcsprng``, which does not build with current
torch); it says nothing about timing side channels.
"""

from __future__ import annotations

import os

SEED_BYTES = 8


def fresh_bytes(count: int) -> bytes:
    """``count`` secret bytes from the OS's entropy pool (tests patch this)."""
    return os.urandom(count)


def fresh_seed() -> int:
    """A secret seed from the OS's entropy pool (tests patch this to see every draw)."""
    return int.from_bytes(fresh_bytes(SEED_BYTES), "little")
