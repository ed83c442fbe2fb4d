"""The one hardened XML parse (docs/security.md, bad-inputs sections A-C).

Bytes in, an lxml tree out, or a :class:`Rejection`. The gate runs before the
parser: a byte limit, no compressed bodies, UTF-8 only. The parser never loads a
DTD, never resolves entities, never touches the network, strips processing
instructions and keeps libxml2's default depth and text-size caps
(``huge_tree=False``). After parsing, the hub counts elements, attributes and
name lengths itself, because libxml2 and xmlschema do not bound them for us.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from lxml import etree

from hub.core.errors import Reason, Rejection


@dataclass(frozen=True, slots=True)
class Limits:
    """Resource bounds for one document."""

    max_bytes: int = 4 * 1024 * 1024
    max_elements: int = 10_000
    max_attributes_per_element: int = 64
    max_name_length: int = 256
    max_namespaces: int = 64  # namespace declarations in the whole document


DEFAULT_LIMITS = Limits()

_GZIP_MAGIC = b"\x1f\x8b"
_ZIP_MAGIC = b"PK\x03\x04"
_BOMS = (b"\xfe\xff", b"\xff\xfe", b"\x00\x00\xfe\xff", b"\xff\xfe\x00\x00")
_UTF8_BOM = b"\xef\xbb\xbf"
# The XML declaration's encoding pseudo-attribute, if any (ASCII-compatible prefix only).
_DECL_ENCODING = re.compile(rb"^<\?xml[^>]*?encoding\s*=\s*[\"']([A-Za-z0-9._-]+)[\"']")
# One search for both: a document type declaration, or an entity declaration outside one.
_DECLARATION = re.compile(rb"<!(?:DOCTYPE|ENTITY)", re.IGNORECASE)

_PARSER = etree.XMLParser(
    resolve_entities=False,
    no_network=True,
    load_dtd=False,
    dtd_validation=False,
    huge_tree=False,
    remove_pis=True,
    remove_comments=False,
    encoding="utf-8",
    collect_ids=False,
)


def gate(data: bytes, limits: Limits = DEFAULT_LIMITS) -> bytes:
    """Check raw bytes before any parser sees them; return the body without a UTF-8 BOM."""
    if not isinstance(data, bytes | bytearray | memoryview):
        # A str body would be treated as a URL or path by some libraries.
        raise Rejection(Reason.WELLFORMED)
    body = bytes(data)
    if len(body) > limits.max_bytes:
        raise Rejection(Reason.SIZE)
    if body.startswith((_GZIP_MAGIC, _ZIP_MAGIC)):
        raise Rejection(Reason.COMPRESSED)
    if body.startswith(_BOMS):
        raise Rejection(Reason.ENCODING)
    body = body.removeprefix(_UTF8_BOM)
    if not body or body.isspace():  # what ``not body.strip()`` says, without copying the body
        raise Rejection(Reason.WELLFORMED)
    match = _DECL_ENCODING.match(body)
    if match and match.group(1).lower().replace(b"_", b"-") not in (b"utf-8", b"utf8"):
        raise Rejection(Reason.ENCODING)
    if b"\x00" in body:
        raise Rejection(
            Reason.ENCODING if body[:1] == b"\x00" or body[1:2] == b"\x00" else Reason.WELLFORMED
        )
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        raise Rejection(Reason.ENCODING) from None
    if _DECLARATION.search(body):
        raise Rejection(Reason.DOCTYPE)
    return body


def parse(data: bytes, limits: Limits = DEFAULT_LIMITS) -> etree._Element:
    """Gate, parse once, and bound the tree. Raises :class:`Rejection`."""
    body = gate(data, limits)
    try:
        root = etree.fromstring(body, _PARSER)  # noqa: TID251 - this is the one sanctioned parse
    except etree.XMLSyntaxError:
        # The message of a syntax error can quote the document; never surface it.
        raise Rejection(Reason.WELLFORMED) from None
    # Belt and braces after the byte gate. getattr: lxml-stubs lack ``doctype`` and type
    # ``internalDTD`` as never None.
    docinfo = root.getroottree().docinfo
    if getattr(docinfo, "doctype", "") or getattr(docinfo, "internalDTD", None) is not None:
        raise Rejection(Reason.DOCTYPE)
    _bound(root, body, limits)
    return root


def _bound(root: etree._Element, body: bytes, limits: Limits) -> None:
    """Bound the tree parsed from ``body``: elements and attributes, then namespace declarations.

    Declarations are counted per document: both ``element.nsmap`` and xmlschema's
    ``XMLResource`` rebuild every in-scope namespace per element, so nested
    declarations bounded only per element made a 50-400 kB body cost minutes
    (hostile corpus C21). Each is an attribute named ``xmlns`` or ``xmlns:…``, and a
    name cannot be written with references: a body with no more ``xmlns`` than the
    limit cannot declare too many, and only other bodies are walked for them, after
    the element walk, which stops at ``max_elements``, so that walk is bounded too.
    """
    _bound_elements(root, limits)
    if body.count(b"xmlns") > limits.max_namespaces:
        _bound_declarations(root, limits.max_namespaces)


def _bound_elements(root: etree._Element, limits: Limits) -> None:
    """Elements (comments count), their names and their attributes: the first excess found."""
    # Once per element of every submission: limits are read once, and an element's attribute
    # names are fetched as one list (most elements have none).
    count = 0
    max_elements, max_name = limits.max_elements, limits.max_name_length
    max_attributes = limits.max_attributes_per_element
    for node in root.iter():
        count += 1
        if count > max_elements:
            raise Rejection(Reason.ELEMENT_COUNT)
        tag = node.tag
        if type(tag) is not str:
            # Only comments, processing instructions and entities have no string tag.
            if isinstance(node, etree._Entity):  # noqa: SLF001 - lxml exposes node types only privately
                raise Rejection(Reason.DOCTYPE)
            continue
        if len(tag) > max_name:
            raise Rejection(Reason.NAME_LIMIT)
        names: list[str] = node.keys()  # type: ignore[assignment] # lxml-stubs: names are str
        # All names together within the limit: each is (one join, not a length per name).
        if names and (len(names) > max_attributes or len("".join(names)) > max_name):
            if len(names) > max_attributes:
                raise Rejection(Reason.ATTR_LIMIT)
            if max(map(len, names)) > max_name:
                raise Rejection(Reason.NAME_LIMIT)


def _bound_declarations(root: etree._Element, max_namespaces: int) -> None:
    """At most ``max_namespaces`` namespace declarations in the whole tree (each element's own)."""
    for declared, _ in enumerate(etree.iterwalk(root, events=("start-ns",)), start=1):
        if declared > max_namespaces:
            raise Rejection(Reason.NAME_LIMIT)
