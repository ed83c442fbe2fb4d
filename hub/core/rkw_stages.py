"""Rechtskreiswechsel stages: plan, the choke point that sends, handover updates, reminders. Pure.

::

    rechtskreiswechsel.events ──plan──► rechtskreiswechsel.outbox (one record per deliverable message)
          (key: pseudonym)       │                       │
                                 │                       └─send: ask the gate again, now─► handovers.<vendor>
                                 ├─► audit.log: every message's decision, withheld ones too
                                 └─► rechtskreiswechsel.handovers (compacted): announced
    rechtskreiswechsel.handover-updates ──update──► rechtskreiswechsel.handovers
    timer ──due_reminders──► rechtskreiswechsel.reminders

:func:`plan` checks the event (a dead letter with its ``RKW_*`` code otherwise),
runs :func:`hub.core.fanout.fan_out` with the real transfer gate (the person's
consent states and the policy), audits every message and queues the deliverable
ones on the hub-internal ``rechtskreiswechsel.outbox``. :func:`send` is the
**one choke point** that writes where offices read (``handovers.<vendor>``): it
asks the gate again at that moment (:func:`ask_gate`), so a revocation folded
between planning and sending stops the personal data; the office then gets
what the gate still allows (a data-free notice) or nothing.
``handovers.<vendor>`` is per vendor, like ``fachverfahren.<vendor>``, so a
per-vendor ACL keeps each vendor to its own offices' messages
(docs/rechtskreiswechsel.md#stream-wiring). The worker's agents
(``hub.stream.rechtskreiswechsel``) only move records around these functions.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from hub.core import gate
from hub.core.consent import ConsentState
from hub.core.errors import Reason, Rejection
from hub.core.fanout import FanOut, Gate, Message, encode_message, fan_out
from hub.core.handover import (
    Handover,
    Reminder,
    announce_if_reached,
    apply,
    decode_update,
    encode_handover,
    reminders,
)
from hub.core.pipeline import UNKNOWN, Emit, HubContext, StageResult, audit
from hub.core.rechtskreiswechsel import (
    OFFICE_ID,
    RechtskreisChange,
    check_event,
    dumps,
    event_from_json,
    event_json,
    validate,
)
from hub.core.records import timestamp
from hub.core.subscriptions import Subscriptions
from hub.core.transfer import Decision, TransferRequest

EVENTS = "rechtskreiswechsel.events"
OUTBOX = "rechtskreiswechsel.outbox"
UPDATES = "rechtskreiswechsel.handover-updates"
HANDOVERS = "rechtskreiswechsel.handovers"
REMINDERS = "rechtskreiswechsel.reminders"
QUEUED_TYPE = "sozialhub.rechtskreiswechsel-queued"
REMINDER_TYPE = "sozialhub.handover-reminder"
STAGE = "rechtskreiswechsel"
MESSAGE_ID = re.compile(r"rkm-[0-9a-f]{32}")

Consents = Callable[[str], tuple[ConsentState, ...]]


def handover_topic(vendor_id: str) -> str:
    """The vendor-facing topic of Rechtskreiswechsel messages for ``vendor_id``'s offices."""
    return f"handovers.{vendor_id}"


def topics(hub: HubContext) -> tuple[str, ...]:
    """Every topic the Rechtskreiswechsel agents use (the vendor topics of the office table)."""
    vendors = sorted(hub.offices.vendors)
    return (EVENTS, OUTBOX, UPDATES, HANDOVERS, REMINDERS, *map(handover_topic, vendors))


def real_gate(consents: Consents, policy: gate.Policy, now: dt.datetime) -> Gate:
    """The transfer gate bound to the consent states and the policy, deciding at ``now``."""

    def ask(request: Any) -> Decision:
        return gate.decide(request, consents(request.person), policy, now)

    return ask


def _audit(
    decision: str,
    now: dt.datetime,
    message: Message,
    *,
    stage: str,
    reason: str | None,
    event: RechtskreisChange,
    consents: Consents,
) -> Emit:
    basis = message.decision.basis
    return audit(
        UNKNOWN,
        stage,
        decision,
        now,
        # Per message and kind: a message id that comes again with another kind (a handover
        # after a notice, once consent exists) is another decision, not a repeat.
        target=f"{message.message_id}/{message.kind.value}",
        reason=reason,
        path=f"{message.event_id}/{message.message_id}",
        office=message.office,
        basis_kind=None if basis is None else basis.kind,
        basis_id=None if basis is None else (basis.basis_id or basis.consent_record),
        legal_reference=None if basis is None else basis.legal_reference,
        **_transfer(event, message, consents, now),
    )


def _transfer(
    event: RechtskreisChange, message: Message, consents: Consents, now: dt.datetime
) -> dict[str, Any]:
    """What a message's audit event says about the transfer, for the transparency report.

    The person, the sending office (the old office), the purpose, the categories
    concerned (what the message carries; for a withheld message what was asked for),
    the message id, and the consents valid for it at ``now``: the person's records
    that name the old office as granting office, the addressed office and the purpose
    (:func:`hub.core.gate.valid_consents`). Pseudonyms and codes only.
    """
    request = TransferRequest(
        request_id=message.message_id,
        person=event.person,
        from_office=event.from_.office,
        to_office=message.office,
        purpose=message.purpose,
        categories=message.categories,
        at=now,
    )
    concerned = message.categories if message.deliverable else message.requested
    return {
        "person": event.person,
        "from_office": event.from_.office,
        "purpose": message.purpose,
        "categories": sorted(concerned),
        "consents": list(gate.valid_consents(request, consents(event.person), now)),
        "message_id": message.message_id,
    }


def _reason(message: Message) -> str | None:
    """The refusal that shaped the message (a notice after CONSENT_MISSING), else the decision's."""
    if message.refused is not None and message.refused.reason is not None:
        return message.refused.reason
    return message.decision.reason


def queued_json(event: RechtskreisChange, message: Message) -> bytes:
    """``rechtskreiswechsel.outbox`` value: the event and the office; the send decides afresh."""
    return dumps(
        {
            "type": QUEUED_TYPE,
            "v": 1,
            "message_id": message.message_id,
            "office": message.office,
            "planned": message.kind.value,
            "event": event_json(event),
        }
    )


@dataclass(frozen=True, slots=True)
class Queued:
    message_id: str
    office: str
    planned: str
    event: RechtskreisChange


def decode_queued(data: bytes) -> Queued:
    try:
        body = json.loads(data)
    except (ValueError, TypeError):
        raise Rejection(Reason.RKW_EVENT, "json") from None
    if not isinstance(body, dict) or body.get("type") != QUEUED_TYPE or body.get("v") != 1:
        raise Rejection(Reason.RKW_EVENT, "type")
    mid, office, planned = body.get("message_id"), body.get("office"), body.get("planned")
    if not (isinstance(mid, str) and MESSAGE_ID.fullmatch(mid)):
        raise Rejection(Reason.RKW_EVENT, "message_id")
    if not (isinstance(office, str) and OFFICE_ID.fullmatch(office)):
        raise Rejection(Reason.RKW_EVENT, "office")
    if not isinstance(planned, str):
        raise Rejection(Reason.RKW_EVENT, "planned")
    return Queued(mid, office, planned, event_from_json(body.get("event")))


# --- plan -----------------------------------------------------------------------------------


def plan(
    key: bytes | None,
    value: bytes,
    hub: HubContext,
    subscriptions: Subscriptions,
    consents: Consents,
    now: dt.datetime,
    existing: Callable[[str], Handover | None] = lambda _event_id: None,
) -> tuple[StageResult, FanOut]:
    """One event: its fan-out with the real gate, every decision audited, deliverables queued.

    Raises :class:`Rejection` (``RKW_*``) for an event the hub cannot use, or one
    not keyed by its person's pseudonym (the consent lookup relies on it).
    """
    event = check_event(value, hub.offices)
    if key != event.person.encode("ascii"):
        raise Rejection(Reason.RKW_EVENT, "person")
    planned = fan_out(event, subscriptions, hub.offices, real_gate(consents, hub.policy, now), now)
    emits: list[Emit] = []
    for message in planned.messages:
        reason = _reason(message)
        emits.append(
            _audit(
                message.kind.value,
                now,
                message,
                stage=STAGE,
                reason=reason,
                event=event,
                consents=consents,
            )
        )
        if message.deliverable:
            emits.append(Emit(OUTBOX, message.message_id, queued_json(event, message)))
    handover = announce_if_reached(event, planned, now)
    if handover is not None and existing(event.event_id) is None:  # a re-sent event: no restart
        emits.append(Emit(HANDOVERS, handover.event_id, encode_handover(handover)))
        emits.append(_announced(handover, now))
    return StageResult(tuple(emits), "planned"), planned


def _announced(handover: Handover, now: dt.datetime) -> Emit:
    """``handover``/``announced``: the warm handover's first state, like every later change."""
    return audit(
        UNKNOWN,
        "handover",
        handover.state.value,
        now,
        target=handover.event_id,
        path=handover.event_id,
        office=handover.new_office,
        from_office=handover.old_office,
        person=handover.person,
    )


# --- the choke point ------------------------------------------------------------------------


class HandoverDenied(Rejection):
    """The gate allows nothing for the office now: nothing is sent, the denial is audited."""

    def __init__(self, audit: Emit, reason: str | None) -> None:
        super().__init__(Reason.TRANSFER_DENIED, reason or "withheld")
        self.audit = audit


def ask_gate(
    queued: Queued,
    hub: HubContext,
    subscriptions: Subscriptions,
    consents: Consents,
    now: dt.datetime,
) -> tuple[Message, Emit]:
    """Decide the office's message again at send time: the message and its ``gate``/``allowed``.

    The same fan-out as the plan, with the gate asked at ``now`` on the consent
    states as they are now: a consent revoked since the plan turns a handover into
    a data-free notice (or nothing). :class:`HandoverDenied` when nothing may go.
    """
    event = queued.event
    validate(event, hub.offices)
    message = fan_out(
        event, subscriptions, hub.offices, real_gate(consents, hub.policy, now), now
    ).for_office(queued.office)
    if message is None or message.message_id != queued.message_id:
        raise Rejection(Reason.RKW_EVENT, "office")
    reason = _reason(message)
    if not message.deliverable:
        audit = _audit(
            "denied", now, message, stage="gate", reason=reason, event=event, consents=consents
        )
        raise HandoverDenied(audit, reason)
    allowed = _audit(
        "allowed", now, message, stage="gate", reason=reason, event=event, consents=consents
    )
    return message, allowed


def send(
    value: bytes,
    hub: HubContext,
    subscriptions: Subscriptions,
    consents: Consents,
    now: dt.datetime,
) -> StageResult:
    """The only code that writes ``handovers.<vendor>``: after an allow at this moment."""
    queued = decode_queued(value)
    try:
        message, allowed = ask_gate(queued, hub, subscriptions, consents, now)
    except HandoverDenied as denied:
        return StageResult((denied.audit,), "denied", denied.path)
    vendor = hub.offices.office(message.office).vendor
    record = Emit(handover_topic(vendor), message.message_id, encode_message(message))
    sent = _audit(
        "sent",
        now,
        message,
        stage="handover",
        reason=None,
        event=queued.event,
        consents=consents,
    )
    return StageResult((allowed, record, sent), message.kind.value)


# --- the warm handover ----------------------------------------------------------------------


def update(value: bytes, lookup: Callable[[str], Handover | None], now: dt.datetime) -> StageResult:
    """An office's update applied to its handover; ``RKW_HANDOVER`` when it does not fit.

    ``lookup`` gives the current state of a handover by event id (the worker's index).
    """
    change = decode_update(value)
    current = lookup(change.event_id)
    if current is None:
        raise Rejection(Reason.RKW_HANDOVER, "event_id")
    following = apply(current, change)
    emits: list[Emit] = [
        audit(
            UNKNOWN,
            "handover",
            change.kind.value,
            now,
            target=change.event_id,
            path=change.event_id,
            office=change.office,
            person=current.person,
        )
    ]
    if following != current:
        emits.insert(0, Emit(HANDOVERS, following.event_id, encode_handover(following)))
    return StageResult(tuple(emits), following.state.value)


def reminder_json(reminder: Reminder) -> bytes:
    return dumps(
        {
            "type": REMINDER_TYPE,
            "v": 1,
            "reminder_id": reminder.reminder_id,
            "event_id": reminder.event_id,
            "person": reminder.person,
            "new_office": reminder.new_office,
            "old_office": reminder.old_office,
            "due_at": timestamp(reminder.due_at),
            "overdue_days": reminder.overdue_days,
        }
    )


def due_reminders(states: Iterable[Handover], now: dt.datetime, days: int) -> tuple[Emit, ...]:
    """``rechtskreiswechsel.reminders`` records (key: the reminder id, repeated per overdue day)."""
    return tuple(
        Emit(REMINDERS, r.reminder_id, reminder_json(r)) for r in reminders(states, now, days)
    )
