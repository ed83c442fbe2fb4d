"""fv-json: published JSON Schema, schema-valid deterministic output, exact round trip, refusals."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import hashlib
import json
import re

import hypothesis
import jsonschema
import pytest
from hypothesis import HealthCheck, given

from hub.core.errors import Reason, Rejection
from hub.core.mapping import DeliveryContext, fvjson, mapping_for
from hub.core.mapping.fvjson import SCHEMA, VERSION
from hub.core.model import LEIKA_LIST_URI, Code, Submission
from hub.testing import DocumentSpec, PersonSpec, SubmissionSpec
from tests.formats_support import (
    BUT,
    CONTEXT,
    RECEIPT,
    SGB2,
    check_published,
    context_for,
    dates_of,
    extracted,
    hostile_submissions,
    mappable_submissions,
    route,
    strings_of,
)

ROUTE = route("fv-json")
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)
CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
SURROGATE = re.compile("[\ud800-\udfff]")


def render(submission: Submission, context: DeliveryContext = CONTEXT) -> bytes:
    return fvjson.render(submission, ROUTE, context)


def plain_date(value: str) -> bool:
    if not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", value):
        return False
    try:
        dt.date.fromisoformat(value)
    except ValueError:
        return False
    return True


def expected_reasons(submission: Submission) -> set[Reason]:
    """The reasons the rules give for some value of the submission (empty: mappable)."""
    strings = strings_of(submission)
    reasons = set()
    if any(SURROGATE.search(s) for s in strings):
        reasons.add(Reason.FIELD_CHARSET)
    if any(CONTROL.search(s) for s in strings) or not all(map(plain_date, dates_of(submission))):
        reasons.add(Reason.FIELD_FORMAT)
    return reasons


def expected_document(submission: Submission, context: DeliveryContext) -> dict:
    """The JSON the documented mapping gives, built independently of the module."""

    def some(**values) -> dict:
        return {k: v for k, v in values.items() if v is not None}

    def code(c: Code | None) -> dict | None:
        if c is None:
            return None
        return some(code=c.code, list=c.list_uri, listVersion=c.list_version, name=c.name)

    def person(p) -> dict:
        a = p.address
        address = None
        if a is not None:
            address = some(
                street=a.street,
                houseNumber=a.house_number,
                postcode=a.postcode,
                town=a.town,
                regionKey=code(a.region_key),
            )
        return some(
            personId=p.person_id,
            applicant=p.applicant,
            role=code(p.role),
            givenName=p.given_name,
            familyName=p.family_name,
            birthDate=p.birth_date,
            sex=code(p.sex),
            address=address,
        )

    requested = {b.code: b for b in submission.benefits}
    return {
        "mappingVersion": VERSION,
        "deliveryId": context.delivery_id,
        "submissionId": context.submission_id,
        "office": some(id=ROUTE.office.office_id, dvdv=ROUTE.office.dvdv),
        "rule": ROUTE.rule,
        "case": some(
            caseId=submission.case_id,
            messageId=submission.message_id,
            applicationDate=submission.application_date,
            portal=submission.author.key,
            caseType=code(submission.case_type),
        ),
        "benefits": [code(requested[k]) for k in context.benefits],
        "persons": [person(p) for p in submission.persons],
        "documents": [
            some(
                documentId=d.document_id,
                name=d.name,
                kind=code(d.kind),
                mimeType=d.mime_type,
                fileName=d.file_name,
                size=d.size,
                sha256=d.sha256,
                content=d.content_b64,
            )
            for d in submission.documents
        ],
        "hubReceipt": base64.b64encode(context.receipt).decode("ascii"),
    }


def check_one(submission: Submission) -> None:
    """Schema-valid JSON whose values equal the submission's, or a justified refusal."""
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
    document = json.loads(body.decode("utf-8"))
    assert [] == [e.message for e in VALIDATOR.iter_errors(document)]
    assert expected_document(submission, context) == document
    canonical = json.dumps(document, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    assert canonical.encode("utf-8") == body


SETTINGS = hypothesis.settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


class TestSchema:
    def test_published_schema_is_the_code_schema(self):
        """schemas/vendor/fv-json-1.schema.json is exactly fvjson.SCHEMA."""
        check_published("fv-json-1.schema.json", SCHEMA)

    def test_schema_is_valid_json_schema_2020_12(self):
        """The schema itself is valid under the 2020-12 meta-schema."""
        jsonschema.Draft202012Validator.check_schema(SCHEMA)
        assert "https://json-schema.org/draft/2020-12/schema" == SCHEMA["$schema"]

    def test_schema_is_marked_assumed(self):
        """The published contract says it is assumed."""
        assert "ASSUMED" in SCHEMA["description"]

    def test_registered(self):
        """fv-json is registered, embeds documents and names its version."""
        mapping = mapping_for("fv-json")
        expected = ("fv-json", VERSION, "application/json", ".json", "embedded")
        actual = (
            mapping.format,
            mapping.version,
            mapping.media_type,
            mapping.file_suffix,
            mapping.documents,
        )
        assert expected == actual

    @pytest.mark.parametrize("value", ["a\nb", "a\x00", "a\x85", "\x1b[31m"])
    def test_schema_refuses_control_characters(self, value):
        """A control character anywhere in a text is invalid under the schema, too."""
        document = json.loads(render(extracted(SubmissionSpec())))
        document["persons"][0]["givenName"] = value
        assert not VALIDATOR.is_valid(document)


class TestProperties:
    @SETTINGS
    @given(submission=hostile_submissions())
    def test_hostile_values_round_trip_or_are_refused_with_their_reason(self, submission):
        """Hostile strings anywhere: valid JSON with the same values, or the reason they call for."""
        check_one(submission)

    @SETTINGS
    @given(submission=mappable_submissions())
    def test_hostile_text_round_trips_exactly(self, submission):
        """Markup, quotes, formula prefixes, NBSP, zero-width, other scripts: carried unchanged."""
        check_one(submission)


HOUSEHOLD = SubmissionSpec(
    persons=(
        PersonSpec(
            given_name="Jürgen", family_name="Groß", benefits=((SGB2, "Bürgergeld"), (BUT, "BuT"))
        ),
        PersonSpec(given_name="Zoë", applicant=False, role="kind", benefits=(), street=None),
    ),
    documents=(DocumentSpec(),),
    message_uuid="6f1c2a8e-3b4d-4e5f-8a9b-0c1d2e3f4a5b",
    case_uuid="0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d",
)


class TestRules:
    def test_household_round_trips(self):
        """Intake's canonical household maps to exactly its values."""
        check_one(extracted(HOUSEHOLD))

    def test_only_the_office_benefits(self):
        """benefits lists only the context's benefits, in its order."""
        submission = extracted(HOUSEHOLD)
        context = dataclasses.replace(CONTEXT, benefits=(BUT,))
        document = json.loads(render(submission, context))
        assert [BUT] == [b["code"] for b in document["benefits"]]

    def test_document_is_embedded(self):
        """content decodes to size bytes with the listed SHA-256."""
        document = json.loads(render(extracted(HOUSEHOLD)))["documents"][0]
        content = base64.b64decode(document["content"])
        expected = (document["size"], document["sha256"])
        assert expected == (len(content), hashlib.sha256(content).hexdigest())

    def test_receipt_is_carried_base64(self):
        """hubReceipt is the receipt, byte for byte."""
        document = json.loads(render(extracted(HOUSEHOLD)))
        assert RECEIPT == base64.b64decode(document["hubReceipt"])

    def test_output_is_deterministic_utf8_without_floats(self):
        """The same input gives the same bytes; non-ASCII is UTF-8, not escaped; no floats."""
        submission = extracted(HOUSEHOLD)
        body = render(submission)
        floats: list[float] = []
        json.loads(body, parse_float=floats.append)
        expected = (body, True, [])
        assert expected == (render(submission), "Jürgen".encode() in body, floats)

    @pytest.mark.parametrize(
        ("value", "reason"),
        [("Er\x00ika", Reason.FIELD_FORMAT), ("Er\tika", Reason.FIELD_FORMAT)],
    )
    def test_control_characters_are_refused(self, value, reason):
        """JSON could escape a control character; the contract forbids it: FIELD_FORMAT."""
        submission = extracted(SubmissionSpec())
        person = dataclasses.replace(submission.persons[0], given_name=value)
        with pytest.raises(Rejection) as caught:
            render(dataclasses.replace(submission, persons=(person,)))
        assert (reason, "mapping/fv-json/givenName") == (caught.value.reason, caught.value.path)

    def test_lone_surrogate_is_refused(self):
        """A lone surrogate cannot be UTF-8: FIELD_CHARSET, and the value is not quoted."""
        submission = extracted(SubmissionSpec())
        person = dataclasses.replace(submission.persons[0], family_name="Geheim\ud800")
        with pytest.raises(Rejection) as caught:
            render(dataclasses.replace(submission, persons=(person,)))
        assert Reason.FIELD_CHARSET == caught.value.reason
        assert "Geheim" not in str(caught.value) + repr(caught.value)

    def test_benefit_not_requested_is_a_mapping_error(self):
        """A context naming a benefit the submission lacks is MAPPING_ERROR."""
        context = dataclasses.replace(CONTEXT, benefits=("99999999999999",))
        with pytest.raises(Rejection) as caught:
            render(extracted(SubmissionSpec()), context)
        assert Reason.MAPPING_ERROR == caught.value.reason

    def test_leika_list_is_kept_with_the_code(self):
        """A benefit keeps its list URI and version next to the code."""
        benefit = json.loads(render(extracted(SubmissionSpec())))["benefits"][0]
        assert (SGB2, LEIKA_LIST_URI, "2024") == (
            benefit["code"],
            benefit["list"],
            benefit["listVersion"],
        )
