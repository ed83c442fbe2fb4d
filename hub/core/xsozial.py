"""XSozial-basis 2.4.0 (``vorgang.transportieren.1000001``) into the canonical model.

Runs only on a tree that passed schema validation. Reads by exact, unqualified
child names (XÖV: only the root is qualified), so look-alike elements in foreign
namespaces (lax wildcard content) are never read. Text is NFC-normalised.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import unicodedata

from lxml import etree

from hub.core.errors import Reason, Rejection
from hub.core.documents import DEFAULT_DOCUMENTS, check_document
from hub.core.model import Address, Code, Document, Party, Person, Submission, ThirdParty

NAMESPACE = "https://portalverbund.d-nrw.de/efa/XSozial-basis/Version_2_4_0"
ROOT = "vorgang.transportieren.1000001"
VERSIONS = frozenset({"2.4.0"})


_XML_SPACE = " \t\r\n"
_IDENTIFIER = re.compile(r"[A-Za-z0-9._:\-]{1,64}")


def _text(element: etree._Element | None) -> str | None:
    if element is None or element.text is None:
        return None
    # Strip XML whitespace only: a no-break space or other Unicode space is content.
    value = unicodedata.normalize("NFC", element.text.strip(_XML_SPACE))
    return value or None


def _identifier(parent: etree._Element, path: str, where: str = "") -> str:
    """An identifier: ASCII letters, digits and ``._:-`` only (no homoglyphs, bidi or spaces)."""
    value = _required(parent, path)
    if not _IDENTIFIER.fullmatch(value):
        raise Rejection(Reason.FIELD_FORMAT, f"{where}/{path}" if where else path)
    return value


def _required(parent: etree._Element, path: str) -> str:
    value = _text(parent.find(path))
    if value is None:
        raise Rejection(Reason.FIELD_FORMAT, path)
    return value


def _code(element: etree._Element | None) -> Code | None:
    if element is None:
        return None
    code = _text(element.find("code"))
    list_uri = element.get("listURI")
    if code is None or not list_uri:
        raise Rejection(Reason.FIELD_FORMAT, element.tag)
    return Code(
        code=code,
        list_uri=list_uri,
        list_version=element.get("listVersionID"),
        name=_text(element.find("name")),
    )


def _required_code(parent: etree._Element, path: str) -> Code:
    code = _code(parent.find(path))
    if code is None:
        raise Rejection(Reason.FIELD_FORMAT, path)
    return code


def _party(element: etree._Element | None, where: str) -> Party | None:
    if element is None:
        return None
    directory = _required_code(element, "verzeichnisdienst")
    return Party(
        directory=directory.code,
        key=_identifier(element, "kennung", where),
        name=_text(element.find("name")),
    )


def _address(element: etree._Element | None) -> Address | None:
    if element is None:
        return None
    return Address(
        street=_text(element.find("strasse")),
        house_number=_text(element.find("hausnummer")),
        postcode=_text(element.find("postleitzahl")),
        town=_text(element.find("ort")),
        region_key=_code(element.find("gemeindeschluessel")),
    )


def _person(element: etree._Element) -> Person:
    general = element.find("allgemein")
    if general is None:
        raise Rejection(Reason.FIELD_FORMAT, "person/allgemein")
    return Person(
        person_id=_identifier(element, "personID"),
        role=_required_code(element, "typ"),
        applicant=_required(element, "antragsteller") in ("true", "1"),
        given_name=_required(general, "name/vorname"),
        family_name=_required(general, "name/familienname"),
        birth_date=_text(general.find("geburtsdatum")),
        sex=_code(general.find("geschlecht")),
        address=_address(general.find("anschrift")),
        benefits=tuple(
            _required_code(benefit, "leistungArt")
            for benefit in element.iterfind("beantragteLeistung")
        ),
    )


def _document(element: etree._Element, position: int) -> Document:
    where = f"xsozial/dokument[{position}]"
    representation = element.find("dokumentRepraesentation")
    if representation is None:
        raise Rejection(Reason.FIELD_FORMAT, f"{where}/dokumentRepraesentation")
    encoded = "".join((representation.findtext("inhalt") or "").split())
    if len(encoded) > DEFAULT_DOCUMENTS.max_bytes * 4 // 3 + 4:
        raise Rejection(Reason.ATTACHMENT, f"{where}/size")
    try:
        content = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise Rejection(Reason.FIELD_FORMAT, f"{where}/dokumentRepraesentation/inhalt") from None
    media = check_document(content, _required(representation, "mimeType"), where)
    return Document(
        document_id=_identifier(element, "dokumentID"),
        name=_text(element.find("name")),
        mime_type=media,
        file_name=_text(representation.find("dateiname")),
        size=len(content),
        sha256=hashlib.sha256(content).hexdigest(),
        kind=_code(element.find("dokumentTyp")),
        content_b64=encoded,
    )


def extract(root: etree._Element) -> Submission:
    """The canonical submission of a validated XSozial-basis 2.4.0 message."""
    head = root.find("nachrichtenkopf.g2g")
    case = root.find("xsozial")
    if head is None or case is None:
        raise Rejection(Reason.FIELD_FORMAT, "/")
    author = _party(head.find("autor"), "nachrichtenkopf.g2g/autor")
    if author is None:
        raise Rejection(Reason.FIELD_FORMAT, "nachrichtenkopf.g2g/autor")
    procedure = case.find("vorgang")
    if procedure is None:
        raise Rejection(Reason.FIELD_FORMAT, "xsozial/vorgang")
    return Submission(
        payload_namespace=NAMESPACE,
        payload_version=root.get("version", ""),
        message_id=_identifier(head, "identifikation.nachricht/nachrichtenUUID").lower(),
        created=_required(head, "identifikation.nachricht/erstellungszeitpunkt"),
        author=author,
        reader=_party(head.find("leser"), "nachrichtenkopf.g2g/leser"),
        case_id=_identifier(case, "identifikationVorgang/vorgangsID").lower(),
        case_type=_required_code(procedure, "vorgangsTyp"),
        application_date=_text(procedure.find("antragsDatum")),
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
    contact = element.find("kontakt")
    return ThirdParty(
        role=_required_code(element, "rolle"),
        name=_required(element, "bezeichnung"),
        address=_address(element.find("anschrift")),
        phone=None if contact is None else _text(contact.find("telefon")),
        email=None if contact is None else _text(contact.find("email")),
    )
