"""Test helpers for users of the hub: build valid XSozial-basis 2.4.0 submissions.

``make_submission()`` returns the bytes of a valid ``vorgang.transportieren.1000001``
message; every argument varies one part. Used by the examples, the benchmark and
the tests; also handy for vendors and portal integrators writing their own tests.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

from lxml import etree

from hub.core.xsozial import NAMESPACE, ROOT

LEIKA = "urn:de:fim:leika:leistung"
ARS_LIST = "urn:de:bund:destatis:bevoelkerungsstatistik:schluessel:rs"


@dataclass(frozen=True)
class PersonSpec:
    given_name: str = "Erika"
    family_name: str = "Mustermann"
    birth_date: str = "1985-04-12"
    sex: str = "w"
    applicant: bool = True
    role: str = "antragsteller"
    benefits: Sequence[tuple[str, str]] = (("99107002017000", "Bürgergeld, Bewilligung"),)
    street: str | None = "Kurfürstenwall"
    house_number: str | None = "21"
    postcode: str | None = "45657"
    town: str | None = "Recklinghausen"
    ars: str | None = None


@dataclass(frozen=True)
class DocumentSpec:
    document_id: str = "doc-1"
    name: str = "Mietvertrag"
    mime_type: str = "application/pdf"
    content: bytes = b"%PDF-1.7\n% sozialhub test document\n"
    file_name: str = "mietvertrag.pdf"


@dataclass(frozen=True)
class ThirdPartySpec:
    role: str = "schule"
    name: str = "Grundschule am Stadtgarten"
    street: str | None = "Schulstraße"
    house_number: str | None = "3"
    postcode: str | None = "45768"
    town: str | None = "Marl"
    phone: str | None = "02365 99-0"
    email: str | None = "sekretariat@schule.example"


@dataclass(frozen=True)
class SubmissionSpec:
    persons: Sequence[PersonSpec] = (PersonSpec(),)
    documents: Sequence[DocumentSpec] = ()
    third_parties: Sequence[ThirdPartySpec] = ()
    message_uuid: str = field(default_factory=lambda: str(uuid.uuid4()))
    case_uuid: str = field(default_factory=lambda: str(uuid.uuid4()))
    created: str = "2026-11-02T09:14:00Z"
    application_date: str = "2026-11-02"
    author_key: str = "sop:050000100099"
    reader_key: str = "jbc:055620000000"
    version: str = "2.4.0"


def _el(parent: etree._Element, tag: str, text: str | None = None, **attrib: str) -> etree._Element:
    element = etree.SubElement(parent, tag, attrib)
    if text is not None:
        element.text = text
    return element


def _code(
    parent: etree._Element,
    tag: str,
    list_uri: str,
    version: str,
    code: str,
    name: str | None = None,
) -> None:
    element = _el(parent, tag, listURI=list_uri, listVersionID=version)
    _el(element, "code", code)
    if name:
        _el(element, "name", name)


def _party(parent: etree._Element, tag: str, key: str, name: str) -> None:
    element = _el(parent, tag)
    _code(element, "verzeichnisdienst", "urn:de:xoev:codeliste:verzeichnisdienst", "1", "DVDV")
    _el(element, "kennung", key)
    _el(element, "name", name)


def _person(parent: etree._Element, index: int, spec: PersonSpec) -> None:
    person = _el(parent, "person")
    _el(person, "personID", f"p{index}")
    _code(person, "typ", "urn:xoev-de:xsozial:codeliste:personentyp", "1.0", spec.role)
    _el(person, "antragsteller", "true" if spec.applicant else "false")
    general = _el(person, "allgemein")
    name = _el(general, "name")
    _el(name, "vorname", spec.given_name)
    _el(name, "familienname", spec.family_name)
    _el(general, "geburtsdatum", spec.birth_date)
    _code(general, "geschlecht", "urn:xoev-de:xoev:codeliste:geschlecht", "2", spec.sex)
    if spec.street or spec.postcode or spec.town or spec.ars:
        address = _el(general, "anschrift")
        for tag, value in (
            ("strasse", spec.street),
            ("hausnummer", spec.house_number),
            ("postleitzahl", spec.postcode),
            ("ort", spec.town),
        ):
            if value:
                _el(address, tag, value)
        if spec.ars:
            _code(address, "gemeindeschluessel", ARS_LIST, "2024-01-31", spec.ars)
    for key, label in spec.benefits:
        benefit = _el(person, "beantragteLeistung")
        _code(benefit, "leistungArt", LEIKA, "2024", key, label)


def make_submission(spec: SubmissionSpec | None = None) -> bytes:
    """A valid XSozial-basis 2.4.0 message as UTF-8 bytes."""
    s = spec or SubmissionSpec()
    root = etree.Element(
        f"{{{NAMESPACE}}}{ROOT}",
        nsmap={"xsb": NAMESPACE},
        produkt="Sozialplattform NRW",
        produkthersteller="Land NRW",
        produktversion="3.1",
        standard="XSozial-basis",
        version=s.version,
    )
    head = _el(root, "nachrichtenkopf.g2g")
    ident = _el(head, "identifikation.nachricht")
    _el(ident, "nachrichtenUUID", s.message_uuid)
    _code(ident, "nachrichtentyp", "urn:xoev-de:xsozial:codeliste:nachrichtentyp", "2.4", "1000001")
    _el(ident, "erstellungszeitpunkt", s.created)
    _party(head, "leser", s.reader_key, "Empfangende Behörde")
    _party(head, "autor", s.author_key, "Sozialplattform NRW")
    _el(head, "dvdvDienstkennung", "https://sozialplattform.nrw.de/dvdv/xsozial.wsdl")
    case = _el(root, "xsozial")
    _el(_el(case, "identifikationVorgang"), "vorgangsID", s.case_uuid)
    procedure = _el(case, "vorgang")
    _code(
        procedure,
        "vorgangsTyp",
        "urn:xoev-de:xsozial:codeliste:vorgangstyp",
        "1.0",
        "antrag",
        "Antrag",
    )
    _el(procedure, "antragsDatum", s.application_date)
    for index, person in enumerate(s.persons, start=1):
        _person(procedure, index, person)
    for third in s.third_parties:
        party = _el(procedure, "dritte")
        _code(party, "rolle", "urn:xoev-de:xsozial:codeliste:drittenrolle", "1.0", third.role)
        _el(party, "bezeichnung", third.name)
        if third.town is not None:
            address = _el(party, "anschrift")
            for tag, value in (
                ("strasse", third.street),
                ("hausnummer", third.house_number),
                ("postleitzahl", third.postcode),
                ("ort", third.town),
            ):
                if value is not None:
                    _el(address, tag, value)
        if third.phone is not None or third.email is not None:
            contact = _el(party, "kontakt")
            if third.phone is not None:
                _el(contact, "telefon", third.phone)
            if third.email is not None:
                _el(contact, "email", third.email)
    for doc in s.documents:
        document = _el(case, "dokument")
        _el(document, "dokumentID", doc.document_id)
        _el(document, "name", doc.name)
        representation = _el(document, "dokumentRepraesentation")
        _el(representation, "mimeType", doc.mime_type)
        _el(representation, "inhalt", base64.b64encode(doc.content).decode("ascii"))
        _el(representation, "dateiname", doc.file_name)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)


WOHNGELD_NAMESPACE = "urn:sozialhub:payload:wohngeld-antrag:1"


@dataclass(frozen=True)
class WohngeldSpec:
    """A Wohngeld application from the Serviceportal; every field varies one part."""

    application_uuid: str = field(default_factory=lambda: str(uuid.uuid4()))
    created: str = "2026-11-02T09:30:00Z"
    portal_key: str = "sop:055620000001"
    reader_key: str | None = None
    benefit: tuple[str, str] = ("99107023017001", "Wohngeld, Bewilligung erstmalig")
    applicant: tuple[str, str, str] = ("Jana", "Kowalski", "1979-02-11")
    children: Sequence[tuple[str, str, str]] = (("Mia", "Kowalski", "2014-06-30"),)
    street: str = "Bergstraße"
    house_number: str = "12"
    postcode: str = "45768"
    town: str = "Marl"
    rent: str = "612.40"
    documents: Sequence[DocumentSpec] = (DocumentSpec(name="Mietbescheinigung"),)
    version: str = "1.0"


def make_wohngeld_application(spec: WohngeldSpec | None = None) -> bytes:
    """A valid ``wohngeldAntrag`` 1.0 (schemas/payload/wohngeld-antrag-1) as UTF-8 bytes."""
    s = spec or WohngeldSpec()
    root = etree.Element(
        f"{{{WOHNGELD_NAMESPACE}}}wohngeldAntrag",
        nsmap={"wg": WOHNGELD_NAMESPACE},
        version=s.version,
        formular="Serviceportal Emscher-Lippe, Wohngeldantrag",
    )
    head = _el(root, "kopf")
    _el(head, "antragsID", s.application_uuid)
    _el(head, "erstellt", s.created)
    _party(head, "portal", s.portal_key, "Serviceportal Emscher-Lippe")
    if s.reader_key is not None:
        _party(head, "empfaenger", s.reader_key, "Wohngeldstelle")
    application = _el(root, "antrag")
    _code(application, "leistung", LEIKA, "2024", s.benefit[0], s.benefit[1])
    _code(application, "antragsart", "urn:sozialhub:codeliste:wohngeld-antragsart", "1", "erst")
    _el(application, "antragsDatum", s.created[:10])
    home = _el(application, "wohnung")
    address = _el(home, "anschrift")
    for tag, value in (
        ("strasse", s.street),
        ("hausnummer", s.house_number),
        ("postleitzahl", s.postcode),
        ("ort", s.town),
    ):
        _el(address, tag, value)
    _el(home, "wohnflaecheQm", "68.50")
    _el(home, "bruttokaltmieteEuro", s.rent)
    _el(home, "heizkostenEnthalten", "false")
    members = [(s.applicant, "antragsteller", True), *((c, "kind", False) for c in s.children)]
    for index, ((given, family, born), role, applicant) in enumerate(members, start=1):
        member = _el(application, "haushaltsmitglied")
        _el(member, "mitgliedID", f"m{index}")
        _code(member, "rolle", "urn:xoev-de:xsozial:codeliste:personentyp", "1.0", role)
        _el(member, "antragsteller", "true" if applicant else "false")
        _el(member, "vorname", given)
        _el(member, "familienname", family)
        _el(member, "geburtsdatum", born)
    for doc in s.documents:
        evidence = _el(application, "nachweis")
        _el(evidence, "nachweisID", doc.document_id)
        _el(evidence, "bezeichnung", doc.name)
        _el(evidence, "mimeType", doc.mime_type)
        _el(evidence, "dateiname", doc.file_name)
        _el(evidence, "inhalt", base64.b64encode(doc.content).decode("ascii"))
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)
