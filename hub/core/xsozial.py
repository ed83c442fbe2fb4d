"""XSozial-basis 2.4.0 (``vorgang.transportieren.1000001``) into the canonical model.

Runs only on a tree that passed schema validation. Reads by exact, unqualified
child names (XÖV: only the root is qualified), so look-alike elements in foreign
namespaces (lax wildcard content) are never read. Text is NFC-normalised.
"""

from __future__ import annotations

import base64
import binascii
import hashlib

from lxml import etree

from hub.core import xoev
from hub.core.documents import DEFAULT_DOCUMENTS, check_document
from hub.core.errors import Reason, Rejection
from hub.core.model import Address, Document, Person, Submission, ThirdParty

NAMESPACE = "https://portalverbund.d-nrw.de/efa/XSozial-basis/Version_2_4_0"
ROOT = "vorgang.transportieren.1000001"
VERSIONS = frozenset({"2.4.0"})


def _address(element: etree._Element | None) -> Address | None:
    if element is None:
        return None
    return Address(
        street=xoev.text(xoev.child(element, "strasse")),
        house_number=xoev.text(xoev.child(element, "hausnummer")),
        postcode=xoev.text(xoev.child(element, "postleitzahl")),
        town=xoev.text(xoev.child(element, "ort")),
        region_key=xoev.code(xoev.child(element, "gemeindeschluessel")),
    )


def _person(element: etree._Element) -> Person:
    general = xoev.child(element, "allgemein")
    if general is None:
        raise Rejection(Reason.FIELD_FORMAT, "person/allgemein")
    return Person(
        person_id=xoev.identifier(element, "personID"),
        role=xoev.required_code(element, "typ"),
        applicant=xoev.required(element, "antragsteller") in ("true", "1"),
        given_name=xoev.required(general, "name/vorname"),
        family_name=xoev.required(general, "name/familienname"),
        birth_date=xoev.text(xoev.child(general, "geburtsdatum")),
        sex=xoev.code(xoev.child(general, "geschlecht")),
        address=_address(xoev.child(general, "anschrift")),
        benefits=tuple(
            xoev.required_code(benefit, "leistungArt")
            for benefit in element.iterfind("beantragteLeistung")
        ),
    )


def _document(element: etree._Element, position: int) -> Document:
    where = f"xsozial/dokument[{position}]"
    representation = xoev.child(element, "dokumentRepraesentation")
    if representation is None:
        raise Rejection(Reason.FIELD_FORMAT, f"{where}/dokumentRepraesentation")
    encoded = "".join((representation.findtext("inhalt") or "").split())
    if len(encoded) > DEFAULT_DOCUMENTS.max_bytes * 4 // 3 + 4:
        raise Rejection(Reason.ATTACHMENT, f"{where}/size")
    try:
        content = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise Rejection(Reason.FIELD_FORMAT, f"{where}/dokumentRepraesentation/inhalt") from None
    media = check_document(content, xoev.required(representation, "mimeType"), where)
    return Document(
        document_id=xoev.identifier(element, "dokumentID"),
        name=xoev.text(xoev.child(element, "name")),
        mime_type=media,
        file_name=xoev.text(xoev.child(representation, "dateiname")),
        size=len(content),
        sha256=hashlib.sha256(content).hexdigest(),
        kind=xoev.code(xoev.child(element, "dokumentTyp")),
        content_b64=encoded,
    )


def extract(root: etree._Element) -> Submission:
    """The canonical submission of a validated XSozial-basis 2.4.0 message."""
    head = xoev.child(root, "nachrichtenkopf.g2g")
    case = xoev.child(root, "xsozial")
    if head is None or case is None:
        raise Rejection(Reason.FIELD_FORMAT, "/")
    author = xoev.party(xoev.child(head, "autor"), "nachrichtenkopf.g2g/autor")
    if author is None:
        raise Rejection(Reason.FIELD_FORMAT, "nachrichtenkopf.g2g/autor")
    procedure = xoev.child(case, "vorgang")
    if procedure is None:
        raise Rejection(Reason.FIELD_FORMAT, "xsozial/vorgang")
    return Submission(
        payload_namespace=NAMESPACE,
        payload_version=root.get("version", ""),
        message_id=xoev.identifier(head, "identifikation.nachricht/nachrichtenUUID").lower(),
        created=xoev.required(head, "identifikation.nachricht/erstellungszeitpunkt"),
        author=author,
        reader=xoev.party(xoev.child(head, "leser"), "nachrichtenkopf.g2g/leser"),
        case_id=xoev.identifier(case, "identifikationVorgang/vorgangsID").lower(),
        case_type=xoev.required_code(procedure, "vorgangsTyp"),
        application_date=xoev.text(xoev.child(procedure, "antragsDatum")),
        persons=tuple(_person(p) for p in procedure.iterfind("person")),
        documents=_documents(case),
        third_parties=tuple(_third_party(t) for t in procedure.iterfind("dritte")),
    )


def _documents(case: etree._Element) -> tuple[Document, ...]:
    elements = list(case.iterfind("dokument"))
    if len(elements) > DEFAULT_DOCUMENTS.max_count:
        raise Rejection(Reason.ATTACHMENT, "xsozial/dokument")
    return tuple(_document(d, i) for i, d in enumerate(elements, start=1))


def _third_party(element: etree._Element) -> ThirdParty:
    contact = xoev.child(element, "kontakt")
    return ThirdParty(
        role=xoev.required_code(element, "rolle"),
        name=xoev.required(element, "bezeichnung"),
        address=_address(xoev.child(element, "anschrift")),
        phone=None if contact is None else xoev.text(xoev.child(contact, "telefon")),
        email=None if contact is None else xoev.text(xoev.child(contact, "email")),
    )
