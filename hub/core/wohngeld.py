"""Wohngeld application from the Serviceportal (``wohngeldAntrag`` 1.0) into the canonical model.

sozialhub's own payload contract (schemas/payload/wohngeld-antrag-1, assumed
until a portal supplies its own): the benefit and its code list, the household
with the applicant, the rented home's address, evidence documents. Amounts
(rent, floor space, income) are validated by the schema but are not part of
the canonical model yet: they are in the payload bytes on
``submissions.accepted`` only, not in the ``fv-xml`` deliveries.
"""

from __future__ import annotations

import base64
import binascii
import hashlib

from lxml import etree

from hub.core import xoev
from hub.core.documents import DEFAULT_DOCUMENTS, check_document
from hub.core.errors import Reason, Rejection
from hub.core.model import Address, Code, Document, Person, Submission

NAMESPACE = "urn:sozialhub:payload:wohngeld-antrag:1"
ROOT = "wohngeldAntrag"
VERSIONS = frozenset({"1.0"})
CASE_TYPE = Code("antrag", "urn:xoev-de:xsozial:codeliste:vorgangstyp", "1.0", "Antrag")


def _address(element: etree._Element) -> Address:
    return Address(
        street=xoev.text(element.find("strasse")),
        house_number=xoev.text(element.find("hausnummer")),
        postcode=xoev.text(element.find("postleitzahl")),
        town=xoev.text(element.find("ort")),
        region_key=xoev.code(element.find("gemeindeschluessel")),
    )


def _member(element: etree._Element, benefit: Code, home: Address) -> Person:
    applicant = xoev.required(element, "antragsteller") in ("true", "1")
    return Person(
        person_id=xoev.identifier(element, "mitgliedID", "haushaltsmitglied"),
        role=xoev.required_code(element, "rolle"),
        applicant=applicant,
        given_name=xoev.required(element, "vorname"),
        family_name=xoev.required(element, "familienname"),
        birth_date=xoev.text(element.find("geburtsdatum")),
        sex=xoev.code(element.find("geschlecht")),
        address=home if applicant else None,
        benefits=(benefit,) if applicant else (),
    )


def _evidence(element: etree._Element, position: int) -> Document:
    where = f"antrag/nachweis[{position}]"
    encoded = "".join((element.findtext("inhalt") or "").split())
    if len(encoded) > DEFAULT_DOCUMENTS.max_bytes * 4 // 3 + 4:
        raise Rejection(Reason.ATTACHMENT, f"{where}/size")
    try:
        content = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise Rejection(Reason.FIELD_FORMAT, f"{where}/inhalt") from None
    return Document(
        document_id=xoev.identifier(element, "nachweisID", where),
        name=xoev.text(element.find("bezeichnung")),
        mime_type=check_document(content, xoev.required(element, "mimeType"), where),
        file_name=xoev.text(element.find("dateiname")),
        size=len(content),
        sha256=hashlib.sha256(content).hexdigest(),
        kind=xoev.code(element.find("art")),
        content_b64=encoded,
    )


def extract(root: etree._Element) -> Submission:
    """The canonical submission of a validated ``wohngeldAntrag``."""
    head = root.find("kopf")
    application = root.find("antrag")
    if head is None or application is None:
        raise Rejection(Reason.FIELD_FORMAT, "/")
    portal = xoev.party(head.find("portal"), "kopf/portal")
    home_element = application.find("wohnung/anschrift")
    if portal is None or home_element is None:
        raise Rejection(Reason.FIELD_FORMAT, "kopf/portal")
    benefit = xoev.required_code(application, "leistung")
    home = _address(home_element)
    members = tuple(_member(m, benefit, home) for m in application.iterfind("haushaltsmitglied"))
    if sum(1 for m in members if m.applicant) != 1:
        raise Rejection(Reason.FIELD_FORMAT, "antrag/haushaltsmitglied/antragsteller")
    application_id = xoev.identifier(head, "antragsID").lower()
    return Submission(
        payload_namespace=NAMESPACE,
        payload_version=root.get("version", ""),
        message_id=application_id,
        created=xoev.required(head, "erstellt"),
        author=portal,
        reader=xoev.party(head.find("empfaenger"), "kopf/empfaenger"),
        case_id=application_id,
        case_type=CASE_TYPE,
        application_date=xoev.text(application.find("antragsDatum")),
        persons=members,
        documents=tuple(
            _evidence(e, i) for i, e in enumerate(application.iterfind("nachweis"), start=1)
        ),
    )
