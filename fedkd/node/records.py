"""Ledger writes: every reply's row goes into the node's ledger before the reply is sent."""

from __future__ import annotations

from dataclasses import replace

from fedkd.privacy.accounting import DPSteps
from fedkd.privacy.guard import CONTROL_MECHANISM, release_record
from fedkd.privacy.ledger import Ledger
from fedkd.privacy.policy import EffectivePrivacy
from fedkd.wire.types import KnowledgeReply


def record_reply(
    ledger: Ledger,
    reply: KnowledgeReply,
    *,
    privacy: EffectivePrivacy,
    dataset_digest: str,
    transfer_digest: str,
    taken: DPSteps | None,
    reproducible: bool = False,
) -> KnowledgeReply:
    """Append ``reply``'s row (with the node's policy) and return it stamped with the head.

    ``taken`` is the DP steps this message spent (None: none).  A crash between the row
    and the send loses a release that was never sent, never a spend that was.
    """
    row = ledger.append(
        release_record(
            privacy,
            reply,
            dataset_digest=dataset_digest,
            transfer_digest=transfer_digest,
            taken=taken,
            reproducible=reproducible,
        )
    )
    stamped = replace(reply.privacy, ledger_head=row.row_hash)
    if row.mechanism == CONTROL_MECHANISM and not stamped.unbounded_since_row:
        stamped = replace(stamped, unbounded_since_row=row.seq)  # this row is the first
    return replace(reply, privacy=stamped)
