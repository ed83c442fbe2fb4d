"""Consent records (Einwilligungen, § 67b SGB X, Art. 6 (1) a, 7 GDPR) and their life cycle. Pure.

A consent record follows ISO/IEC TS 27560 (consent record information
structure) and the Kantara consent receipt: who consented (a pseudonym, never
an identifier in clear), which office collected it and may pass data on, to
which named offices, for which one purpose, which data categories, on which
consent text version, how it was collected (``portal``; ``paper`` with a scan
reference; ``oral`` with a note), when, and for which period.

A record changes only by events, each a record of its own
(:class:`ConsentEvent`):

- ``granted``: the record itself, valid from ``valid_from`` (never before it was
  collected) until ``valid_until`` (or until revoked);
- ``revoked``: the person withdrew it, with effect from ``effective_at`` on; final;
- ``expired``: it ended because its time ran out or its purpose was fulfilled;
- ``superseded``: a newer grant replaces it from ``effective_at`` on.

:func:`fold` turns a person's events into one :class:`ConsentState` per record.
It depends on the set of events only, not on their order: every end (revoked,
expired, superseded) takes the earliest effective time seen, so a late event
moves an end earlier, never later, and a revocation is never undone. A
revocation that arrives before its grant is kept and applies when the grant
comes. Two different grants under one record id make the record unusable.

Rules a record must keep (:func:`validate`, reason ``CONSENT_INVALID`` with
the field as path; docs/consent.md): no blanket consent (one to
:data:`MAX_RECIPIENTS` named recipients other than the granting office, exactly
one purpose, at least one category); special categories (health,
youth-welfare) only with ``sensitive`` set, which records an explicit consent
(Art. 9 (2) a GDPR) but never lets them leave on consent alone (the gate
needs a statutory basis for them); a sane validity window.

Events travel as compact, sorted JSON (``sozialhub.consent-event/1``, schema
``schemas/consent/consent-event-1.schema.json``); the compacted consent topic
holds one ledger per person (``sozialhub.consent-ledger/1``): compaction keeps
only the last record per key, so the value under a person's pseudonym is all
of that person's events, and a tombstone for the key erases them all.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import hashlib
import json
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from hub.core.errors import Reason, Rejection
from hub.core.pseudonym import PSEUDONYM
from hub.core.transfer import CATEGORIES, PURPOSES, SPECIAL_CATEGORIES

EVENT_TYPE = "sozialhub.consent-event"
LEDGER_TYPE = "sozialhub.consent-ledger"

CHANNELS: dict[str, str] = {
    "portal": "given in a portal (a slider or check box on a form)",
    "paper": "signed on paper; scan_ref points at the scan in the office's document store",
    "oral": "given orally; note records who took it, when and on which text",
}
MAX_RECIPIENTS = 10  # more named offices than this is a blanket consent in disguise
MAX_VALIDITY = dt.timedelta(days=3653)  # about ten years from valid_from to valid_until
MAX_LEAD = dt.timedelta(days=366)  # valid_from at most a year after collection
MAX_NOTE = 500

RECORD_ID = re.compile(r"cns-[0-9a-f]{32}")
EVENT_ID = re.compile(r"cev-[0-9a-f]{32}")
OFFICE_ID = re.compile(r"[a-z][a-z0-9-]{1,62}")  # as in the office table
TEXT_VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")
SCAN_REF = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}")
# Controls, format characters (bidi overrides), line/paragraph separators, surrogates, private use.
_UNPRINTABLE = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
TIMESTAMP = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z")


class EventKind(enum.StrEnum):
    GRANTED = "granted"
    REVOKED = "revoked"
    EXPIRED = "expired"
    SUPERSEDED = "superseded"


class Status(enum.StrEnum):
    """A record's state at one moment (:meth:`ConsentState.status`)."""

    VALID = "valid"
    NOT_YET_VALID = "not-yet-valid"
    EXPIRED = "expired"
    SUPERSEDED = "superseded"
    REVOKED = "revoked"
    UNKNOWN = "unknown"  # no grant seen (yet), or conflicting grants


@dataclass(frozen=True, slots=True)
class Collection:
    """How a grant or a revocation was declared. ``scan_ref`` and ``note`` never show in a repr."""

    channel: str
    scan_ref: str | None = field(default=None, repr=False)
    note: str | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class ConsentRecord:
    """One consent as granted. Build it with :func:`grant`."""

    record_id: str
    person: str  # pseudonym
    granting_office: str  # the office that collected it: the one sender it authorises
    recipients: frozenset[str]  # named recipient offices
    purpose: str  # one code of transfer.PURPOSES
    categories: frozenset[str]  # codes of transfer.CATEGORIES
    text_version: str  # the version of the consent text the person saw
    collection: Collection
    collected_at: dt.datetime
    valid_from: dt.datetime
    valid_until: dt.datetime | None = None  # None: until revoked
    sensitive: bool = False  # explicit consent to special categories (Kantara "sensitive")


@dataclass(frozen=True, slots=True)
class ConsentEvent:
    """One step in a record's life. ``record`` for ``granted``, ``collection`` for ``revoked``,
    ``superseded_by`` for ``superseded``; the other two are ``None``."""

    event_id: str
    kind: EventKind
    person: str
    record_id: str
    recorded_at: dt.datetime  # when the office or the hub recorded it
    effective_at: dt.datetime  # from when it takes effect
    record: ConsentRecord | None = None
    collection: Collection | None = None
    superseded_by: str | None = None


@dataclass(frozen=True, slots=True)
class ConsentState:
    """A record folded from its events (:func:`fold`). Ends are the earliest effective times seen."""

    record_id: str
    record: ConsentRecord | None = None
    conflict: bool = False  # two different grants under this id: never valid
    revoked_at: dt.datetime | None = None
    expired_at: dt.datetime | None = None
    superseded_at: dt.datetime | None = None
    superseded_by: str | None = None

    @property
    def person(self) -> str | None:
        return None if self.record is None else self.record.person

    def status(self, when: dt.datetime) -> Status:
        """The record's state at ``when``; every interval is half-open ``[start, end)``.

        Precedence when several ends have passed: revoked, superseded, expired.
        """
        if when.tzinfo is None or when.utcoffset() is None:
            raise ValueError("when must be timezone-aware")
        if self.record is None or self.conflict:
            return Status.UNKNOWN
        if self.revoked_at is not None and self.revoked_at <= when:
            return Status.REVOKED
        if self.superseded_at is not None and self.superseded_at <= when:
            return Status.SUPERSEDED
        ends = [t for t in (self.expired_at, self.record.valid_until) if t is not None]
        if ends and min(ends) <= when:
            return Status.EXPIRED
        if when < self.record.valid_from:
            return Status.NOT_YET_VALID
        return Status.VALID


def valid_at(state: ConsentState, when: dt.datetime) -> bool:
    """Granted, not revoked, superseded or expired, and within its validity window at ``when``."""
    return state.status(when) is Status.VALID


# --- building events ------------------------------------------------------------------------


def _aware(moment: dt.datetime, path: str) -> None:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise Rejection(Reason.CONSENT_INVALID, path)


def _instant(moment: dt.datetime, path: str) -> dt.datetime:
    """UTC, to the millisecond: what the JSON form holds, so a record survives a round trip."""
    _aware(moment, path)
    utc = moment.astimezone(dt.UTC)
    return utc.replace(microsecond=utc.microsecond // 1000 * 1000)


def _stamp(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()[:32]


def record_id_of(record: ConsentRecord) -> str:
    """``cns-<32 hex>`` over everything the grant says: the same grant re-sent has the same id.

    Derived once, when the grant is built; a decoded record keeps the id it
    carries (a re-keyed person's records keep theirs, :func:`rekey`).
    """
    c = record.collection
    return "cns-" + _digest(
        "consent/1",
        record.person,
        record.granting_office,
        ",".join(sorted(record.recipients)),
        record.purpose,
        ",".join(sorted(record.categories)),
        record.text_version,
        c.channel,
        c.scan_ref or "",
        c.note or "",
        _stamp(record.collected_at),
        _stamp(record.valid_from),
        "" if record.valid_until is None else _stamp(record.valid_until),
        "sensitive" if record.sensitive else "",
    )


def event_id_of(event: ConsentEvent) -> str:
    """``cev-<32 hex>``: one id per grant, per revocation or expiry time, per successor."""
    if event.kind is EventKind.GRANTED:
        parts: tuple[str, ...] = (event.record_id,)
    elif event.kind is EventKind.SUPERSEDED:
        parts = (event.record_id, event.superseded_by or "")
    else:
        parts = (event.record_id, _stamp(event.effective_at))
    return "cev-" + _digest("consent-event/1", event.kind.value, *parts)


def grant(
    *,
    person: str,
    granting_office: str,
    recipients: Iterable[str],
    purpose: str,
    categories: Iterable[str],
    text_version: str,
    channel: str,
    collected_at: dt.datetime,
    valid_from: dt.datetime | None = None,
    valid_until: dt.datetime | None = None,
    scan_ref: str | None = None,
    note: str | None = None,
    sensitive: bool = False,
    recorded_at: dt.datetime | None = None,
) -> ConsentEvent:
    """A ``granted`` event with its record; ``valid_from`` defaults to ``collected_at``."""
    collected = _instant(collected_at, "collected_at")
    draft = ConsentRecord(
        record_id="",
        person=person,
        granting_office=granting_office,
        recipients=frozenset(recipients),
        purpose=purpose,
        categories=frozenset(categories),
        text_version=text_version,
        collection=Collection(channel, scan_ref, note),
        collected_at=collected,
        valid_from=collected if valid_from is None else _instant(valid_from, "valid_from"),
        valid_until=None if valid_until is None else _instant(valid_until, "valid_until"),
        sensitive=sensitive,
    )
    record = dataclasses.replace(draft, record_id=record_id_of(draft))
    return _finish(
        ConsentEvent(
            event_id="",
            kind=EventKind.GRANTED,
            person=person,
            record_id=record.record_id,
            recorded_at=collected if recorded_at is None else _instant(recorded_at, "recorded_at"),
            effective_at=record.valid_from,
            record=record,
        )
    )


def revoke(
    *,
    person: str,
    record_id: str,
    effective_at: dt.datetime,
    channel: str,
    scan_ref: str | None = None,
    note: str | None = None,
    recorded_at: dt.datetime | None = None,
) -> ConsentEvent:
    """A ``revoked`` event: from ``effective_at`` on the record covers nothing, for good."""
    effective = _instant(effective_at, "effective_at")
    return _finish(
        ConsentEvent(
            event_id="",
            kind=EventKind.REVOKED,
            person=person,
            record_id=record_id,
            recorded_at=effective if recorded_at is None else _instant(recorded_at, "recorded_at"),
            effective_at=effective,
            collection=Collection(channel, scan_ref, note),
        )
    )


def expire(
    *,
    person: str,
    record_id: str,
    effective_at: dt.datetime,
    recorded_at: dt.datetime | None = None,
) -> ConsentEvent:
    """An ``expired`` event: the record ended (time ran out, or its purpose was fulfilled)."""
    effective = _instant(effective_at, "effective_at")
    return _finish(
        ConsentEvent(
            event_id="",
            kind=EventKind.EXPIRED,
            person=person,
            record_id=record_id,
            recorded_at=effective if recorded_at is None else _instant(recorded_at, "recorded_at"),
            effective_at=effective,
        )
    )


def supersede(
    old_record_id: str, new: ConsentEvent, *, recorded_at: dt.datetime | None = None
) -> ConsentEvent:
    """A ``superseded`` event: ``new`` (a grant) replaces the old record from its ``valid_from`` on."""
    if new.kind is not EventKind.GRANTED or new.record is None:
        raise Rejection(Reason.CONSENT_INVALID, "superseded_by")
    return _finish(
        ConsentEvent(
            event_id="",
            kind=EventKind.SUPERSEDED,
            person=new.person,
            record_id=old_record_id,
            recorded_at=new.recorded_at
            if recorded_at is None
            else _instant(recorded_at, "recorded_at"),
            effective_at=new.record.valid_from,
            superseded_by=new.record_id,
        )
    )


def _finish(event: ConsentEvent) -> ConsentEvent:
    event = dataclasses.replace(event, event_id=event_id_of(event))
    validate(event)
    return event


# --- validation -----------------------------------------------------------------------------


def _invalid(path: str) -> Rejection:
    return Rejection(Reason.CONSENT_INVALID, path)


def _check_time(moment: dt.datetime, path: str) -> None:
    _aware(moment, path)
    if moment.utcoffset() != dt.timedelta(0) or moment.microsecond % 1000:
        raise _invalid(path)  # not UTC milliseconds: the JSON form would change it


def _check_collection(collection: Collection, path: str) -> None:
    if collection.channel not in CHANNELS:
        raise _invalid(f"{path}/channel")
    if (collection.channel == "paper") != (collection.scan_ref is not None):
        raise _invalid(f"{path}/scan_ref")  # paper needs its scan; only paper has one
    if collection.scan_ref is not None and SCAN_REF.fullmatch(collection.scan_ref) is None:
        raise _invalid(f"{path}/scan_ref")
    if collection.channel == "oral" and not (collection.note or "").strip():
        raise _invalid(f"{path}/note")
    note = collection.note
    if note is not None and (
        len(note) > MAX_NOTE
        or not note.strip()
        or any(unicodedata.category(c) in _UNPRINTABLE for c in note)
    ):
        raise _invalid(f"{path}/note")


def _check_scope(record: ConsentRecord) -> None:
    """No blanket consent: named recipients, one purpose, named categories."""
    if OFFICE_ID.fullmatch(record.granting_office) is None:
        raise _invalid("record/granting_office")
    recipients = record.recipients
    if not 1 <= len(recipients) <= MAX_RECIPIENTS or record.granting_office in recipients:
        raise _invalid("record/recipients")
    if any(OFFICE_ID.fullmatch(r) is None for r in recipients):
        raise _invalid("record/recipients")
    if record.purpose not in PURPOSES:
        raise _invalid("record/purpose")
    if not record.categories or not record.categories.issubset(CATEGORIES):
        raise _invalid("record/categories")
    if record.sensitive != bool(record.categories & SPECIAL_CATEGORIES):
        raise _invalid("record/sensitive")  # special categories need the flag; the flag needs one


def _check_record(record: ConsentRecord) -> None:
    _check_scope(record)
    if TEXT_VERSION.fullmatch(record.text_version) is None:
        raise _invalid("record/text_version")
    _check_collection(record.collection, "record/collection")
    for name in ("collected_at", "valid_from", "valid_until"):
        moment = getattr(record, name)
        if moment is not None:
            _check_time(moment, f"record/{name}")
    if not record.collected_at <= record.valid_from <= record.collected_at + MAX_LEAD:
        raise _invalid("record/valid_from")  # never retroactive, never far ahead
    until = record.valid_until
    if until is not None and not record.valid_from < until <= record.valid_from + MAX_VALIDITY:
        raise _invalid("record/valid_until")
    if RECORD_ID.fullmatch(record.record_id) is None:
        raise _invalid("record/record_id")


def _check_granted(event: ConsentEvent, record: ConsentRecord) -> None:
    _check_record(record)
    if record.record_id != event.record_id or record.person != event.person:
        raise _invalid("record")
    if event.effective_at != record.valid_from:
        raise _invalid("effective_at")
    if event.recorded_at < record.collected_at:
        raise _invalid("recorded_at")  # recorded before it was collected


def validate(event: ConsentEvent) -> None:
    """Raise ``CONSENT_INVALID`` (path: the field) unless ``event`` keeps the record rules."""
    if PSEUDONYM.fullmatch(event.person) is None:
        raise _invalid("person")
    if RECORD_ID.fullmatch(event.record_id) is None:
        raise _invalid("record_id")
    _check_time(event.recorded_at, "recorded_at")
    _check_time(event.effective_at, "effective_at")
    kind = event.kind
    if (kind is EventKind.GRANTED) != (event.record is not None):
        raise _invalid("record")
    if (kind is EventKind.REVOKED) != (event.collection is not None):
        raise _invalid("collection")
    if (kind is EventKind.SUPERSEDED) != (event.superseded_by is not None):
        raise _invalid("superseded_by")
    if event.record is not None:
        _check_granted(event, event.record)
    if event.collection is not None:
        _check_collection(event.collection, "collection")
    if event.superseded_by is not None and (
        RECORD_ID.fullmatch(event.superseded_by) is None or event.superseded_by == event.record_id
    ):
        raise _invalid("superseded_by")
    if EVENT_ID.fullmatch(event.event_id) is None or event.event_id != event_id_of(event):
        raise _invalid("event_id")


# --- folding --------------------------------------------------------------------------------


def _earliest(current: dt.datetime | None, moment: dt.datetime) -> dt.datetime:
    return moment if current is None or moment < current else current


def fold(events: Iterable[ConsentEvent]) -> dict[str, ConsentState]:
    """Each record's state from its events, keyed and ordered by record id.

    Every event is validated first (``CONSENT_INVALID``). The result depends on
    the set of events only: duplicates and order do not matter. Ends take the
    earliest effective time seen; the successor of a superseded record is the
    one with the earliest effective time (then the smallest record id).
    """
    grants: dict[str, set[ConsentRecord]] = {}
    revoked: dict[str, dt.datetime] = {}
    expired: dict[str, dt.datetime] = {}
    superseded: dict[str, tuple[dt.datetime, str]] = {}
    for event in events:
        validate(event)
        rid = event.record_id
        grants.setdefault(rid, set())
        if event.record is not None:
            grants[rid].add(event.record)
        elif event.kind is EventKind.REVOKED:
            revoked[rid] = _earliest(revoked.get(rid), event.effective_at)
        elif event.kind is EventKind.EXPIRED:
            expired[rid] = _earliest(expired.get(rid), event.effective_at)
        elif event.superseded_by is not None:
            candidate = (event.effective_at, event.superseded_by)
            superseded[rid] = min(superseded.get(rid, candidate), candidate)
    states = {}
    for rid in sorted(grants):
        records = grants[rid]
        successor = superseded.get(rid)
        states[rid] = ConsentState(
            record_id=rid,
            record=next(iter(records)) if len(records) == 1 else None,
            conflict=len(records) > 1,
            revoked_at=revoked.get(rid),
            expired_at=expired.get(rid),
            superseded_at=None if successor is None else successor[0],
            superseded_by=None if successor is None else successor[1],
        )
    return states


def rekey(events: Iterable[ConsentEvent], person: str) -> tuple[ConsentEvent, ...]:
    """The events moved to the person's new pseudonym (key rotation); ids stay as they are."""
    if PSEUDONYM.fullmatch(person) is None:
        raise _invalid("person")
    moved = []
    for event in events:
        record = event.record
        if record is not None:
            record = dataclasses.replace(record, person=person)
        moved.append(dataclasses.replace(event, person=person, record=record))
    return tuple(moved)


# --- JSON -----------------------------------------------------------------------------------


def _collection_json(collection: Collection | None) -> dict[str, Any] | None:
    if collection is None:
        return None
    return {"channel": collection.channel, "note": collection.note, "scan_ref": collection.scan_ref}


def event_to_json(event: ConsentEvent) -> dict[str, Any]:
    """The event as plain JSON data (``sozialhub.consent-event/1``)."""
    record = event.record
    record_json = None
    if record is not None:
        record_json = {
            "record_id": record.record_id,
            "person": record.person,
            "granting_office": record.granting_office,
            "recipients": sorted(record.recipients),
            "purpose": record.purpose,
            "categories": sorted(record.categories),
            "text_version": record.text_version,
            "collection": _collection_json(record.collection),
            "collected_at": _stamp(record.collected_at),
            "valid_from": _stamp(record.valid_from),
            "valid_until": None if record.valid_until is None else _stamp(record.valid_until),
            "sensitive": record.sensitive,
        }
    return {
        "type": EVENT_TYPE,
        "v": 1,
        "event_id": event.event_id,
        "kind": event.kind.value,
        "person": event.person,
        "record_id": event.record_id,
        "recorded_at": _stamp(event.recorded_at),
        "effective_at": _stamp(event.effective_at),
        "record": record_json,
        "collection": _collection_json(event.collection),
        "superseded_by": event.superseded_by,
    }


def _dumps(body: Mapping[str, Any]) -> bytes:
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def encode_event(event: ConsentEvent) -> bytes:
    return _dumps(event_to_json(event))


def _time(value: Any, path: str) -> dt.datetime:
    if not isinstance(value, str) or TIMESTAMP.fullmatch(value) is None:
        raise _invalid(path)
    try:
        return dt.datetime.fromisoformat(value)
    except ValueError:
        raise _invalid(path) from None


def _text(body: Mapping[str, Any], name: str, path: str, *, optional: bool = False) -> Any:
    value = body.get(name)
    if (value is None and optional) or isinstance(value, str):
        return value
    raise _invalid(f"{path}{name}")


def _collection(value: Any, path: str) -> Collection | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise _invalid(path)
    return Collection(
        channel=_text(value, "channel", f"{path}/"),
        scan_ref=_text(value, "scan_ref", f"{path}/", optional=True),
        note=_text(value, "note", f"{path}/", optional=True),
    )


def _codes(value: Any, path: str) -> frozenset[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _invalid(path)
    if len(set(value)) != len(value):
        raise _invalid(path)
    return frozenset(value)


def _record(value: Any) -> ConsentRecord | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise _invalid("record")
    sensitive = value.get("sensitive")
    if not isinstance(sensitive, bool):
        raise _invalid("record/sensitive")
    until = value.get("valid_until")
    collection = _collection(value.get("collection"), "record/collection")
    if collection is None:
        raise _invalid("record/collection")
    return ConsentRecord(
        record_id=_text(value, "record_id", "record/"),
        person=_text(value, "person", "record/"),
        granting_office=_text(value, "granting_office", "record/"),
        recipients=_codes(value.get("recipients"), "record/recipients"),
        purpose=_text(value, "purpose", "record/"),
        categories=_codes(value.get("categories"), "record/categories"),
        text_version=_text(value, "text_version", "record/"),
        collection=collection,
        collected_at=_time(value.get("collected_at"), "record/collected_at"),
        valid_from=_time(value.get("valid_from"), "record/valid_from"),
        valid_until=None if until is None else _time(until, "record/valid_until"),
        sensitive=sensitive,
    )


def event_from_json(body: Any) -> ConsentEvent:
    """An event from JSON data; ``ENVELOPE`` if it is not one, ``CONSENT_INVALID`` if it breaks a rule.

    Fields this version does not know are ignored (a newer producer may add
    fields within a major version).
    """
    if not isinstance(body, dict) or body.get("type") != EVENT_TYPE or body.get("v") != 1:
        raise Rejection(Reason.ENVELOPE, "type")
    try:
        kind = EventKind(str(body.get("kind")))
    except ValueError:
        raise _invalid("kind") from None
    event = ConsentEvent(
        event_id=_text(body, "event_id", ""),
        kind=kind,
        person=_text(body, "person", ""),
        record_id=_text(body, "record_id", ""),
        recorded_at=_time(body.get("recorded_at"), "recorded_at"),
        effective_at=_time(body.get("effective_at"), "effective_at"),
        record=_record(body.get("record")),
        collection=_collection(body.get("collection"), "collection"),
        superseded_by=_text(body, "superseded_by", "", optional=True),
    )
    validate(event)
    return event


def _loads(data: bytes) -> Any:
    def refuse(_: str) -> None:
        raise ValueError("not JSON")  # NaN, Infinity

    try:
        return json.loads(data, parse_constant=refuse)
    except (ValueError, TypeError, RecursionError):
        raise Rejection(Reason.ENVELOPE, "json") from None


def decode_event(data: bytes) -> ConsentEvent:
    return event_from_json(_loads(data))


def decode_any(data: bytes) -> tuple[ConsentEvent, ...]:
    """The events of one record that is either an event or a ledger (e.g. a line of an export)."""
    body = _loads(data)
    if isinstance(body, dict) and body.get("type") == LEDGER_TYPE:
        return ledger_from_json(body)[1]
    return (event_from_json(body),)


def _ordered(events: Iterable[ConsentEvent]) -> list[dict[str, Any]]:
    unique = {encode_event(e): event_to_json(e) for e in events}
    return [unique[k] for k in sorted(unique, key=lambda k: (unique[k]["event_id"], k))]


def encode_ledger(person: str, events: Iterable[ConsentEvent]) -> bytes:
    """A person's ledger for the compacted topic (key: ``person``): every event, once, in id order."""
    if PSEUDONYM.fullmatch(person) is None:
        raise _invalid("person")
    body = _ordered(events)
    if any(e["person"] != person for e in body):
        raise _invalid("events/person")
    return _dumps({"type": LEDGER_TYPE, "v": 1, "person": person, "events": body})


def decode_ledger(data: bytes) -> tuple[str, tuple[ConsentEvent, ...]]:
    """The person and the events of a ledger record; every event validated."""
    return ledger_from_json(_loads(data))


def ledger_from_json(body: Any) -> tuple[str, tuple[ConsentEvent, ...]]:
    """The person and the events of a ledger given as JSON data."""
    if not isinstance(body, dict) or body.get("type") != LEDGER_TYPE or body.get("v") != 1:
        raise Rejection(Reason.ENVELOPE, "type")
    person = body.get("person")
    events = body.get("events")
    if not isinstance(person, str) or PSEUDONYM.fullmatch(person) is None:
        raise _invalid("person")
    if not isinstance(events, list):
        raise Rejection(Reason.ENVELOPE, "events")
    decoded = tuple(event_from_json(e) for e in events)
    if any(e.person != person for e in decoded):
        raise _invalid("events/person")
    return person, decoded


def append(ledger: bytes | None, event: ConsentEvent) -> bytes:
    """The ledger with ``event`` added (idempotent: an event already in it changes nothing)."""
    if ledger is None:
        return encode_ledger(event.person, (event,))
    person, events = decode_ledger(ledger)
    if event.person != person:
        raise _invalid("person")
    return encode_ledger(person, (*events, event))
