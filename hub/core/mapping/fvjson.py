"""Canonical submission -> JSON document ``fv-json`` v1 for an HTTP endpoint (an ASSUMED contract).

One UTF-8 JSON object per delivery, valid against :data:`SCHEMA` (JSON Schema
2020-12, published as ``schemas/vendor/fv-json-1.schema.json``). Documents are
embedded (base64 ``content`` with ``mimeType``, ``size`` and ``sha256``).

Rules (docs/formats.md):

- deterministic bytes: keys sorted, no insignificant whitespace, no floats
  (sizes are integers), non-ASCII characters written as UTF-8, not escaped;
- absent optional values are left out, never ``null``;
- text is carried unchanged (no length limit beyond the payload schema's, no
  transliteration; markup, quotes and leading ``=``, ``+``, ``-``, ``@`` are
  plain string content);
- a control character (Unicode Cc) in any string is ``FIELD_FORMAT``: JSON could
  escape it, but the contract forbids it, as ``fv-xml`` does; a lone surrogate
  (not encodable in UTF-8) is ``FIELD_CHARSET``;
- dates are plain ``YYYY-MM-DD``, else ``FIELD_FORMAT``.

Rejections name ``mapping/fv-json/<property>``, never the value.
"""

from __future__ import annotations

import base64
import json
import re
from typing import Any

from hub.core.errors import Reason, Rejection
from hub.core.mapping import DeliveryContext, Mapping, plain_date
from hub.core.model import Address, Code, Document, Person, Submission
from hub.core.route import Route

FORMAT = "fv-json"
VERSION = "fv-json/1.0.0"
SCHEMA_ID = "urn:sozialhub:vendor:fv-json:1"
MAX_BENEFITS = 20
_BAD = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_SURROGATE = re.compile("[\ud800-\udfff]")

_NO_CONTROL = {"not": {"pattern": "[\\u0000-\\u001F\\u007F-\\u009F]"}}


def _text(description: str) -> dict[str, Any]:
    return {"$ref": "#/$defs/Text", "description": description}


def _object(required: list[str], properties: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "type": "object",
        "description": description,
        "additionalProperties": False,
        "required": required,
        "properties": properties,
    }


SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": SCHEMA_ID,
    "title": "fv-json v1: one case handed over to a Fachverfahren",
    **_object(
        [
            "mappingVersion",
            "deliveryId",
            "submissionId",
            "office",
            "rule",
            "case",
            "benefits",
            "persons",
            "documents",
            "hubReceipt",
        ],
        {
            "mappingVersion": {"const": VERSION, "description": "mapping version"},
            "deliveryId": {
                "type": "string",
                "pattern": "^dlv-[0-9a-f]{32}$",
                "description": "delivery id: deduplicate on it",
            },
            "submissionId": {
                "type": "string",
                "pattern": "^sub-[0-9a-f]{32}$",
                "description": "submission id",
            },
            "office": _object(
                ["id"],
                {
                    "id": _text("office id"),
                    "dvdv": _text("the office's DVDV key, when configured"),
                },
                "the receiving office",
            ),
            "rule": {"enum": ["reader", "area"], "description": "routing rule"},
            "case": _object(
                ["caseId", "messageId", "portal", "caseType"],
                {
                    "caseId": _text("case id"),
                    "messageId": _text("message id"),
                    "applicationDate": {"$ref": "#/$defs/Date"},
                    "portal": _text("the portal's DVDV key (message author)"),
                    "caseType": {"$ref": "#/$defs/Code"},
                },
                "the case",
            ),
            "benefits": {
                "type": "array",
                "description": "every benefit routed to this office, in request order (LeiKa)",
                "minItems": 1,
                "maxItems": MAX_BENEFITS,
                "items": {"$ref": "#/$defs/Code"},
            },
            "persons": {
                "type": "array",
                "description": "every person of the submission, in submission order",
                "minItems": 1,
                "items": {"$ref": "#/$defs/Person"},
            },
            "documents": {
                "type": "array",
                "description": "every document, embedded",
                "items": {"$ref": "#/$defs/Document"},
            },
            "hubReceipt": {
                "type": "string",
                "contentEncoding": "base64",
                "contentMediaType": "application/xml",
                "pattern": "^[A-Za-z0-9+/]*={0,2}$",
                "description": "the signed hub receipt (XML), base64",
            },
        },
        (
            "ASSUMED contract: the hub's proposal until the vendor supplies its specification; "
            "it changes when the vendor does. One delivery: UTF-8, keys sorted, absent values "
            "left out, no control characters in any string. Rules: docs/formats.md."
        ),
    ),
    "$defs": {
        "Text": {"type": "string", **_NO_CONTROL},
        "Date": {
            "type": "string",
            "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}$",
            "description": "a calendar date YYYY-MM-DD",
        },
        "Code": _object(
            ["code", "list"],
            {
                "code": _text("code value"),
                "list": _text("code list URI"),
                "listVersion": _text("code list version"),
                "name": _text("code name"),
            },
            "an XOEV code: value, list URI and list version travel together",
        ),
        "Address": _object(
            [],
            {
                "street": _text("street"),
                "houseNumber": _text("house number"),
                "postcode": _text("postcode"),
                "town": _text("town"),
                "regionKey": {"$ref": "#/$defs/Code"},
            },
            "an address; regionKey is the AGS/ARS when the portal supplied it",
        ),
        "Person": _object(
            ["personId", "applicant", "role", "givenName", "familyName"],
            {
                "personId": _text("person id within the submission"),
                "applicant": {"type": "boolean"},
                "role": {"$ref": "#/$defs/Code"},
                "givenName": _text("given name"),
                "familyName": _text("family name"),
                "birthDate": {"$ref": "#/$defs/Date"},
                "sex": {"$ref": "#/$defs/Code"},
                "address": {"$ref": "#/$defs/Address"},
            },
            "a person of the household",
        ),
        "Document": _object(
            ["documentId", "mimeType", "size", "sha256", "content"],
            {
                "documentId": _text("document id"),
                "name": _text("document name"),
                "kind": {"$ref": "#/$defs/Code"},
                "mimeType": _text("media type"),
                "fileName": _text("the sender's file name"),
                "size": {"type": "integer", "minimum": 0, "description": "size in bytes"},
                "sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
                "content": {
                    "type": "string",
                    "contentEncoding": "base64",
                    "pattern": "^[A-Za-z0-9+/]*={0,2}$",
                },
            },
            "a document, embedded: content is base64 of size bytes with this SHA-256",
        ),
    },
}


def _check(value: str, name: str) -> str:
    if _BAD.search(value):
        reason = Reason.FIELD_CHARSET if _SURROGATE.search(value) else Reason.FIELD_FORMAT
        raise Rejection(reason, f"mapping/{FORMAT}/{name}")
    return value


def _optional(target: dict[str, Any], key: str, value: str | None) -> None:
    if value is not None:
        target[key] = _check(value, key)


def _code(code: Code) -> dict[str, Any]:
    out = {"code": _check(code.code, "code"), "list": _check(code.list_uri, "list")}
    _optional(out, "listVersion", code.list_version)
    _optional(out, "name", code.name)
    return out


def _address(address: Address) -> dict[str, Any]:
    out: dict[str, Any] = {}
    _optional(out, "street", address.street)
    _optional(out, "houseNumber", address.house_number)
    _optional(out, "postcode", address.postcode)
    _optional(out, "town", address.town)
    if address.region_key is not None:
        out["regionKey"] = _code(address.region_key)
    return out


def _person(person: Person) -> dict[str, Any]:
    out: dict[str, Any] = {
        "personId": _check(person.person_id, "personId"),
        "applicant": person.applicant,
        "role": _code(person.role),
        "givenName": _check(person.given_name, "givenName"),
        "familyName": _check(person.family_name, "familyName"),
    }
    if person.birth_date is not None:
        out["birthDate"] = plain_date(person.birth_date, f"mapping/{FORMAT}/birthDate")
    if person.sex is not None:
        out["sex"] = _code(person.sex)
    if person.address is not None:
        out["address"] = _address(person.address)
    return out


def _document(document: Document) -> dict[str, Any]:
    out: dict[str, Any] = {
        "documentId": _check(document.document_id, "documentId"),
        "mimeType": _check(document.mime_type, "mimeType"),
        "size": document.size,
        "sha256": document.sha256,
        "content": document.content_b64,
    }
    _optional(out, "name", document.name)
    _optional(out, "fileName", document.file_name)
    if document.kind is not None:
        out["kind"] = _code(document.kind)
    return out


def render(submission: Submission, route: Route, context: DeliveryContext) -> bytes:
    if not 0 < len(context.benefits) <= MAX_BENEFITS:
        raise Rejection(Reason.MAPPING_ERROR, f"mapping/{FORMAT}/benefits")
    requested = {b.code: b for b in submission.benefits}
    if any(key not in requested for key in context.benefits):
        raise Rejection(Reason.MAPPING_ERROR, f"mapping/{FORMAT}/benefits")
    office: dict[str, Any] = {"id": _check(route.office.office_id, "office")}
    _optional(office, "dvdv", route.office.dvdv)
    case: dict[str, Any] = {
        "caseId": _check(submission.case_id, "caseId"),
        "messageId": _check(submission.message_id, "messageId"),
        "portal": _check(submission.author.key, "portal"),
        "caseType": _code(submission.case_type),
    }
    if submission.application_date is not None:
        case["applicationDate"] = plain_date(
            submission.application_date, f"mapping/{FORMAT}/applicationDate"
        )
    document = {
        "mappingVersion": VERSION,
        "deliveryId": context.delivery_id,
        "submissionId": context.submission_id,
        "office": office,
        "rule": route.rule,
        "case": case,
        "benefits": [_code(requested[key]) for key in context.benefits],
        "persons": [_person(p) for p in submission.persons],
        "documents": [_document(d) for d in submission.documents],
        "hubReceipt": base64.b64encode(context.receipt).decode("ascii"),
    }
    text = json.dumps(
        document, ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False
    )
    return text.encode("utf-8")


MAPPING = Mapping(
    format=FORMAT,
    version=VERSION,
    media_type="application/json",
    file_suffix=".json",
    render=render,
)
