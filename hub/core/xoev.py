"""XÖV reading conventions shared by the payload extractors.

Only the root of an XÖV message is qualified; children are read by exact,
unqualified names, so look-alike elements from foreign namespaces are never
read. Text is NFC-normalised and stripped of XML whitespace only. A coded
value is a :class:`~hub.core.model.Code`: value, list URI and list version
always together.
"""

from __future__ import annotations

import re
import unicodedata

from lxml import etree

from hub.core.errors import Reason, Rejection
from hub.core.model import Code, Party

_XML_SPACE = " \t\r\n"
_IDENTIFIER = re.compile(r"[A-Za-z0-9._:\-]{1,64}")


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


def text(element: etree._Element | None) -> str | None:
    if element is None or element.text is None:
        return None
    # Strip XML whitespace only: a no-break space or other Unicode space is content.
    value = unicodedata.normalize("NFC", element.text.strip(_XML_SPACE))
    return value or None


def identifier(parent: etree._Element, path: str, where: str = "") -> str:
    """An identifier: ASCII letters, digits and ``._:-`` only (no homoglyphs, bidi or spaces)."""
    value = required(parent, path)
    if not _IDENTIFIER.fullmatch(value):
        raise Rejection(Reason.FIELD_FORMAT, f"{where}/{path}" if where else path)
    return value


def required(parent: etree._Element, path: str) -> str:
    value = text(child(parent, path))
    if value is None:
        raise Rejection(Reason.FIELD_FORMAT, path)
    return value


def code(element: etree._Element | None) -> Code | None:
    if element is None:
        return None
    value = text(child(element, "code"))
    list_uri = element.get("listURI")
    if value is None or not list_uri:
        raise Rejection(Reason.FIELD_FORMAT, element.tag)
    return Code(
        code=value,
        list_uri=list_uri,
        list_version=element.get("listVersionID"),
        name=text(child(element, "name")),
    )


def required_code(parent: etree._Element, path: str) -> Code:
    found = code(child(parent, path))
    if found is None:
        raise Rejection(Reason.FIELD_FORMAT, path)
    return found


def party(element: etree._Element | None, where: str) -> Party | None:
    if element is None:
        return None
    directory = required_code(element, "verzeichnisdienst")
    return Party(
        directory=directory.code,
        key=identifier(element, "kennung", where),
        name=text(child(element, "name")),
    )
