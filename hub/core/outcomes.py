"""Fold audit events into the outcome of each submission. Pure.

A submission's outcome is final when it was dead-lettered at any stage, or when
it was routed and every routed delivery was delivered (or found already
delivered) and every delivery seen was also seen routed. Used by the demo, the
benchmark and the crash test; audit teams can use it the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hub.core.records import AuditEvent


@dataclass
class SubmissionOutcome:
    submission_id: str
    rejected: AuditEvent | None = None
    routed: dict[str, AuditEvent] = field(default_factory=dict)  # delivery id -> routed event
    delivered: dict[str, AuditEvent] = field(
        default_factory=dict
    )  # delivery id -> first delivery event
    duplicates: int = 0
    redelivered: AuditEvent | None = None  # the same transport message again (intake)
    receipts_sent: int = 0
    retries: int = 0  # failed delivery attempts that were tried again

    @property
    def final(self) -> bool:
        # Equal, not just "routed <= delivered": a delivery whose routed event has not arrived
        # yet (audit events of different producers interleave) means routing is not fully seen.
        if self.rejected is not None or self.redelivered is not None:
            return True
        return bool(self.routed) and self.routed.keys() == self.delivered.keys()

    @property
    def outcome(self) -> str:
        if self.rejected is not None:
            return "dead-lettered"
        if self.redelivered is not None:
            return "redelivered"
        if self.final:
            return "delivered"
        return "pending"

    @property
    def reason(self) -> str | None:
        return self.rejected.reason if self.rejected else None

    @property
    def offices(self) -> list[str]:
        return sorted({e.office for e in self.routed.values() if e.office})

    @property
    def channels(self) -> dict[str, str]:
        """Office -> the channel its delivery went through (``file``, ``http``, ``kafka``)."""
        return {e.office: e.channel for e in self.delivered.values() if e.office and e.channel}


class OutcomeTracker:
    def __init__(self) -> None:
        self.by_submission: dict[str, SubmissionOutcome] = {}

    def add(self, event: AuditEvent) -> None:
        outcome = self.by_submission.setdefault(
            event.submission_id, SubmissionOutcome(event.submission_id)
        )
        if event.decision == "rejected" and outcome.rejected is None:
            outcome.rejected = event
        elif event.stage == "intake" and event.decision == "duplicate":
            outcome.redelivered = outcome.redelivered or event
        elif event.stage == "receipt" and event.decision == "sent":
            outcome.receipts_sent += 1
        elif event.decision == "retried" and event.delivery_id:
            outcome.retries += 1
        elif event.decision == "routed" and event.delivery_id:
            outcome.routed.setdefault(event.delivery_id, event)
        elif event.decision in ("delivered", "duplicate") and event.delivery_id:
            if event.delivery_id in outcome.delivered:
                outcome.duplicates += 1
            else:
                outcome.delivered[event.delivery_id] = event

    def get(self, submission_id: str) -> SubmissionOutcome:
        return self.by_submission.get(submission_id) or SubmissionOutcome(submission_id)

    def all_final(self, submission_ids: set[str]) -> bool:
        return all(self.get(s).final for s in submission_ids)
