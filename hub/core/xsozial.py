"""XSozial-basis 2.4.0 (``vorgang.transportieren.1000001``) into the canonical model.

Runs only on a tree that passed schema validation. Reads by exact, unqualified
child names (XÖV: only the root is qualified), so look-alike elements in foreign
namespaces (lax wildcard content) are never read. Text is NFC-normalised.
"""

from __future__ import annotations

import binascii
import hashlib

from lxml import etree

from hub.core import xoev
from hub.core.documents import DEFAULT_DOCUMENTS, check_document
from hub.core.errors import Reason, Rejection
from hub.core.model import Address, Document, Person, Submission, ThirdParty
from hub.core.records import b64decode_validated

NAMESPACE = "https://portalverbund.d-nrw.de/efa/XSozial-basis/Version_2_4_0"
ROOT = "vorgang.transportieren.1000001"
VERSIONS = frozenset({"2.4.0"})


def _address(element: etree._Element | None) -> Address | None:
    if element is None:
        return None
    address = xoev.Node(element)
    return Address(
        street=address.text("strasse"),
        house_number=address.text("hausnummer"),
        postcode=address.text("postleitzahl"),
        town=address.text("ort"),
        region_key=address.code("gemeindeschluessel"),
    )


def _person(element: etree._Element) -> Person:
    person = xoev.Node(element)
    general_element = person.get("allgemein")
    if general_element is None:
        raise Rejection(Reason.FIELD_FORMAT, "person/allgemein")
    general = xoev.Node(general_element)
    return Person(
        person_id=person.identifier("personID"),
        role=person.required_code("typ"),
        applicant=person.required("antragsteller") in ("true", "1"),
        given_name=general.required("name/vorname"),
        family_name=general.required("name/familienname"),
        birth_date=general.text("geburtsdatum"),
        sex=general.code("geschlecht"),
        address=_address(general.get("anschrift")),
        benefits=tuple(
            xoev.Node(benefit).required_code("leistungArt")
            for benefit in person.all("beantragteLeistung")
        ),
    )


def _document(element: etree._Element, position: int) -> Document:
    where = f"xsozial/dokument[{position}]"
    document = xoev.Node(element)
    representation_element = document.get("dokumentRepraesentation")
    if representation_element is None:
        raise Rejection(Reason.FIELD_FORMAT, f"{where}/dokumentRepraesentation")
    representation = xoev.Node(representation_element)
    content_element = representation.get("inhalt")
    text = None if content_element is None else content_element.text
    encoded = "".join((text or "").split())
    if len(encoded) > DEFAULT_DOCUMENTS.max_bytes * 4 // 3 + 4:
        raise Rejection(Reason.ATTACHMENT, f"{where}/size")
    try:
        content = b64decode_validated(encoded)
    except (binascii.Error, ValueError):
        raise Rejection(Reason.FIELD_FORMAT, f"{where}/dokumentRepraesentation/inhalt") from None
    media = check_document(content, representation.required("mimeType"), where)
    return Document(
        document_id=document.identifier("dokumentID"),
        name=document.text("name"),
        mime_type=media,
        file_name=representation.text("dateiname"),
        size=len(content),
        sha256=hashlib.sha256(content).hexdigest(),
        kind=document.code("dokumentTyp"),
        content_b64=encoded,
    )


def extract(root: etree._Element) -> Submission:
    """The canonical submission of a validated XSozial-basis 2.4.0 message."""
    message = xoev.Node(root)
    head_element = message.get("nachrichtenkopf.g2g")
    case_element = message.get("xsozial")
    if head_element is None or case_element is None:
        raise Rejection(Reason.FIELD_FORMAT, "/")
    head, case = xoev.Node(head_element), xoev.Node(case_element)
    author = xoev.party(head.get("autor"), "nachrichtenkopf.g2g/autor")
    if author is None:
        raise Rejection(Reason.FIELD_FORMAT, "nachrichtenkopf.g2g/autor")
    procedure_element = case.get("vorgang")
    if procedure_element is None:
        raise Rejection(Reason.FIELD_FORMAT, "xsozial/vorgang")
    procedure = xoev.Node(procedure_element)
    return Submission(
        payload_namespace=NAMESPACE,
        payload_version=root.get("version", ""),
        message_id=head.identifier("identifikation.nachricht/nachrichtenUUID").lower(),
        created=head.required("identifikation.nachricht/erstellungszeitpunkt"),
        author=author,
        reader=xoev.party(head.get("leser"), "nachrichtenkopf.g2g/leser"),
        case_id=case.identifier("identifikationVorgang/vorgangsID").lower(),
        case_type=procedure.required_code("vorgangsTyp"),
        application_date=procedure.text("antragsDatum"),
        persons=tuple(_person(p) for p in procedure.all("person")),
        documents=_documents(case),
        third_parties=tuple(_third_party(t) for t in procedure.all("dritte")),
    )


def _documents(case: xoev.Node) -> tuple[Document, ...]:
    elements = case.all("dokument")
    if len(elements) > DEFAULT_DOCUMENTS.max_count:
        raise Rejection(Reason.ATTACHMENT, "xsozial/dokument")
    return tuple(_document(d, i) for i, d in enumerate(elements, start=1))


def _third_party(element: etree._Element) -> ThirdParty:
    third_party = xoev.Node(element)
    contact_element = third_party.get("kontakt")
    contact = None if contact_element is None else xoev.Node(contact_element)
    return ThirdParty(
        role=third_party.required_code("rolle"),
        name=third_party.required("bezeichnung"),
        address=_address(third_party.get("anschrift")),
        phone=None if contact is None else contact.text("telefon"),
        email=None if contact is None else contact.text("email"),
    )
