"""Rechtskreiswechsel fan-out: one message per addressed office, each decided by the gate. Pure.

:func:`fan_out` takes a validated event, the subscriptions, the office table,
the transfer gate (any ``Callable[[TransferRequest], Decision]``: the worker
passes the real gate, tests pass fakes, ``sozialhub rechtskreiswechsel plan``
passes :func:`offline_gate`) and the time, and returns one :class:`Message` per
addressed office. Nothing leaves without a decision:

- the **new office** (always addressed; the event names it) is asked for the
  categories its matching ``new-office`` subscriptions declare, as far as the
  case data has them. Allowed: a ``handover`` carrying the case data filtered
  to the allowed categories. Refused, or nothing declared: the gate is asked
  again with no categories, and if that is allowed the office gets a data-free
  ``notice`` (pseudonym, effective date, from and to Rechtskreis and office);
  otherwise the message is ``withheld``;
- the **old office** (addressed when an ``old-office`` subscription matches)
  gets a ``confirmation``: the event id, the pseudonym and the effective date,
  which it reported itself. That is no transfer, so the gate is not asked; the
  message carries a local decision with basis kind ``no-transfer``
  (:data:`NO_TRANSFER_BASIS`). The same holds when the case stays in its office
  (AsylbLG to SGB XII at the same Sozialamt): the new office, which is the old
  one, gets a ``notice`` saying it holds the case;
- each **affected** office (matching ``affected`` subscriptions; never the new
  or the old office) gets an ``information`` with what the gate allows for its
  purpose and categories, or data-free after a refusal, or nothing (``withheld``).

An office gets one message per event even when several roles match it: the new
office's role wins over the old office's, and both over ``affected``. A
``withheld`` message is never delivered; it exists for the audit log, like every
message's decision, the refused decision before it, and the subscriptions it
answers. The fan-out fails closed where the gate misbehaves: an answer to another
request, or an allow without a legal basis, counts as a denial (``RKW_GATE``);
categories the gate allowed but nobody asked for are not sent; special
categories (:data:`hub.core.transfer.SPECIAL_CATEGORIES`) are never sent on
consent alone, whatever the gate said.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hub.core.errors import Reason
from hub.core.rechtskreiswechsel import (
    CaseData,
    RechtskreisChange,
    case_json,
    code_json,
    digest,
    dumps,
    side_json,
    validate,
)
from hub.core.records import timestamp
from hub.core.route import OfficeTable
from hub.core.subscriptions import HANDOVER_PURPOSE, Role, Subscription, Subscriptions
from hub.core.transfer import SPECIAL_CATEGORIES, Basis, Decision, Outcome, TransferRequest

Gate = Callable[[TransferRequest], Decision]

MESSAGE_TYPE = "sozialhub.rechtskreiswechsel-message"


class Kind(enum.StrEnum):
    HANDOVER = "handover"  # new office: the case data the gate allowed
    NOTICE = "notice"  # new office: data-free, a case is coming and its data may not follow
    CONFIRMATION = "confirmation"  # old office: the event was received and fanned out
    INFORMATION = "information"  # affected office: what the gate allowed for its purpose
    WITHHELD = "withheld"  # the gate allowed nothing: audited, never delivered


@dataclass(frozen=True, slots=True)
class Message:
    """One office's share of one event."""

    message_id: str  # deterministic: event id + office
    event_id: str
    office: str
    role: Role
    kind: Kind
    purpose: str
    categories: frozenset[str]  # the data categories the body carries
    decision: Decision  # the gate's answer the message relies on
    requested: frozenset[str] = frozenset()  # what the gate was asked for first (audit)
    refused: Decision | None = None  # the fuller request the gate refused before it
    subscriptions: tuple[str, ...] = ()  # the subscription ids it answers
    body: dict[str, Any] | None = field(default=None, repr=False)  # None when withheld

    @property
    def deliverable(self) -> bool:
        return self.kind is not Kind.WITHHELD


@dataclass(frozen=True, slots=True)
class FanOut:
    event_id: str
    messages: tuple[Message, ...]

    def for_office(self, office: str) -> Message | None:
        return next((m for m in self.messages if m.office == office), None)

    @property
    def deliverable(self) -> tuple[Message, ...]:
        return tuple(m for m in self.messages if m.deliverable)


def message_id(event_id: str, office: str) -> str:
    return "rkm-" + digest(event_id, office)


def data_free_request_id(event_id: str, office: str) -> str:
    """The id of the second, data-free request after a refusal (the first uses the message id)."""
    return "rkm-" + digest(event_id, office, "data-free")


NO_TRANSFER_BASIS = Basis(
    kind="no-transfer",
    legal_reference="none needed: no transfer, the office receives only what it holds itself",
    basis_id="rkw-own-case",
)


def _ask(gate: Gate, request: TransferRequest) -> Decision:
    decision = gate(request)
    if decision.request_id != request.request_id or (decision.allowed and decision.basis is None):
        return Decision(request.request_id, Outcome.DENY, reason=Reason.RKW_GATE.value)
    return decision


def _carriable(decision: Decision, requested: frozenset[str]) -> frozenset[str]:
    """What may actually travel: asked for, allowed, and never special on consent alone."""
    if not decision.allowed:
        return frozenset()
    allowed = decision.categories & requested
    if decision.basis is None or decision.basis.kind == "consent":
        allowed -= SPECIAL_CATEGORIES
    return allowed


def _head(event: RechtskreisChange) -> dict[str, Any]:
    """The data-free core every message to a new or affected office starts from."""
    return {
        "event_id": event.event_id,
        "person": event.person,
        "effective_date": event.effective_date.isoformat(),
        "from": side_json(event.from_),
        "to": side_json(event.to),
    }


def _with_data(
    event: RechtskreisChange, allowed: frozenset[str]
) -> tuple[dict[str, Any], frozenset[str]]:
    """The head plus the case data (and the reason) as far as ``allowed`` reaches."""
    case: CaseData = event.case.filtered(allowed)
    body = {**_head(event), "case": case_json(case)}
    carried = set(case.categories())
    reason_category = event.reason_category
    if reason_category is None or reason_category in allowed:
        body["reason"] = code_json(event.reason)
        if reason_category is not None:
            carried.add(reason_category)
    return body, frozenset(carried)


def _needed(event: RechtskreisChange, subscriptions: tuple[Subscription, ...]) -> frozenset[str]:
    """The categories the subscriptions declare that the event actually has."""
    declared: set[str] = set()
    for s in subscriptions:
        declared |= s.categories
    present = set(event.case.categories())
    if event.reason_category is not None:
        present.add(event.reason_category)
    return frozenset(declared & present)


@dataclass(frozen=True, slots=True)
class Addressee:
    """An office the fan-out addresses, in which role, for which purpose, answering which subscriptions."""

    office: str
    role: Role
    purpose: str
    subscriptions: tuple[Subscription, ...]


def _decide(event: RechtskreisChange, to: Addressee, gate: Gate, now: dt.datetime) -> Message:
    mid = message_id(event.event_id, to.office)
    requested: frozenset[str] = frozenset()  # what the first request asks for (none: no request)
    ids = tuple(s.subscription_id for s in to.subscriptions)

    def request(request_id: str, categories: frozenset[str]) -> TransferRequest:
        # The data leaves the old office's Rechtskreis; it enters the new one at the new office.
        # An affected office receives in its own Rechtskreise, which the policy knows.
        return TransferRequest(
            request_id=request_id,
            person=event.person,
            from_office=event.from_.office,
            to_office=to.office,
            purpose=to.purpose,
            categories=categories,
            at=now,
            from_rechtskreis=event.from_.rechtskreis,
            to_rechtskreis=event.to.rechtskreis if to.role is Role.NEW_OFFICE else None,
        )

    def message(
        kind: Kind,
        decision: Decision,
        body: dict[str, Any] | None,
        carried: frozenset[str] = frozenset(),
        refused: Decision | None = None,
    ) -> Message:
        return Message(
            message_id=mid,
            event_id=event.event_id,
            office=to.office,
            role=to.role,
            kind=kind,
            purpose=to.purpose,
            categories=carried,
            decision=decision,
            requested=requested,
            refused=refused,
            subscriptions=ids,
            body=body,
        )

    if to.office == event.from_.office:
        # Back to the office the case comes from: it holds all of it, nothing is transferred.
        own = Decision(mid, Outcome.ALLOW, basis=NO_TRANSFER_BASIS, decided_at=now)
        if to.role is Role.NEW_OFFICE:
            return message(Kind.NOTICE, own, {**_head(event), "case_data": "held"})
        return message(
            Kind.CONFIRMATION,
            own,
            {
                "event_id": event.event_id,
                "person": event.person,
                "effective_date": event.effective_date.isoformat(),
            },
        )
    requested = _needed(event, to.subscriptions)
    first: Decision | None = None
    if requested:
        first = _ask(gate, request(mid, requested))
        if first.allowed:
            body, carried = _with_data(event, _carriable(first, requested))
            kind = Kind.HANDOVER if to.role is Role.NEW_OFFICE else Kind.INFORMATION
            return message(kind, first, body, carried)
    free_id = mid if first is None else data_free_request_id(event.event_id, to.office)
    data_free = _ask(gate, request(free_id, frozenset()))
    if not data_free.allowed:
        return message(Kind.WITHHELD, data_free, None, refused=first)
    body = {**_head(event), "case_data": "not-requested" if first is None else "refused"}
    if first is not None and first.reason is not None:
        body["refusal"] = first.reason
    kind = Kind.NOTICE if to.role is Role.NEW_OFFICE else Kind.INFORMATION
    return message(kind, data_free, body, refused=first)


def addressees(event: RechtskreisChange, subscriptions: Subscriptions) -> tuple[Addressee, ...]:
    """Who gets a message, in order: the new office, the old office, affected offices by id."""
    matched = subscriptions.matching(
        event.from_.rechtskreis, event.to.rechtskreis, event.reason.code, event.area
    )
    by_role = {role: tuple(s for s in matched if s.role is role) for role in Role}
    found = [
        Addressee(event.to.office, Role.NEW_OFFICE, HANDOVER_PURPOSE, by_role[Role.NEW_OFFICE])
    ]
    if by_role[Role.OLD_OFFICE] and event.from_.office != event.to.office:
        found.append(
            Addressee(
                event.from_.office, Role.OLD_OFFICE, HANDOVER_PURPOSE, by_role[Role.OLD_OFFICE]
            )
        )
    taken = {event.from_.office, event.to.office}
    affected: dict[str, list[Subscription]] = {}
    for s in by_role[Role.AFFECTED]:
        if s.office is not None and s.office not in taken:
            affected.setdefault(s.office, []).append(s)
    for office in sorted(affected):
        subs = tuple(affected[office])
        found.append(Addressee(office, Role.AFFECTED, subs[0].purpose, subs))
    return tuple(found)


def fan_out(
    event: RechtskreisChange,
    subscriptions: Subscriptions,
    offices: OfficeTable,
    gate: Gate,
    now: dt.datetime,
) -> FanOut:
    """One message per addressed office; an invalid event is a :class:`~hub.core.errors.Rejection`.

    Affected subscriptions naming an office the table does not know are skipped
    (:func:`hub.core.subscriptions.problems` refuses them at load).
    """
    validate(event, offices)
    messages = tuple(
        _decide(event, to, gate, now)
        for to in addressees(event, subscriptions)
        if offices.find(to.office) is not None
    )
    return FanOut(event.event_id, messages)


# --- offline plan ------------------------------------------------------------------------

OFFLINE_BASIS = Basis(
    kind="offline",
    legal_reference="none: offline plan without a policy; the worker asks the transfer gate",
    basis_id="offline-data-free",
)


def offline_gate(request: TransferRequest) -> Decision:
    """For ``sozialhub rechtskreiswechsel plan``: refuse every category, allow data-free messages.

    Not a legal basis: it shows the most the fan-out does without consent records
    and policy. The worker passes the real transfer gate instead.
    """
    if request.categories:
        return Decision(request.request_id, Outcome.DENY, decided_at=request.at)
    return Decision(request.request_id, Outcome.ALLOW, basis=OFFLINE_BASIS, decided_at=request.at)


# --- records ------------------------------------------------------------------------------


def basis_json(basis: Basis | None) -> dict[str, Any] | None:
    if basis is None:
        return None
    return {
        "kind": basis.kind,
        "legal_reference": basis.legal_reference,
        "basis_id": basis.basis_id,
        "consent_record": basis.consent_record,
    }


def decision_json(decision: Decision) -> dict[str, Any]:
    return {
        "request_id": decision.request_id,
        "outcome": decision.outcome.value,
        "categories": sorted(decision.categories),
        "basis": basis_json(decision.basis),
        "reason": decision.reason,
        "dropped": [[category, reason] for category, reason in decision.dropped],
        "decided_at": timestamp(decision.decided_at) if decision.decided_at else None,
    }


def message_json(message: Message) -> dict[str, Any]:
    return {
        "type": MESSAGE_TYPE,
        "v": 1,
        "message_id": message.message_id,
        "event_id": message.event_id,
        "office": message.office,
        "role": message.role.value,
        "kind": message.kind.value,
        "purpose": message.purpose,
        "categories": sorted(message.categories),
        "requested": sorted(message.requested),
        "decision": decision_json(message.decision),
        "refused": decision_json(message.refused) if message.refused else None,
        "subscriptions": list(message.subscriptions),
        "body": message.body,
    }


def encode_message(message: Message) -> bytes:
    """``handovers.<vendor>`` value (key: the message id); withheld ones go to audit only.

    Published as ``schemas/rechtskreiswechsel/message-1.schema.json``.
    """
    return dumps(message_json(message))


def plan_line(message: Message) -> dict[str, Any]:
    """One line of ``sozialhub rechtskreiswechsel plan``: who gets what and why, no body."""
    return {
        "event_id": message.event_id,
        "message_id": message.message_id,
        "office": message.office,
        "role": message.role.value,
        "kind": message.kind.value,
        "purpose": message.purpose,
        "categories": sorted(message.categories),
        "requested": sorted(message.requested),
        "outcome": message.decision.outcome.value,
        "basis": basis_json(message.decision.basis),
        "reason": message.decision.reason,
        "refused": decision_json(message.refused) if message.refused else None,
        "subscriptions": list(message.subscriptions),
    }
