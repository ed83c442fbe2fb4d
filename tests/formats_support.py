"""Shared pieces of the vendor-format tests: published files, fixed route/context, hostile input.

The hostile strategies build canonical submissions directly (not through
intake), so they reach values no XML payload could carry (control characters,
lone surrogates) as well as everything intake lets through.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import os
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from hub.core import xmlsafe, xsozial
from hub.core.mapping import DeliveryContext
from hub.core.model import LEIKA_LIST_URI, Address, Code, Document, Party, Person, Submission
from hub.core.route import Office, OfficeTable, Route, Vendor
from hub.testing import SubmissionSpec, make_submission

REPO_ROOT = Path(__file__).resolve().parents[1]
VENDOR_SCHEMAS = REPO_ROOT / "schemas" / "vendor"
REGENERATE = os.environ.get("SOZIALHUB_REGEN_GOLDEN") == "1"

SGB2 = "99107002017000"
BUT = "99107029080001"
OFFICE = Office(
    "jc-re-recklinghausen", "Jobcenter", "jbc:055620320000", ("05562032",), frozenset({SGB2}), "v"
)
# A realistic receipt size would only repeat base64; a fixed value keeps goldens stable.
RECEIPT = ("<hubQuittung>" + "Eingang bestätigt; " * 40 + "</hubQuittung>").encode()
CONTEXT = DeliveryContext("dlv-" + "0" * 32, "sub-" + "1" * 32, RECEIPT, (SGB2,))


# Vendor -> format, as assigned in the example office table (config/offices.yml).
VENDOR_FORMATS = {
    "openprosoz": "fv-xml",
    "lammkom": "fv-fixed",
    "oksozius": "fv-json",
    "akdn": "fv-avro",
}


def for_vendor(table: OfficeTable, vendor: str) -> OfficeTable:
    """``table`` with every office delivering to ``vendor`` in that vendor's format.

    Format tests run the whole pipeline on the example office table, but must not
    depend on which vendor each office happens to use there.
    """
    offices = tuple(dataclasses.replace(o, vendor=vendor) for o in table.offices)
    vendors = {vendor: Vendor(vendor_id=vendor, name=vendor, format=VENDOR_FORMATS[vendor])}
    return dataclasses.replace(table, offices=offices, vendors=vendors)


def route(format_name: str, rule: str = "area") -> Route:
    return Route(SGB2, OFFICE, Vendor("v", "Vendor", format_name), rule)


def published_text(data: Any) -> str:
    """How a schema or layout held as data in the core is written to schemas/vendor/."""
    return json.dumps(data, indent=2, ensure_ascii=True) + "\n"


def check_published(name: str, data: Any) -> None:
    """The file under schemas/vendor/ is exactly the core's data (rewritten when regenerating)."""
    path = VENDOR_SCHEMAS / name
    text = published_text(data)
    if REGENERATE:
        path.write_text(text, "utf-8")
    expected = text
    assert expected == path.read_text("utf-8"), (
        f"{name} differs from the core's data; run with SOZIALHUB_REGEN_GOLDEN=1 to rewrite it"
    )


def extracted(spec: SubmissionSpec) -> Submission:
    """The canonical submission intake would extract from ``make_submission(spec)``."""
    return xsozial.extract(xmlsafe.parse(make_submission(spec)))


def context_for(submission: Submission) -> DeliveryContext:
    return DeliveryContext(
        CONTEXT.delivery_id, CONTEXT.submission_id, RECEIPT, submission.leika_keys[:1]
    )


# ----------------------------------------------------------------------- hostile input


def weighted(*options: tuple[int, st.SearchStrategy[Any]]) -> st.SearchStrategy[Any]:
    """One of ``options``, each chosen about as often as its weight says.

    The first option also takes both ends of the table: Hypothesis draws the
    smallest and largest index more often than the others.
    """
    first = options[0][1]
    table = [first, *(strategy for weight, strategy in options for _ in range(weight)), first]
    return st.integers(0, len(table) - 1).flatmap(lambda i: table[i])


# Values every format can carry, some only after transliteration or truncation (fv-fixed).
SOFT = [
    ",",
    ";",
    "|",
    '"',
    "'",
    "<",
    ">",
    "&",
    "]]>",
    "<script>",
    "=1+1",
    "+49 2361",
    "-5",
    "@SUM(A1)",
    " ",
    "\u00a0",
    "\u2009",
    "\u3000",
    "\u200b",
    "\u200d",
    "\ufeff",
    "\u202e",
    "\u00ad",
    "Jürgen",
    "Groß",
    "ẞ",
    "Łukasz",
    "Đorđe",
    "Œuvre",
    "Ærø",
    "Ştefan",
    "Nguyễn",
    "İpek",
    "D\u2019Agostino",
    "„Zitat“",
    "A\u0308rger",
    "q\u0303",
    "\u0301",
    "\uff21\uff42",
    "\ufb01",
    "€",
    "x" * 130,
    "Maximiliane " * 5,
]
# Values some format refuses: control characters, lone surrogates, scripts and symbols
# ISO-8859-15 has no transliteration for (fv-json and fv-avro carry the latter).
HARD = [
    "\t",
    "\n",
    "\r\n",
    "\x00",
    "\x1b",
    "\x7f",
    "\x85",
    "\u2028",
    "Ω",
    "Дмитрий",
    "王",
    "محمد",
    "😀",
    "👨\u200d👩\u200d👧",
    "\U0001d400",
    "\U0001d7cf",
    "\ue000",
    "\U000e0041",
    "\ufffe",
    "\ud800",
]
LETTERS = st.text(st.sampled_from(string.ascii_letters + "äöüÄÖÜßéèçñ -."), max_size=8)
SOFT_TEXT = st.lists(st.one_of(st.sampled_from(SOFT), LETTERS), min_size=1, max_size=5).map("".join)
HARD_TEXT = st.one_of(
    st.lists(st.sampled_from(SOFT + HARD), min_size=1, max_size=5).map("".join),
    st.text(min_size=1, max_size=200),
    st.text(st.characters(codec="latin-1"), min_size=30, max_size=160),
)
HOSTILE_TEXT = weighted((30, SOFT_TEXT), (1, HARD_TEXT))
IDENTIFIER_ALPHABET = string.ascii_letters + string.digits + "._:-"
IDENTIFIERS = weighted(
    (40, st.text(st.sampled_from(IDENTIFIER_ALPHABET), min_size=1, max_size=64)),
    (1, st.text(st.sampled_from(IDENTIFIER_ALPHABET), min_size=65, max_size=90)),
    (1, st.sampled_from(["p\x00", "p\u00a0", "p ", "ä-1", "p😀"])),
)
DATES = weighted(
    (20, st.dates().map(lambda d: d.isoformat()).filter(lambda s: len(s) == 10)),
    (1, st.sampled_from(["1985-04-12Z", "1985-04-12+01:00", "1985-13-01", "12345-01-01", "x"])),
)
LIST_URIS = weighted(
    (
        40,
        st.sampled_from(
            [
                "urn:xoev-de:xsozial:codeliste:personentyp",
                "urn:xoev-de:xoev:codeliste:geschlecht",
                "urn:de:bund:destatis:bevoelkerungsstatistik:schluessel:rs",
            ]
        ),
    ),
    (1, HOSTILE_TEXT),
)
LIST_VERSIONS = weighted(
    (40, st.sampled_from([None, "1.0", "2024", "2024-01-31"])), (1, HOSTILE_TEXT)
)
CODE_VALUES = weighted(
    (40, st.sampled_from(["antragsteller", "partner", "kind", "w", "m", "d", "antrag"])),
    (1, IDENTIFIERS),
)


@dataclass(frozen=True)
class Pools:
    """Where each kind of generated value comes from."""

    text: st.SearchStrategy[str]
    identifiers: st.SearchStrategy[str]
    code_values: st.SearchStrategy[str]
    list_uris: st.SearchStrategy[str]
    list_versions: st.SearchStrategy[str | None]
    dates: st.SearchStrategy[str]
    postcodes: st.SearchStrategy[str]


HOSTILE_POOLS = Pools(
    text=HOSTILE_TEXT,
    identifiers=IDENTIFIERS,
    code_values=CODE_VALUES,
    list_uris=LIST_URIS,
    list_versions=LIST_VERSIONS,
    dates=DATES,
    postcodes=weighted((20, st.sampled_from(["45657", "D-45657"])), (1, IDENTIFIERS)),
)
# Hostile text, but identifiers, codes and dates as intake delivers them: every format maps
# these (fv-fixed by transliterating or cutting), unless a text becomes empty.
MAPPABLE_POOLS = Pools(
    text=SOFT_TEXT,
    identifiers=st.text(st.sampled_from(IDENTIFIER_ALPHABET), min_size=1, max_size=20),
    code_values=st.sampled_from(["antragsteller", "partner", "kind", "w", "m", "d", "antrag"]),
    list_uris=st.sampled_from(["urn:xoev-de:xsozial:codeliste:personentyp"]),
    list_versions=st.sampled_from([None, "1.0", "2024"]),
    dates=st.dates().map(lambda d: d.isoformat()).filter(lambda s: len(s) == 10),
    postcodes=st.sampled_from(["45657", "D-45657"]),
)


@st.composite
def codes(draw: st.DrawFn, pools: Pools) -> Code:
    return Code(
        code=draw(pools.code_values),
        list_uri=draw(pools.list_uris),
        list_version=draw(pools.list_versions),
        name=draw(st.none() | pools.text),
    )


@st.composite
def addresses(draw: st.DrawFn, pools: Pools) -> Address:
    return Address(
        street=draw(st.none() | pools.text),
        house_number=draw(st.none() | st.sampled_from(["21", "12a", "3-5"]) | pools.text),
        postcode=draw(st.none() | pools.postcodes),
        town=draw(st.none() | pools.text),
        region_key=draw(st.none() | codes(pools)),
    )


@st.composite
def documents(draw: st.DrawFn, index: int, pools: Pools) -> Document:
    content = b"%PDF-1.7\n" + draw(st.binary(max_size=64))
    return Document(
        document_id=draw(pools.identifiers),
        name=draw(st.none() | pools.text),
        mime_type=draw(st.sampled_from(["application/pdf", "image/png", "image/tiff"])),
        file_name=draw(st.none() | st.just(f"anlage-{index}.pdf") | pools.text),
        size=len(content),
        sha256=hashlib.sha256(content).hexdigest(),
        kind=draw(st.none() | codes(pools)),
        content_b64=base64.b64encode(content).decode("ascii"),
    )


@st.composite
def hostile_submissions(draw: st.DrawFn, pools: Pools = HOSTILE_POOLS) -> Submission:
    """A canonical submission with hostile strings anywhere a string goes."""
    benefit = Code(SGB2, LEIKA_LIST_URI, "2024", draw(st.none() | pools.text))
    count = draw(st.integers(min_value=1, max_value=4))
    persons = tuple(
        Person(
            person_id=draw(pools.identifiers),
            role=draw(codes(pools)),
            applicant=index == 0,
            given_name=draw(pools.text),
            family_name=draw(pools.text),
            birth_date=draw(st.none() | pools.dates),
            sex=draw(st.none() | codes(pools)),
            address=draw(st.none() | addresses(pools)),
            benefits=(benefit,) if index == 0 else (),
        )
        for index in range(count)
    )
    docs = tuple(draw(documents(i, pools)) for i in range(draw(st.integers(0, 3))))
    return Submission(
        payload_namespace="urn:test",
        payload_version="2.4.0",
        message_id=draw(pools.identifiers),
        created="2026-11-02T09:14:00Z",
        author=Party("DVDV", draw(st.sampled_from(["sop:050000100099"]) | pools.identifiers)),
        reader=None,
        case_id=draw(pools.identifiers),
        case_type=draw(codes(pools)),
        application_date=draw(st.none() | pools.dates),
        persons=persons,
        documents=docs,
    )


def mappable_submissions() -> st.SearchStrategy[Submission]:
    """Hostile text in every text value, everything else as intake delivers it."""
    return hostile_submissions(MAPPABLE_POOLS)


def strings_of(submission: Submission) -> list[str]:
    """Every string value a mapping may carry (the hub-made ids and the receipt excluded)."""
    out: list[str] = [submission.case_id, submission.message_id, submission.author.key]

    def code(c: Code | None) -> None:
        if c is not None:
            out.extend(v for v in (c.code, c.list_uri, c.list_version, c.name) if v is not None)

    code(submission.case_type)
    for person in submission.persons:
        out += [person.person_id, person.given_name, person.family_name]
        code(person.role)
        code(person.sex)
        for benefit in person.benefits:
            code(benefit)
        if person.address is not None:
            a = person.address
            out.extend(v for v in (a.street, a.house_number, a.postcode, a.town) if v is not None)
            code(a.region_key)
    for d in submission.documents:
        out += [d.document_id, d.mime_type]
        out.extend(v for v in (d.name, d.file_name) if v is not None)
        code(d.kind)
    return out


def dates_of(submission: Submission) -> list[str]:
    values = [submission.application_date, *(p.birth_date for p in submission.persons)]
    return [v for v in values if v is not None]
