"""The fv-xml mapping as it was built with lxml (mapping version fv-xml/1.1.0), kept as a reference.

``hub.core.mapping.fvxml`` writes the same document with string building, which
is several times faster. tests/unit/test_formats_xml.py checks that both give
the same bytes, or refuse with the same reason and path, for generated input.
"""

from __future__ import annotations

import base64
import re

from lxml import etree

from hub.core.errors import Reason, Rejection
from hub.core.mapping import DeliveryContext
from hub.core.model import Code, Person, Submission
from hub.core.route import Route

NAMESPACE = "urn:sozialhub:vendor:fv-xml:1"
VERSION = "fv-xml/1.1.0"  # 1.1: every benefit for the office, not only the first
_F = f"{{{NAMESPACE}}}"
MAX_BENEFITS = 20  # fv:leistung maxOccurs in schemas/vendor/fv-xml-1.xsd
_TEXT_MAX = 200  # fv:Text maxLength
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")  # \p{Cc}, forbidden by fv:Text


def _sub(parent: etree._Element, tag: str, text: str | None = None) -> etree._Element:
    element = etree.SubElement(parent, f"{_F}{tag}")
    if text is not None:
        element.text = text
    return element


def _text(value: str, tag: str) -> str:
    """A value for an ``fv:Text`` field, or ``FIELD_FORMAT`` (path only, never the value)."""
    if len(value) > _TEXT_MAX or _CONTROL.search(value):
        raise Rejection(Reason.FIELD_FORMAT, f"mapping/fv-xml/{tag}")
    return value


def _code(parent: etree._Element, tag: str, code: Code) -> None:
    element = _sub(parent, tag, _text(code.name or "", tag))
    element.set("code", code.code)
    element.set("liste", code.list_uri)
    if code.list_version:
        element.set("listenVersion", code.list_version)


def _person(parent: etree._Element, person: Person) -> None:
    element = _sub(parent, "person")
    element.set("personId", person.person_id)
    element.set("antragsteller", "true" if person.applicant else "false")
    _code(element, "rolle", person.role)
    _sub(element, "vorname", _text(person.given_name, "vorname"))
    _sub(element, "nachname", _text(person.family_name, "nachname"))
    if person.birth_date:
        _sub(element, "geburtsdatum", person.birth_date)
    if person.sex:
        _code(element, "geschlecht", person.sex)
    address = person.address
    if address is not None:
        target = _sub(element, "anschrift")
        for tag, value in (
            ("strasse", address.street),
            ("hausnummer", address.house_number),
            ("plz", address.postcode),
            ("ort", address.town),
        ):
            if value:
                _sub(target, tag, _text(value, tag))


def render(submission: Submission, route: Route, context: DeliveryContext) -> bytes:
    try:
        root = etree.Element(f"{_F}fallUebernahme", nsmap={"fv": NAMESPACE})
        root.set("lieferungId", context.delivery_id)
        root.set("einreichungId", context.submission_id)
        root.set("mappingVersion", VERSION)
        recipient = _sub(root, "empfaenger")
        recipient.set("behoerde", route.office.office_id)
        if route.office.dvdv:
            recipient.set("dvdv", route.office.dvdv)
        recipient.set("regel", route.rule)
        application = _sub(root, "antrag")
        application.set("vorgangsId", submission.case_id)
        application.set("nachrichtId", submission.message_id)
        if submission.application_date:
            application.set("antragsDatum", submission.application_date)
        application.set("portal", submission.author.key)
        _code(application, "vorgangsTyp", submission.case_type)
        if not 0 < len(context.benefits) <= MAX_BENEFITS:
            raise Rejection(Reason.MAPPING_ERROR, "antrag/leistung")
        requested = {b.code: b for b in submission.benefits}
        for key in context.benefits:
            _code(application, "leistung", requested[key])
        for person in submission.persons:
            _person(root, person)
        for document in submission.documents:
            element = _sub(root, "dokument", document.content_b64)
            element.set("dokumentId", document.document_id)
            element.set("mimeType", document.mime_type)
            if document.file_name:
                element.set("dateiname", _text(document.file_name, "dateiname"))
            element.set("groesse", str(document.size))
            element.set("sha256", document.sha256)
        _sub(root, "hubQuittung", base64.b64encode(context.receipt).decode("ascii"))
    except ValueError:
        # lxml refuses strings XML cannot carry; the message would quote them.
        raise Rejection(Reason.FIELD_FORMAT, "mapping/fv-xml") from None
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")
