"""Which receipt ``sozialhub receipts resend`` puts on ``submissions.receipts`` again, and its audit.

A receipt the portal refused for good is committed past; once the cause is fixed the
command re-produces the submission's newest receipt of a portal channel unchanged
(:mod:`hub.receipts_cli` reads and writes the topic).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from hub.core import pipeline
from hub.core.records import PortalReceipt, SourceRef

RESEND_STAGE = "receipt"
RESENT = "resent"  # the audit event of `sozialhub receipts resend`
SENDABLE = ("xta2", "fitconnect")  # channel "none": the record is the receipt


@dataclass(frozen=True, slots=True)
class Found:
    """A receipt record of the submission and where it is."""

    receipt: PortalReceipt
    key: bytes
    value: bytes
    where: SourceRef


def resendable(found: list[Found]) -> Found | None:
    """The newest receipt of a portal channel the hub sends on, if any."""
    sendable = [f for f in found if f.receipt.channel in SENDABLE]
    return sendable[-1] if sendable else None


def resent_event(item: Found, produced: SourceRef, now: dt.datetime) -> pipeline.Emit:
    """``receipt``/``resent``: which receipt went on the topic again, and where (ids only)."""
    return pipeline.audit(
        item.receipt.submission_id,
        RESEND_STAGE,
        RESENT,
        now,
        target=f"{item.receipt.receipt_id}@{produced.partition}:{produced.offset}",
    )
