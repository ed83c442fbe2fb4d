"""Golden deliveries per vendor and case: ``tests/golden/vendors/<vendor>/<case>/`` (see its README).

Each case is a submission built with ``hub.testing`` from fixed values, run
through intake and dispatch with the example office table, every office
assigned to the vendor under test. The hub receipt is replaced by a fixed value
before dispatch, so every byte of every delivery is stable and compared
exactly. The ``openprosoz`` (``fv-xml``) cases are checked by
``tests/unit/test_mapping.py::TestGolden``.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import io
import json
from pathlib import Path
from typing import Any

import fastavro
import jsonschema
import pytest

from hub.core.mapping import fvavro, fvfixed, fvjson
from hub.core.pipeline import HubContext, dispatch, intake
from hub.core.records import Accepted, Delivery, Received, b64, decode, delivery_id, unb64
from hub.testing import DocumentSpec, PersonSpec, SubmissionSpec, make_submission
from tests.formats_support import (
    REGENERATE,
    REPO_ROOT,
    VENDOR_FORMATS,
    VENDOR_SCHEMAS,
    for_vendor,
)

GOLDEN_ROOT = REPO_ROOT / "tests" / "golden" / "vendors"
NOW = dt.datetime(2026, 11, 2, 10, 0, tzinfo=dt.UTC)
RECEIPT = b"<hubQuittung>golden: fixed receipt bytes, not a signature</hubQuittung>" * 8
SGB2 = ("99107002017000", "Bürgergeld, Bewilligung")
SGB2_GENERAL = ("99107002000000", "Bürgergeld")


def spec(number: int, persons: tuple[PersonSpec, ...], **changes: Any) -> SubmissionSpec:
    """A submission with fixed UUIDs (the case number makes them distinct)."""
    return SubmissionSpec(
        persons=persons,
        message_uuid=f"6f1c2a8e-3b4d-4e5f-8a9b-0c1d2e3f4a{number:02d}",
        case_uuid=f"0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c{number:02d}",
        **changes,
    )


SINGLE = spec(1, (PersonSpec(),))
HOUSEHOLD = spec(
    2,
    (
        PersonSpec(given_name="Jürgen", family_name="Groß-Übelhör", sex="m"),
        PersonSpec(
            given_name="Renée",
            family_name="Groß-Übelhör",
            applicant=False,
            role="partner",
            benefits=(),
        ),
        PersonSpec(
            given_name="Zoë",
            family_name="Groß-Übelhör",
            birth_date="2015-07-08",
            applicant=False,
            role="kind",
            benefits=(),
            street=None,
            house_number=None,
            postcode=None,
            town=None,
        ),
    ),
    documents=(DocumentSpec(name="Mietvertrag für die Wohnung", file_name="mietvertrag.pdf"),),
)
TRANSLITERATION = spec(
    3,
    (
        PersonSpec(
            given_name="Łukasz\u00a0Đorđe",
            family_name="Nguyễn-D\u2019Agostino",
            street="Kurfürst-Ludwig-Maximilian-von-Hohenzollern-Sigmaringen-Allee",
            house_number="21\u2009a",
        ),
        PersonSpec(
            given_name="Œuvre\u00adÆrø",
            family_name="=Summe(A1)",
            applicant=False,
            role="kind",
            benefits=(),
        ),
    ),
)
MARKUP_AND_SCRIPTS = spec(
    4,
    (
        PersonSpec(given_name="<script>&amp;</script>", family_name='"O\'Brien" =1+1'),
        PersonSpec(
            given_name="Дмитрий 😀",
            family_name="A\u0308rger\u00a0王",
            applicant=False,
            role="kind",
            benefits=(),
        ),
    ),
    documents=(DocumentSpec(name="Nachweis <&>", file_name="nachweis \u201ealt\u201c.pdf"),),
)
ABSENT_VALUES = spec(
    5,
    (
        PersonSpec(benefits=(SGB2, SGB2_GENERAL)),
        PersonSpec(
            given_name="\U0001d510\U0001d51e\U0001d52f\U0001d526\U0001d522",
            family_name="@Mustermann",
            applicant=False,
            role="kind",
            benefits=(),
            street=None,
            house_number=None,
            postcode=None,
            town=None,
        ),
    ),
)

CASES: dict[str, dict[str, SubmissionSpec]] = {
    "lammkom": {
        "single-applicant": SINGLE,
        "household-umlauts-document": HOUSEHOLD,
        "transliteration-truncation": TRANSLITERATION,
    },
    "oksozius": {
        "single-applicant": SINGLE,
        "household-umlauts-document": HOUSEHOLD,
        "markup-formula-scripts": MARKUP_AND_SCRIPTS,
    },
    "akdn": {
        "single-applicant": SINGLE,
        "household-umlauts-document": HOUSEHOLD,
        "absent-values-two-benefits": ABSENT_VALUES,
    },
}
PAIRS = [(vendor, case) for vendor, cases in CASES.items() for case in cases]


def deliveries_of(original: bytes, hub: HubContext) -> list[Delivery]:
    """Intake, the fixed receipt, dispatch: every delivery the case yields."""
    first = intake(Received.of(original, "golden", "file", NOW), None, hub, NOW)
    assert "accepted" == first.outcome, first.reason
    accepted = decode(first.emits[0].value, Accepted)
    accepted = dataclasses.replace(accepted, receipt_b64=b64(RECEIPT))
    second = dispatch(accepted, None, hub, NOW)
    assert "routed" == second.outcome, second.reason
    return [
        decode(e.value, Delivery)
        for e in second.emits
        if e.topic.startswith(("deliveries.", "fachverfahren."))
    ]


# ------------------------------------------------------------------ per-format checks


def _plain(value: Any) -> Any:
    """An Avro datum as JSON: bytes as base64, dates as ISO strings."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, bytes):
        return {"base64": base64.b64encode(value).decode("ascii")}
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def files_fixed(body: bytes, delivery: Delivery) -> dict[str, bytes]:
    records = fvfixed.parse(body)
    assert RECEIPT == fvfixed.receipt_of(records)
    named = [r["datei"] for r in records if r["satzart"] == "D"]
    beside = getattr(delivery, "documents", None)
    if beside is not None:
        assert named == [d["file_name"] for d in beside]
    return {".dat": body}


def files_json(body: bytes, delivery: Delivery) -> dict[str, bytes]:
    document = json.loads(body.decode("utf-8"))
    schema = json.loads((VENDOR_SCHEMAS / "fv-json-1.schema.json").read_text("utf-8"))
    jsonschema.Draft202012Validator(schema).validate(document)
    assert RECEIPT == base64.b64decode(document["hubReceipt"])
    pretty = json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    return {".json": pretty.encode("utf-8")}


def files_avro(body: bytes, delivery: Delivery) -> dict[str, bytes]:
    schema = fastavro.parse_schema(json.loads((VENDOR_SCHEMAS / "fv-avro-1.avsc").read_text()))
    assert b"\xc3\x01" + fvavro.FINGERPRINT == body[:10]
    datum = fastavro.schemaless_reader(io.BytesIO(body[10:]), schema, schema)
    assert RECEIPT == datum["hubReceipt"]
    readable = {"header": body[:10].hex(), "record": _plain(datum)}
    text = json.dumps(readable, indent=2, ensure_ascii=False) + "\n"
    return {".bin": body, ".bin.json": text.encode("utf-8")}


CHECKS = {"fv-fixed": files_fixed, "fv-json": files_json, "fv-avro": files_avro}
VERSIONS = {"fv-fixed": fvfixed.VERSION, "fv-json": fvjson.VERSION, "fv-avro": fvavro.VERSION}


# ------------------------------------------------------------------------------- tests


@pytest.fixture(scope="module")
def hubs(payloads, office_table, signer) -> dict[str, HubContext]:
    return {
        vendor: HubContext(payloads, for_vendor(office_table, vendor), signer, "sozialhub-golden")
        for vendor in VENDOR_FORMATS
    }


def test_every_vendor_has_its_cases_on_disk():
    """Each vendor directory holds exactly the documented cases (a lost one must not pass)."""
    expected = {vendor: sorted(cases) for vendor, cases in CASES.items()}
    actual = {
        vendor: sorted(p.name for p in (GOLDEN_ROOT / vendor).iterdir() if p.is_dir())
        for vendor in CASES
    }
    assert expected == actual


def test_openprosoz_cases_exist():
    """The fv-xml cases live under vendors/openprosoz (checked by test_mapping.py)."""
    expected = ["elterngeld", "sgb2-single-applicant", "wohngeld-but-household"]
    assert expected == sorted(p.name for p in (GOLDEN_ROOT / "openprosoz").iterdir() if p.is_dir())


@pytest.mark.parametrize(("vendor", "case"), PAIRS, ids=[f"{v}/{c}" for v, c in PAIRS])
def test_golden(hubs, vendor, case):
    """The vendor's deliveries for the case equal its expected files, byte for byte."""
    directory: Path = GOLDEN_ROOT / vendor / case
    original = make_submission(CASES[vendor][case])
    deliveries = deliveries_of(original, hubs[vendor])
    assert deliveries
    fmt = VENDOR_FORMATS[vendor]
    produced: dict[str, bytes] = {"input.xml": original}
    for delivery in deliveries:
        assert (fmt, VERSIONS[fmt]) == (delivery.format, delivery.mapping_version)
        expected_id = delivery_id(delivery.submission_id, delivery.office, VERSIONS[fmt])
        assert expected_id == delivery.delivery_id
        stem = "expected" if len(deliveries) == 1 else f"expected.{delivery.office}"
        for suffix, content in CHECKS[fmt](unb64(delivery.body_b64), delivery).items():
            produced[stem + suffix] = content

    if REGENERATE:
        directory.mkdir(parents=True, exist_ok=True)
        for stale in directory.glob("expected*"):
            stale.unlink()
        for name, content in produced.items():
            (directory / name).write_bytes(content)
        pytest.skip(f"regenerated {vendor}/{case} (SOZIALHUB_REGEN_GOLDEN=1)")

    on_disk = {p.name: p.read_bytes() for p in sorted(directory.iterdir()) if p.name != "README.md"}
    assert sorted(produced) == sorted(on_disk), (
        "golden files differ from the deliveries produced; "
        "review, then run with SOZIALHUB_REGEN_GOLDEN=1 to rewrite them"
    )
    for name, content in produced.items():
        assert on_disk[name] == content, f"{vendor}/{case}/{name} differs"
