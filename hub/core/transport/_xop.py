"""XOP 1.0 packages in MIME ``multipart/related`` (MTOM): open one, resolve its includes. Pure.

A XOP package is an XML document (the root part, ``application/xop+xml``) in
which base64Binary element content was replaced by an ``xop:Include`` element
whose ``href`` is a ``cid:`` URL naming another MIME part that holds the bytes
(W3C XOP 1.0, SOAP 1.2 MTOM). :func:`open_package` reads the MIME message with
the bounded reader (:mod:`hub.core.transport._multipart`: byte, part, header
and line limits, no nested ``multipart/*`` or ``message/*`` parts, no
quoted-printable, no duplicate Content-IDs, every non-root part has one) and
parses the root part once with the hardened parser. :func:`resolve` then
rebuilds the original infoset in place: each ``xop:Include`` is replaced by the
canonical base64 of its part, so every later check reads inline base64 exactly
as it would without MTOM.

Refused, each as ``Rejection(CONTAINER, path)`` with a path from fixed names
(the caller names the locations), never a Content-ID or a value:

- the message ``type`` is not ``application/xop+xml``, or ``start-info`` (when
  given) is not the expected root media type (``mime/Content-Type/type``,
  ``mime/Content-Type/start-info``);
- the root part is not ``application/xop+xml``, or its ``type`` parameter (when
  given) is not the expected media type (``mime/part[n]/Content-Type``,
  ``mime/part[n]/Content-Type/type``); a charset other than UTF-8 is
  ``ENCODING`` (``mime/part[n]/Content-Type``); the parser's codes for the root
  document carry ``mime/part[n]`` as path;
- an ``xop:Include`` (or any element in the XOP namespace) where the caller
  allows none, or an attribute in the XOP namespace anywhere (``<region>/Include``,
  ``<region>/@xop``);
- an ``xop:Include`` that is not the only child node of its parent (no other
  element, comment or character data, not even whitespace), that has children,
  text or attributes other than ``href`` (``<location>/Include``);
- an ``href`` that is not a ``cid:`` URL, names no part, or names a part
  another include already took (``<location>/Include/@href``);
- a non-root part no include references (``mime/part[n]``).
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from lxml import etree

from hub.core import xmlsafe
from hub.core.errors import Reason, Rejection
from hub.core.transport._multipart import (
    MultipartLimits,
    Part,
    content_id_of_cid_url,
    parse_related,
)

XOP = "http://www.w3.org/2004/08/xop/include"
XOP_MEDIA_TYPE = "application/xop+xml"
_INCLUDE = f"{{{XOP}}}Include"
_UTF8 = frozenset({"utf-8", "utf8"})


@dataclass(frozen=True, slots=True)
class Package:
    """An opened XOP package: the root document (includes not yet resolved) and the parts."""

    root: etree._Element
    parts: tuple[Part, ...] = field(repr=False)  # every non-root part, in message order
    root_path: str = "mime/part[1]"


def is_mime(data: object) -> bool:
    """True when the bytes start like a MIME entity (its headers), not like an XML document."""
    if not isinstance(data, bytes):
        return False  # the hardened parser refuses anything but bytes
    head = data[:64].lstrip(b"\r\n").lower()
    return head.startswith((b"content-type:", b"mime-version:"))


def _media(value: str) -> str:
    return value.split(";", 1)[0].strip(" \t").lower()


def open_package(
    message: bytes, *, limits: MultipartLimits, xml: xmlsafe.Limits, root_type: str
) -> Package:
    """Read a ``multipart/related`` XOP package and parse its root part (``root_type`` inside)."""
    related = parse_related(message, limits)
    if _media(related.parameters.get("type", "")) != XOP_MEDIA_TYPE:
        raise Rejection(Reason.CONTAINER, "mime/Content-Type/type")
    start_info = related.parameters.get("start-info")
    if start_info is not None and _media(start_info) != root_type:
        raise Rejection(Reason.CONTAINER, "mime/Content-Type/start-info")
    root = related.root
    if root.media_type != XOP_MEDIA_TYPE:
        raise Rejection(Reason.CONTAINER, f"{root.path}/Content-Type")
    inner = root.parameters.get("type")
    if inner is not None and _media(inner) != root_type:
        raise Rejection(Reason.CONTAINER, f"{root.path}/Content-Type/type")
    if root.charset is not None and root.charset.lower() not in _UTF8:
        raise Rejection(Reason.ENCODING, f"{root.path}/Content-Type")
    try:
        document = xmlsafe.parse(root.data, xml)
    except Rejection as rejection:
        raise Rejection(rejection.reason, root.path) from None
    return Package(root=document, parts=related.parts, root_path=root.path)


def resolve(
    package: Package,
    locate: Callable[[etree._Element], str | None],
    region: Callable[[etree._Element], str],
) -> None:
    """Replace every ``xop:Include`` in ``package.root`` by the base64 of the part it names.

    ``locate`` says where an include may sit (the path of its parent) and
    ``region`` names the place of one that may not. All references are checked
    before anything is replaced; the tree is changed only when all are valid.
    """
    by_id: Mapping[str, Part] = {
        part.content_id: part for part in package.parts if part.content_id is not None
    }
    taken: set[str] = set()
    resolved: list[tuple[etree._Element, etree._Element, Part]] = []
    for element in package.root.iter("*"):  # elements only: comments are the caller's check
        if any(etree.QName(name).namespace == XOP for name in element.attrib):
            raise Rejection(Reason.CONTAINER, f"{region(element)}/@xop")
        if etree.QName(element).namespace != XOP:
            continue
        parent = element.getparent()
        where = None if parent is None or element.tag != _INCLUDE else locate(parent)
        if parent is None or where is None:
            raise Rejection(Reason.CONTAINER, f"{region(element)}/Include")
        _only_child(parent, element, where)
        cid = content_id_of_cid_url(element.get("href") or "")
        part = None if cid is None else by_id.get(cid)
        if cid is None or part is None or cid in taken:
            raise Rejection(Reason.CONTAINER, f"{where}/Include/@href")
        taken.add(cid)
        resolved.append((parent, element, part))
    for part in package.parts:
        if part.content_id not in taken:
            raise Rejection(Reason.CONTAINER, part.path)
    for parent, include, part in resolved:
        parent.remove(include)
        parent.text = base64.b64encode(part.data).decode("ascii")


def _only_child(parent: etree._Element, include: etree._Element, where: str) -> None:
    """The include is its parent's one child node, and itself empty with only ``href``."""
    if len(parent) != 1 or parent.text or include.tail:
        raise Rejection(Reason.CONTAINER, f"{where}/Include")
    if len(include) or include.text or set(include.attrib) != {"href"}:
        raise Rejection(Reason.CONTAINER, f"{where}/Include")
