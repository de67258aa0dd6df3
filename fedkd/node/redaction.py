"""What of a round's results may leave the node.

Under DP only accounted releases leave: local accuracy and loss, losses, record counts
and timings were computed on private records outside the DP guarantee, so the reply
carries none of them (the node keeps them in its own log).  Global accuracy and loss are
measured on the public test set and may go.
"""

from __future__ import annotations

from dataclasses import replace

from fedkd.wire.types import EvalReport

_NAN = float("nan")


def redact_report(report: EvalReport, *, dp: bool) -> EvalReport:
    """``report`` as it may be sent: unchanged without DP, public metrics only under DP."""
    if not dp:
        return report
    return replace(
        report,
        local_accuracy=_NAN,
        local_loss=_NAN,
        local_test_examples=0,
        train_loss=_NAN,
        distill_loss=_NAN,
        phase_seconds={},
    )


def reported_record_count(num_records: int, *, dp: bool) -> int:
    """The record count to send (for weighted strategies): none under DP."""
    return 0 if dp else num_records
