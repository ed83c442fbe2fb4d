"""Canonical submission -> Avro record ``fv-avro`` v1 for a Kafka topic (an ASSUMED contract).

The schema is :data:`SCHEMA` (record ``de.sozialhub.vendor.fvavro.v1.Delivery``),
published as ``schemas/vendor/fv-avro-1.avsc``. Every record is written in Avro
**single-object encoding**: the marker ``C3 01``, the 8-byte little-endian
CRC-64-AVRO fingerprint of the schema's Parsing Canonical Form
(:data:`FINGERPRINT`), then the Avro binary body. A consumer without a schema
registry recognises the writer schema by the fingerprint.

Rules (docs/formats.md):

- compatibility **BACKWARD_TRANSITIVE**: every later version of this schema
  reads every record written with an earlier one
  (:func:`hub.core.mapping.avro_compat.check_backward_compatible`);
- documents are embedded as ``bytes``; the hub receipt too;
- absent optional values are ``null`` (union with ``null`` first, default
  ``null``); dates are Avro ``date`` (days since 1970-01-01);
- text is carried unchanged; a control character (Unicode Cc) is
  ``FIELD_FORMAT``, a lone surrogate (not encodable in UTF-8) ``FIELD_CHARSET``.

Rejections name ``mapping/fv-avro/<field>``, never the value.
"""

from __future__ import annotations

import binascii
import datetime as dt
import io
import re
from typing import Any

import fastavro

from hub.core.errors import Reason, Rejection
from hub.core.mapping import DeliveryContext, Mapping, plain_date
from hub.core.model import Address, Code, Document, Person, Submission
from hub.core.route import Route

FORMAT = "fv-avro"
VERSION = "fv-avro/1.0.0"
NAMESPACE = "de.sozialhub.vendor.fvavro.v1"
COMPATIBILITY = "BACKWARD_TRANSITIVE"
MARKER = b"\xc3\x01"
_BAD = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def _field(name: str, kind: Any, doc: str) -> dict[str, Any]:
    return {"name": name, "type": kind, "doc": doc}


def _optional(name: str, kind: Any, doc: str) -> dict[str, Any]:
    return {"name": name, "type": ["null", kind], "default": None, "doc": doc}


_DATE = {"type": "int", "logicalType": "date"}

SCHEMA: dict[str, Any] = {
    "type": "record",
    "name": "Delivery",
    "namespace": NAMESPACE,
    "doc": (
        "fv-avro v1: one case handed over to a Fachverfahren. ASSUMED contract: the hub's "
        "proposal until the vendor supplies its specification. Written in Avro single-object "
        "encoding (C3 01, CRC-64-AVRO fingerprint, body). Compatibility BACKWARD_TRANSITIVE: "
        "every later version of this schema reads every earlier record. No string holds a "
        "control character. Rules: docs/formats.md."
    ),
    "fields": [
        _field("mappingVersion", "string", "mapping version, e.g. fv-avro/1.0.0"),
        _field("deliveryId", "string", "delivery id (dlv-...): deduplicate on it"),
        _field("submissionId", "string", "submission id (sub-...)"),
        _field(
            "office",
            {
                "type": "record",
                "name": "Office",
                "doc": "the receiving office",
                "fields": [
                    _field("id", "string", "office id"),
                    _optional("dvdv", "string", "the office's DVDV key, when configured"),
                ],
            },
            "the receiving office",
        ),
        _field("rule", "string", "routing rule: reader or area"),
        _field(
            "case",
            {
                "type": "record",
                "name": "Case",
                "doc": "the case",
                "fields": [
                    _field("caseId", "string", "case id"),
                    _field("messageId", "string", "message id"),
                    _optional("applicationDate", _DATE, "application date"),
                    _field("portal", "string", "the portal's DVDV key (message author)"),
                    _field(
                        "caseType",
                        {
                            "type": "record",
                            "name": "Code",
                            "doc": "an XOEV code: value, list URI and list version together",
                            "fields": [
                                _field("code", "string", "code value"),
                                _field("list", "string", "code list URI"),
                                _optional("listVersion", "string", "code list version"),
                                _optional("name", "string", "code name"),
                            ],
                        },
                        "case type",
                    ),
                ],
            },
            "the case",
        ),
        _field(
            "benefits",
            {"type": "array", "items": "Code"},
            "every benefit routed to this office, in request order (LeiKa)",
        ),
        _field(
            "persons",
            {
                "type": "array",
                "items": {
                    "type": "record",
                    "name": "Person",
                    "doc": "a person of the household",
                    "fields": [
                        _field("personId", "string", "person id within the submission"),
                        _field("applicant", "boolean", "true for the applicant"),
                        _field("role", "Code", "role"),
                        _field("givenName", "string", "given name"),
                        _field("familyName", "string", "family name"),
                        _optional("birthDate", _DATE, "birth date"),
                        _optional("sex", "Code", "sex"),
                        _optional(
                            "address",
                            {
                                "type": "record",
                                "name": "Address",
                                "doc": "an address",
                                "fields": [
                                    _optional("street", "string", "street"),
                                    _optional("houseNumber", "string", "house number"),
                                    _optional("postcode", "string", "postcode"),
                                    _optional("town", "string", "town"),
                                    _optional("regionKey", "Code", "AGS/ARS, when supplied"),
                                ],
                            },
                            "address",
                        ),
                    ],
                },
            },
            "every person of the submission, in submission order",
        ),
        _field(
            "documents",
            {
                "type": "array",
                "items": {
                    "type": "record",
                    "name": "Document",
                    "doc": "a document, embedded",
                    "fields": [
                        _field("documentId", "string", "document id"),
                        _optional("name", "string", "document name"),
                        _optional("kind", "Code", "document kind"),
                        _field("mimeType", "string", "media type"),
                        _optional("fileName", "string", "the sender's file name"),
                        _field("size", "long", "size of content in bytes"),
                        _field("sha256", "string", "SHA-256 of content, lower-case hex"),
                        _field("content", "bytes", "the document"),
                    ],
                },
            },
            "every document, embedded",
        ),
        _field("hubReceipt", "bytes", "the signed hub receipt (XML)"),
    ],
}

PARSED = fastavro.parse_schema(SCHEMA)
CANONICAL_FORM: str = fastavro.schema.to_parsing_canonical_form(SCHEMA)
# fastavro gives the fingerprint as hex of its little-endian bytes, the order the header uses.
FINGERPRINT: bytes = bytes.fromhex(fastavro.schema.fingerprint(CANONICAL_FORM, "CRC-64-AVRO"))
HEADER = MARKER + FINGERPRINT


def _check(value: str, name: str) -> str:
    if _BAD.search(value):
        reason = Reason.FIELD_CHARSET if _SURROGATE.search(value) else Reason.FIELD_FORMAT
        raise Rejection(reason, f"mapping/{FORMAT}/{name}")
    return value


def _maybe(value: str | None, name: str) -> str | None:
    return None if value is None else _check(value, name)


def _date(value: str | None, name: str) -> dt.date | None:
    if value is None:
        return None
    return dt.date.fromisoformat(plain_date(value, f"mapping/{FORMAT}/{name}"))


def _code(code: Code | None) -> dict[str, Any] | None:
    if code is None:
        return None
    return {
        "code": _check(code.code, "code"),
        "list": _check(code.list_uri, "list"),
        "listVersion": _maybe(code.list_version, "listVersion"),
        "name": _maybe(code.name, "name"),
    }


def _address(address: Address | None) -> dict[str, Any] | None:
    if address is None:
        return None
    return {
        "street": _maybe(address.street, "street"),
        "houseNumber": _maybe(address.house_number, "houseNumber"),
        "postcode": _maybe(address.postcode, "postcode"),
        "town": _maybe(address.town, "town"),
        "regionKey": _code(address.region_key),
    }


def _person(person: Person) -> dict[str, Any]:
    return {
        "personId": _check(person.person_id, "personId"),
        "applicant": person.applicant,
        "role": _code(person.role),
        "givenName": _check(person.given_name, "givenName"),
        "familyName": _check(person.family_name, "familyName"),
        "birthDate": _date(person.birth_date, "birthDate"),
        "sex": _code(person.sex),
        "address": _address(person.address),
    }


def _document(document: Document) -> dict[str, Any]:
    try:
        content = binascii.a2b_base64(document.content_b64, strict_mode=True)
    except (binascii.Error, ValueError):
        raise Rejection(Reason.FIELD_FORMAT, f"mapping/{FORMAT}/content") from None
    return {
        "documentId": _check(document.document_id, "documentId"),
        "name": _maybe(document.name, "name"),
        "kind": _code(document.kind),
        "mimeType": _check(document.mime_type, "mimeType"),
        "fileName": _maybe(document.file_name, "fileName"),
        "size": document.size,
        "sha256": document.sha256,
        "content": content,
    }


def record(submission: Submission, route: Route, context: DeliveryContext) -> dict[str, Any]:
    """The Avro datum (plain Python values) for one delivery."""
    if not context.benefits:
        raise Rejection(Reason.MAPPING_ERROR, f"mapping/{FORMAT}/benefits")
    requested = {b.code: b for b in submission.benefits}
    if any(key not in requested for key in context.benefits):
        raise Rejection(Reason.MAPPING_ERROR, f"mapping/{FORMAT}/benefits")
    return {
        "mappingVersion": VERSION,
        "deliveryId": context.delivery_id,
        "submissionId": context.submission_id,
        "office": {
            "id": _check(route.office.office_id, "office"),
            "dvdv": _maybe(route.office.dvdv, "dvdv"),
        },
        "rule": route.rule,
        "case": {
            "caseId": _check(submission.case_id, "caseId"),
            "messageId": _check(submission.message_id, "messageId"),
            "applicationDate": _date(submission.application_date, "applicationDate"),
            "portal": _check(submission.author.key, "portal"),
            "caseType": _code(submission.case_type),
        },
        "benefits": [_code(requested[key]) for key in context.benefits],
        "persons": [_person(p) for p in submission.persons],
        "documents": [_document(d) for d in submission.documents],
        "hubReceipt": context.receipt,
    }


def encode(datum: dict[str, Any]) -> bytes:
    """``datum`` in single-object encoding under :data:`SCHEMA`."""
    out = io.BytesIO()
    out.write(HEADER)
    fastavro.schemaless_writer(out, PARSED, datum)
    return out.getvalue()


def decode(data: bytes) -> dict[str, Any]:
    """A single-object encoded record of this schema version, as plain Python values.

    Raises ``ValueError`` for a wrong marker or an unknown fingerprint.
    """
    if data[:2] != MARKER:
        raise ValueError("not Avro single-object encoding")
    if data[2:10] != FINGERPRINT:
        raise ValueError("written with another schema (fingerprint)")
    datum = fastavro.schemaless_reader(io.BytesIO(data[10:]), PARSED, PARSED)
    if not isinstance(datum, dict):
        raise TypeError("not a record")
    return datum


# ------------------------------------------------------------------ the fast writer
#
# fastavro resolves every union by validating the datum against each branch, which
# makes this union-heavy record cost well over 100 us. render() therefore writes the
# Avro binary encoding itself, straight from the canonical model, in SCHEMA's field
# order; tests/unit/test_formats_avro.py checks it byte for byte against
# fastavro.schemaless_writer(record(...)). Values are not checked one by one on this
# path: control characters are searched once over all strings, and any failure
# (control character, lone surrogate, date) re-runs record(), which names the field.

_EPOCH = dt.date(1970, 1, 1)
_SMALL = [bytes([n << 1]) for n in range(64)]  # zig-zag varints of 0..63: one byte
_NULL = b"\x00"  # union branch 0 (null)
_VALUE = b"\x02"  # union branch 1 (the value)
_FALSE, _TRUE = b"\x00", b"\x01"


class _SlowPathError(Exception):
    """A value the fast writer does not take; record() finds and names it."""


def _long(number: int) -> bytes:
    """Avro ``long``: zig-zag, then base-128 varint, least significant group first."""
    if 0 <= number < 64:
        return _SMALL[number]
    zigzag = (number << 1) ^ (number >> 63)
    out = bytearray()
    while zigzag >= 0x80:
        out.append((zigzag & 0x7F) | 0x80)
        zigzag >>= 7
    out.append(zigzag)
    return bytes(out)


class _Writer:
    __slots__ = ("parts", "texts")

    def __init__(self) -> None:
        self.parts: list[bytes] = [HEADER]
        self.texts: list[str] = []

    def string(self, value: str) -> None:
        self.texts.append(value)
        data = value.encode("utf-8")  # a lone surrogate raises UnicodeEncodeError
        self.parts.append(_long(len(data)))
        self.parts.append(data)

    def optional(self, value: str | None) -> None:
        if value is None:
            self.parts.append(_NULL)
        else:
            self.parts.append(_VALUE)
            self.string(value)

    def date(self, value: str | None) -> None:
        if value is None:
            self.parts.append(_NULL)
            return
        try:
            days = (dt.date.fromisoformat(plain_date(value, "")) - _EPOCH).days
        except Rejection:
            raise _SlowPathError from None
        self.parts.append(_VALUE)
        self.parts.append(_long(days))

    def code(self, code: Code) -> None:
        self.string(code.code)
        self.string(code.list_uri)
        self.optional(code.list_version)
        self.optional(code.name)

    def optional_code(self, code: Code | None) -> None:
        if code is None:
            self.parts.append(_NULL)
        else:
            self.parts.append(_VALUE)
            self.code(code)

    def count(self, items: int) -> None:
        """The block header of an array of ``items`` (an empty array is just the end marker)."""
        if items:
            self.parts.append(_long(items))

    def person(self, person: Person) -> None:
        self.string(person.person_id)
        self.parts.append(_TRUE if person.applicant else _FALSE)
        self.code(person.role)
        self.string(person.given_name)
        self.string(person.family_name)
        self.date(person.birth_date)
        self.optional_code(person.sex)
        address = person.address
        if address is None:
            self.parts.append(_NULL)
            return
        self.parts.append(_VALUE)
        self.optional(address.street)
        self.optional(address.house_number)
        self.optional(address.postcode)
        self.optional(address.town)
        self.optional_code(address.region_key)

    def document(self, document: Document) -> None:
        self.string(document.document_id)
        self.optional(document.name)
        self.optional_code(document.kind)
        self.string(document.mime_type)
        self.optional(document.file_name)
        self.parts.append(_long(document.size))
        self.string(document.sha256)
        content = binascii.a2b_base64(document.content_b64, strict_mode=True)
        self.parts.append(_long(len(content)))
        self.parts.append(content)


def _fast(submission: Submission, route: Route, context: DeliveryContext) -> bytes:
    requested = {b.code: b for b in submission.benefits}
    out = _Writer()
    parts = out.parts
    out.string(VERSION)
    out.string(context.delivery_id)
    out.string(context.submission_id)
    out.string(route.office.office_id)
    out.optional(route.office.dvdv)
    out.string(route.rule)
    out.string(submission.case_id)
    out.string(submission.message_id)
    out.date(submission.application_date)
    out.string(submission.author.key)
    out.code(submission.case_type)
    out.count(len(context.benefits))
    for key in context.benefits:
        out.code(requested[key])
    parts.append(_NULL)
    out.count(len(submission.persons))
    for person in submission.persons:
        out.person(person)
    parts.append(_NULL)
    out.count(len(submission.documents))
    for document in submission.documents:
        out.document(document)
    parts.append(_NULL)
    parts.append(_long(len(context.receipt)))
    parts.append(context.receipt)
    if _BAD.search("".join(out.texts)):
        raise _SlowPathError
    return b"".join(parts)


def render(submission: Submission, route: Route, context: DeliveryContext) -> bytes:
    if not context.benefits:
        raise Rejection(Reason.MAPPING_ERROR, f"mapping/{FORMAT}/benefits")
    requested = {b.code for b in submission.benefits}
    if any(key not in requested for key in context.benefits):
        raise Rejection(Reason.MAPPING_ERROR, f"mapping/{FORMAT}/benefits")
    try:
        return _fast(submission, route, context)
    except (_SlowPathError, UnicodeEncodeError, binascii.Error, ValueError):
        pass
    # Slow path, only for a value the contract refuses: record() raises naming the field.
    return encode(record(submission, route, context))


MAPPING = Mapping(
    format=FORMAT,
    version=VERSION,
    media_type="avro/binary",
    file_suffix=".bin",  # one datum, not an Avro object container file (.avro)
    render=render,
)
