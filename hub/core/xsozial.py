"""XSozial-basis 2.4.0 (``vorgang.transportieren.1000001``) into the canonical model.

Runs only on a tree that passed schema validation. Reads by exact, unqualified
child names (XÖV: only the root is qualified), so look-alike elements in foreign
namespaces (lax wildcard content) are never read. Text is NFC-normalised.
"""

from __future__ import annotations

import binascii
import hashlib

import pybase64
from lxml import etree

from hub.core import xoev
from hub.core.documents import DEFAULT_DOCUMENTS, check_document
from hub.core.errors import Reason, Rejection
from hub.core.model import Address, Document, Person, Submission, ThirdParty, positional
from hub.core.records import b64decode_validated

NAMESPACE = "https://portalverbund.d-nrw.de/efa/XSozial-basis/Version_2_4_0"
ROOT = "vorgang.transportieren.1000001"
VERSIONS = frozenset({"2.4.0"})


# Bound once: extraction calls these a hundred times per submission. The model's classes made
# per element are called with positional arguments, in field order: a keyword costs about 50 ns
# more, and a submission has some 200 of them.
_children = xoev.children
_child = xoev.child
_below = xoev.below
_text = xoev.text
_required = xoev.required_text
_identifier = xoev.identifier_text
_code = xoev.code
_required_code = xoev.required_code_of
_FIELD_FORMAT = Reason.FIELD_FORMAT
_MAX_ENCODED = DEFAULT_DOCUMENTS.max_bytes * 4 // 3 + 4  # base64 characters of a document
# The model's classes, made with every field in order (model.positional: the same objects, sooner).
_Address = positional(Address)
_Person = positional(Person)
_Document = positional(Document)
_ThirdParty = positional(ThirdParty)
_Submission = positional(Submission)


def _address(element: etree._Element | None) -> Address | None:
    if element is None:
        return None
    # The first child of each name (xoev.children), kept in locals: backwards, the first wins.
    street = house_number = postcode = town = region_key = None
    for node in reversed(element[:]):  # type: ignore[index] # lxml-stubs type int indexes only
        tag = node.tag
        if tag == "strasse":
            street = node
        elif tag == "hausnummer":
            house_number = node
        elif tag == "postleitzahl":
            postcode = node
        elif tag == "ort":
            town = node
        elif tag == "gemeindeschluessel":
            region_key = node
    return _Address(
        _text(street), _text(house_number), _text(postcode), _text(town), _code(region_key)
    )


def _names(general: etree._Element, name_element: etree._Element | None) -> tuple[str, str]:
    """Given and family name: ``name/vorname`` and ``name/familienname`` below ``allgemein``."""
    given = family = None
    if name_element is not None:
        # _below for both names of the first ``name``, in one pass over its children.
        for node in name_element[:]:  # type: ignore[index] # lxml-stubs type int indexes only
            tag = node.tag
            if tag == "vorname":
                if given is None:
                    given = node
            elif tag == "familienname" and family is None:
                family = node
        if given is None:
            given = xoev.child(general, "name/vorname")
        if family is None:
            family = xoev.child(general, "name/familienname")
    return _required(given, "name/vorname"), _required(family, "name/familienname")


def _person(element: etree._Element) -> Person:  # noqa: C901 - a branch per child name
    # The first child of each name (xoev.children), kept in locals: backwards, the first wins.
    # Every beantragteLeistung, backwards.
    person_id = role = applicant = general_element = None
    benefit_nodes = []
    for node in reversed(element[:]):  # type: ignore[index] # lxml-stubs type int indexes only
        tag = node.tag
        if tag == "personID":
            person_id = node
        elif tag == "typ":
            role = node
        elif tag == "antragsteller":
            applicant = node
        elif tag == "allgemein":
            general_element = node
        elif tag == "beantragteLeistung":
            benefit_nodes.append(node)
    if general_element is None:
        raise Rejection(_FIELD_FORMAT, "person/allgemein")
    name_element = birth_date = sex = address = None
    for node in reversed(general_element[:]):  # type: ignore[index] # lxml-stubs type int indexes only
        tag = node.tag
        if tag == "name":
            name_element = node
        elif tag == "geburtsdatum":
            birth_date = node
        elif tag == "geschlecht":
            sex = node
        elif tag == "anschrift":
            address = node
    # The checks in the order of the fields: the first rejection is the one find gave.
    checked_id = _identifier(person_id, "personID")
    checked_role = _required_code(role, "typ")
    is_applicant = _required(applicant, "antragsteller") in ("true", "1")
    given_name, family_name = _names(general_element, name_element)
    birth_date_text = _text(birth_date)
    sex_code = _code(sex)
    checked_address = _address(address)
    benefits = [
        _required_code(_child(node, "leistungArt"), "leistungArt")
        for node in reversed(benefit_nodes)
    ]
    return _Person(
        checked_id,
        checked_role,
        is_applicant,
        given_name,
        family_name,
        birth_date_text,
        sex_code,
        checked_address,
        tuple(benefits),
    )


def _document(element: etree._Element, position: int) -> Document:
    where = f"xsozial/dokument[{position}]"
    document = _children(element)
    representation_element = document.get("dokumentRepraesentation")
    if representation_element is None:
        raise Rejection(_FIELD_FORMAT, f"{where}/dokumentRepraesentation")
    representation = _children(representation_element)
    content_element = representation.get("inhalt")
    text = (None if content_element is None else content_element.text) or ""
    content = None
    if len(text) <= _MAX_ENCODED:
        # Base64 without any whitespace, as portals write it: what the general path below
        # makes of it (split and joined, it is itself), without splitting 2 kB of text.
        # pybase64 refuses whitespace and anything else outside the alphabet.
        try:
            content = pybase64.b64decode(text, validate=True)
        except (binascii.Error, ValueError, TypeError):
            content = None
        encoded = text
    if content is None:
        encoded = "".join(text.split())
        if len(encoded) > _MAX_ENCODED:
            raise Rejection(Reason.ATTACHMENT, f"{where}/size")
        try:
            content = b64decode_validated(encoded)
        except (binascii.Error, ValueError):
            raise Rejection(_FIELD_FORMAT, f"{where}/dokumentRepraesentation/inhalt") from None
    media = check_document(content, _required(representation.get("mimeType"), "mimeType"), where)
    return _Document(
        _identifier(document.get("dokumentID"), "dokumentID"),  # document_id
        _text(document.get("name")),  # name
        media,  # mime_type
        _text(representation.get("dateiname")),  # file_name
        len(content),  # size
        hashlib.sha256(content).hexdigest(),  # sha256
        _code(document.get("dokumentTyp")),  # kind
        encoded,  # content_b64
    )


def extract(root: etree._Element) -> Submission:
    """The canonical submission of a validated XSozial-basis 2.4.0 message.

    Each element's children are read once (:func:`xoev.children`); the look-ups and
    checks are :mod:`hub.core.xoev`'s, in the order of the fields, so the first
    rejection is the one the straightforward reading with ``find`` gave
    (``tests/unit/test_hot_path_equivalence.py`` compares the two).
    """
    message = _children(root)
    head_element = message.get("nachrichtenkopf.g2g")
    case_element = message.get("xsozial")
    if head_element is None or case_element is None:
        raise Rejection(_FIELD_FORMAT, "/")
    head = _children(head_element)
    author = xoev.party(head.get("autor"), "nachrichtenkopf.g2g/autor")
    if author is None:
        raise Rejection(_FIELD_FORMAT, "nachrichtenkopf.g2g/autor")
    case_nodes: list[etree._Element] = case_element[:]  # type: ignore[index,assignment] # lxml-stubs type int indexes only
    case: dict[object, etree._Element] = {node.tag: node for node in reversed(case_nodes)}
    procedure_element = case.get("vorgang")
    if procedure_element is None:
        raise Rejection(_FIELD_FORMAT, "xsozial/vorgang")
    procedure_nodes: list[etree._Element] = procedure_element[:]  # type: ignore[index,assignment] # lxml-stubs type int indexes only
    procedure = {node.tag: node for node in reversed(procedure_nodes)}
    message_id = _identifier(
        _below(head, head_element, "identifikation.nachricht", "nachrichtenUUID"),
        "identifikation.nachricht/nachrichtenUUID",
    )
    created = _required(
        _below(head, head_element, "identifikation.nachricht", "erstellungszeitpunkt"),
        "identifikation.nachricht/erstellungszeitpunkt",
    )
    reader = xoev.party(head.get("leser"), "nachrichtenkopf.g2g/leser")
    case_id = _identifier(
        _below(case, case_element, "identifikationVorgang", "vorgangsID"),
        "identifikationVorgang/vorgangsID",
    )
    case_type = _required_code(procedure.get("vorgangsTyp"), "vorgangsTyp")
    application_date = _text(procedure.get("antragsDatum"))
    persons = tuple([_person(node) for node in procedure_nodes if node.tag == "person"])
    documents = [node for node in case_nodes if node.tag == "dokument"]
    if len(documents) > DEFAULT_DOCUMENTS.max_count:
        raise Rejection(Reason.ATTACHMENT, "xsozial/dokument")
    return _Submission(
        NAMESPACE,  # payload_namespace
        root.get("version", ""),  # payload_version
        message_id.lower(),
        created,
        author,
        reader,
        case_id.lower(),
        case_type,
        application_date,
        persons,
        tuple([_document(d, i) for i, d in enumerate(documents, start=1)]),  # documents
        tuple([_third_party(t) for t in procedure_nodes if t.tag == "dritte"]),  # third_parties
    )


def _third_party(element: etree._Element) -> ThirdParty:
    third_party = _children(element)
    role = _required_code(third_party.get("rolle"), "rolle")
    name = _required(third_party.get("bezeichnung"), "bezeichnung")
    address = _address(third_party.get("anschrift"))
    contact_element = third_party.get("kontakt")
    if contact_element is None:
        return _ThirdParty(role, name, address, None, None)
    contact = _children(contact_element)
    return _ThirdParty(
        role, name, address, _text(contact.get("telefon")), _text(contact.get("email"))
    )
