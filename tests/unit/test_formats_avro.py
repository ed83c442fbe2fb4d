"""fv-avro: published schema, single-object encoding, read-back with the published schema, compatibility."""

from __future__ import annotations

import base64
import copy
import dataclasses
import datetime as dt
import io
import json
import re

import fastavro
import hypothesis
import pytest
from hypothesis import HealthCheck, given

from hub.core.errors import Reason, Rejection
from hub.core.mapping import DeliveryContext, fvavro, mapping_for
from hub.core.mapping.avro_compat import check_backward_compatible, check_backward_transitive
from hub.core.mapping.fvavro import FINGERPRINT, SCHEMA, VERSION
from hub.core.model import Code, Submission
from hub.testing import DocumentSpec, PersonSpec, SubmissionSpec
from tests.formats_support import (
    CONTEXT,
    RECEIPT,
    VENDOR_SCHEMAS,
    check_published,
    context_for,
    dates_of,
    extracted,
    hostile_submissions,
    mappable_submissions,
    route,
    strings_of,
)

ROUTE = route("fv-avro")
PUBLISHED = VENDOR_SCHEMAS / "fv-avro-1.avsc"
CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
SURROGATE = re.compile("[\ud800-\udfff]")


def published_schema():
    return fastavro.parse_schema(json.loads(PUBLISHED.read_text("utf-8")))


def render(submission: Submission, context: DeliveryContext = CONTEXT) -> bytes:
    return fvavro.render(submission, ROUTE, context)


def read_back(body: bytes) -> dict:
    """What a consumer holding only the published .avsc reads (header checked by hand)."""
    schema = published_schema()
    fingerprint = fastavro.schema.fingerprint(
        fastavro.schema.to_parsing_canonical_form(schema), "CRC-64-AVRO"
    )
    assert (b"\xc3\x01", fingerprint) == (body[:2], body[2:10].hex())
    return fastavro.schemaless_reader(io.BytesIO(body[10:]), schema, schema)


# CRC-64-AVRO as the Avro specification defines it, to check the fingerprint independently.
EMPTY = 0xC15D213AA4D7A795
TABLE = []
for _byte in range(256):
    _fp = _byte
    for _ in range(8):
        _fp = (_fp >> 1) ^ (EMPTY & -(_fp & 1))
    TABLE.append(_fp)


def crc64_avro(data: bytes) -> int:
    fp = EMPTY
    for byte in data:
        fp = (fp >> 8) ^ TABLE[(fp ^ byte) & 0xFF]
    return fp


def plain_date(value: str) -> bool:
    if not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", value):
        return False
    try:
        dt.date.fromisoformat(value)
    except ValueError:
        return False
    return True


def expected_reasons(submission: Submission) -> set[Reason]:
    strings = strings_of(submission)
    reasons = set()
    if any(SURROGATE.search(s) for s in strings):
        reasons.add(Reason.FIELD_CHARSET)
    if any(CONTROL.search(s) for s in strings) or not all(map(plain_date, dates_of(submission))):
        reasons.add(Reason.FIELD_FORMAT)
    return reasons


def expected_datum(submission: Submission, context: DeliveryContext) -> dict:
    """The record the documented mapping gives, built independently of the module."""

    def code(c: Code | None) -> dict | None:
        if c is None:
            return None
        return {"code": c.code, "list": c.list_uri, "listVersion": c.list_version, "name": c.name}

    def date(value: str | None) -> dt.date | None:
        return None if value is None else dt.date.fromisoformat(value)

    def address(a) -> dict | None:
        if a is None:
            return None
        return {
            "street": a.street,
            "houseNumber": a.house_number,
            "postcode": a.postcode,
            "town": a.town,
            "regionKey": code(a.region_key),
        }

    requested = {b.code: b for b in submission.benefits}
    return {
        "mappingVersion": VERSION,
        "deliveryId": context.delivery_id,
        "submissionId": context.submission_id,
        "office": {"id": ROUTE.office.office_id, "dvdv": ROUTE.office.dvdv},
        "rule": ROUTE.rule,
        "case": {
            "caseId": submission.case_id,
            "messageId": submission.message_id,
            "applicationDate": date(submission.application_date),
            "portal": submission.author.key,
            "caseType": code(submission.case_type),
        },
        "benefits": [code(requested[k]) for k in context.benefits],
        "persons": [
            {
                "personId": p.person_id,
                "applicant": p.applicant,
                "role": code(p.role),
                "givenName": p.given_name,
                "familyName": p.family_name,
                "birthDate": date(p.birth_date),
                "sex": code(p.sex),
                "address": address(p.address),
            }
            for p in submission.persons
        ],
        "documents": [
            {
                "documentId": d.document_id,
                "name": d.name,
                "kind": code(d.kind),
                "mimeType": d.mime_type,
                "fileName": d.file_name,
                "size": d.size,
                "sha256": d.sha256,
                "content": base64.b64decode(d.content_b64),
            }
            for d in submission.documents
        ],
        "hubReceipt": context.receipt,
    }


def check_one(submission: Submission) -> None:
    """Readable with the published schema and equal to the submission's values, or refused justly."""
    context = context_for(submission)
    reasons = expected_reasons(submission)
    try:
        body, rejection = render(submission, context), None
    except Rejection as caught:
        body, rejection = b"", caught
    if rejection is not None:
        assert rejection.reason in reasons, rejection
        return
    assert set() == reasons
    assert expected_datum(submission, context) == read_back(body)
    # The hand-written encoder gives exactly fastavro's bytes for the same datum.
    assert fvavro.encode(fvavro.record(submission, ROUTE, context)) == body


SETTINGS = hypothesis.settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


class TestSchema:
    def test_published_schema_is_the_code_schema(self):
        """schemas/vendor/fv-avro-1.avsc is exactly fvavro.SCHEMA."""
        check_published("fv-avro-1.avsc", SCHEMA)

    def test_schema_names_namespace_compatibility_and_assumption(self):
        """Namespace v1, BACKWARD_TRANSITIVE and ASSUMED are stated in the schema's doc."""
        expected = ("de.sozialhub.vendor.fvavro.v1", True, True)
        actual = (
            SCHEMA["namespace"],
            "BACKWARD_TRANSITIVE" in SCHEMA["doc"],
            "ASSUMED" in SCHEMA["doc"],
        )
        assert expected == actual

    def test_every_field_has_a_doc(self):
        """Every record field of the schema is documented."""
        missing: list[str] = []

        def walk(schema) -> None:
            if isinstance(schema, list):
                for branch in schema:
                    walk(branch)
            elif isinstance(schema, dict):
                for field in schema.get("fields", ()):
                    if not field.get("doc"):
                        missing.append(field["name"])
                    walk(field["type"])
                walk(schema.get("items"))

        walk(SCHEMA)
        assert [] == missing

    def test_fingerprint_is_crc64_avro_of_the_canonical_form(self):
        """The header fingerprint is CRC-64-AVRO of the Parsing Canonical Form, little-endian."""
        assert 0x63DD24E7CC258F8A == crc64_avro(b'"null"')  # the specification's test vector
        canonical = fastavro.schema.to_parsing_canonical_form(published_schema())
        expected = crc64_avro(canonical.encode("utf-8")).to_bytes(8, "little")
        assert expected == FINGERPRINT

    def test_registered(self):
        """fv-avro is registered, embeds documents and names its version."""
        mapping = mapping_for("fv-avro")
        expected = ("fv-avro", VERSION, "avro/binary", "embedded")
        assert expected == (mapping.format, mapping.version, mapping.media_type, mapping.documents)

    def test_is_backward_transitive_to_every_published_version(self):
        """The current schema reads records of every fv-avro-*.avsc published so far."""
        earlier = [
            json.loads(p.read_text("utf-8")) for p in sorted(VENDOR_SCHEMAS.glob("fv-avro-*.avsc"))
        ]
        assert earlier
        assert [] == check_backward_transitive(SCHEMA, earlier)


class TestProperties:
    @SETTINGS
    @given(submission=hostile_submissions())
    def test_hostile_values_round_trip_or_are_refused_with_their_reason(self, submission):
        """Hostile strings anywhere: the published schema reads the same values, or a just refusal."""
        check_one(submission)

    @SETTINGS
    @given(submission=mappable_submissions())
    def test_hostile_text_round_trips_exactly(self, submission):
        """Markup, quotes, formula prefixes, NBSP, zero-width, other scripts: carried unchanged."""
        check_one(submission)


HOUSEHOLD = SubmissionSpec(
    persons=(
        PersonSpec(given_name="Jürgen", family_name="Groß"),
        PersonSpec(given_name="Zoë", applicant=False, role="kind", benefits=(), street=None),
    ),
    documents=(DocumentSpec(),),
    message_uuid="6f1c2a8e-3b4d-4e5f-8a9b-0c1d2e3f4a5b",
    case_uuid="0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d",
)


class TestRules:
    def test_household_round_trips(self):
        """Intake's canonical household reads back with exactly its values."""
        check_one(extracted(HOUSEHOLD))

    def test_single_object_encoding(self):
        """C3 01, the 8-byte fingerprint, then the Avro binary body; decode() reads it."""
        body = render(extracted(HOUSEHOLD))
        expected = (b"\xc3\x01" + FINGERPRINT, VERSION)
        assert expected == (body[:10], fvavro.decode(body)["mappingVersion"])

    def test_documents_and_receipt_are_bytes(self):
        """Document content and the hub receipt are embedded as Avro bytes."""
        datum = fvavro.decode(render(extracted(HOUSEHOLD)))
        expected = (DocumentSpec().content, RECEIPT)
        assert expected == (datum["documents"][0]["content"], datum["hubReceipt"])

    def test_decode_refuses_another_schema(self):
        """A record whose fingerprint is not this schema's is refused."""
        body = bytearray(render(extracted(HOUSEHOLD)))
        body[2] ^= 0xFF
        with pytest.raises(ValueError, match="fingerprint"):
            fvavro.decode(bytes(body))

    def test_control_character_is_refused(self):
        """Avro could carry a control character; the contract forbids it: FIELD_FORMAT."""
        submission = extracted(HOUSEHOLD)
        person = dataclasses.replace(submission.persons[0], given_name="Geheim\x00")
        with pytest.raises(Rejection) as caught:
            render(dataclasses.replace(submission, persons=(person, *submission.persons[1:])))
        assert (Reason.FIELD_FORMAT, "mapping/fv-avro/givenName") == (
            caught.value.reason,
            caught.value.path,
        )
        assert "Geheim" not in str(caught.value)

    def test_render_is_deterministic(self):
        """The same input always gives the same bytes."""
        submission = extracted(HOUSEHOLD)
        assert render(submission) == render(submission)


# ----------------------------------------------------------------------- compatibility


def evolved(change) -> dict:
    schema = copy.deepcopy(SCHEMA)
    change(schema)
    return schema


def fields_of(schema: dict, record: str) -> list[dict]:
    """The field list of the named record inside ``schema``."""
    found: list[list[dict]] = []

    def walk(node) -> None:
        if isinstance(node, list):
            for branch in node:
                walk(branch)
        elif isinstance(node, dict):
            if node.get("type") == "record" and node["name"] == record:
                found.append(node["fields"])
            for field in node.get("fields", ()):
                walk(field["type"])
            walk(node.get("items"))

    walk(schema)
    return found[0]


def add_optional_field(schema: dict) -> None:
    fields_of(schema, "Person").append(
        {"name": "nationality", "type": ["null", "string"], "default": None, "doc": "new"}
    )


def widen_rule_to_union(schema: dict) -> None:
    next(f for f in schema["fields"] if f["name"] == "rule")["type"] = ["string", "null"]


def add_field_with_default(schema: dict) -> None:
    fields_of(schema, "Document").append(
        {"name": "pages", "type": "long", "default": 0, "doc": "new, with default"}
    )


def add_required_field(schema: dict) -> None:
    fields_of(schema, "Person").append({"name": "taxId", "type": "string", "doc": "no default"})


def remove_required_field(schema: dict) -> None:
    schema["fields"] = [f for f in schema["fields"] if f["name"] != "deliveryId"]


def change_type(schema: dict) -> None:
    next(f for f in schema["fields"] if f["name"] == "rule")["type"] = "int"


def change_logical_type(schema: dict) -> None:
    field = next(f for f in fields_of(schema, "Person") if f["name"] == "birthDate")
    field["type"] = ["null", "int"]


def narrow_long(schema: dict) -> None:
    next(f for f in fields_of(schema, "Document") if f["name"] == "size")["type"] = "int"


class TestCompatibility:
    @pytest.mark.parametrize(
        "change", [add_optional_field, widen_rule_to_union, add_field_with_default]
    )
    def test_compatible_changes_pass(self, change):
        """A new optional field, widening into a union, a new field with default: compatible."""
        assert [] == check_backward_compatible(evolved(change), SCHEMA)

    @pytest.mark.parametrize(
        ("change", "problem"),
        [
            (add_required_field, "persons[].taxId: new field without a default"),
            (remove_required_field, "deliveryId: field removed that had no default"),
            (change_type, "rule: type changed from string to int"),
            (
                change_logical_type,
                "birthDate<1>: the new union has no branch for the old type int (date)",
            ),
            (narrow_long, "size: type changed from long to int"),
        ],
    )
    def test_incompatible_changes_are_named(self, change, problem):
        """Each incompatible change is reported with its path."""
        problems = check_backward_compatible(evolved(change), SCHEMA)
        assert any(p.endswith(problem) for p in problems), problems

    def test_promotion_int_to_long_is_allowed_and_not_back(self):
        """int -> long is an Avro promotion; long -> int is not."""
        small = {"type": "record", "name": "R", "fields": [{"name": "n", "type": "int"}]}
        wide = {"type": "record", "name": "R", "fields": [{"name": "n", "type": "long"}]}
        expected = ([], ["R.n: type changed from long to int"])
        assert expected == (
            check_backward_compatible(wide, small),
            check_backward_compatible(small, wide),
        )

    def test_newer_reader_reads_an_older_record(self):
        """fastavro, reading a v1 record with a compatible newer schema, fills the default."""
        newer = fastavro.parse_schema(evolved(add_optional_field))
        body = render(extracted(HOUSEHOLD))
        datum = fastavro.schemaless_reader(io.BytesIO(body[10:]), fvavro.PARSED, newer)
        assert [None, None] == [p["nationality"] for p in datum["persons"]]
