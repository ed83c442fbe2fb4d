"""The consent registry's pure step: one event folded into a person's ledger, and its audit. Pure.

``consent.events`` (single events, keyed by the person's pseudonym) is folded by
one writer per partition into ``consent.ledger`` (compacted, the person's
ledger under the same key). :func:`record` is that step; the worker's consent
agent (``hub.stream.consents``) only moves records around it.
"""

from __future__ import annotations

import datetime as dt

from hub.core import consent
from hub.core.consent import ConsentEvent
from hub.core.errors import Reason, Rejection
from hub.core.pipeline import UNKNOWN, Emit, audit

EVENTS = "consent.events"
LEDGER = "consent.ledger"
STAGE = "consent"


# --------------------------------------------------------------------------


def audit_of(event: ConsentEvent, now: dt.datetime) -> Emit:
    """``consent``/``<kind>``: ids and the pseudonym only (``path`` is ``<pseudonym>/<record id>/<event id>``).

    Consent changes belong to no submission, so they are filed under ``sub-unknown``;
    the audit event id is derived from the consent event id, so a replay repeats it.
    """
    return audit(
        UNKNOWN,
        STAGE,
        event.kind.value,
        now,
        target=event.event_id,
        path=f"{event.person}/{event.record_id}/{event.event_id}",
        office=None if event.record is None else event.record.granting_office,
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
