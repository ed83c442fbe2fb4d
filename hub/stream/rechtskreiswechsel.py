"""Rechtskreiswechsel through the broker: plan, send at the gate, follow the warm handover.

::

    rechtskreiswechsel.events ──plan──► rechtskreiswechsel.outbox (one record per deliverable message)
          (key: pseudonym)       │                       │
                                 │                       └─send: ask the gate again, now─► handovers.<vendor>
                                 ├─► audit.log: every message's decision, withheld ones too
                                 └─► rechtskreiswechsel.handovers (compacted): announced
    rechtskreiswechsel.handover-updates ──updates──► rechtskreiswechsel.handovers
    timer ──reminders──► rechtskreiswechsel.reminders

:func:`plan` checks the event (a dead letter with its ``RKW_*`` code otherwise),
runs :func:`hub.core.fanout.fan_out` with the real transfer gate (the person's
consent states from the consent index and the policy), audits every message and
queues the deliverable ones on the hub-internal ``rechtskreiswechsel.outbox``.
:func:`send` is the **one choke point** that writes where offices read
(``handovers.<vendor>``): it asks the gate again at that moment
(:func:`ask_gate`), so a revocation folded between planning and sending stops
the personal data; the office then gets what the gate still allows (a data-free
notice) or nothing. ``handovers.<vendor>`` is per vendor, like
``fachverfahren.<vendor>``, so a per-vendor ACL keeps each vendor to its own
offices' messages (docs/rechtskreiswechsel.md#stream-wiring).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import structlog

from hub.config import Settings
from hub.core import gate
from hub.core.consent import ConsentState
from hub.core.errors import Reason, Rejection
from hub.core.fanout import FanOut, Gate, Message, encode_message, fan_out
from hub.core.handover import (
    Handover,
    Reminder,
    announce_if_reached,
    apply,
    decode_handover,
    decode_update,
    encode_handover,
    reminders,
)
from hub.core.pipeline import AUDIT, UNKNOWN, Emit, HubContext, StageResult
from hub.core.rechtskreiswechsel import (
    EVENT_ID,
    OFFICE_ID,
    RechtskreisChange,
    check_event,
    dumps,
    event_from_json,
    event_json,
    validate,
)
from hub.core.records import AuditEvent, audit_event_id, timestamp
from hub.core.subscriptions import Subscriptions
from hub.core.transfer import Decision
from hub.stream.follow import follow_compacted

log = structlog.get_logger(__name__)

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
    decision: str, now: dt.datetime, message: Message, *, stage: str, reason: str | None
) -> Emit:
    basis = message.decision.basis
    audit = AuditEvent(
        event_id=audit_event_id(UNKNOWN, stage, decision, message.message_id),
        submission_id=UNKNOWN,
        stage=stage,
        decision=decision,
        at=timestamp(now),
        reason=reason,
        path=f"{message.event_id}/{message.message_id}",
        office=message.office,
        basis_kind=None if basis is None else basis.kind,
        basis_id=None if basis is None else (basis.basis_id or basis.consent_record),
        legal_reference=None if basis is None else basis.legal_reference,
    )
    return Emit.of(AUDIT, UNKNOWN, audit)


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
        emits.append(_audit(message.kind.value, now, message, stage=STAGE, reason=_reason(message)))
        if message.deliverable:
            emits.append(Emit(OUTBOX, message.message_id, queued_json(event, message)))
    handover = announce_if_reached(event, planned, now)
    if handover is not None and existing(event.event_id) is None:  # a re-sent event: no restart
        emits.append(Emit(HANDOVERS, handover.event_id, encode_handover(handover)))
    return StageResult(tuple(emits), "planned"), planned


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
    if not message.deliverable:
        audit = _audit("denied", now, message, stage="gate", reason=_reason(message))
        raise HandoverDenied(audit, _reason(message))
    return message, _audit("allowed", now, message, stage="gate", reason=_reason(message))


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
    sent = _audit("sent", now, message, stage="handover", reason=None)
    return StageResult((allowed, record, sent), message.kind.value)


# --- the warm handover ----------------------------------------------------------------------


class HandoverIndex:
    """Event id -> handover state, loaded from the compacted topic and then followed."""

    def __init__(self) -> None:
        self._states: dict[str, Handover] = {}
        self._lock = threading.Lock()
        self.loaded = threading.Event()
        self.failed = False

    def get(self, event_id: str) -> Handover | None:
        with self._lock:
            return self._states.get(event_id)

    def states(self) -> tuple[Handover, ...]:
        with self._lock:
            return tuple(self._states.values())

    def remember(self, emits: Iterable[Emit]) -> None:
        for emit in emits:
            if emit.topic == HANDOVERS:
                self.take(emit.key.encode("ascii"), emit.value)

    def take(self, key: bytes | None, value: bytes | None) -> None:
        event_id = (key or b"").decode("ascii", "replace")
        if EVENT_ID.fullmatch(event_id) is None:
            log.warning("handover.foreign_record")
            return
        if value is None:
            with self._lock:
                self._states.pop(event_id, None)
            return
        try:
            handover = decode_handover(value)
        except Rejection as rejection:
            log.warning("handover.foreign_record", reason=rejection.reason.value)
            return
        if handover.event_id == event_id:
            with self._lock:
                self._states[event_id] = handover

    def follow(self, settings: Settings, stop: threading.Event) -> None:
        """Read the state topic from the beginning; set ``loaded`` at its end; keep following."""
        if not follow_compacted(
            settings,
            HANDOVERS,
            stop,
            group="handover-index",
            name="handover",
            missing="handover topic missing: run `sozialhub topics apply`",
            take=self.take,
            loaded=self.loaded,
            warn_consumer_errors=False,
        ):
            self.failed = True


def update(value: bytes, index: HandoverIndex, now: dt.datetime) -> StageResult:
    """An office's update applied to its handover; ``RKW_HANDOVER`` when it does not fit."""
    change = decode_update(value)
    current = index.get(change.event_id)
    if current is None:
        raise Rejection(Reason.RKW_HANDOVER, "event_id")
    following = apply(current, change)
    audit = AuditEvent(
        event_id=audit_event_id(UNKNOWN, "handover", change.kind.value, change.event_id),
        submission_id=UNKNOWN,
        stage="handover",
        decision=change.kind.value,
        at=timestamp(now),
        path=change.event_id,
        office=change.office,
    )
    emits: list[Emit] = [Emit.of(AUDIT, UNKNOWN, audit)]
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


# --- wiring ---------------------------------------------------------------------------------


def register(
    app: Any,
    settings: Settings,
    hub: HubContext,
    subscriptions: Subscriptions,
    consents: Any,
    sender: Any,
    stage_agent: Any,
) -> HandoverIndex:
    """The plan, send and updates agents and the reminder timer. ``consents``: the ConsentIndex."""
    index = HandoverIndex()
    stop = threading.Event()
    threading.Thread(
        target=index.follow, args=(settings, stop), name="handover-index", daemon=True
    ).start()

    def utcnow() -> dt.datetime:
        return dt.datetime.now(dt.UTC)

    async def consents_loaded() -> None:
        await _wait(consents.loaded, lambda: bool(consents.failed), "consent index")

    async def handovers_loaded() -> None:
        await _wait(index.loaded, lambda: index.failed, "handover index")

    def planning(event: Any, _source: Any) -> StageResult:
        result, _ = plan(
            event.message.key,
            event.value,
            hub,
            subscriptions,
            consents.states_for,
            utcnow(),
            existing=index.get,
        )
        index.remember(result.emits)
        return result

    def sending(event: Any, _source: Any) -> StageResult:
        return send(event.value, hub, subscriptions, consents.states_for, utcnow())

    def updating(event: Any, _source: Any) -> StageResult:
        result = update(event.value, index, utcnow())
        index.remember(result.emits)
        return result

    stage_agent(app, sender.channel(EVENTS), STAGE, planning, sender, before=consents_loaded)
    stage_agent(
        app, sender.channel(OUTBOX), "handover-send", sending, sender, before=consents_loaded
    )
    stage_agent(app, sender.channel(UPDATES), "handover", updating, sender, before=handovers_loaded)

    async def remind() -> None:
        if index.loaded.is_set():
            await sender.send_all(
                due_reminders(index.states(), utcnow(), settings.handover_reminder_days)
            )

    app.timer(interval=settings.handover_reminder_interval_s)(remind)
    return index


async def _wait(loaded: threading.Event, failed: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 60.0
    while not loaded.is_set():
        if failed() or time.monotonic() > deadline:
            raise TimeoutError(f"{what} not loaded")
        await asyncio.sleep(0.05)
