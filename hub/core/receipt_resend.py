"""Which receipts ``sozialhub receipts resend`` puts on ``submissions.receipts`` again, and the audit.

A receipt the portal refused for good is committed past; once the cause is fixed the
command re-produces the submission's newest receipt of a portal channel unchanged,
for one submission or for every submission whose portal still has only a refusal
(:func:`still_refused`). :mod:`hub.receipts_cli` reads and writes the topics.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

from hub.core import pipeline
from hub.core.dlq import iso_time
from hub.core.records import AuditEvent, PortalReceipt, SourceRef

RESEND_STAGE = "receipt"
RESENT = "resent"  # the audit event of `sozialhub receipts resend`
# A receipt sender's two outcomes (pipeline.receipt_sent), and the resend in between.
_DECISIONS = frozenset({"sent", "refused", RESENT})
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


def still_refused(
    events: Iterable[AuditEvent], since: dt.datetime | None = None
) -> list[AuditEvent]:
    """Each submission whose portal's last word on a receipt is a refusal: that refusal event.

    ``events`` are audit events in log order (Kafka keeps one submission's in order).
    The last ``receipt`` decision of a submission counts: ``sent`` (the portal has it),
    ``refused`` (it does not), or ``resent`` (a resend is on its way: not again). Only
    refusals at or after ``since`` (aware) are returned, oldest first.
    """
    last: dict[str, AuditEvent] = {}
    for event in events:
        if event.stage == RESEND_STAGE and event.decision in _DECISIONS:
            last[event.submission_id] = event
    refused = [e for e in last.values() if e.decision == "refused"]
    if since is not None:
        refused = [e for e in refused if _when(e) >= since]
    return sorted(refused, key=lambda e: (_when(e), e.submission_id))


_LONG_AGO = dt.datetime.min.replace(tzinfo=dt.UTC)


def _when(event: AuditEvent) -> dt.datetime:
    """The event's time (UTC when it names no offset); an unreadable one counts as long ago."""
    try:
        return iso_time(event.at)
    except (TypeError, ValueError):
        return _LONG_AGO
