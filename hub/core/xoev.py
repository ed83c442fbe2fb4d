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


class Node:
    """An element and the first child of each name, read in one pass over its children.

    ``Node(e).get(name)`` is ``child(e, name)``, ``Node(e).find(path)`` is
    ``child(e, path)`` and ``Node(e).all(name)`` is ``e.iterfind(name)``: the same
    elements, for the price of one walk over the children instead of one per
    look-up. ``text``, ``required``, ``identifier``, ``code`` and ``required_code``
    are the module's functions of the same names on ``find(path)``. The extractors
    read most children of every element they visit, so this is what they use;
    ``tests/unit/test_hot_path_equivalence.py`` compares it with lxml's ``find``.
    """

    __slots__ = ("_below", "_children", "_first", "element")

    def __init__(self, element: etree._Element) -> None:
        # Slicing fetches the children in one call, sooner than iterating over them.
        children: list[etree._Element] = element[:]  # type: ignore[index,assignment] # lxml-stubs type int indexes only
        first: dict[object, etree._Element] = {}
        for node in children:
            tag = node.tag  # a comment's tag is a function: it never equals a name
            if tag not in first:
                first[tag] = node
        self.element = element
        self._children = children
        self._first = first
        self._below: dict[str, Node] | None = None

    def get(self, name: str) -> etree._Element | None:
        """The first child named ``name`` (one unqualified name, no path)."""
        return self._first.get(name)

    def below(self, name: str) -> Node | None:
        """The :class:`Node` of the first child named ``name``, built once."""
        below = self._below
        if below is None:
            below = self._below = {}
        found = below.get(name)
        if found is None:
            element = self._first.get(name)
            if element is None:
                return None
            found = below[name] = Node(element)
        return found

    def find(self, path: str) -> etree._Element | None:
        """``child(element, path)``: for ``a/b`` the first ``a``'s ``b``, else a later ``a``'s."""
        if "/" not in path:
            return self._first.get(path)
        name, _, rest = path.partition("/")
        head = self.below(name)
        if head is None:
            return None
        found = head.find(rest)
        # Only when the first ``a`` has no ``b`` can a later one have it: search them all.
        return found if found is not None else child(self.element, path)

    def all(self, name: str) -> list[etree._Element]:
        """Every child named ``name``, in document order."""
        return [node for node in self._children if node.tag == name]

    def text(self, path: str) -> str | None:
        # text(self.find(path)), written out: extraction reads about a hundred texts.
        element = self._first.get(path) if "/" not in path else self.find(path)
        if element is None:
            return None
        value = element.text
        if value is None:
            return None
        value = value.strip(_XML_SPACE)
        if not value.isascii():  # ASCII is already in NFC
            value = unicodedata.normalize("NFC", value)
        return value or None

    def required(self, path: str) -> str:
        value = self.text(path)
        if value is None:
            raise Rejection(Reason.FIELD_FORMAT, path)
        return value

    def identifier(self, path: str, where: str = "") -> str:
        value = self.required(path)
        if not _IDENTIFIER.fullmatch(value):
            raise Rejection(Reason.FIELD_FORMAT, f"{where}/{path}" if where else path)
        return value

    def code(self, path: str) -> Code | None:
        return code(self._first.get(path) if "/" not in path else self.find(path))

    def required_code(self, path: str) -> Code:
        found = code(self._first.get(path) if "/" not in path else self.find(path))
        if found is None:
            raise Rejection(Reason.FIELD_FORMAT, path)
        return found


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
    # child(element, "code") and child(element, "name") in one pass over the (few) children.
    value_element = name_element = None
    for node in element[:]:  # type: ignore[index] # lxml-stubs type int indexes only
        tag = node.tag
        if tag == "code":
            if value_element is None:
                value_element = node
        elif tag == "name" and name_element is None:
            name_element = node
    value = text(value_element)
    list_uri = element.get("listURI")
    if value is None or not list_uri:
        raise Rejection(Reason.FIELD_FORMAT, element.tag)
    return Code(
        code=value,
        list_uri=list_uri,
        list_version=element.get("listVersionID"),
        name=text(name_element),
    )


def required_code(parent: etree._Element, path: str) -> Code:
    found = code(child(parent, path))
    if found is None:
        raise Rejection(Reason.FIELD_FORMAT, path)
    return found


def party(element: etree._Element | None, where: str) -> Party | None:
    if element is None:
        return None
    parts = Node(element)
    directory = parts.required_code("verzeichnisdienst")
    return Party(
        directory=directory.code,
        key=parts.identifier("kennung", where),
        name=text(parts.get("name")),
    )
