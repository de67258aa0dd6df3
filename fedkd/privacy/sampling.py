"""Poisson sampling's arithmetic for DP-SGD: steps per epoch and the sample rate.

Apart from :mod:`fedkd.privacy.dp_sgd` (which imports torch and Opacus), so that
planning and checking a privacy budget never loads a training stack.
"""

from __future__ import annotations

import math


def steps_per_epoch(num_records: int, batch_size: int) -> int:
    """Poisson steps per epoch: ⌈n/B⌉, at sample rate 1/⌈n/B⌉."""
    return max(1, math.ceil(num_records / batch_size))


def sample_rate(num_records: int, batch_size: int) -> float:
    """q = 1/⌈n/B⌉: each record joins each step's batch with this probability."""
    return 1.0 / steps_per_epoch(num_records, batch_size)
