"""Where a node's private randomness comes from: the operating system, fresh every time.

Every privacy mechanism (Poisson sampling masks, DP-SGD noise, swing noise) draws from a
:class:`~fedkd.privacy.csprng.ChaCha20Stream` keyed with 256 bits from here, fresh per
message and phase.  Nothing in any configuration determines them and the keys are never
stored, so a server that knows the run config and a candidate dataset cannot replay a
node's release.  Timing side channels are outside this guarantee.
"""

from __future__ import annotations

import os


def fresh_bytes(count: int) -> bytes:
    """``count`` secret bytes from the OS's entropy pool (tests patch this)."""
    return os.urandom(count)
