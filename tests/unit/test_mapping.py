"""fv-xml mapping: schema-valid output, faithful values, control characters refused, goldens."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import hashlib
import os
import unicodedata
from pathlib import Path

import hypothesis
import pytest
import xmlschema
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import HealthCheck, example, given
from hypothesis import strategies as st
from lxml import etree

from hub import schemas
from hub.core import xmlsafe
from hub.core.errors import Reason, Rejection
from hub.core.mapping import MAPPINGS, DeliveryContext, mapping_for
from hub.core.mapping.fvxml import NAMESPACE, VERSION, render
from hub.core.model import LEIKA_LIST_URI, Address, Code, Party, Person, Submission
from hub.core.pipeline import DEAD_LETTER, HubContext, dispatch, intake, vendor_topic
from hub.core.receipt import ReceiptSigner, verify
from hub.core.records import Accepted, DeadLetter, Delivery, Received, decode, delivery_id, unb64
from hub.core.route import Office, Route, Vendor
from hub.keys import ephemeral_certificate
from hub.testing import DocumentSpec, PersonSpec, SubmissionSpec, make_submission
from tests.formats_support import for_vendor

REPO_ROOT = Path(__file__).resolve().parents[2]
# One directory per vendor and case; fv-xml is the format of the example vendor openprosoz.
GOLDEN_DIR = REPO_ROOT / "tests" / "golden" / "vendors" / "openprosoz"
REGENERATE = os.environ.get("SOZIALHUB_REGEN_GOLDEN") == "1"
F = f"{{{NAMESPACE}}}"
SGB2 = "99107002017000"

# ---------------------------------------------------------------------------- helpers


@pytest.fixture(scope="module")
def hub_context(payloads, office_table, signer) -> HubContext:
    """Every office on the fv-xml vendor: these tests pin fv-xml, whatever the example assigns."""
    return HubContext(payloads, for_vendor(office_table, "openprosoz"), signer, "sozialhub-test")


@pytest.fixture(scope="module")
def vendor_schema(settings):
    return schemas.load_vendor_schema(settings.schema_dir, "fv-xml")


def schema_errors(schema, body: bytes) -> list[str]:
    """Every violation of the vendor schema, as readable strings (empty when valid)."""
    resource = xmlschema.XMLResource(xmlsafe.parse(body), allow="none")
    return [str(error) for error in schema.iter_errors(resource)]


def assert_schema_valid(schema, body: bytes) -> None:
    expected: list[str] = []
    assert expected == schema_errors(schema, body)


def assert_rejected(expected: Reason, function, *args) -> None:
    with pytest.raises(Rejection) as caught:
        function(*args)
    assert expected == caught.value.reason


def run(original: bytes, hub: HubContext, now) -> tuple[str | None, list[Delivery]]:
    """Intake and dispatch one document: (dead-letter reason or None, deliveries)."""
    first = intake(Received.of(original, "test", "file", now), None, hub, now)
    if first.outcome == "rejected":
        return first.reason, []
    second = dispatch(decode(first.emits[0].value, Accepted), None, hub, now)
    if second.outcome == "rejected":
        letter = next(e for e in second.emits if e.topic == DEAD_LETTER)
        return decode(letter.value, DeadLetter).reason, []
    deliveries = [
        decode(e.value, Delivery)
        for e in second.emits
        if e.topic.startswith(("deliveries.", "fachverfahren."))
    ]
    return None, deliveries


def canonical(value: str) -> str:
    """What the hub keeps of a text value: XML whitespace stripped (a no-break space is content), NFC."""
    return unicodedata.normalize("NFC", value.strip(" \t\r\n"))


# XML 1.0 can carry these characters; the payload schemas forbid control characters (Cc).
XML_CHARS = st.characters(
    codec="utf-8", exclude_categories=("Cc", "Cs"), exclude_characters="\ufffe\uffff"
)
TRICKY = [
    "Jürgen",
    "Ärzte & Söhne",
    "<script>alert(1)</script>",
    "a]]>b",
    "]]>",
    '"quoted"',
    "O'Brien",
    "D\u2019Agostino",
    "&amp;",
    "&#x0;",
    "<!-- x -->",
    "😀 Familie 👨‍👩‍👧",
    "Ω" * 200,
    "ß" * 200,
    "😀" * 200,
    "x" * 200,
    "A\u0308rger",  # decomposed umlaut: NFC composes it
]
TEXT = st.one_of(
    st.sampled_from(TRICKY),
    st.text(XML_CHARS, min_size=1, max_size=200),
).filter(lambda s: s.strip() != "")
IDENTIFIER = st.text(
    st.sampled_from("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._:-"),
    min_size=1,
    max_size=64,
)
DOCUMENTS = st.builds(
    DocumentSpec,
    document_id=IDENTIFIER,
    name=TEXT,
    mime_type=st.just("application/pdf"),
    content=st.binary(max_size=256).map(lambda b: b"%PDF-1.7\n" + b),
    file_name=TEXT,
)


@st.composite
def households(draw) -> SubmissionSpec:
    def member(*, applicant: bool) -> PersonSpec:
        return PersonSpec(
            given_name=draw(TEXT),
            family_name=draw(TEXT),
            applicant=applicant,
            role="antragsteller" if applicant else "kind",
            benefits=(("99107002017000", draw(TEXT)),) if applicant else (),
            street=draw(st.none() | TEXT),
            house_number=draw(st.none() | TEXT),
            postcode="45657",
            town="Recklinghausen",
        )

    others = draw(st.integers(min_value=0, max_value=3))
    persons = (member(applicant=True), *(member(applicant=False) for _ in range(others)))
    documents = tuple(draw(st.lists(DOCUMENTS, max_size=3)))
    return SubmissionSpec(persons=persons, documents=documents)


def text_values(spec: SubmissionSpec) -> list[str]:
    """Every free-text value of a spec that ends up in fv:Text (max 200 characters) output."""
    values: list[str] = []
    for p in spec.persons:
        values += [p.given_name, p.family_name, *(label for _, label in p.benefits)]
        values += [v for v in (p.street, p.house_number) if v]
    values += [d.file_name for d in spec.documents]
    return values


# ---------------------------------------------------------------------- properties


class TestGeneratedSubmissions:
    @hypothesis.settings(
        max_examples=60,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(spec=households())
    @example(
        spec=SubmissionSpec(
            persons=(PersonSpec(given_name="\ufb2c" * 200, family_name="Mustermann"),)
        )
    )  # NFC expands U+FB2C to 3 code points: 600 do not fit fv:Text
    @example(
        spec=SubmissionSpec(persons=(PersonSpec(given_name="Ma\u0958", family_name="<&>\"']]>"),))
    )  # NFC expansion that still fits
    def test_output_is_schema_valid_and_values_round_trip(
        self, hub_context, vendor_schema, now, spec
    ):
        """Valid input maps to schema-valid fv-xml with its values intact, or FIELD_FORMAT."""
        original = make_submission(spec)
        reason, deliveries = run(original, hub_context, now)
        if any(len(canonical(v)) > 200 for v in text_values(spec)):
            expected = (Reason.FIELD_FORMAT.value, [])
            assert expected == (reason, deliveries)
            return
        expected_outcome = (None, 1)
        assert expected_outcome == (reason, len(deliveries))
        body = unb64(deliveries[0].body_b64)
        assert_schema_valid(vendor_schema, body)

        root = xmlsafe.parse(body)
        persons = root.findall(f"{F}person")
        expected_persons = [
            (
                f"p{i}",
                "true" if p.applicant else "false",
                canonical(p.given_name),
                canonical(p.family_name),
                p.birth_date,
                canonical(p.street) if p.street else None,
                canonical(p.house_number) if p.house_number else None,
            )
            for i, p in enumerate(spec.persons, start=1)
        ]
        actual_persons = [
            (
                e.get("personId"),
                e.get("antragsteller"),
                e.findtext(f"{F}vorname"),
                e.findtext(f"{F}nachname"),
                e.findtext(f"{F}geburtsdatum"),
                e.findtext(f"{F}anschrift/{F}strasse"),
                e.findtext(f"{F}anschrift/{F}hausnummer"),
            )
            for e in persons
        ]
        assert expected_persons == actual_persons

        expected_documents = [
            (
                d.document_id,
                d.mime_type,
                canonical(d.file_name),
                str(len(d.content)),
                hashlib.sha256(d.content).hexdigest(),
                base64.b64encode(d.content).decode("ascii"),
            )
            for d in spec.documents
        ]
        actual_documents = [
            (
                e.get("dokumentId"),
                e.get("mimeType"),
                e.get("dateiname"),
                e.get("groesse"),
                e.get("sha256"),
                e.text or "",
            )
            for e in root.findall(f"{F}dokument")
        ]
        assert expected_documents == actual_documents

        antrag = root.find(f"{F}antrag")
        expected_ids = (spec.case_uuid, spec.message_uuid, spec.persons[0].benefits[0][0])
        actual_ids = (
            antrag.get("vorgangsId"),
            antrag.get("nachrichtId"),
            antrag.find(f"{F}leistung").get("code"),
        )
        assert expected_ids == actual_ids
        assert canonical(spec.persons[0].benefits[0][1]) == antrag.findtext(f"{F}leistung")

    @hypothesis.settings(max_examples=20, deadline=None)
    @given(persons=st.integers(min_value=1, max_value=30), documents=st.integers(0, 50))
    def test_schema_cardinalities_are_honoured(
        self, hub_context, vendor_schema, now, persons, documents
    ):
        """Up to the payload schema's 30 persons and 50 documents, the output stays valid."""
        spec = SubmissionSpec(
            persons=(
                PersonSpec(),
                *((PersonSpec(applicant=False, role="kind", benefits=()),) * (persons - 1)),
            ),
            documents=tuple(DocumentSpec(document_id=f"d{i}") for i in range(documents)),
        )
        reason, deliveries = run(make_submission(spec), hub_context, now)
        expected_outcome = (None, 1)
        assert expected_outcome == (reason, len(deliveries))
        body = unb64(deliveries[0].body_b64)
        assert_schema_valid(vendor_schema, body)
        root = xmlsafe.parse(body)
        expected = (persons, documents)
        assert expected == (len(root.findall(f"{F}person")), len(root.findall(f"{F}dokument")))


# ------------------------------------------------------------ direct render, bad values

OFFICE = Office(
    "jc-test", "Jobcenter Test", "jbc:055620320000", ("05562032",), frozenset({SGB2}), "v"
)
ROUTE = Route(SGB2, OFFICE, Vendor("v", "Vendor", "fv-xml"), "area")
CONTEXT = DeliveryContext("dlv-" + "0" * 32, "sub-" + "1" * 32, b"<receipt/>", (SGB2,))


def hand_made(**person_changes) -> Submission:
    person = Person(
        person_id="p1",
        role=Code("antragsteller", "urn:xoev-de:xsozial:codeliste:personentyp", "1.0"),
        applicant=True,
        given_name="Erika",
        family_name="Mustermann",
        birth_date="1985-04-12",
        sex=Code("w", "urn:xoev-de:xoev:codeliste:geschlecht", "2"),
        address=Address(street="Kurfürstenwall", house_number="21", postcode="45657", town="RE"),
        benefits=(Code("99107002017000", LEIKA_LIST_URI, "2024", "Bürgergeld"),),
    )
    return Submission(
        payload_namespace="urn:test",
        payload_version="2.4.0",
        message_id="6f1c2a8e-3b4d-4e5f-8a9b-0c1d2e3f4a5b",
        created="2026-11-02T09:14:00Z",
        author=Party("DVDV", "sop:050000100099"),
        reader=None,
        case_id="0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d",
        case_type=Code("antrag", "urn:xoev-de:xsozial:codeliste:vorgangstyp", "1.0", "Antrag"),
        application_date="2026-11-02",
        persons=(dataclasses.replace(person, **person_changes),),
    )


CONTROL = ["\x00", "\x01", "\x08", "\x0b", "\x0c", "\x1b", "\x1f", "\x7f", "\x85", "\x9f"]
CONTROL += ["\t", "\n", "\r"]  # XML can carry these, fv:Text forbids them
NOT_XML = ["\ufffe", "\uffff", "\ud800"]


class TestRenderDirectly:
    def test_hand_made_submission_renders_valid(self, vendor_schema):
        """The hand-made baseline used below maps to schema-valid output."""
        assert_schema_valid(vendor_schema, render(hand_made(), ROUTE, CONTEXT))

    @pytest.mark.parametrize("char", CONTROL + NOT_XML, ids=lambda c: f"U+{ord(c):04X}")
    @pytest.mark.parametrize("field", ["given_name", "family_name"])
    def test_control_characters_are_rejected(self, char, field):
        """A control or non-XML character in a name is FIELD_FORMAT, never dropped or passed on."""
        submission = hand_made(**{field: f"Er{char}ika"})
        assert_rejected(Reason.FIELD_FORMAT, render, submission, ROUTE, CONTEXT)

    @pytest.mark.parametrize("char", CONTROL + NOT_XML, ids=lambda c: f"U+{ord(c):04X}")
    def test_control_characters_in_the_address_are_rejected(self, char):
        """The same holds for address fields."""
        submission = hand_made(address=Address(street=f"Kurfürsten{char}wall", town="RE"))
        assert_rejected(Reason.FIELD_FORMAT, render, submission, ROUTE, CONTEXT)

    def test_rejection_does_not_quote_the_value(self):
        """The FIELD_FORMAT rejection names a location, never the offending value."""
        submission = hand_made(family_name="Geheim\x01name")
        with pytest.raises(Rejection) as caught:
            render(submission, ROUTE, CONTEXT)
        assert "Geheim" not in str(caught.value) + repr(caught.value)

    def test_overlong_value_is_rejected(self):
        """A value longer than fv:Text's 200 characters is FIELD_FORMAT, not invalid output."""
        submission = hand_made(given_name="x" * 201)
        assert_rejected(Reason.FIELD_FORMAT, render, submission, ROUTE, CONTEXT)

    def test_markup_is_escaped_not_interpreted(self):
        """Markup characters in values come back as the same text, not as structure."""
        name = "<fv:person>&amp;]]></fv:person>"
        root = xmlsafe.parse(render(hand_made(family_name=name), ROUTE, CONTEXT))
        expected = (1, name)
        actual = (len(root.findall(f"{F}person")), root.findtext(f"{F}person/{F}nachname"))
        assert expected == actual

    def test_recipient_and_versions(self):
        """The output names the office, its DVDV key, the rule and the mapping version."""
        root = xmlsafe.parse(render(hand_made(), ROUTE, CONTEXT))
        recipient = root.find(f"{F}empfaenger")
        expected = ("jc-test", "jbc:055620320000", "area", VERSION, CONTEXT.delivery_id)
        actual = (
            recipient.get("behoerde"),
            recipient.get("dvdv"),
            recipient.get("regel"),
            root.get("mappingVersion"),
            root.get("lieferungId"),
        )
        assert expected == actual

    def test_receipt_travels_base64_encoded(self):
        """The hub receipt is carried byte-for-byte in hubQuittung."""
        root = xmlsafe.parse(render(hand_made(), ROUTE, CONTEXT))
        expected = CONTEXT.receipt
        assert expected == base64.b64decode(root.findtext(f"{F}hubQuittung"))

    def test_render_is_deterministic(self):
        """The same submission, route and context always give the same bytes."""
        assert render(hand_made(), ROUTE, CONTEXT) == render(hand_made(), ROUTE, CONTEXT)


class TestRegistry:
    def test_fv_xml_is_registered(self):
        """The fv-xml mapping is found by its format name and carries its version."""
        expected = ("fv-xml", VERSION, "application/xml", ".xml")
        mapping = mapping_for("fv-xml")
        actual = (mapping.format, mapping.version, mapping.media_type, mapping.file_suffix)
        assert expected == actual

    def test_unknown_format_is_a_mapping_error(self):
        """An office table naming an unknown format yields MAPPING_ERROR."""
        assert_rejected(Reason.MAPPING_ERROR, mapping_for, "csv-fixed-width")

    def test_every_registered_format_has_a_vendor_schema(self, settings):
        """Each registered mapping has its published contract under schemas/vendor/."""
        assert schemas.load_vendor_schema(settings.schema_dir, "fv-xml") is not None
        vendor_dir = settings.schema_dir / "vendor"
        missing = [name for name in MAPPINGS if not list(vendor_dir.glob(f"{name}-1.*"))]
        assert [] == missing


# ------------------------------------------------------------------------- goldens

GOLDEN_NOW = dt.datetime(2026, 11, 5, 12, 0, tzinfo=dt.UTC)
# A fixed private scalar: the golden signing key is the same on every run.
GOLDEN_KEY = ec.derive_private_key(0x5EED_50C1A1_4B_0000_0000_0000_0000_0001, ec.SECP256R1())
CASES = sorted(p.name for p in GOLDEN_DIR.iterdir() if p.is_dir()) if GOLDEN_DIR.is_dir() else []


@pytest.fixture(scope="module")
def golden_signer() -> ReceiptSigner:
    certificate = ephemeral_certificate(GOLDEN_KEY, "sozialhub-golden", days=3650, now=GOLDEN_NOW)
    return ReceiptSigner(GOLDEN_KEY, certificate, "ecdsa-sha256")


@pytest.fixture(scope="module")
def golden_hub(payloads, office_table, golden_signer) -> HubContext:
    return HubContext(
        payloads, for_vendor(office_table, "openprosoz"), golden_signer, "sozialhub-golden"
    )


def normalise(body: bytes) -> bytes:
    """Blank the hubQuittung (its ECDSA signature is randomised) and pretty-print."""
    root = xmlsafe.parse(body)
    receipt = root.find(f"{F}hubQuittung")
    receipt.text = ""
    etree.indent(root, space="  ")
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8") + b"\n"


def expected_name(deliveries: list[Delivery], delivery: Delivery) -> str:
    return "expected.xml" if len(deliveries) == 1 else f"expected.{delivery.office}.xml"


class TestGolden:
    def test_cases_exist(self):
        """The golden directory holds the documented cases (a lost directory must not pass)."""
        expected = ["elterngeld", "sgb2-single-applicant", "wohngeld-but-household"]
        assert expected == CASES

    @pytest.mark.parametrize("case", CASES)
    def test_case(self, golden_hub, golden_signer, vendor_schema, case):
        """Mapping output for the case's input.xml equals its expected file(s), receipt blanked."""
        directory = GOLDEN_DIR / case
        original = (directory / "input.xml").read_bytes()
        reason, deliveries = run(original, golden_hub, GOLDEN_NOW)
        expected = (None, True)
        assert expected == (reason, len(deliveries) >= 1)

        produced: dict[str, bytes] = {}
        for delivery in deliveries:
            body = unb64(delivery.body_b64)
            assert_schema_valid(vendor_schema, body)
            # The blanked receipt is still checked: it verifies and attests this input.
            receipt = base64.b64decode(xmlsafe.parse(body).findtext(f"{F}hubQuittung"))
            attested = verify(receipt, golden_signer.certificate)
            expected_attested = (
                delivery.submission_id,
                hashlib.sha256(original).hexdigest(),
                "2026-11-05T12:00:00+00:00",
            )
            fields = ("submissionId", "payloadDigest", "signedAt")
            actual_attested = tuple(attested[k] for k in fields)
            assert expected_attested == actual_attested
            expected_did = delivery_id(delivery.submission_id, delivery.office, VERSION)
            assert expected_did == delivery.delivery_id
            assert vendor_topic(delivery.vendor).startswith("fachverfahren.")
            produced[expected_name(deliveries, delivery)] = normalise(body)

        if REGENERATE:
            for stale in directory.glob("expected*.xml"):
                stale.unlink()
            for name, content in produced.items():
                (directory / name).write_bytes(content)
            pytest.skip(f"regenerated {', '.join(sorted(produced))} (SOZIALHUB_REGEN_GOLDEN=1)")

        on_disk = {p.name: p.read_bytes() for p in sorted(directory.glob("expected*.xml"))}
        assert sorted(on_disk) == sorted(produced), (
            "golden files differ from the deliveries produced; "
            "review, then run with SOZIALHUB_REGEN_GOLDEN=1 to rewrite them"
        )
        for name, content in produced.items():
            expected_text = on_disk[name].decode("utf-8")
            assert expected_text == content.decode("utf-8"), f"{case}/{name} differs"
