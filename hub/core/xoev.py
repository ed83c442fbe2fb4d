"""XÖV reading conventions shared by the payload extractors.

Only the root of an XÖV message is qualified; children are read by exact,
unqualified names, so look-alike elements from foreign namespaces are never
read. Text is NFC-normalised and stripped of XML whitespace only. A coded
value is a :class:`~hub.core.model.Code`: value, list URI and list version
always together.
"""

from __future__ import annotations

import string
import unicodedata

from lxml import etree

from hub.core.errors import Reason, Rejection
from hub.core.model import Code, Party, positional

_XML_SPACE = " \t\r\n"
_IDENTIFIER_CHARACTERS = string.ascii_letters + string.digits + "._:-"
_IDENTIFIER_LENGTH = 64
_CODES: dict[tuple[str, str, str | None, str | None], Code] = {}
# The texts of a code element as written (code, listURI, listVersionID, name) -> its code.
_RAW_CODES: dict[tuple[str | None, str | None, str | None, str | None], Code] = {}
_CODES_KEPT = 4096  # codes in each table
_Party = positional(Party)  # Party(*fields), sooner


def child(parent: etree._Element, path: str) -> etree._Element | None:
    """``parent.find(path)`` for a path of unqualified names (``"name"``, ``"name/vorname"``).

    The same element: the first match in document order, children without a
    namespace only (a namespaced tag is ``{uri}name``, a comment's is not a string).
    lxml's ``find`` runs its ElementPath machinery on every call; comparing the
    few children's tags directly costs less than half, and extraction makes over a
    hundred of these look-ups per submission on intake's hot path.
    """
    if "/" not in path:
        for node in parent:
            if node.tag == path:
                return node
        return None
    name, _, rest = path.partition("/")
    for node in parent:
        if node.tag == name:
            found = child(node, rest)
            if found is not None:
                return found
    return None


def children(element: etree._Element) -> dict[object, etree._Element]:
    """The first child of each name, read in one pass: ``children(e).get(name)`` is ``child(e, name)``.

    The extractors read most children of every element they visit; one walk over
    the children costs less than one per look-up. Keys are tags: a namespaced
    child's is ``{uri}name`` and a comment's is a function, so neither is found by
    an unqualified name. ``tests/unit/test_hot_path_equivalence.py`` compares it
    with lxml's ``find``.
    """
    # Slicing fetches the children in one call; the last insert of a tag wins, so the
    # walk goes backwards to keep the first. A loop: sooner than a comprehension (a call).
    first: dict[object, etree._Element] = {}
    for node in reversed(element[:]):  # type: ignore[index] # lxml-stubs type int indexes only
        first[node.tag] = node
    return first


def below(
    first: dict[object, etree._Element], element: etree._Element, name: str, rest: str
) -> etree._Element | None:
    """``child(element, f"{name}/{rest}")``, given ``first = children(element)``.

    The first ``name``'s first ``rest``; only when it has none can a later ``name``
    have one, and then every ``name`` is searched, as ``find`` does.
    """
    head = first.get(name)
    if head is None:
        return None
    for node in head[:]:  # type: ignore[index] # lxml-stubs type int indexes only
        if node.tag == rest:
            return node
    return child(element, f"{name}/{rest}")


def text(element: etree._Element | None) -> str | None:
    if element is None:
        return None
    value = element.text
    if value is None:
        return None
    # Strip XML whitespace only: a no-break space or other Unicode space is content.
    value = value.strip(_XML_SPACE)
    if not value.isascii():  # ASCII is already in NFC
        value = unicodedata.normalize("NFC", value)
    return value or None


def _cleaned(value: str | None) -> str | None:
    """What :func:`text` makes of an element's ``.text``."""
    if value is None:
        return None
    value = value.strip(_XML_SPACE)
    if not value.isascii():
        value = unicodedata.normalize("NFC", value)
    return value or None


def required_text(element: etree._Element | None, path: str) -> str:
    """``text(element)``, which must be there: else ``FIELD_FORMAT`` at ``path``."""
    # text(element), written out: extraction checks some forty texts per submission.
    value = None if element is None else element.text
    if value is not None:
        value = value.strip(_XML_SPACE)
        if not value.isascii():
            value = unicodedata.normalize("NFC", value)
    if not value:
        raise Rejection(Reason.FIELD_FORMAT, path)
    return value


def identifier_text(element: etree._Element | None, path: str, where: str = "") -> str:
    """An identifier: ASCII letters, digits and ``._:-`` only (no homoglyphs, bidi or spaces).

    That is ``[A-Za-z0-9._:-]{1,64}`` as a whole: stripping those characters leaves
    nothing exactly when the pattern matches, and costs less than the match.
    """
    # required_text(element, path), written out.
    value = None if element is None else element.text
    if value is not None:
        value = value.strip(_XML_SPACE)
        if not value.isascii():
            value = unicodedata.normalize("NFC", value)
    if not value:
        raise Rejection(Reason.FIELD_FORMAT, path)
    if len(value) > _IDENTIFIER_LENGTH or value.strip(_IDENTIFIER_CHARACTERS):
        raise Rejection(Reason.FIELD_FORMAT, f"{where}/{path}" if where else path)
    return value


def required_code_of(element: etree._Element | None, path: str) -> Code:
    """``code(element)``, which must be there: else ``FIELD_FORMAT`` at ``path``."""
    found = code(element)
    if found is None:
        raise Rejection(Reason.FIELD_FORMAT, path)
    return found


def identifier(parent: etree._Element, path: str, where: str = "") -> str:
    """The identifier at ``path`` below ``parent`` (:func:`identifier_text`)."""
    return identifier_text(child(parent, path), path, where)


def required(parent: etree._Element, path: str) -> str:
    return required_text(child(parent, path), path)


def code(element: etree._Element | None) -> Code | None:
    if element is None:
        return None
    # child(element, "code") and child(element, "name") in one pass over the (few) children.
    value_element = name_element = None
    for node in element[:]:  # type: ignore[index] # lxml-stubs type int indexes only
        tag = node.tag
        if tag == "code":
            if value_element is None:
                value_element = node
        elif tag == "name" and name_element is None:
            name_element = node
    raw = (
        None if value_element is None else value_element.text,
        element.get("listURI"),
        element.get("listVersionID"),
        None if name_element is None else name_element.text,
    )
    # The same texts as written make the same code: cleaning them again is skipped.
    found = _RAW_CODES.get(raw)
    if found is None:
        found = _code_of(element, raw)
    return found


def _code_of(
    element: etree._Element, raw: tuple[str | None, str | None, str | None, str | None]
) -> Code:
    """The code of texts not seen (as written) before; remembered for the next time."""
    value, list_uri, list_version, name = raw
    value = _cleaned(value)
    if value is None or not list_uri:
        raise Rejection(Reason.FIELD_FORMAT, element.tag)
    key = (value, list_uri, list_version, _cleaned(name))
    # Codes come from small lists (person types, benefits, directories): equal codes are one
    # frozen object, made once, instead of a new dataclass per element.
    found = _CODES.get(key)
    if found is None:
        if len(_CODES) >= _CODES_KEPT or len(_RAW_CODES) >= _CODES_KEPT:
            _CODES.clear()  # bounded, whatever a sender invents
            _RAW_CODES.clear()
        found = _CODES[key] = Code(*key)
    elif len(_RAW_CODES) >= _CODES_KEPT:
        _RAW_CODES.clear()
    _RAW_CODES[raw] = found
    return found


def required_code(parent: etree._Element, path: str) -> Code:
    return required_code_of(child(parent, path), path)


def party(element: etree._Element | None, where: str) -> Party | None:
    if element is None:
        return None
    first = children(element)
    directory = required_code_of(first.get("verzeichnisdienst"), "verzeichnisdienst")
    key = identifier_text(first.get("kennung"), "kennung", where)
    return _Party(directory.code, key, text(first.get("name")))
