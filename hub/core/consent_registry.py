"""The consent registry's pure step: one event folded into a person's ledger, and its audit. Pure.

``consent.events`` (single events, keyed by the person's pseudonym) is folded by
one writer per partition into ``consent.ledger`` (compacted, the person's
ledger under the same key). :func:`record` is that step; the worker's consent
agent (``hub.stream.consents``) only moves records around it.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from hub.core import consent
from hub.core.consent import ConsentEvent
from hub.core.errors import Reason, Rejection
from hub.core.pipeline import UNKNOWN, Emit, audit
from hub.core.records import timestamp

EVENTS = "consent.events"
LEDGER = "consent.ledger"
STAGE = "consent"


# --------------------------------------------------------------------------


def audit_of(event: ConsentEvent, now: dt.datetime) -> Emit:
    """``consent``/``<kind>``: ids, codes and the pseudonym only (``path`` is ``<pseudonym>/<record id>/<event id>``).

    Consent changes belong to no submission, so they are filed under ``sub-unknown``;
    the audit event id is derived from the consent event id, so a replay repeats it.
    Every event names the person, the record and when the change takes effect; a grant
    also its scope (granting office, recipients, purpose, categories) and validity
    window, a supersession its successor: enough to tell from the audit log alone which
    consents were in force at any moment (hub.core.audit_report). Never the scan
    reference, the note or the consent text.
    """
    record = event.record
    scope: dict[str, Any] = {}
    if record is not None:
        scope = {
            "office": record.granting_office,
            "from_office": record.granting_office,
            "recipients": sorted(record.recipients),
            "purpose": record.purpose,
            "categories": sorted(record.categories),
            "valid_from": timestamp(record.valid_from),
            "valid_until": None if record.valid_until is None else timestamp(record.valid_until),
        }
    return audit(
        UNKNOWN,
        STAGE,
        event.kind.value,
        now,
        target=event.event_id,
        path=f"{event.person}/{event.record_id}/{event.event_id}",
        person=event.person,
        record_id=event.record_id,
        effective_at=timestamp(event.effective_at),
        superseded_by=event.superseded_by,
        **scope,
    )


def record(
    key: bytes | None, value: bytes, current: bytes | None, now: dt.datetime
) -> tuple[Emit, ...]:
    """The ledger with the event added (when it changed) and the event's audit record.

    ``key`` must be the event's pseudonym: the partition decides the single
    writer. Raises :class:`Rejection` (``ENVELOPE``, ``CONSENT_INVALID``) for a
    record that is not a valid event. An event already in the ledger writes no
    ledger, but its audit event again (same id), so a crash between the two
    sends loses nothing.
    """
    event = consent.decode_event(value)
    if key != event.person.encode("ascii"):
        raise Rejection(Reason.CONSENT_INVALID, "person")
    ledger = consent.append(current, event)
    emits = [] if ledger == current else [Emit(LEDGER, event.person, ledger)]
    return (*emits, audit_of(event, now))
