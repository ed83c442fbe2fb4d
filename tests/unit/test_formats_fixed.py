"""fv-fixed: layout published as data, exact record lengths, parse-back, transliteration and truncation flags.

The property test checks every generated submission against a reference model
of the documented rules written here, independently of the engine: each field
parses back to the same value, or to the documented transliteration or cut with
the record's flag set, or the mapping refuses with the reason the rules name
for one of the values. Nothing is changed silently.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import re
import unicodedata

import hypothesis
import pytest
from hypothesis import HealthCheck, given
from hypothesis import strategies as st

from hub.core.documents import beside_file_name
from hub.core.errors import Reason, Rejection
from hub.core.mapping import MAPPINGS, DeliveryContext, fvfixed, mapping_for
from hub.core.mapping.fvfixed import RECORD_LENGTH, TRANSLITERATION, VERSION, LayoutError, parse
from hub.core.model import Address, Submission
from hub.testing import DocumentSpec, PersonSpec, SubmissionSpec
from tests.formats_support import (
    CONTEXT,
    check_published,
    context_for,
    extracted,
    hostile_submissions,
    mappable_submissions,
    route,
)

ROUTE = route("fv-fixed")
KEPT = frozenset(
    bytes([*range(0x20, 0x7F), *range(0xA1, 0x100)]).decode("iso8859_15").replace("\xad", "")
)
WIDTH = {
    (record["type"], field["name"]): field["length"]
    for record in fvfixed.layout()["records"]
    for field in record["fields"]
}


def render(submission: Submission, context: DeliveryContext = CONTEXT) -> bytes:
    return fvfixed.render(submission, ROUTE, context)


def rejected(submission: Submission, context: DeliveryContext = CONTEXT) -> Rejection:
    with pytest.raises(Rejection) as caught:
        render(submission, context)
    return caught.value


# ------------------------------------------------------------------ reference model


class Problem(Exception):  # noqa: N818 - a reference-model outcome
    def __init__(self, reason: Reason) -> None:
        self.reason = reason


def ref_transliterate(value: str) -> tuple[str, bool]:
    """The documented transliteration, written out again for the test."""
    if any(unicodedata.category(c) in ("Cc", "Zl", "Zp") for c in value):
        raise Problem(Reason.FIELD_FORMAT)
    out, changed = [], False
    for char in unicodedata.normalize("NFC", value):
        if char in KEPT:
            out.append(char)
            continue
        changed = True
        category = unicodedata.category(char)
        if char in TRANSLITERATION:
            out.append(TRANSLITERATION[char])
        elif category == "Zs":
            out.append(" ")
        elif category in ("Cf", "Mn", "Me"):
            continue
        elif category == "Nd" or (category[0] in "LN" and "LATIN" in unicodedata.name(char, "")):
            base = "".join(
                c
                for c in unicodedata.normalize("NFKD", char)
                if unicodedata.category(c) not in ("Mn", "Me")
            )
            if not base or any(c not in KEPT for c in base):
                raise Problem(Reason.FIELD_CHARSET)
            out.append(base)
        else:
            raise Problem(Reason.FIELD_CHARSET)
    result = "".join(out)
    if changed and not result.strip(" "):
        raise Problem(Reason.FIELD_CHARSET)
    return result, changed


def ref_text(value: str | None, width: int) -> tuple[str, bool, bool]:
    """(parsed value, cut, transliterated) of a text field."""
    if not value:
        return "", False, False
    text, changed = ref_transliterate(value)
    text = text.rstrip(" ")
    return text[:width].rstrip(" "), len(text) > width, changed


def ref_key(value: str | None, width: int) -> str:
    if not value:
        return ""
    if any(unicodedata.category(c) in ("Cc", "Zl", "Zp") for c in value):
        raise Problem(Reason.FIELD_FORMAT)
    if any(c not in KEPT for c in value):
        raise Problem(Reason.FIELD_CHARSET)
    if value.endswith(" "):
        raise Problem(Reason.FIELD_FORMAT)
    if len(value) > width:
        raise Problem(Reason.FIELD_LENGTH)
    return value


def ref_date(value: str | None) -> str | None:
    if not value:
        return None
    if not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", value):
        raise Problem(Reason.FIELD_FORMAT)
    try:
        dt.date.fromisoformat(value)
    except ValueError:
        raise Problem(Reason.FIELD_FORMAT) from None
    return value


def expected_records(submission: Submission, context: DeliveryContext) -> list[tuple[str, dict]]:
    """(record type, {field: ("key"|"text"|"date"|"plain", value)}) as the rules map the submission."""

    def code(prefix: str, c) -> dict:
        if c is None:
            return {f"{prefix}{s}": ("key", None) for s in ("Code", "Liste", "ListenVersion")}
        return {
            f"{prefix}Code": ("key", c.code),
            f"{prefix}Liste": ("key", c.list_uri),
            f"{prefix}ListenVersion": ("key", c.list_version),
        }

    requested = {b.code: b for b in submission.benefits}
    records: list[tuple[str, dict]] = [
        (
            "A",
            {
                "formatVersion": ("key", VERSION),
                "lieferungId": ("key", context.delivery_id),
                "einreichungId": ("key", context.submission_id),
                "behoerde": ("key", ROUTE.office.office_id),
                "dvdv": ("key", ROUTE.office.dvdv),
                "regel": ("key", ROUTE.rule),
            },
        ),
        (
            "V",
            {
                "vorgangsId": ("key", submission.case_id),
                "nachrichtId": ("key", submission.message_id),
                "antragsDatum": ("date", submission.application_date),
                "portal": ("key", submission.author.key),
                **code("vorgangsTyp", submission.case_type),
                "vorgangsTypName": ("text", submission.case_type.name),
            },
        ),
    ]
    for number, key in enumerate(context.benefits, start=1):
        benefit = requested[key]
        fields = {"leistungNr": ("plain", number), **code("leistung", benefit)}
        records.append(("L", {**fields, "leistungName": ("text", benefit.name)}))
    for number, p in enumerate(submission.persons, start=1):
        a = p.address or Address()
        fields = {
            "personNr": ("plain", number),
            "personId": ("key", p.person_id),
            "antragsteller": ("plain", p.applicant),
            **code("rolle", p.role),
            "vorname": ("text", p.given_name),
            "nachname": ("text", p.family_name),
            "geburtsdatum": ("date", p.birth_date),
            **code("geschlecht", p.sex),
            "strasse": ("text", a.street),
            "hausnummer": ("text", a.house_number),
            "plz": ("key", a.postcode),
            "ort": ("text", a.town),
        }
        records.append(("P", fields))
    for number, d in enumerate(submission.documents, start=1):
        fields = {
            "dokumentNr": ("plain", number),
            "dokumentId": ("key", d.document_id),
            "datei": ("plain", beside_file_name(context.delivery_id, number, d.mime_type)),
            "mimeType": ("key", d.mime_type),
            "groesse": ("plain", d.size),
            "sha256": ("plain", d.sha256),
            "dateiname": ("text", d.file_name),
            "bezeichnung": ("text", d.name),
        }
        records.append(("D", fields))
    return records


def problems_of(submission: Submission, context: DeliveryContext) -> dict[str, set[Reason]]:
    """Field name -> the reasons the rules give for some value in it (empty: mappable)."""
    found: dict[str, set[Reason]] = {}
    for kind, fields in expected_records(submission, context):
        for name, (how, value) in fields.items():
            try:
                if how == "key":
                    ref_key(value, WIDTH[kind, name])
                elif how == "text":
                    ref_text(value, WIDTH[kind, name])
                elif how == "date":
                    ref_date(value)
            except Problem as problem:
                found.setdefault(name, set()).add(problem.reason)
    return found


def assert_faithful(submission: Submission, context: DeliveryContext, body: bytes) -> None:
    """Every record and field is what the reference model says, flags included."""
    lines = body.split(b"\r\n")
    assert b"" == lines[-1]
    assert {RECORD_LENGTH} == {len(line) for line in lines[:-1]}
    assert not re.search(rb"[\x00-\x1f\x7f-\xa0\xad]", b"".join(lines))
    records = parse(body)
    expected = expected_records(submission, context)
    body_records = [r for r in records if r["satzart"] not in "QE"]
    assert [k for k, _ in expected] == [r["satzart"] for r in body_records]
    for (kind, fields), record in zip(expected, body_records, strict=True):
        cut_any = changed_any = False
        for name, (how, value) in fields.items():
            if how == "key":
                wanted = ref_key(value, WIDTH[kind, name])
            elif how == "text":
                wanted, cut, changed = ref_text(value, WIDTH[kind, name])
                cut_any, changed_any = cut_any or cut, changed_any or changed
            elif how == "date":
                wanted = ref_date(value)
            else:
                wanted = value
            assert (kind, name, wanted) == (kind, name, record[name])
        if kind != "A":
            assert (kind, cut_any, changed_any) == (kind, record["gekuerzt"], record["umschrift"])
    assert context.receipt == fvfixed.receipt_of(records)


# ------------------------------------------------------------------------- the layout


class TestLayout:
    def test_published_layout_is_the_code_layout(self):
        """schemas/vendor/fv-fixed-1.layout.json is exactly fvfixed.layout()."""
        check_published("fv-fixed-1.layout.json", fvfixed.layout())

    @pytest.mark.parametrize("record", fvfixed.layout()["records"], ids=lambda r: r["type"])
    def test_fields_are_contiguous_and_fill_the_record(self, record):
        """Each record's fields start where the previous ends and end at the record length."""
        fields = record["fields"]
        expected = (1, RECORD_LENGTH, [])
        gaps = [
            (a["name"], b["name"])
            for a, b in itertools.pairwise(fields)
            if b["start"] != a["end"] + 1
        ]
        assert expected == (fields[0]["start"], fields[-1]["end"], gaps)

    def test_layout_is_marked_assumed_and_names_encoding_and_version(self):
        """The published layout says ASSUMED and carries encoding, record length and version."""
        data = fvfixed.layout()
        expected = (True, "ISO-8859-15", 512, VERSION)
        actual = (
            data["status"].startswith("ASSUMED"),
            data["encoding"],
            data["recordLength"],
            data["version"],
        )
        assert expected == actual

    def test_registered_with_documents_beside(self):
        """fv-fixed is registered; its documents travel beside the record file."""
        mapping = mapping_for("fv-fixed")
        expected = ("fv-fixed", VERSION, "beside", ".dat")
        assert expected == (mapping.format, mapping.version, mapping.documents, mapping.file_suffix)

    def test_other_formats_embed_documents(self):
        """Every other registered format embeds its documents."""
        expected = {"fv-xml": "embedded", "fv-json": "embedded", "fv-avro": "embedded"}
        actual = {name: m.documents for name, m in MAPPINGS.items() if name != "fv-fixed"}
        assert expected == actual


# ------------------------------------------------------------------------ properties

HOUSEHOLD = SubmissionSpec(
    persons=(
        PersonSpec(given_name="Jürgen", family_name="Groß-Übelhör"),
        PersonSpec(given_name="Renée", applicant=False, role="partner", benefits=()),
        PersonSpec(given_name="Zoë", applicant=False, role="kind", benefits=(), street=None),
    ),
    documents=(DocumentSpec(), DocumentSpec(document_id="doc-2", file_name="lohn.pdf")),
    message_uuid="6f1c2a8e-3b4d-4e5f-8a9b-0c1d2e3f4a5b",
    case_uuid="0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d",
)
LATIN9_NAMES = st.text(st.sampled_from(sorted(KEPT - {" "})), min_size=1, max_size=45)


def check_one(submission: Submission) -> None:
    """Output parses back to the documented values and flags, or the refusal is justified."""
    context = context_for(submission)
    problems = problems_of(submission, context)
    try:
        body, rejection = render(submission, context), None
    except Rejection as caught:
        body, rejection = b"", caught
    if rejection is not None:
        field = (rejection.path or "").removeprefix("mapping/fv-fixed/")
        assert rejection.reason in problems.get(field, set()), (rejection, problems)
        return
    assert {} == problems
    assert_faithful(submission, context, body)


SETTINGS = hypothesis.settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


class TestProperties:
    @SETTINGS
    @given(submission=hostile_submissions())
    def test_hostile_values_parse_back_or_are_refused_with_their_reason(self, submission):
        """Hostile strings anywhere: faithful output, or the refusal the rules name for a value."""
        check_one(submission)

    @SETTINGS
    @given(submission=mappable_submissions())
    def test_hostile_text_is_carried_transliterated_or_cut_with_flags(self, submission):
        """Hostile text with ordinary ids and codes: carried, transliterated or cut, flags set."""
        check_one(submission)

    @hypothesis.settings(max_examples=40, deadline=None)
    @given(given_name=LATIN9_NAMES, family_name=LATIN9_NAMES)
    def test_ordinary_values_round_trip_exactly(self, given_name, family_name):
        """Names within ISO-8859-15 and the field width come back unchanged, flags N."""
        spec = dataclasses.replace(
            HOUSEHOLD,
            persons=(
                dataclasses.replace(
                    HOUSEHOLD.persons[0], given_name=given_name, family_name=family_name
                ),
                *HOUSEHOLD.persons[1:],
            ),
        )
        submission = extracted(spec)
        records = parse(render(submission))
        person = next(r for r in records if r["satzart"] == "P")
        expected = (given_name, family_name, False, False)
        actual = (person["vorname"], person["nachname"], person["gekuerzt"], person["umschrift"])
        assert expected == actual

    def test_household_round_trips_exactly(self):
        """A household with umlauts and two documents: every value as sent, no flag set."""
        submission = extracted(HOUSEHOLD)
        body = render(submission)
        assert_faithful(submission, CONTEXT, body)
        flags = [(r["gekuerzt"], r["umschrift"]) for r in parse(body) if "gekuerzt" in r]
        assert {(False, False)} == set(flags)


# ---------------------------------------------------------------------- single rules


def with_person(**changes) -> Submission:
    submission = extracted(SubmissionSpec(message_uuid="m-1", case_uuid="c-1"))
    person = dataclasses.replace(submission.persons[0], **changes)
    return dataclasses.replace(submission, persons=(person,))


def person_record(submission: Submission) -> dict:
    return next(r for r in parse(render(submission)) if r["satzart"] == "P")


TRANSLITERATED = [
    ("Łukasz", "Lukasz"),
    ("Đorđe", "Dorde"),
    ("Ştefan", "Stefan"),
    ("Nguyễn", "Nguyen"),
    ("İpek", "Ipek"),
    ("ẞ", "SS"),
    ("D\u2019Agostino", "D'Agostino"),
    ("Anna\u00a0Lena", "Anna Lena"),
    ("Anna\u200bLena", "AnnaLena"),
    ("Anna\u00adLena", "AnnaLena"),
    ("\ufb01", "fi"),
    ("\uff21\uff42", "Ab"),
    ("q\u0303", "q"),
    ("Müller\u2013Lüdenscheidt", "Müller-Lüdenscheidt"),
]
KEPT_AS_IS = [
    "Jürgen",
    "Groß",
    "Œuvre",
    "Ærø",
    "Šárka",
    "Žofie",
    "Ÿves",
    "€uro",
    "=1+1",
    "@home",
    "-5",
    "+49",
]
REFUSED = [
    ("Дмитрий", Reason.FIELD_CHARSET),
    ("王", Reason.FIELD_CHARSET),
    ("😀", Reason.FIELD_CHARSET),
    ("Ω", Reason.FIELD_CHARSET),
    ("\ue000", Reason.FIELD_CHARSET),
    ("\u0301", Reason.FIELD_CHARSET),
    ("Er\x00ika", Reason.FIELD_FORMAT),
    ("Er\tika", Reason.FIELD_FORMAT),
    ("Er\x85ika", Reason.FIELD_FORMAT),
    ("Er\u2028ika", Reason.FIELD_FORMAT),
]


class TestRules:
    @pytest.mark.parametrize(("sent", "carried"), TRANSLITERATED)
    def test_transliteration_sets_the_flag(self, sent, carried):
        """Characters ISO-8859-15 lacks become the documented replacement; umschrift is J."""
        record = person_record(with_person(given_name=sent))
        assert (carried, True, False) == (
            record["vorname"],
            record["umschrift"],
            record["gekuerzt"],
        )

    @pytest.mark.parametrize("sent", KEPT_AS_IS)
    def test_characters_of_the_encoding_and_formula_prefixes_are_kept(self, sent):
        """Umlauts, ß, Œ, Š, € and leading = + - @ are carried unchanged, no flag."""
        record = person_record(with_person(given_name=sent))
        assert (sent, False) == (record["vorname"], record["umschrift"])

    @pytest.mark.parametrize(("sent", "reason"), REFUSED)
    def test_other_scripts_and_control_characters_are_refused(self, sent, reason):
        """No documented transliteration: FIELD_CHARSET; a control character: FIELD_FORMAT."""
        rejection = rejected(with_person(family_name=sent))
        assert (reason, "mapping/fv-fixed/nachname") == (rejection.reason, rejection.path)

    def test_rejection_does_not_quote_the_value(self):
        """A refusal names the field, never the value."""
        rejection = rejected(with_person(family_name="Geheimname\x01"))
        assert "Geheim" not in str(rejection) + repr(rejection)

    def test_overlong_name_is_cut_with_the_flag(self):
        """A name longer than its field is cut to the field and gekuerzt is J."""
        record = person_record(with_person(given_name="Maximiliane-" * 5))
        expected = (("Maximiliane-" * 5)[:45], True, False)
        assert expected == (record["vorname"], record["gekuerzt"], record["umschrift"])

    @pytest.mark.parametrize(
        ("changes", "field"),
        [
            ({"person_id": "p" * 65}, "personId"),
            ({"address": Address(street="Weg", postcode="4" * 11, town="RE")}, "plz"),
        ],
    )
    def test_overlong_key_is_refused(self, changes, field):
        """An identifier or key longer than its field is FIELD_LENGTH, never cut."""
        rejection = rejected(with_person(**changes))
        assert (Reason.FIELD_LENGTH, f"mapping/fv-fixed/{field}") == (
            rejection.reason,
            rejection.path,
        )

    @pytest.mark.parametrize("value", ["1985-04-12Z", "1985-13-01", "85-04-12"])
    def test_date_that_is_not_plain_is_refused(self, value):
        """A birth date with a time zone, or not a date, is FIELD_FORMAT."""
        rejection = rejected(with_person(birth_date=value))
        assert (Reason.FIELD_FORMAT, "mapping/fv-fixed/geburtsdatum") == (
            rejection.reason,
            rejection.path,
        )

    def test_documents_are_referenced_beside(self):
        """A D record names the beside file, media type, size and SHA-256; no content inside."""
        submission = extracted(HOUSEHOLD)
        body = render(submission)
        documents = [r for r in parse(body) if r["satzart"] == "D"]
        expected = [
            (beside_file_name(CONTEXT.delivery_id, i, d.mime_type), d.mime_type, d.size, d.sha256)
            for i, d in enumerate(submission.documents, start=1)
        ]
        assert expected == [
            (r["datei"], r["mimeType"], r["groesse"], r["sha256"]) for r in documents
        ]
        assert b"%PDF" not in body

    def test_trailer_counts_and_checksum(self):
        """The trailer counts the records and sums the document sizes; the checksum covers the rest."""
        submission = extracted(HOUSEHOLD)
        records = parse(render(submission))
        trailer = records[-1]
        expected = (len(records), 1, 3, 2, sum(d.size for d in submission.documents))
        actual = (
            trailer["anzahlSaetze"],
            trailer["anzahlLeistungen"],
            trailer["anzahlPersonen"],
            trailer["anzahlDokumente"],
            trailer["summeGroessen"],
        )
        assert expected == actual

    def test_version_travels_in_the_header(self):
        """The header record carries the mapping version and the character set."""
        header = parse(render(extracted(HOUSEHOLD)))[0]
        assert ("A", VERSION, "ISO-8859-15") == (
            header["satzart"],
            header["formatVersion"],
            header["zeichensatz"],
        )

    def test_render_is_deterministic(self):
        """The same input always gives the same bytes."""
        submission = extracted(HOUSEHOLD)
        assert render(submission) == render(submission)


@pytest.fixture(scope="module")
def body() -> bytes:
    return render(extracted(HOUSEHOLD))


class TestParse:
    def test_changed_byte_fails_the_checksum(self, body):
        """One changed character in a name is caught by the trailer's SHA-256."""
        index = body.index("Jürgen".encode("iso8859_15"))
        tampered = body[:index] + b"X" + body[index + 1 :]
        with pytest.raises(LayoutError, match="pruefsumme"):
            parse(tampered)

    @pytest.mark.parametrize(
        "corrupt",
        [
            lambda b: b[:-2],
            lambda b: b.replace(b"\r\n", b"\n", 1),
            lambda b: b[:10] + b"\x85" + b[11:],
            lambda b: b"Z" + b[1:],
        ],
        ids=["no-final-crlf", "lf-only", "c1-byte", "unknown-type"],
    )
    def test_malformed_files_are_refused(self, body, corrupt):
        """Wrong line ends, a control byte or an unknown record type is a LayoutError."""
        with pytest.raises(LayoutError):
            parse(corrupt(body))
