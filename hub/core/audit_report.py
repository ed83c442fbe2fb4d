"""The per-person transparency report, from the audit log alone. Pure.

A person has the right to see who received which of their data (the OZG's
*Datenschutzcockpit*, § 10 OZG; Art. 15 GDPR). :func:`build_report` answers it
from ``audit.log`` events (``sozialhub.audit/1``, docs/audit-events.md) for all
pseudonyms of one person (one per key of the pseudonym key ring, so a key
rotation splits nothing), and :func:`render_html` writes the answer as one
self-contained page for the citizen. Every input is a pseudonym, an id or a
code, so the report can hold nothing else: no name, no address, no case data.

What the report lists (docs/transparency-report.md):

- **transfers**: every delivery of an application that reached the office's
  Fachverfahren (``deliver``/``delivered`` or ``duplicate``) and every
  Rechtskreiswechsel message sent to an office (``handover``/``sent``), once
  each (by delivery or message id, the earliest time): the receiving office,
  the sending office or portal, the data categories, the purpose, the legal
  basis (kind, id, legal reference; for a delivery from its ``gate``/``allowed``
  event) and the consents that were in force at that moment, as the consent
  events in the log say (granted, within their window, not revoked, expired or
  superseded), each marked whether it names this sender, recipient and purpose;
- **denied** transfers: ``gate``/``denied`` and Rechtskreiswechsel messages
  ``withheld`` at planning, with the reason code;
- **consents**: every consent record of the person in force or changed within
  the window, with its scope and whole history.

Only transfers and denials within the retention window ``[now - retention,
now]`` are listed (two years by default, as the Datenschutzcockpit keeps its
transfer logs); the report states the window. Events repeated by at-least-once
delivery (same event id) count once.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import html
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from hub.core.records import AuditEvent, timestamp

REPORT_TYPE = "sozialhub.transparency-report"
DEFAULT_RETENTION = dt.timedelta(days=731)  # two years; a leap day never cuts one off

# (stage, decision) of the events that record a completed transfer, and of refused ones.
DELIVERED = frozenset({("deliver", "delivered"), ("deliver", "duplicate")})
SENT = frozenset({("handover", "sent")})
DENIED = frozenset({("gate", "denied"), ("rechtskreiswechsel", "withheld")})
GATE_ALLOWED = ("gate", "allowed")
CONSENT_STAGE = "consent"
_ENDS = ("revoked", "expired", "superseded")


def _parse(text: str | None) -> dt.datetime | None:
    """An audit timestamp as an aware datetime; None for a missing or malformed one."""
    if not isinstance(text, str):
        return None
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def _unique(events: Iterable[AuditEvent]) -> list[tuple[dt.datetime, AuditEvent]]:
    """Each event id once (the earliest copy), with its time; events without a valid time dropped."""
    found: dict[str, tuple[dt.datetime, AuditEvent]] = {}
    for event in events:
        at = _parse(event.at)
        if at is None:
            continue
        known = found.get(event.event_id)
        if known is None or at < known[0]:
            found[event.event_id] = (at, event)
    return sorted(found.values(), key=lambda pair: (pair[0], pair[1].event_id))


def _path_part(event: AuditEvent, index: int) -> str | None:
    """A segment of a consent event's ``path`` (``<pseudonym>/<record id>/<event id>``)."""
    parts = (event.path or "").split("/")
    return parts[index] if len(parts) == 3 else None


# --- consents, folded from the log ----------------------------------------------------------


@dataclasses.dataclass
class _Consent:
    """One consent record as the consent events in the audit log describe it."""

    record_id: str
    person: str
    granting_office: str | None = None
    recipients: tuple[str, ...] = ()
    purpose: str | None = None
    categories: tuple[str, ...] = ()
    valid_from: dt.datetime | None = None
    valid_until: dt.datetime | None = None
    granted: bool = False
    conflict: bool = False  # two different grants under one id: never in force
    ends: dict[str, dt.datetime] = dataclasses.field(default_factory=dict)
    superseded_by: str | None = None
    history: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    def scope(self) -> tuple[Any, ...]:
        return (
            self.granting_office,
            self.recipients,
            self.purpose,
            self.categories,
            self.valid_from,
            self.valid_until,
        )

    def status(self, when: dt.datetime) -> str:
        """As :meth:`hub.core.consent.ConsentState.status`: half-open windows, earliest ends."""
        if not self.granted or self.conflict or self.valid_from is None:
            return "unknown"
        for kind in ("revoked", "superseded"):
            end = self.ends.get(kind)
            if end is not None and end <= when:
                return kind
        ends = [t for t in (self.ends.get("expired"), self.valid_until) if t is not None]
        if ends and min(ends) <= when:
            return "expired"
        if when < self.valid_from:
            return "not-yet-valid"
        return "valid"

    def end(self) -> dt.datetime | None:
        """When it stopped being in force (None: still in force, or open-ended)."""
        ends = [t for t in (*self.ends.values(), self.valid_until) if t is not None]
        return min(ends) if ends else None

    def overlaps(self, start: dt.datetime, until: dt.datetime) -> bool:
        """In force at some moment of ``[start, until]``."""
        if not self.granted or self.conflict or self.valid_from is None:
            return False
        end = self.end()
        return self.valid_from <= until and (end is None or end > start)

    def as_json(self, now: dt.datetime) -> dict[str, Any]:
        return {
            "record_id": self.record_id,
            "person": self.person,
            "granting_office": self.granting_office,
            "recipients": list(self.recipients),
            "purpose": self.purpose,
            "categories": list(self.categories),
            "valid_from": None if self.valid_from is None else timestamp(self.valid_from),
            "valid_until": None if self.valid_until is None else timestamp(self.valid_until),
            "status": self.status(now),
            "superseded_by": self.superseded_by,
            "history": sorted(self.history, key=lambda h: (h["effective_at"], h["event_id"])),
        }

    def in_force_json(self, transfer: dict[str, Any]) -> dict[str, Any]:
        """The record as it existed at a transfer, and whether it names that transfer's route."""
        return {
            "record_id": self.record_id,
            "granting_office": self.granting_office,
            "recipients": list(self.recipients),
            "purpose": self.purpose,
            "categories": list(self.categories),
            "valid_from": None if self.valid_from is None else timestamp(self.valid_from),
            "valid_until": None if self.valid_until is None else timestamp(self.valid_until),
            "covers_transfer": self.granting_office == transfer["from_office"]
            and transfer["to_office"] in self.recipients
            and self.purpose == transfer["purpose"],
        }


def _consents(
    events: list[tuple[dt.datetime, AuditEvent]], persons: frozenset[str]
) -> dict[str, _Consent]:
    """The person's consent records, folded from the ``consent`` events of the log."""
    found: dict[str, _Consent] = {}
    for at, event in events:
        if event.stage != CONSENT_STAGE:
            continue
        person = event.person or _path_part(event, 0)
        record_id = event.record_id or _path_part(event, 1)
        if person not in persons or not record_id:
            continue
        effective = _parse(event.effective_at) or at
        record = found.setdefault(record_id, _Consent(record_id, person))
        record.history.append(
            {
                "kind": event.decision,
                "effective_at": timestamp(effective),
                "recorded_at": timestamp(at),
                "event_id": event.event_id,
                "superseded_by": event.superseded_by,
            }
        )
        if event.decision == "granted":
            _grant(record, event)
        elif event.decision in _ENDS:
            earlier = record.ends.get(event.decision)
            record.ends[event.decision] = effective if earlier is None else min(earlier, effective)
            if event.decision == "superseded" and event.superseded_by:
                record.superseded_by = event.superseded_by
    return found


def _grant(record: _Consent, event: AuditEvent) -> None:
    draft = _Consent(
        record.record_id,
        record.person,
        granting_office=event.from_office or event.office,
        recipients=tuple(sorted(event.recipients or ())),
        purpose=event.purpose,
        categories=tuple(sorted(event.categories or ())),
        valid_from=_parse(event.valid_from),
        valid_until=_parse(event.valid_until),
    )
    if record.granted and record.scope() != draft.scope():
        record.conflict = True
        return
    record.granting_office, record.recipients = draft.granting_office, draft.recipients
    record.purpose, record.categories = draft.purpose, draft.categories
    record.valid_from, record.valid_until = draft.valid_from, draft.valid_until
    record.granted = True


# --- transfers and denials ------------------------------------------------------------------


def _reference(event: AuditEvent) -> str | None:
    """The transfer an event belongs to: its delivery id, else its Rechtskreiswechsel message id."""
    if event.delivery_id:
        return event.delivery_id
    if event.message_id:
        return event.message_id
    tail = (event.path or "").rpartition("/")[2]
    return tail if tail.startswith("rkm-") else None


def _basis(event: AuditEvent | None) -> dict[str, Any] | None:
    if event is None or event.basis_kind is None:
        return None
    return {
        "kind": event.basis_kind,
        "id": event.basis_id,
        "legal_reference": event.legal_reference,
    }


def _transfer(
    at: dt.datetime,
    event: AuditEvent,
    reference: str,
    gate: AuditEvent | None,
    consents: Mapping[str, _Consent],
) -> dict[str, Any]:
    """One transfer: the event's own fields, the gate's where the event lacks them."""
    decided = gate if gate is not None else event
    entry: dict[str, Any] = {
        "at": timestamp(at),
        "kind": "delivery" if event.delivery_id else "rechtskreiswechsel",
        "reference": reference,
        "event_id": event.event_id,
        "to_office": event.office or decided.office,
        "from_office": event.from_office or decided.from_office,
        "purpose": event.purpose or decided.purpose,
        "categories": sorted(
            event.categories if event.categories is not None else decided.categories or ()
        ),
        "basis": _basis(event) or _basis(gate),
        "note": event.reason or decided.reason,
        "consents_at_decision": sorted(
            event.consents if event.consents is not None else decided.consents or ()
        ),
    }
    entry["consents"] = [
        c.in_force_json(entry) for _, c in sorted(consents.items()) if c.status(at) == "valid"
    ]
    return entry


def _gate_before(
    gates: Mapping[str, list[tuple[dt.datetime, AuditEvent]]], reference: str, at: dt.datetime
) -> AuditEvent | None:
    """The last ``gate``/``allowed`` event of the transfer at or before ``at`` (else its first)."""
    found = gates.get(reference) or []
    before = [event for moment, event in found if moment <= at]
    if before:
        return before[-1]
    return found[0][1] if found else None


def build_report(
    events: Iterable[AuditEvent],
    pseudonyms: frozenset[str],
    now: dt.datetime,
    retention: dt.timedelta = DEFAULT_RETENTION,
) -> dict[str, Any]:
    """The transparency report of the person with ``pseudonyms``, as of ``now``.

    ``events`` is the audit log (any order, duplicates allowed); ``pseudonyms`` are
    all pseudonyms of the person (one per key of the ring). Only transfers and
    denials at ``[now - retention, now]`` are listed.
    """
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    if retention <= dt.timedelta(0):
        raise ValueError("retention must be positive")
    start = now - retention
    unique = _unique(events)
    consents = _consents(unique, pseudonyms)
    gates: dict[str, list[tuple[dt.datetime, AuditEvent]]] = {}
    for at, event in unique:
        reference = _reference(event)
        if (event.stage, event.decision) == GATE_ALLOWED and reference is not None:
            gates.setdefault(reference, []).append((at, event))
    transfers: dict[str, dict[str, Any]] = {}
    denied: dict[str, dict[str, Any]] = {}
    for at, event in unique:
        kind = (event.stage, event.decision)
        reference = _reference(event)
        if event.person not in pseudonyms or reference is None or not start <= at <= now:
            continue
        if kind in DELIVERED or kind in SENT:
            if reference not in transfers:  # the earliest: events are in time order
                gate = _gate_before(gates, reference, at)
                transfers[reference] = _transfer(at, event, reference, gate, consents)
        elif kind in DENIED and reference not in denied:
            denied[reference] = {
                "at": timestamp(at),
                "kind": "delivery" if event.delivery_id else "rechtskreiswechsel",
                "reference": reference,
                "event_id": event.event_id,
                "to_office": event.office,
                "from_office": event.from_office,
                "purpose": event.purpose,
                "categories": sorted(event.categories or ()),
                "reason": event.reason,
                "basis": _basis(event),
            }
    listed = {c["record_id"] for t in transfers.values() for c in t["consents"]}
    shown = [
        c.as_json(now)
        for record_id, c in sorted(consents.items())
        if record_id in listed
        or c.overlaps(start, now)
        or any(start <= (_parse(h["recorded_at"]) or start) <= now for h in c.history)
    ]
    return {
        "type": REPORT_TYPE,
        "v": 1,
        "generated_at": timestamp(now),
        "persons": sorted(pseudonyms),
        "retention": {
            "days": retention.days,
            "from": timestamp(start),
            "until": timestamp(now),
            "applies_to": "transfers and denied transfers; consents in force or changed within it",
        },
        "transfers": sorted(transfers.values(), key=lambda t: (t["at"], t["reference"])),
        "denied": sorted(denied.values(), key=lambda d: (d["at"], d["reference"])),
        "consents": shown,
    }


# --- the page for the citizen ---------------------------------------------------------------

# Labels in German for the reader; the codes stay beside them.
PURPOSE_LABELS = {
    "rechtskreiswechsel-handover": "Übergabe Ihres Falls an die Stelle des neuen Rechtskreises",
    "joint-case-management": "Gemeinsame Fallbearbeitung über Rechtskreise hinweg",
    "evidence-reuse": "Wiederverwendung von Nachweisen, die Sie bereits eingereicht haben",
    "portal-postbox-delivery": "Zustellung von Bescheiden in Ihr Postfach im Portal",
    "application-delivery": "Weiterleitung Ihres Antrags an die zuständige Stelle",
}
CATEGORY_LABELS = {
    "identity-address": "Identität und Anschrift",
    "household": "Haushalt / Bedarfsgemeinschaft",
    "income": "Einkommen",
    "assets": "Vermögen",
    "housing-costs": "Kosten der Unterkunft",
    "residence-status": "Aufenthaltsstatus",
    "documents": "Nachweise (Dokumente)",
    "health": "Gesundheitsdaten (Art. 9 DSGVO)",
    "youth-welfare": "Daten der Jugendhilfe (§ 65 SGB VIII)",
}
BASIS_LABELS = {
    "consent": "Ihre Einwilligung",
    "statute": "Gesetzliche Befugnis",
    "no-transfer": "Keine Übermittlung (die Stelle hat die Daten selbst)",
}
KIND_LABELS = {"delivery": "Antrag", "rechtskreiswechsel": "Rechtskreiswechsel"}
CONSENT_EVENT_LABELS = {
    "granted": "erteilt",
    "revoked": "widerrufen",
    "expired": "abgelaufen",
    "superseded": "ersetzt",
}
STATUS_LABELS = {
    "valid": "gültig",
    "not-yet-valid": "noch nicht gültig",
    "expired": "abgelaufen",
    "superseded": "ersetzt",
    "revoked": "widerrufen",
    "unknown": "unbekannt",
}
REASON_LABELS = {
    "CONSENT_REVOKED": "Ihre Einwilligung war widerrufen",
    "CONSENT_SUPERSEDED": "Ihre Einwilligung war durch eine neuere ersetzt",
    "CONSENT_EXPIRED": "Ihre Einwilligung war abgelaufen",
    "CONSENT_NOT_YET_VALID": "Ihre Einwilligung galt noch nicht",
    "CONSENT_SCOPE": "Ihre Einwilligung umfasste diese Daten nicht",
    "CONSENT_MISSING": "Es lag keine Einwilligung vor",
    "NO_BASIS": "Es gab keine Rechtsgrundlage",
    "SPECIAL_CATEGORY": "Besonders geschützte Daten dürfen nicht auf Einwilligung allein übermittelt werden",
    "OTHER_BASIS": "Dafür gilt eine andere Rechtsgrundlage",
    "PURPOSE_LIMIT": "Für diesen Zweck nicht erforderlich (Datenminimierung)",
    "TRANSFER_INVALID": "Die Anfrage war unvollständig",
}

_STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:72rem;padding:0 1rem;color:#1a1a1a}
h1{font-size:1.6rem}h2{font-size:1.25rem;margin-top:2rem}
table{border-collapse:collapse;width:100%;margin:.5rem 0}
th,td{border:1px solid #999;padding:.35rem .5rem;text-align:left;vertical-align:top}
th{background:#eee}code{font-size:.85em;color:#444}
.note{color:#444;font-size:.9rem}
"""


NONE = "\N{EN DASH}"  # shown for a missing value


def _e(value: Any) -> str:
    """Any value as escaped text (``None`` as a dash)."""
    return NONE if value is None else html.escape(str(value), quote=True)


def _time(text: Any) -> str:
    moment = _parse(text) if isinstance(text, str) else None
    if moment is None:
        return _e(text)
    return _e(moment.astimezone(dt.UTC).strftime("%d.%m.%Y %H:%M UTC"))


def _label(code: Any, labels: Mapping[str, str]) -> Any:
    """The German label of a code, or the value itself when it has none."""
    return labels.get(code, code) if isinstance(code, str) else code


def _labelled(code: Any, labels: Mapping[str, str]) -> str:
    """The German label and the code, e.g. ``Einkommen <code>income</code>``, escaped."""
    if code is None:
        return NONE
    label = labels.get(code) if isinstance(code, str) else None
    if label is None:
        return f"<code>{_e(code)}</code>"
    return f"{_e(label)} <code>{_e(code)}</code>"


def _office(office: Any, names: Mapping[str, str]) -> str:
    if office is None:
        return NONE
    name = names.get(office) if isinstance(office, str) else None
    return f"<code>{_e(office)}</code>" if name is None else f"{_e(name)} <code>{_e(office)}</code>"


def _categories(codes: Any) -> str:
    if not codes:
        return "keine (nur eine Mitteilung ohne Falldaten)"
    return "<br>".join(_labelled(code, CATEGORY_LABELS) for code in codes)


def _basis_cell(basis: Any) -> str:
    if not isinstance(basis, dict):
        return NONE
    return (
        f"{_labelled(basis.get('kind'), BASIS_LABELS)}<br>{_e(basis.get('legal_reference'))}"
        f"<br><code>{_e(basis.get('id'))}</code>"
    )


def _consent_cell(consents: Any) -> str:
    if not consents:
        return "keine"
    lines = []
    for c in consents:
        covers = "deckt diese Übermittlung" if c.get("covers_transfer") else "andere Übermittlung"
        lines.append(f"<code>{_e(c.get('record_id'))}</code> ({_e(covers)})")
    return "<br>".join(lines)


def _window(consent: Mapping[str, Any]) -> str:
    until = consent.get("valid_until")
    return f"{_time(consent.get('valid_from'))} bis {_time(until) if until else 'auf Widerruf'}"


def _transfer_cell(transfer: Mapping[str, Any]) -> str:
    """What kind of transfer, its reference, and why less was sent than asked for, if so."""
    kind, reference = _label(transfer.get("kind"), KIND_LABELS), transfer.get("reference")
    cell = f"{_e(kind)}<br><code>{_e(reference)}</code>"
    note = transfer.get("note")
    if note:
        cell += f"<br>Nicht alle angefragten Daten übermittelt: {_labelled(note, REASON_LABELS)}"
    return cell


def _table(headers: tuple[str, ...], rows: Sequence[tuple[str, ...]], empty: str) -> str:
    if not rows:
        return f"<p>{_e(empty)}</p>"
    head = "".join(f'<th scope="col">{_e(h)}</th>' for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render_html(report: Mapping[str, Any], office_names: Mapping[str, str] | None = None) -> str:
    """The report as one self-contained HTML page in German: no scripts, no external resources.

    Every value from the report is escaped. ``office_names`` (office and portal id ->
    name, from the configuration) puts readable names beside the ids.
    """
    names = office_names or {}
    retention = report.get("retention") or {}
    transfers = [
        (
            _time(t.get("at")),
            _office(t.get("to_office"), names),
            _office(t.get("from_office"), names),
            _categories(t.get("categories")),
            _labelled(t.get("purpose"), PURPOSE_LABELS),
            _basis_cell(t.get("basis")),
            _consent_cell(t.get("consents")),
            _transfer_cell(t),
        )
        for t in report.get("transfers") or ()
    ]
    denied = [
        (
            _time(d.get("at")),
            _office(d.get("to_office"), names),
            _office(d.get("from_office"), names),
            _categories(d.get("categories")),
            _labelled(d.get("purpose"), PURPOSE_LABELS),
            _labelled(d.get("reason"), REASON_LABELS),
            f"<code>{_e(d.get('reference'))}</code>",
        )
        for d in report.get("denied") or ()
    ]
    consents = [
        (
            f"<code>{_e(c.get('record_id'))}</code>",
            _office(c.get("granting_office"), names),
            "<br>".join(_office(r, names) for r in c.get("recipients") or ()) or NONE,
            _labelled(c.get("purpose"), PURPOSE_LABELS),
            _categories(c.get("categories")),
            _window(c),
            _labelled(c.get("status"), STATUS_LABELS),
            "<br>".join(
                f"{_time(h.get('effective_at'))}: {_e(_label(h.get('kind'), CONSENT_EVENT_LABELS))}"
                for h in c.get("history") or ()
            ),
        )
        for c in report.get("consents") or ()
    ]
    persons = ", ".join(f"<code>{_e(p)}</code>" for p in report.get("persons") or ())
    return (
        "<!DOCTYPE html>\n"
        '<html lang="de"><head><meta charset="utf-8">'
        '<meta http-equiv="Content-Security-Policy" '
        "content=\"default-src 'none'; style-src 'unsafe-inline'\">"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        "<title>Transparenzbericht: Übermittlungen Ihrer Sozialdaten</title>"
        f"<style>{_STYLE}</style></head><body>"
        "<h1>Transparenzbericht: Wer hat welche Ihrer Sozialdaten erhalten?</h1>"
        f"<p>Erstellt am {_time(report.get('generated_at'))}. Zeitraum: "
        f"{_time(retention.get('from'))} bis {_time(retention.get('until'))} "
        f"({_e(retention.get('days'))} Tage; Protokolle über Übermittlungen werden zwei Jahre "
        "aufbewahrt).</p>"
        f'<p class="note">Sie werden im Bericht nur unter Pseudonymen geführt: {persons}. '
        "Der Bericht enthält keine Namen, Anschriften oder Falldaten, nur, welche Stelle welche "
        "Arten von Daten wann, wofür und auf welcher Rechtsgrundlage erhalten hat.</p>"
        "<h2>Übermittlungen</h2>"
        + _table(
            (
                "Zeitpunkt",
                "Empfangende Stelle",
                "Absendende Stelle",
                "Datenkategorien",
                "Zweck",
                "Rechtsgrundlage",
                "Einwilligungen zu diesem Zeitpunkt",
                "Vorgang",
            ),
            transfers,
            "Im Zeitraum wurden keine Daten übermittelt.",
        )
        + "<h2>Abgelehnte Übermittlungen</h2>"
        + _table(
            (
                "Zeitpunkt",
                "Angefragte Stelle",
                "Absendende Stelle",
                "Datenkategorien",
                "Zweck",
                "Grund",
                "Vorgang",
            ),
            denied,
            "Im Zeitraum wurde keine Übermittlung abgelehnt.",
        )
        + "<h2>Ihre Einwilligungen</h2>"
        + _table(
            (
                "Einwilligung",
                "Erteilt gegenüber",
                "Empfangende Stellen",
                "Zweck",
                "Datenkategorien",
                "Gültig",
                "Stand heute",
                "Verlauf",
            ),
            consents,
            "Im Zeitraum lagen keine Einwilligungen vor.",
        )
        + '<p class="note">Eine Einwilligung können Sie jederzeit mit Wirkung für die Zukunft '
        "widerrufen (§ 67b SGB X, Art. 7 Abs. 3 DSGVO). Fragen beantwortet die oder der "
        "Datenschutzbeauftragte Ihrer Stelle.</p></body></html>\n"
    )
