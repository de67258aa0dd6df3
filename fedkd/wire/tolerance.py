"""How far a decoded soft-label row may sum from 1, per wire dtype: one table for all.

A row of C probabilities encoded at a dtype is off by at most C times the dtype's worst
rounding of one entry: int8 codes round to half a step of ``peak/127`` (peak ≤ 1), fp16
to half an ulp at 1 (2^-11), fp32 to 2^-24.  The server accepts a row within that bound
(plus a small slack for the sender's own arithmetic) and renormalises it on decode, so
fusion always receives rows that sum to 1 exactly.
"""

from __future__ import annotations

from fedkd.wire.types import WireDType

_HALF_STEP = {WireDType.FLOAT32: 2.0**-24, WireDType.FLOAT16: 2.0**-11, WireDType.INT8: 0.5 / 127}
SLACK = 1e-3
"""The sender's own arithmetic (softmax, clipping, renormalising) before encoding."""


def row_sum_tolerance(dtype: WireDType, num_classes: int) -> float:
    """The largest |Σ row − 1| a faithful sender's row can show after encoding."""
    return max(1, num_classes) * _HALF_STEP[dtype] + SLACK
