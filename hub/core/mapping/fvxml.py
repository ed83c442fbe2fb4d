"""Canonical submission -> vendor XML ``fv-xml`` v1 (schemas/vendor/fv-xml-1.xsd).

Values that XML 1.0 cannot carry (control characters, lone surrogates, U+FFFE,
U+FFFF) are rejected as ``FIELD_FORMAT``, never dropped silently. So are
free-text values the schema's ``fv:Text`` cannot hold: any control character
(tab and newline included) or more than 200 characters, which a valid input can
reach when NFC normalisation expands it (e.g. U+FB2C).

The document is written as text, escaping markup exactly as lxml serialises it
(attributes: ``& < > "`` and tab, newline, carriage return as character
references; text: ``& < >`` and carriage return). That is several times faster
than building an lxml tree, and gives the same bytes as the lxml version did
(tests/fvxml_reference.py, checked by tests/unit/test_formats_xml.py). The
output is parsed and validated by the tests, never by this module.
"""

from __future__ import annotations

import base64
import re

from hub.core.errors import Reason, Rejection
from hub.core.mapping import DeliveryContext, Mapping
from hub.core.model import Code, Person, Submission
from hub.core.route import Route

NAMESPACE = "urn:sozialhub:vendor:fv-xml:1"
VERSION = "fv-xml/1.1.0"  # 1.1: every benefit for the office, not only the first
MAX_BENEFITS = 20  # fv:leistung maxOccurs in schemas/vendor/fv-xml-1.xsd
_TEXT_MAX = 200  # fv:Text maxLength
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")  # \p{Cc}, forbidden by fv:Text


# XML 1.0 Char: what lxml accepts in text and attribute values.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_ATTRIBUTE = str.maketrans(
    {
        "&": "&amp;",
        "<": "&lt;",
        ">": "&gt;",
        '"': "&quot;",
        "\t": "&#9;",
        "\n": "&#10;",
        "\r": "&#13;",
    }
)
_TEXT = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", "\r": "&#13;"})
_ATTRIBUTE_SPECIAL = re.compile('[&<>"\t\n\r]')
_TEXT_SPECIAL = re.compile("[&<>\r]")
_BASE64 = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="
_ROOT = "fv:fallUebernahme"
_DECLARATION = "<?xml version='1.0' encoding='UTF-8'?>\n"


def _text(value: str, tag: str) -> str:
    """A value for an ``fv:Text`` field, or ``FIELD_FORMAT`` (path only, never the value)."""
    if len(value) > _TEXT_MAX or _CONTROL.search(value):
        raise Rejection(Reason.FIELD_FORMAT, f"mapping/fv-xml/{tag}")
    return value


class _Pass:
    """One pass over the submission, writing the document as text.

    The fast pass only collects the values; :meth:`clean` then checks them all at
    once. Only if some value needs escaping or is refused does the strict pass
    run: it escapes and checks each value where lxml checked it (element text
    before the element's attributes), so the first refused value in that order
    names the rejection, as before.
    """

    __slots__ = ("attributes", "blobs", "fields", "strict", "texts")

    def __init__(self, *, strict: bool) -> None:
        self.strict = strict
        self.attributes: list[str] = []
        self.texts: list[str] = []
        self.fields: list[str] = []  # fv:Text values (text or attribute)
        self.blobs: list[str] = []  # base64 element text (document content)

    def a(self, value: str) -> str:
        """An attribute value."""
        if not self.strict:
            self.attributes.append(value)
            return value
        if _NOT_XML.search(value):
            raise Rejection(Reason.FIELD_FORMAT, "mapping/fv-xml")
        return value.translate(_ATTRIBUTE) if _ATTRIBUTE_SPECIAL.search(value) else value

    def t(self, value: str) -> str:
        """Element text."""
        if not self.strict:
            self.texts.append(value)
            return value
        if _NOT_XML.search(value):
            raise Rejection(Reason.FIELD_FORMAT, "mapping/fv-xml")
        return value.translate(_TEXT) if _TEXT_SPECIAL.search(value) else value

    def ft(self, value: str, tag: str) -> str:
        """Element text of an ``fv:Text`` field."""
        if not self.strict:
            self.fields.append(value)
            self.texts.append(value)
            return value
        return self.t(_text(value, tag))

    def fa(self, value: str, tag: str) -> str:
        """An attribute of type ``fv:Text``."""
        if not self.strict:
            self.fields.append(value)
            self.attributes.append(value)
            return value
        return self.a(_text(value, tag))

    def b(self, value: str) -> str:
        """Element text that should be base64 (document content)."""
        if not self.strict:
            self.blobs.append(value)
            return value
        return self.t(value)

    def clean(self) -> bool:
        """The fast pass's output is right as it is: nothing to escape, nothing refused.

        Conservative and cheap: a value with any character that is not printable
        (controls, separators other than the space, format characters, surrogates,
        noncharacters, private use) sends the submission to the strict pass, which
        decides.
        """
        attributes, texts, fields = "".join(self.attributes), "".join(self.texts), self.fields
        return (
            (attributes + texts).isprintable()
            and not any(c in attributes for c in '&<>"')
            and not any(c in texts for c in "&<>")
            and (not fields or max(map(len, fields)) <= _TEXT_MAX)
            and all(
                blob.isascii() and not blob.encode("ascii").translate(None, _BASE64)
                for blob in self.blobs
            )
        )


def _code(p: _Pass, tag: str, code: Code) -> str:
    if p.strict:
        p.t(_text(code.name or "", tag))  # lxml set the text before the attributes
    value, liste = p.a(code.code), p.a(code.list_uri)
    version = f' listenVersion="{p.a(code.list_version)}"' if code.list_version else ""
    text = p.ft(code.name or "", tag)
    return f'<fv:{tag} code="{value}" liste="{liste}"{version}>{text}</fv:{tag}>'


def _person(p: _Pass, person: Person) -> str:
    applicant = "true" if person.applicant else "false"
    out = [
        f'<fv:person personId="{p.a(person.person_id)}" antragsteller="{applicant}">',
        _code(p, "rolle", person.role),
        f"<fv:vorname>{p.ft(person.given_name, 'vorname')}</fv:vorname>",
        f"<fv:nachname>{p.ft(person.family_name, 'nachname')}</fv:nachname>",
    ]
    if person.birth_date:
        out.append(f"<fv:geburtsdatum>{p.t(person.birth_date)}</fv:geburtsdatum>")
    if person.sex:
        out.append(_code(p, "geschlecht", person.sex))
    address = person.address
    if address is not None:
        inner = "".join(
            f"<fv:{tag}>{p.ft(value, tag)}</fv:{tag}>"
            for tag, value in (
                ("strasse", address.street),
                ("hausnummer", address.house_number),
                ("plz", address.postcode),
                ("ort", address.town),
            )
            if value
        )
        out.append(f"<fv:anschrift>{inner}</fv:anschrift>" if inner else "<fv:anschrift/>")
    out.append("</fv:person>")
    return "".join(out)


def _build(submission: Submission, route: Route, context: DeliveryContext, p: _Pass) -> list[str]:
    a = p.a
    delivery, sent = a(context.delivery_id), a(context.submission_id)
    root = (
        f'<{_ROOT} xmlns:fv="{NAMESPACE}" lieferungId="{delivery}" einreichungId="{sent}" '
        f'mappingVersion="{VERSION}">'
    )
    parts = [_DECLARATION, root]
    office = route.office
    recipient = a(office.office_id)
    dvdv = f' dvdv="{a(office.dvdv)}"' if office.dvdv else ""
    parts.append(f'<fv:empfaenger behoerde="{recipient}"{dvdv} regel="{a(route.rule)}"/>')
    case, message = a(submission.case_id), a(submission.message_id)
    date = (
        f' antragsDatum="{a(submission.application_date)}"' if submission.application_date else ""
    )
    portal = a(submission.author.key)
    parts.append(f'<fv:antrag vorgangsId="{case}" nachrichtId="{message}"{date} portal="{portal}">')
    parts.append(_code(p, "vorgangsTyp", submission.case_type))
    if not 0 < len(context.benefits) <= MAX_BENEFITS:
        raise Rejection(Reason.MAPPING_ERROR, "antrag/leistung")
    requested = {b.code: b for b in submission.benefits}
    parts.extend(_code(p, "leistung", requested[key]) for key in context.benefits)
    parts.append("</fv:antrag>")
    parts.extend(_person(p, person) for person in submission.persons)
    for document in submission.documents:
        content = p.b(document.content_b64)  # lxml set the text before the attributes
        identifier, media = a(document.document_id), a(document.mime_type)
        name = f' dateiname="{p.fa(document.file_name, "dateiname")}"' if document.file_name else ""
        size, digest = a(str(document.size)), a(document.sha256)
        parts.append(
            f'<fv:dokument dokumentId="{identifier}" mimeType="{media}"{name} groesse="{size}" '
            f'sha256="{digest}">{content}</fv:dokument>'
        )
    receipt = base64.b64encode(context.receipt).decode("ascii")  # base64: nothing to check
    parts.append(f"<fv:hubQuittung>{receipt}</fv:hubQuittung></{_ROOT}>")
    return parts


def render(submission: Submission, route: Route, context: DeliveryContext) -> bytes:
    fast = _Pass(strict=False)
    try:
        document = _build(submission, route, context, fast)
        clean = fast.clean()
    except (Rejection, KeyError):  # the strict pass raises it again, after any earlier refusal
        clean = False
    if not clean:
        document = _build(submission, route, context, _Pass(strict=True))
    # Part by part: the large parts (document content, receipt) are ASCII and encode fastest alone.
    return b"".join(part.encode("utf-8") for part in document)


MAPPING = Mapping(
    format="fv-xml",
    version=VERSION,
    media_type="application/xml",
    file_suffix=".xml",
    render=render,
)
