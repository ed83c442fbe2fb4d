"""The warm handover: the old office keeps paying until the new office has taken over. Pure.

::

    announced ──accepted (new office)──► accepted ──payments-stopped (old office)──► completed
        │                                    │
        ├──rejected (new office)──► rejected │
        └──cancelled (old office)──► cancelled ◄──cancelled (old office)

A handover is announced when the fan-out reached the new office (a handover or
a notice: :func:`announce_if_reached`). Updates come from the offices (``sozialhub.handover-update``): only
the new office accepts or rejects, only the old office reports that it stopped
paying or cancels. An update out of order (the old office stops paying before
the new office accepted: not warm) or from the wrong office is refused
(``RKW_HANDOVER`` with a path); the same update delivered again is not an error
and changes nothing. :func:`reminders` lists the handovers the new office has
not accepted within a number of days, for a periodic reminder.
"""

from __future__ import annotations

import datetime as dt
import enum
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from hub.core.errors import Reason, Rejection
from hub.core.fanout import FanOut
from hub.core.rechtskreiswechsel import (
    EVENT_ID,
    OFFICE_ID,
    PSEUDONYM,
    RechtskreisChange,
    digest,
    dumps,
)
from hub.core.records import timestamp

HANDOVER_TYPE = "sozialhub.handover"
UPDATE_TYPE = "sozialhub.handover-update"


class State(enum.StrEnum):
    ANNOUNCED = "announced"
    ACCEPTED = "accepted"
    COMPLETED = "completed"  # the old office confirmed it stopped paying
    REJECTED = "rejected"
    CANCELLED = "cancelled"


TERMINAL = frozenset({State.COMPLETED, State.REJECTED, State.CANCELLED})


class UpdateKind(enum.StrEnum):
    ACCEPTED = "accepted"
    PAYMENTS_STOPPED = "payments-stopped"
    REJECTED = "rejected"
    CANCELLED = "cancelled"


# Why a new office rejects or an old office cancels (code list, version 1).
UPDATE_REASONS: dict[str, str] = {
    "not-responsible": "The new office is not responsible (area, Rechtskreis)",
    "duplicate": "The case is already handed over under another event",
    "event-withdrawn": "The old office withdraws the event (e.g. recorded in error)",
    "other": "Other",
}

# (state, update) -> next state
TRANSITIONS: dict[tuple[State, UpdateKind], State] = {
    (State.ANNOUNCED, UpdateKind.ACCEPTED): State.ACCEPTED,
    (State.ANNOUNCED, UpdateKind.REJECTED): State.REJECTED,
    (State.ANNOUNCED, UpdateKind.CANCELLED): State.CANCELLED,
    (State.ACCEPTED, UpdateKind.PAYMENTS_STOPPED): State.COMPLETED,
    (State.ACCEPTED, UpdateKind.CANCELLED): State.CANCELLED,
}
# Who may report an update: the new office or the old office.
REPORTED_BY: dict[UpdateKind, str] = {
    UpdateKind.ACCEPTED: "new",
    UpdateKind.REJECTED: "new",
    UpdateKind.PAYMENTS_STOPPED: "old",
    UpdateKind.CANCELLED: "old",
}


@dataclass(frozen=True, slots=True)
class Update:
    """What an office reports about a handover."""

    event_id: str
    kind: UpdateKind
    office: str
    at: dt.datetime
    reason: str | None = None  # a key of UPDATE_REASONS (rejected, cancelled)
    TYPE = UPDATE_TYPE


@dataclass(frozen=True, slots=True)
class Step:
    kind: str  # "announced" or an UpdateKind value
    at: dt.datetime
    office: str | None = None  # who reported it (None: the hub announced)


@dataclass(frozen=True, slots=True)
class Handover:
    """The state of one handover (keyed by the event id on a compacted topic)."""

    event_id: str
    person: str  # pseudonym
    old_office: str
    new_office: str
    effective_date: dt.date
    state: State
    steps: tuple[Step, ...]
    reason: str | None = None  # why it was rejected or cancelled
    TYPE = HANDOVER_TYPE

    @property
    def announced_at(self) -> dt.datetime:
        return self.steps[0].at

    def step_at(self, kind: UpdateKind) -> dt.datetime | None:
        return next((s.at for s in self.steps if s.kind == kind.value), None)


def announce(event: RechtskreisChange, now: dt.datetime) -> Handover:
    """A new handover for an event whose new office got a handover or a notice."""
    return Handover(
        event_id=event.event_id,
        person=event.person,
        old_office=event.from_.office,
        new_office=event.to.office,
        effective_date=event.effective_date,
        state=State.ANNOUNCED,
        steps=(Step("announced", now),),
    )


def announce_if_reached(
    event: RechtskreisChange, planned: FanOut, now: dt.datetime
) -> Handover | None:
    """The handover, if the fan-out reached the new office; ``None`` if its message was withheld
    (nobody told the new office, so there is nothing it could accept or be reminded of).
    """
    message = planned.for_office(event.to.office)
    if message is None or not message.deliverable:
        return None
    return announce(event, now)


def apply(handover: Handover, update: Update) -> Handover:
    """The handover after ``update``; the same update again returns it unchanged.

    Refused with ``RKW_HANDOVER``: another handover's update (``event_id``), an
    office that may not report it (``office``), an unknown reason (``reason``),
    an update the state does not allow (``order``).
    """
    if update.event_id != handover.event_id:
        raise Rejection(Reason.RKW_HANDOVER, "event_id")
    reporter = handover.new_office if REPORTED_BY[update.kind] == "new" else handover.old_office
    if update.office != reporter:
        raise Rejection(Reason.RKW_HANDOVER, "office")
    if update.reason is not None and update.reason not in UPDATE_REASONS:
        raise Rejection(Reason.RKW_HANDOVER, "reason")
    if any(s.kind == update.kind.value for s in handover.steps):
        return handover  # redelivered: at-least-once transport
    following = TRANSITIONS.get((handover.state, update.kind))
    if following is None:
        raise Rejection(Reason.RKW_HANDOVER, "order")
    closing = following in (State.REJECTED, State.CANCELLED)
    return Handover(
        event_id=handover.event_id,
        person=handover.person,
        old_office=handover.old_office,
        new_office=handover.new_office,
        effective_date=handover.effective_date,
        state=following,
        steps=(*handover.steps, Step(update.kind.value, update.at, update.office)),
        reason=update.reason if closing else handover.reason,
    )


@dataclass(frozen=True, slots=True)
class Reminder:
    """A handover the new office has not accepted in time."""

    reminder_id: str  # deterministic per handover and overdue day: a rerun repeats it
    event_id: str
    person: str
    new_office: str
    old_office: str
    due_at: dt.datetime
    overdue: dt.timedelta

    @property
    def overdue_days(self) -> int:
        return self.overdue.days


def reminders(states: Iterable[Handover], now: dt.datetime, days: int) -> tuple[Reminder, ...]:
    """Handovers still ``announced`` more than ``days`` days after the announcement, most overdue first."""
    if days < 0:
        raise ValueError("days must not be negative")
    found = []
    for h in states:
        due = h.announced_at + dt.timedelta(days=days)
        if h.state is not State.ANNOUNCED or now <= due:
            continue
        overdue = now - due
        found.append(
            Reminder(
                reminder_id="rkr-" + digest(h.event_id, str(overdue.days)),
                event_id=h.event_id,
                person=h.person,
                new_office=h.new_office,
                old_office=h.old_office,
                due_at=due,
                overdue=overdue,
            )
        )
    return tuple(sorted(found, key=lambda r: (-r.overdue, r.event_id)))


# --- records ------------------------------------------------------------------------------


def encode_handover(handover: Handover) -> bytes:
    return dumps(
        {
            "type": HANDOVER_TYPE,
            "v": 1,
            "event_id": handover.event_id,
            "person": handover.person,
            "old_office": handover.old_office,
            "new_office": handover.new_office,
            "effective_date": handover.effective_date.isoformat(),
            "state": handover.state.value,
            "steps": [
                {"kind": s.kind, "at": timestamp(s.at), "office": s.office} for s in handover.steps
            ],
            "reason": handover.reason,
        }
    )


def encode_update(update: Update) -> bytes:
    return dumps(
        {
            "type": UPDATE_TYPE,
            "v": 1,
            "event_id": update.event_id,
            "kind": update.kind.value,
            "office": update.office,
            "at": timestamp(update.at),
            "reason": update.reason,
        }
    )


_STEP_KINDS = frozenset({"announced", *(k.value for k in UpdateKind)})


def _body(data: bytes, record_type: str) -> dict[str, Any]:
    try:
        body = json.loads(data)
    except (ValueError, TypeError):
        raise Rejection(Reason.RKW_HANDOVER, "json") from None
    if not isinstance(body, dict) or body.get("type") != record_type:
        raise Rejection(Reason.RKW_HANDOVER, "type")
    if body.get("v") != 1 or type(body.get("v")) is not int:
        raise Rejection(Reason.RKW_HANDOVER, "v")
    return body


def _text(body: dict[str, Any], name: str, pattern: re.Pattern[str] | None = None) -> str:
    value = body.get(name)
    if not isinstance(value, str) or (pattern is not None and pattern.fullmatch(value) is None):
        raise Rejection(Reason.RKW_HANDOVER, name)
    return value


def _time(body: dict[str, Any], name: str) -> dt.datetime:
    try:
        moment = dt.datetime.fromisoformat(_text(body, name))
    except ValueError:
        raise Rejection(Reason.RKW_HANDOVER, name) from None
    if moment.tzinfo is None:
        raise Rejection(Reason.RKW_HANDOVER, name)
    return moment


def _reason(body: dict[str, Any]) -> str | None:
    reason = body.get("reason")
    if reason is not None and reason not in UPDATE_REASONS:
        raise Rejection(Reason.RKW_HANDOVER, "reason")
    return reason


def decode_update(data: bytes) -> Update:
    """An office's update; anything else is ``RKW_HANDOVER`` with the path of the problem."""
    body = _body(data, UPDATE_TYPE)
    kind = body.get("kind")
    if kind not in {k.value for k in UpdateKind}:
        raise Rejection(Reason.RKW_HANDOVER, "kind")
    return Update(
        event_id=_text(body, "event_id", EVENT_ID),
        kind=UpdateKind(kind),
        office=_text(body, "office", OFFICE_ID),
        at=_time(body, "at"),
        reason=_reason(body),
    )


def decode_handover(data: bytes) -> Handover:
    body = _body(data, HANDOVER_TYPE)
    state = body.get("state")
    if state not in {s.value for s in State}:
        raise Rejection(Reason.RKW_HANDOVER, "state")
    raw_steps = body.get("steps")
    if not isinstance(raw_steps, list) or not raw_steps:
        raise Rejection(Reason.RKW_HANDOVER, "steps")
    steps = []
    for raw in raw_steps:
        if not isinstance(raw, dict) or raw.get("kind") not in _STEP_KINDS:
            raise Rejection(Reason.RKW_HANDOVER, "steps")
        office = raw.get("office")
        if office is not None and not (isinstance(office, str) and OFFICE_ID.fullmatch(office)):
            raise Rejection(Reason.RKW_HANDOVER, "steps")
        steps.append(Step(raw["kind"], _time(raw, "at"), office))
    try:
        effective_date = dt.date.fromisoformat(_text(body, "effective_date"))
    except ValueError:
        raise Rejection(Reason.RKW_HANDOVER, "effective_date") from None
    return Handover(
        event_id=_text(body, "event_id", EVENT_ID),
        person=_text(body, "person", PSEUDONYM),
        old_office=_text(body, "old_office", OFFICE_ID),
        new_office=_text(body, "new_office", OFFICE_ID),
        effective_date=effective_date,
        state=State(state),
        steps=tuple(steps),
        reason=_reason(body),
    )
