"""The Rechtskreiswechsel event: a person's case moves from one Rechtskreis to another. Pure.

No public XÖV message exists for a change of legal regime, so the hub defines
its own event (``sozialhub.rechtskreiswechsel``, version 1; JSON schema
``schemas/rechtskreiswechsel/change-event-1.schema.json``; docs/rechtskreiswechsel.md).
The old office's Fachverfahren reports it; :mod:`hub.core.fanout` decides who
gets what, and :mod:`hub.core.handover` follows the warm handover.

The event names the person by pseudonym only. Every part of the case data
carries the data category (:data:`hub.core.transfer.CATEGORIES`) it belongs to,
so the fan-out can pass on exactly the categories the transfer gate allowed.
The reason is a category of its own: "permanent incapacity" is health data,
"recognition as a refugee" is residence status (:data:`REASON_CATEGORIES`).

:func:`decode_event` checks the shape (``RKW_EVENT`` with a path), and
:func:`validate` checks the meaning against the office table (``RKW_RECHTSKREIS``,
``RKW_OFFICE``, ``RKW_REASON``, ``RKW_AREA``). Neither ever quotes a value.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

from hub.core.documents import DEFAULT_DOCUMENTS
from hub.core.errors import Reason, Rejection
from hub.core.model import LEIKA_LIST_URI, Code
from hub.core.route import OfficeTable
from hub.core.transfer import CATEGORIES, RECHTSKREISE

EVENT_TYPE = "sozialhub.rechtskreiswechsel"
EVENT_VERSION = 1

REASON_LIST_URI = "urn:sozialhub:codeliste:rechtskreiswechsel-reason"
REASON_LIST_VERSION = "1"
REASONS: dict[str, str] = {
    "recognition": "Recognition as a refugee or as entitled to asylum",
    "coming-of-age": "Coming of age (Volljährigkeit)",
    "retirement-age": "Reaching the statutory retirement age",
    "permanent-incapacity": "Permanent full reduction in earning capacity",
    "ukraine-2022": "Transition of refugees from Ukraine (June 2022)",
    "other": "Other",
}
# The transitions a reason can explain; "other" explains any.
REASON_TRANSITIONS: dict[str, frozenset[tuple[str, str]]] = {
    "recognition": frozenset({("AsylbLG", "SGB II"), ("AsylbLG", "SGB XII")}),
    "coming-of-age": frozenset({("SGB VIII", "SGB II"), ("SGB VIII", "SGB XII")}),
    "retirement-age": frozenset({("SGB II", "SGB XII")}),
    "permanent-incapacity": frozenset({("SGB II", "SGB XII")}),
    "ukraine-2022": frozenset({("AsylbLG", "SGB II"), ("AsylbLG", "SGB XII")}),
}
# What the reason itself reveals about the person (None: nothing beyond the transition).
REASON_CATEGORIES: dict[str, str | None] = {
    "recognition": "residence-status",
    "coming-of-age": "identity-address",
    "retirement-age": "identity-address",
    "permanent-incapacity": "health",
    "ukraine-2022": "residence-status",
    "other": None,
}

HOUSEHOLD_ROLES: dict[str, str] = {
    "self": "The person the event is about",
    "partner": "Partner in the Bedarfsgemeinschaft",
    "child": "Child",
    "parent": "Parent",
    "other": "Other member of the household",
}
CLAIM_KINDS: dict[str, str] = {
    "pending-application": "An application not yet decided",
    "recovery": "A claim of the office against the person (overpayment, loan)",
    "third-party": "A claim against a third party (maintenance, another carrier)",
}
MEDIA_TYPES = DEFAULT_DOCUMENTS.media_types

# Bounds, so an event stays a reasonable record (docs/rechtskreiswechsel.md).
MAX_ITEMS = {"household": 30, "benefit_periods": 100, "open_claims": 100, "documents": 100}
MAX_AMOUNT_CENTS = 10**10

# The shape hub.core.pseudonym makes (psn-<key id>-<32 hex>); a test keeps the two in step.
PSEUDONYM = re.compile(r"psn-[a-z0-9]{1,12}-[0-9a-f]{32}")
EVENT_ID = re.compile(r"rkw-[0-9a-f]{32}")
OFFICE_ID = re.compile(r"[a-z][a-z0-9-]{1,62}")
AGS = re.compile(r"[0-9]{8}")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_LEIKA = re.compile(r"[0-9]{14}")
_REFERENCE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,63}")


def digest(*parts: str) -> str:
    """The hub's id digest: SHA-256 of the parts joined by U+001F, 32 hex digits."""
    return hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class Side:
    """One side of the change: the Rechtskreis and the office deciding in it."""

    rechtskreis: str
    office: str


@dataclass(frozen=True, slots=True)
class HouseholdMember:
    person: str  # pseudonym
    role: str  # a key of HOUSEHOLD_ROLES
    category: str = "household"

    def categories(self) -> frozenset[str]:
        return frozenset({self.category})


@dataclass(frozen=True, slots=True)
class BenefitPeriod:
    benefit: Code  # LeiKa
    start: dt.date
    end: dt.date | None
    category: str
    monthly_amount_cents: int | None = None

    def categories(self) -> frozenset[str]:
        return frozenset({self.category})


@dataclass(frozen=True, slots=True)
class OpenClaim:
    kind: str  # a key of CLAIM_KINDS
    reference: str = field(repr=False)  # the old office's file reference, opaque
    category: str
    amount_cents: int | None = None
    since: dt.date | None = None

    def categories(self) -> frozenset[str]:
        return frozenset({self.category})


@dataclass(frozen=True, slots=True)
class DocumentRef:
    """A document by reference: the bytes stay with the old office until fetched."""

    sha256: str
    media_type: str
    category: str  # what the document is about, e.g. "housing-costs" for a rent contract
    size: int | None = None

    def categories(self) -> frozenset[str]:
        """A document travels only where documents *and* what it is about may travel."""
        return frozenset({"documents", self.category})


CaseItem = HouseholdMember | BenefitPeriod | OpenClaim | DocumentRef


@dataclass(frozen=True, slots=True)
class CaseData:
    household: tuple[HouseholdMember, ...] = ()
    benefit_periods: tuple[BenefitPeriod, ...] = ()
    open_claims: tuple[OpenClaim, ...] = ()
    documents: tuple[DocumentRef, ...] = ()

    def items(self) -> tuple[CaseItem, ...]:
        return (*self.household, *self.benefit_periods, *self.open_claims, *self.documents)

    def categories(self) -> frozenset[str]:
        """Every category some part of the case data belongs to."""
        found: set[str] = set()
        for item in self.items():
            found |= item.categories()
        return frozenset(found)

    def filtered(self, allowed: frozenset[str]) -> CaseData:
        """Only the parts all of whose categories are allowed."""
        return CaseData(
            household=tuple(i for i in self.household if i.categories() <= allowed),
            benefit_periods=tuple(i for i in self.benefit_periods if i.categories() <= allowed),
            open_claims=tuple(i for i in self.open_claims if i.categories() <= allowed),
            documents=tuple(i for i in self.documents if i.categories() <= allowed),
        )


def event_id(person: str, from_: Side, to: Side, effective_date: dt.date) -> str:
    """Deterministic: the same change of the same person on the same day is the same event.

    The reason and the case data are not part of it: a re-sent event with corrected
    case data is the same handover, and downstream deduplicates on its messages' ids.
    """
    parts = (person, from_.rechtskreis, from_.office, to.rechtskreis, to.office)
    return "rkw-" + digest(*parts, effective_date.isoformat())


@dataclass(frozen=True, slots=True)
class RechtskreisChange:
    """``rechtskreiswechsel.events``: one person's case changes Rechtskreis on a date."""

    event_id: str
    person: str  # pseudonym
    from_: Side
    to: Side
    area: str  # AGS (8 digits) of the municipality the person lives in
    effective_date: dt.date
    reason: Code
    case: CaseData = field(default_factory=CaseData, repr=False)
    TYPE = EVENT_TYPE

    @classmethod
    def create(
        cls,
        person: str,
        from_: Side,
        to: Side,
        area: str,
        effective_date: dt.date,
        reason: str,
        case: CaseData | None = None,
    ) -> RechtskreisChange:
        """A new event with its deterministic id and the reason coded in the hub's list."""
        return cls(
            event_id=event_id(person, from_, to, effective_date),
            person=person,
            from_=from_,
            to=to,
            area=area,
            effective_date=effective_date,
            reason=Code(reason, REASON_LIST_URI, REASON_LIST_VERSION),
            case=case or CaseData(),
        )

    @property
    def reason_category(self) -> str | None:
        return REASON_CATEGORIES.get(self.reason.code)


# --- JSON ---------------------------------------------------------------------------------


def code_json(code: Code) -> dict[str, Any]:
    body: dict[str, Any] = {"code": code.code, "list_uri": code.list_uri}
    if code.list_version is not None:
        body["list_version"] = code.list_version
    if code.name is not None:
        body["name"] = code.name
    return body


def side_json(side: Side) -> dict[str, Any]:
    return {"rechtskreis": side.rechtskreis, "office": side.office}


def _optional(body: dict[str, Any], name: str, value: Any) -> dict[str, Any]:
    if value is not None:
        body[name] = value
    return body


def case_json(case: CaseData) -> dict[str, Any]:
    return {
        "household": [
            {"person": m.person, "role": m.role, "category": m.category} for m in case.household
        ],
        "benefit_periods": [
            _optional(
                {
                    "benefit": code_json(p.benefit),
                    "start": p.start.isoformat(),
                    "end": p.end.isoformat() if p.end else None,
                    "category": p.category,
                },
                "monthly_amount_cents",
                p.monthly_amount_cents,
            )
            for p in case.benefit_periods
        ],
        "open_claims": [
            _optional(
                _optional(
                    {"kind": c.kind, "reference": c.reference, "category": c.category},
                    "amount_cents",
                    c.amount_cents,
                ),
                "since",
                c.since.isoformat() if c.since else None,
            )
            for c in case.open_claims
        ],
        "documents": [
            _optional(
                {"sha256": d.sha256, "media_type": d.media_type, "category": d.category},
                "size",
                d.size,
            )
            for d in case.documents
        ],
    }


def event_json(event: RechtskreisChange) -> dict[str, Any]:
    return {
        "type": EVENT_TYPE,
        "v": EVENT_VERSION,
        "event_id": event.event_id,
        "person": event.person,
        "from": side_json(event.from_),
        "to": side_json(event.to),
        "area": event.area,
        "effective_date": event.effective_date.isoformat(),
        "reason": code_json(event.reason),
        "case": case_json(event.case),
    }


def dumps(body: dict[str, Any]) -> bytes:
    """The records' convention: compact, sorted keys, UTF-8."""
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def encode_event(event: RechtskreisChange) -> bytes:
    return dumps(event_json(event))


class _Reader:
    """Typed access to a decoded JSON object; every failure is ``RKW_EVENT`` at a path."""

    def __init__(self, body: Any, path: str) -> None:
        if not isinstance(body, dict):
            raise Rejection(Reason.RKW_EVENT, path or "/")
        self.body = body
        self.path = path

    def at(self, name: str) -> str:
        return f"{self.path}/{name}" if self.path else name

    def fail(self, name: str) -> Rejection:
        return Rejection(Reason.RKW_EVENT, self.at(name))

    def text(self, name: str, pattern: re.Pattern[str] | None = None) -> str:
        value = self.body.get(name)
        if not isinstance(value, str) or not value:
            raise self.fail(name)
        if pattern is not None and pattern.fullmatch(value) is None:
            raise self.fail(name)
        return value

    def optional_text(self, name: str) -> str | None:
        return None if self.body.get(name) is None else self.text(name)

    def choice(self, name: str, allowed: dict[str, str] | tuple[str, ...]) -> str:
        value = self.text(name)
        if value not in allowed:
            raise self.fail(name)
        return value

    def date(self, name: str) -> dt.date:
        value = self.text(name, _DATE)
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            raise self.fail(name) from None

    def optional_date(self, name: str) -> dt.date | None:
        return None if self.body.get(name) is None else self.date(name)

    def optional_amount(self, name: str) -> int | None:
        value = self.body.get(name)
        if value is None:
            return None
        if type(value) is not int or not 0 <= value < MAX_AMOUNT_CENTS:
            raise self.fail(name)
        return value

    def child(self, name: str) -> _Reader:
        return _Reader(self.body.get(name), self.at(name))

    def items(self, name: str, limit: int) -> list[_Reader]:
        value = self.body.get(name, [])
        if not isinstance(value, list) or len(value) > limit:
            raise self.fail(name)
        return [_Reader(item, self.at(f"{name}/{index}")) for index, item in enumerate(value)]


def _code(reader: _Reader) -> Code:
    version = reader.body.get("list_version")
    if version is not None and not isinstance(version, str):
        raise reader.fail("list_version")
    return Code(reader.text("code"), reader.text("list_uri"), version, reader.optional_text("name"))


def _side(reader: _Reader) -> Side:
    return Side(reader.text("rechtskreis"), reader.text("office", OFFICE_ID))


def _case(reader: _Reader) -> CaseData:
    household = tuple(
        HouseholdMember(
            m.text("person", PSEUDONYM),
            m.choice("role", HOUSEHOLD_ROLES),
            m.choice("category", CATEGORIES),
        )
        for m in reader.items("household", MAX_ITEMS["household"])
    )
    periods = []
    for p in reader.items("benefit_periods", MAX_ITEMS["benefit_periods"]):
        benefit = _code(p.child("benefit"))
        if benefit.list_uri != LEIKA_LIST_URI or _LEIKA.fullmatch(benefit.code) is None:
            raise p.fail("benefit")
        start, end = p.date("start"), p.optional_date("end")
        if end is not None and end < start:
            raise p.fail("end")
        category = p.choice("category", CATEGORIES)
        periods.append(
            BenefitPeriod(benefit, start, end, category, p.optional_amount("monthly_amount_cents"))
        )
    claims = tuple(
        OpenClaim(
            c.choice("kind", CLAIM_KINDS),
            c.text("reference", _REFERENCE),
            c.choice("category", CATEGORIES),
            c.optional_amount("amount_cents"),
            c.optional_date("since"),
        )
        for c in reader.items("open_claims", MAX_ITEMS["open_claims"])
    )
    documents = []
    for d in reader.items("documents", MAX_ITEMS["documents"]):
        size = d.body.get("size")
        if size is not None and (type(size) is not int or size < 1):
            raise d.fail("size")
        media = d.text("media_type")
        if media not in MEDIA_TYPES:
            raise d.fail("media_type")
        documents.append(
            DocumentRef(d.text("sha256", _SHA256), media, d.choice("category", CATEGORIES), size)
        )
    return CaseData(household, tuple(periods), claims, tuple(documents))


def _check_case(case: CaseData, person: str) -> None:
    persons = [m.person for m in case.household]
    for index, member in enumerate(case.household):
        if persons.index(member.person) != index:
            raise Rejection(Reason.RKW_EVENT, f"case/household/{index}/person")
        if (member.role == "self") != (member.person == person):
            raise Rejection(Reason.RKW_EVENT, f"case/household/{index}/role")
    digests = [d.sha256 for d in case.documents]
    for index, document in enumerate(case.documents):
        if digests.index(document.sha256) != index:
            raise Rejection(Reason.RKW_EVENT, f"case/documents/{index}/sha256")


def event_from_json(body: Any) -> RechtskreisChange:
    """The event from decoded JSON; its shape and id are checked (``RKW_EVENT``), not its meaning.

    Fields this version does not know are ignored, as on the hub's other records,
    so they are never passed on.
    """
    top = _Reader(body, "")
    if body.get("type") != EVENT_TYPE:
        raise top.fail("type")
    if body.get("v") != EVENT_VERSION or type(body.get("v")) is not int:
        raise top.fail("v")
    person = top.text("person", PSEUDONYM)
    from_, to = _side(top.child("from")), _side(top.child("to"))
    effective_date = top.date("effective_date")
    case = _case(top.child("case")) if body.get("case") is not None else CaseData()
    _check_case(case, person)
    event = RechtskreisChange(
        event_id=top.text("event_id", EVENT_ID),
        person=person,
        from_=from_,
        to=to,
        area=top.text("area", AGS),
        effective_date=effective_date,
        reason=_code(top.child("reason")),
        case=case,
    )
    if event.event_id != event_id(person, from_, to, effective_date):
        raise top.fail("event_id")
    return event


def decode_event(data: bytes) -> RechtskreisChange:
    """An event record; anything else is ``RKW_EVENT`` with the path of the first problem."""
    try:
        body = json.loads(data)
    except (ValueError, TypeError):
        raise Rejection(Reason.RKW_EVENT, "json") from None
    return event_from_json(body)


# --- meaning ------------------------------------------------------------------------------


def _check_side(side: Side, name: str, table: OfficeTable) -> None:
    if side.rechtskreis not in RECHTSKREISE:
        raise Rejection(Reason.RKW_RECHTSKREIS, f"{name}/rechtskreis")
    office = table.find(side.office)
    if office is None:
        raise Rejection(Reason.RKW_OFFICE, f"{name}/office")
    if side.rechtskreis not in office.rechtskreise:
        raise Rejection(Reason.RKW_OFFICE, name)


def validate(event: RechtskreisChange, table: OfficeTable) -> None:
    """The event makes sense: known Rechtskreise that differ, offices that decide in them,
    a reason from the code list that explains the transition, the new office covers the area.
    """
    _check_side(event.from_, "from", table)
    _check_side(event.to, "to", table)
    if event.from_.rechtskreis == event.to.rechtskreis:
        raise Rejection(Reason.RKW_RECHTSKREIS, "to/rechtskreis")
    reason = event.reason
    if reason.list_uri != REASON_LIST_URI:
        raise Rejection(Reason.RKW_REASON, "reason/list_uri")
    if reason.list_version not in (None, REASON_LIST_VERSION):
        raise Rejection(Reason.RKW_REASON, "reason/list_version")
    if reason.code not in REASONS:
        raise Rejection(Reason.RKW_REASON, "reason/code")
    explains = REASON_TRANSITIONS.get(reason.code)
    if explains is not None and (event.from_.rechtskreis, event.to.rechtskreis) not in explains:
        raise Rejection(Reason.RKW_REASON, "reason")
    if not any(event.area.startswith(a) for a in table.office(event.to.office).areas):
        raise Rejection(Reason.RKW_AREA, "area")


def check_event(data: bytes, table: OfficeTable) -> RechtskreisChange:
    """:func:`decode_event` and :func:`validate` in one: a usable event or a rejection."""
    event = decode_event(data)
    validate(event, table)
    return event
