"""OSCI-Transport 1.2: unpack the content containers an OSCI client hands over.

The office's OSCI client (the intermediary dialog, transport encryption and
the OSCI message signature are its business) hands the hub the content of a
delivery in one of two forms, as bytes:

- an XML document whose root is ``osci:ContentPackage``, or a SOAP 1.1/1.2
  envelope whose ``Body`` holds exactly one ``osci:ContentPackage`` and nothing
  else, with all content inline (``osci:Base64Content``);
- a MIME ``multipart/related`` message (headers and body) as OSCI writes it:
  the root part (the ``start`` parameter, else the first part) is that XML
  document, every other part is an attachment named by its ``Content-ID`` and
  referenced from an ``osci:Content`` by ``href="cid:…"``.

Structure read here, in the namespace ``http://www.osci.de/2002/04/osci``::

    ContentPackage          (ContentContainer | xenc:EncryptedData | ds:Signature)+
      ContentContainer      @Id? @RefID?  (ds:Signature | Content | xenc:EncryptedData)+
        Content             @Id? @href?   empty with href="cid:…", or exactly one of
          Base64Content     @Id?          (canonical base64 text)
          ContentContainer                (nested, e.g. for serial signatures)
          xenc:EncryptedData

The OSCI library puts an author's ``ds:Signature`` inside the container it
signs (references to ``#<Content Id>`` and ``cid:…``); a ``ds:Signature``
directly in the ``ContentPackage`` signs the containers its references name
(``#<ContentContainer Id>``). A ``ds:Signature`` anywhere else is
``SIG_LOCATION``. Signatures are **not verified here**: :func:`unpack` reports
where they are and what they sign, so the pipeline can apply the portal's
signature policy before it trusts the payload.

**The payload rule.** Exactly one ``osci:Content`` is the business payload:

1. if the caller designates it (``payload_id``, agreed per sender), the data
   Content whose ``Id`` (or whose ``Base64Content/@Id``) equals it; it must be
   XML;
2. otherwise: among the Contents that carry data (inline or ``cid:``), only
   those in the least deeply nested containers count; of these, the one whose
   decoded bytes are XML (optional UTF-8 BOM and whitespace, then ``<``).
   None is ``CONTAINER`` at ``ContentPackage/payload``; two or more is
   ``CONTAINER`` at the second one's location (ambiguous: the hub never
   guesses which of two XML documents is the submission).

Every other data Content is an attachment, checked with
:func:`hub.core.transport.check_attachment`. Its media type is the declared
MIME type; an inline ``Base64Content`` declares none, and neither does a MIME
part typed ``application/octet-stream`` (the OSCI library's default): for
these the type is sniffed from the first bytes (PDF, JPEG, PNG, TIFF, XML) and
is ``application/octet-stream`` otherwise, which the default attachment
policy refuses; allow it in :class:`AttachmentPolicy` to accept unknown
binaries. A declared type that the bytes contradict (declared ``image/png``,
bytes are a PDF) is ``ATTACHMENT`` (``…/contentType``). The file name is the
part's ``Content-Disposition`` file name, else derived from the Content's
``Id`` (``<Id>.pdf``, ``content-<n>.bin`` without an Id); names with control,
format (bidi) or private-use characters are refused.

Every rejection is a :class:`Rejection` with a fixed reason and a location made
of fixed names and positions only (``ContentPackage/ContentContainer[1]/
Content[2]/@href``, ``mime/part[3]/Content-ID``), never an Id, a Content-ID, a
file name or any other value.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from lxml import etree

from hub.core import xmlsafe
from hub.core.errors import Reason, Rejection
from hub.core.transport import (
    DEFAULT_ATTACHMENTS,
    Attachment,
    AttachmentPolicy,
    Envelope,
    check_attachment,
    is_safe_filename,
)
from hub.core.transport._codec import (
    b64decode_strict,
    is_xml_media_type,
    looks_like_xml,
    sniff_media_type,
)
from hub.core.transport._multipart import (
    MultipartLimits,
    Part,
    content_id_of_cid_url,
    parse_related,
)
from hub.core.transport._xmlenc import DecryptionKeys, decrypt

NAMESPACE = "http://www.osci.de/2002/04/osci"
DS = "http://www.w3.org/2000/09/xmldsig#"
XENC = "http://www.w3.org/2001/04/xmlenc#"
SOAP_NAMESPACES = frozenset(
    {"http://schemas.xmlsoap.org/soap/envelope/", "http://www.w3.org/2003/05/soap-envelope"}
)

PACKAGE_PATH = "ContentPackage"
PAYLOAD_PATH = "ContentPackage/payload"

_PACKAGE = f"{{{NAMESPACE}}}ContentPackage"
_CONTAINER = f"{{{NAMESPACE}}}ContentContainer"
_CONTENT = f"{{{NAMESPACE}}}Content"
_BASE64 = f"{{{NAMESPACE}}}Base64Content"
_SIGNATURE = f"{{{DS}}}Signature"
_REFERENCE = f"{{{DS}}}SignedInfo/{{{DS}}}Reference"
_ENCRYPTED = f"{{{XENC}}}EncryptedData"
_NAMES = {
    _CONTAINER: "ContentContainer",
    _CONTENT: "Content",
    _BASE64: "Base64Content",
    _SIGNATURE: "Signature",
    _ENCRYPTED: "EncryptedData",
}
_ID_ATTRIBUTES = frozenset({"Id", "ID", "id"})  # local names, any namespace (xml:id included)
_XML_WS = " \t\r\n"
# xsd:ID values as the OSCI library writes them (content0, mock-cc-1): ASCII NCNames.
_ID = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")
_EXTENSIONS = {
    "application/pdf": ".pdf",
    "image/jpeg": ".jpg",
    "image/png": ".png",
    "image/tiff": ".tif",
}
_GENERIC_TYPES = frozenset({"application/octet-stream"})
_MiB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class OsciLimits:
    """Bounds for one OSCI delivery. ``xml`` applies to the ContentPackage document and to
    each decrypted container; the counts apply to the whole delivery."""

    xml: xmlsafe.Limits = xmlsafe.DEFAULT_LIMITS
    max_message_bytes: int = 8 * _MiB  # the whole input, MIME or XML
    max_line_breaks: int = 500_000  # CR and LF in a MIME body, each counted (bounds parse time)
    max_header_bytes: int = 16 * 1024  # the message's and each part's header block
    max_parts: int = 32  # MIME parts, the root part included
    max_containers: int = 32  # ContentContainer elements, decrypted ones included
    max_contents: int = 64  # Content elements
    max_signatures: int = 8  # ds:Signature elements in the package and its containers
    max_encrypted: int = 4  # xenc:EncryptedData elements (each costs RSA operations)
    max_id_length: int = 128  # Id attributes and Content-IDs
    max_payload_bytes: int = xmlsafe.DEFAULT_LIMITS.max_bytes


DEFAULT_OSCI_LIMITS = OsciLimits()


def osci_limits(limits: OsciLimits | xmlsafe.Limits) -> OsciLimits:
    """``limits`` as :class:`OsciLimits`; plain XML limits also bound the whole message."""
    if isinstance(limits, OsciLimits):
        return limits
    return OsciLimits(
        xml=limits, max_message_bytes=limits.max_bytes, max_payload_bytes=limits.max_bytes
    )


@dataclass(frozen=True, slots=True)
class OsciSignature:
    """Where one ``ds:Signature`` sits and what it claims to sign (not verified)."""

    element: etree._Element
    path: str
    container_id: str | None  # the ContentContainer it sits in; None for the ContentPackage
    references: tuple[str, ...]  # ds:SignedInfo/ds:Reference/@URI, in document order


@dataclass(frozen=True, slots=True)
class OsciUnpacked:
    """The envelope plus what the signature policy needs to decide about it.

    ``signed_container_ids`` are the Ids of the containers a signature sits in or
    names (``#Id``); ``containers`` maps every ContentContainer Id to its element
    (decrypted ones included); ``payload_container_ids`` are the Ids of every
    container around the payload, innermost first, so the pipeline can demand
    that the payload is inside a container it verified. ``parts`` maps each
    referenced Content-ID to its decoded bytes (``cid:`` references of a
    signature). ``payload_element`` is the element that holds the payload's data:
    its ``osci:Base64Content``, or for a MIME part the ``osci:Content`` that
    references it (then ``payload_part_id`` is the part's Content-ID), so a
    signature check can tell whether a reference covers the payload's bytes.
    """

    envelope: Envelope
    signatures: tuple[etree._Element, ...]
    package: etree._Element
    signed_container_ids: tuple[str, ...] = ()
    signature_sites: tuple[OsciSignature, ...] = ()
    containers: Mapping[str, etree._Element] = field(default_factory=lambda: MappingProxyType({}))
    payload_content_id: str | None = None
    payload_container_ids: tuple[str | None, ...] = ()
    parts: Mapping[str, bytes] = field(default_factory=lambda: MappingProxyType({}), repr=False)
    payload_element: etree._Element | None = field(default=None, repr=False)
    payload_part_id: str | None = None

    def referenced_part(self, uri: str) -> bytes | None:
        """The decoded bytes of the MIME part a ``cid:`` URI names (RFC 2392), or ``None``."""
        cid = _cid(uri)
        return None if cid is None else self.parts.get(cid)

    def part_id_of(self, uri: str) -> str | None:
        """The Content-ID a ``cid:`` URI names (percent-decoded), or ``None`` if it is not one."""
        return _cid(uri)


def unwrap(
    original: bytes,
    *,
    limits: OsciLimits | xmlsafe.Limits = DEFAULT_OSCI_LIMITS,
    attachments: AttachmentPolicy = DEFAULT_ATTACHMENTS,
    decryption_keys: DecryptionKeys | None = None,
    max_depth: int = 4,
    payload_id: str | None = None,
    author: str | None = None,
    reader: str | None = None,
    message_id: str | None = None,
) -> Envelope:
    """Unpack an OSCI 1.2 content package into an :class:`Envelope` (see :func:`unpack`)."""
    return unpack(
        original,
        limits=limits,
        attachments=attachments,
        decryption_keys=decryption_keys,
        max_depth=max_depth,
        payload_id=payload_id,
        author=author,
        reader=reader,
        message_id=message_id,
    ).envelope


def unpack(
    original: bytes,
    *,
    limits: OsciLimits | xmlsafe.Limits = DEFAULT_OSCI_LIMITS,
    attachments: AttachmentPolicy = DEFAULT_ATTACHMENTS,
    decryption_keys: DecryptionKeys | None = None,
    max_depth: int = 4,
    payload_id: str | None = None,
    author: str | None = None,
    reader: str | None = None,
    message_id: str | None = None,
) -> OsciUnpacked:
    """Unpack an OSCI 1.2 content package (XML or ``multipart/related``). Raises :class:`Rejection`.

    ``author``, ``reader`` and ``message_id`` are the OSCI client's authenticated
    transport metadata; they are copied into the envelope, never read from the
    content. ``decryption_keys`` are the Reader's RSA keys by name (see
    :mod:`hub.core.transport._xmlenc`); without them an encrypted container is
    ``ENCRYPTED``. Containers nest at most ``max_depth`` levels. ``limits`` may be
    plain :class:`hub.core.xmlsafe.Limits` (see :func:`osci_limits`).
    """
    if max_depth < 1:
        raise ValueError("max_depth must be at least 1")
    limits = osci_limits(limits)
    body = _gate(original, limits)
    parts: dict[str, Part] | None = None
    if looks_like_xml(body):
        root = xmlsafe.parse(body, limits.xml)
    else:
        related = parse_related(
            body,
            MultipartLimits(
                max_bytes=limits.max_message_bytes,
                max_parts=limits.max_parts,
                max_header_bytes=limits.max_header_bytes,
                max_id_length=limits.max_id_length,
                max_line_breaks=limits.max_line_breaks,
            ),
        )
        root = _root_document(related.root, limits)
        parts = {part.content_id: part for part in related.parts if part.content_id is not None}
    package = _find_package(root)
    walk = _Walk(limits, decryption_keys, max_depth, parts)
    walk.package(package)
    walk.check_all_parts_referenced()
    payload = walk.payload(payload_id)
    envelope = Envelope(
        transport="osci",
        payload=payload.data,
        payload_content_type=_payload_media_type(payload),
        message_id=message_id,
        author=author,
        reader=reader,
        payload_filename=_payload_filename(payload),
        attachments=walk.attachments(payload, attachments),
    )
    return OsciUnpacked(
        envelope=envelope,
        signatures=tuple(site.element for site in walk.signatures),
        package=package,
        signed_container_ids=walk.signed_container_ids(),
        signature_sites=tuple(walk.signatures),
        containers=MappingProxyType(dict(walk.containers)),
        payload_content_id=payload.content_id,
        payload_container_ids=payload.container_ids,
        parts=MappingProxyType({cid: part.data for cid, part in (parts or {}).items()}),
        payload_element=payload.element,
        payload_part_id=payload.part.content_id if payload.part is not None else None,
    )


# --- the input as a whole ------------------------------------------------------------------------


def _gate(original: bytes, limits: OsciLimits) -> bytes:
    if not isinstance(original, bytes | bytearray | memoryview):
        raise Rejection(Reason.WELLFORMED)  # a str would be read as a URL or path by some libraries
    body = bytes(original)
    if len(body) > limits.max_message_bytes:
        raise Rejection(Reason.SIZE)
    if body.startswith((b"\x1f\x8b", b"PK\x03\x04")):
        raise Rejection(Reason.COMPRESSED)
    return body


def _root_document(part: Part, limits: OsciLimits) -> etree._Element:
    if part.media_type is None or not is_xml_media_type(part.media_type):
        raise Rejection(Reason.CONTAINER, f"{part.path}/Content-Type")
    if part.charset is not None and part.charset.lower() not in {"utf-8", "utf8"}:
        raise Rejection(Reason.ENCODING, f"{part.path}/Content-Type")
    try:
        return xmlsafe.parse(part.data, limits.xml)
    except Rejection as rejection:
        raise Rejection(rejection.reason, part.path) from None


def _find_package(root: etree._Element) -> etree._Element:
    if root.tag == _PACKAGE:
        return root
    namespace = etree.QName(root).namespace if isinstance(root.tag, str) else None
    if namespace not in SOAP_NAMESPACES or etree.QName(root).localname != "Envelope":
        raise Rejection(Reason.CONTAINER, "/")
    bodies = [child for child in root if child.tag == f"{{{namespace}}}Body"]
    if len(bodies) != 1:
        raise Rejection(Reason.CONTAINER, "Envelope/Body")
    children = _elements(bodies[0])
    if len(children) != 1 or children[0].tag != _PACKAGE:
        raise Rejection(Reason.CONTAINER, "Envelope/Body")
    return children[0]


# --- helpers on elements -------------------------------------------------------------------------


def _elements(parent: etree._Element) -> list[etree._Element]:
    return [child for child in parent if isinstance(child.tag, str)]


def _element_only(parent: etree._Element, path: str) -> None:
    """No character data between the children of a structural element."""
    if (parent.text or "").strip(_XML_WS) or any(
        (child.tail or "").strip(_XML_WS) for child in parent
    ):
        raise Rejection(Reason.CONTAINER, path)


def _allowed_attributes(element: etree._Element, allowed: frozenset[str], path: str) -> None:
    if any(name not in allowed for name in element.attrib):
        raise Rejection(Reason.CONTAINER, f"{path}/@*")


def _child_paths(parent_path: str, children: list[etree._Element]) -> list[str]:
    """``Parent/Name[n]`` for known elements; ``Parent/*[n]`` for others (their names are values)."""
    counts: dict[str, int] = {}
    paths = []
    for position, child in enumerate(children, start=1):
        name = _NAMES.get(child.tag)
        if name is None:
            paths.append(f"{parent_path}/*[{position}]")
            continue
        counts[name] = counts.get(name, 0) + 1
        paths.append(f"{parent_path}/{name}[{counts[name]}]")
    return paths


def _unexpected(child: etree._Element, path: str) -> Rejection:
    if child.tag == _SIGNATURE:
        return Rejection(Reason.SIG_LOCATION, path)
    return Rejection(Reason.CONTAINER, path)


# The Content-ID a ``cid:`` URL (RFC 2392, percent-encoded) names, or None.
_cid = content_id_of_cid_url


# --- the walk ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Data:
    """One Content that carries data."""

    path: str  # of the osci:Content
    depth: int  # nesting depth of its container (1: a container directly in the package)
    content_id: str | None
    container_ids: tuple[str | None, ...]  # innermost first
    data: bytes = field(repr=False)
    part: Part | None = None  # the MIME part it references
    # The element holding the data: the Base64Content (inline), the Content (a MIME part).
    element: etree._Element | None = field(default=None, repr=False)


class _Walk:
    """One pass over a ContentPackage: structure, bounds, references, decryption."""

    def __init__(
        self,
        limits: OsciLimits,
        keys: DecryptionKeys | None,
        max_depth: int,
        parts: dict[str, Part] | None,
    ) -> None:
        self.limits = limits
        self.keys = keys
        self.max_depth = max_depth
        self.parts = parts
        self.referenced: set[str] = set()
        self.ids: set[str] = set()
        self.data: list[_Data] = []
        self.signatures: list[OsciSignature] = []
        self.containers: dict[str, etree._Element] = {}
        self.counts = {"container": 0, "content": 0, "signature": 0, "encrypted": 0}

    # structure

    def package(self, package: etree._Element) -> None:
        path = PACKAGE_PATH
        # The whole document: a SOAP header element must not share an Id with a container.
        document = package.getroottree().getroot()
        self._sweep_ids(document, path if document is package else "Envelope")
        _element_only(package, path)
        _allowed_attributes(package, frozenset({"Id"}), path)
        children = _elements(package)
        if not any(child.tag in {_CONTAINER, _ENCRYPTED} for child in children):
            raise Rejection(Reason.CONTAINER, path)
        for child, child_path in zip(children, _child_paths(path, children), strict=True):
            if child.tag == _CONTAINER:
                self.container(child, child_path, 1, (), encrypted=False)
            elif child.tag == _ENCRYPTED:
                inner = self._decrypt(child, child_path, 1)
                self._expect(inner, _CONTAINER, child_path, Reason.DECRYPT)
                self.container(inner, f"{child_path}/ContentContainer", 1, (), encrypted=True)
            elif child.tag == _SIGNATURE:
                self._signature(child, child_path, None)
            else:
                raise _unexpected(child, child_path)

    def container(
        self,
        element: etree._Element,
        path: str,
        depth: int,
        outer: tuple[str | None, ...],
        *,
        encrypted: bool,
    ) -> None:
        if depth > self.max_depth:
            raise Rejection(Reason.CONTAINER, path)
        self._count("container", self.limits.max_containers, path)
        _element_only(element, path)
        _allowed_attributes(element, frozenset({"Id", "RefID"}), path)
        container_id = self._id(element, "Id", path)
        self._id(element, "RefID", path)
        if container_id is not None:
            self.containers[container_id] = element
        around = (container_id, *outer)
        children = _elements(element)
        if not any(child.tag in {_CONTENT, _ENCRYPTED} for child in children):
            raise Rejection(Reason.CONTAINER, path)
        for child, child_path in zip(children, _child_paths(path, children), strict=True):
            if child.tag == _CONTENT:
                self.content(child, child_path, depth, around, encrypted=encrypted)
            elif child.tag == _ENCRYPTED:
                self._encrypted_in_container(child, child_path, depth, around)
            elif child.tag == _SIGNATURE:
                if container_id is None:
                    raise Rejection(Reason.CONTAINER, f"{path}/@Id")  # a signed container needs one
                self._signature(child, child_path, container_id)
            else:
                raise _unexpected(child, child_path)

    def content(
        self,
        element: etree._Element,
        path: str,
        depth: int,
        around: tuple[str | None, ...],
        *,
        encrypted: bool,
    ) -> None:
        self._count("content", self.limits.max_contents, path)
        _element_only(element, path)
        _allowed_attributes(element, frozenset({"Id", "href"}), path)
        content_id = self._id(element, "Id", path)
        children = _elements(element)
        for position, child in enumerate(children, start=1):
            if child.tag not in {_BASE64, _CONTAINER, _ENCRYPTED}:
                raise _unexpected(child, f"{path}/*[{position}]")
        href = element.get("href")
        if href is not None:
            if children:
                raise Rejection(Reason.CONTAINER, path)
            self._reference(href, path, depth, content_id, around, element, encrypted=encrypted)
            return
        if len(children) != 1:
            raise Rejection(Reason.CONTAINER, path)
        child = children[0]
        if child.tag == _BASE64:
            self._inline(child, path, depth, content_id, around)
        elif child.tag == _CONTAINER:
            self.container(
                child, f"{path}/ContentContainer", depth + 1, around, encrypted=encrypted
            )
        else:
            inner = self._decrypt(child, f"{path}/EncryptedData", depth + 1)
            self._expect(inner, _CONTAINER, f"{path}/EncryptedData", Reason.DECRYPT)
            inner_path = f"{path}/EncryptedData/ContentContainer"
            self.container(inner, inner_path, depth + 1, around, encrypted=True)

    def _encrypted_in_container(
        self, element: etree._Element, path: str, depth: int, around: tuple[str | None, ...]
    ) -> None:
        """EncryptedData beside the Contents: a whole nested container, or one Content."""
        inner = self._decrypt(element, path, depth)  # a Content stays at this depth
        if inner.tag == _CONTENT:
            self.content(inner, f"{path}/Content", depth, around, encrypted=True)
        else:
            self._expect(inner, _CONTAINER, path, Reason.DECRYPT)
            self.container(inner, f"{path}/ContentContainer", depth + 1, around, encrypted=True)

    def _inline(
        self,
        element: etree._Element,
        content_path: str,
        depth: int,
        content_id: str | None,
        around: tuple[str | None, ...],
    ) -> None:
        path = f"{content_path}/Base64Content"
        _allowed_attributes(element, frozenset({"Id"}), path)
        inner_id = self._id(element, "Id", path)
        if len(element):  # no children at all: a comment would split the text
            raise Rejection(Reason.CONTAINER, path)
        data = b64decode_strict(element.text or "")
        if data is None:
            raise Rejection(Reason.CONTAINER, path)
        self.data.append(
            _Data(content_path, depth, content_id or inner_id, around, data, element=element)
        )

    def _reference(
        self,
        href: str,
        path: str,
        depth: int,
        content_id: str | None,
        around: tuple[str | None, ...],
        element: etree._Element,
        *,
        encrypted: bool,
    ) -> None:
        where = f"{path}/@href"
        if encrypted:
            # Attachments of an encrypted container are encrypted too: not implemented.
            raise Rejection(Reason.DECRYPT, where)
        cid = _cid(href)
        if cid is None or self.parts is None or cid not in self.parts:
            raise Rejection(Reason.CONTAINER, where)  # not a cid: URL, or dangling
        if cid in self.referenced:
            raise Rejection(Reason.CONTAINER, where)  # one part, two Contents
        self.referenced.add(cid)
        part = self.parts[cid]
        self.data.append(_Data(path, depth, content_id, around, part.data, part, element))

    def _signature(self, element: etree._Element, path: str, container_id: str | None) -> None:
        self._count("signature", self.limits.max_signatures, path)
        references = tuple(ref.get("URI") or "" for ref in element.iterfind(_REFERENCE))
        self.signatures.append(OsciSignature(element, path, container_id, references))

    def _decrypt(self, element: etree._Element, path: str, depth: int) -> etree._Element:
        if depth > self.max_depth:
            raise Rejection(Reason.CONTAINER, path)
        self._count("encrypted", self.limits.max_encrypted, path)
        decrypted = decrypt(element, self.keys, where=path)
        try:
            inner = xmlsafe.parse(decrypted.plaintext, self.limits.xml)
        except Rejection:
            # One code for anything wrong with the plaintext: telling a parse error apart from
            # bad padding would let whoever holds the ciphertext probe it (AES-CBC).
            raise Rejection(Reason.DECRYPT, path) from None
        self._sweep_ids(inner, path)
        return inner

    # bounds and identifiers

    def _expect(
        self, element: etree._Element, tag: str, path: str, reason: Reason = Reason.CONTAINER
    ) -> None:
        if element.tag != tag:
            raise Rejection(reason, path)

    def _count(self, kind: str, limit: int, path: str) -> None:
        self.counts[kind] += 1
        if self.counts[kind] > limit:
            raise Rejection(Reason.CONTAINER, path)

    def _id(self, element: etree._Element, name: str, path: str) -> str | None:
        value = element.get(name)
        if value is None:
            return None
        if len(value) > self.limits.max_id_length or not _ID.fullmatch(value):
            raise Rejection(Reason.CONTAINER, f"{path}/@{name}")
        return value

    def _sweep_ids(self, root: etree._Element, path: str) -> None:
        """No id-like attribute value twice anywhere (signature references must be unambiguous)."""
        for element in root.iter("*"):  # elements only, no comments
            for name, value in element.attrib.items():
                if etree.QName(name).localname not in _ID_ATTRIBUTES:
                    continue
                if str(value) in self.ids:
                    raise Rejection(Reason.CONTAINER, f"{path}//@Id")
                self.ids.add(str(value))

    # results

    def check_all_parts_referenced(self) -> None:
        for cid, part in (self.parts or {}).items():
            if cid not in self.referenced:
                raise Rejection(Reason.CONTAINER, part.path)

    def payload(self, payload_id: str | None) -> _Data:
        """The one payload Content by the payload rule (module docstring)."""
        if payload_id is not None:
            candidates = [item for item in self.data if item.content_id == payload_id]
            if len(candidates) != 1 or not looks_like_xml(candidates[0].data):
                raise Rejection(Reason.CONTAINER, PAYLOAD_PATH)
        else:
            top = min((item.depth for item in self.data), default=0)
            candidates = [i for i in self.data if i.depth == top and looks_like_xml(i.data)]
            if not candidates:
                raise Rejection(Reason.CONTAINER, PAYLOAD_PATH)
            if len(candidates) > 1:
                raise Rejection(Reason.CONTAINER, candidates[1].path)
        payload = candidates[0]
        if len(payload.data) > self.limits.max_payload_bytes:
            raise Rejection(Reason.SIZE, payload.path)
        return payload

    def attachments(self, payload: _Data, policy: AttachmentPolicy) -> tuple[Attachment, ...]:
        others = [item for item in self.data if item is not payload]
        policy.check_count(len(others))
        return tuple(_attachment(item, index, policy) for index, item in enumerate(others, 1))

    def signed_container_ids(self) -> tuple[str, ...]:
        signed: dict[str, None] = {}
        for site in self.signatures:
            if site.container_id is not None:
                signed[site.container_id] = None
                continue
            for uri in site.references:
                if uri.startswith("#") and uri[1:] in self.containers:
                    signed[uri[1:]] = None
        return tuple(signed)


# --- payload and attachments ---------------------------------------------------------------------


def _payload_media_type(payload: _Data) -> str:
    part = payload.part
    if part is None or part.media_type is None or part.media_type in _GENERIC_TYPES:
        return "application/xml"
    if not is_xml_media_type(part.media_type):
        raise Rejection(Reason.CONTAINER, f"{part.path}/Content-Type")
    if part.charset is not None and part.charset.lower() not in {"utf-8", "utf8"}:
        raise Rejection(Reason.ENCODING, f"{part.path}/Content-Type")
    return part.media_type


def _payload_filename(payload: _Data) -> str | None:
    part = payload.part
    if part is None or part.filename is None:
        return None
    name = part.filename
    if not is_safe_filename(name):
        raise Rejection(Reason.CONTAINER, f"{part.path}/Content-Disposition")
    return name


def _attachment(item: _Data, index: int, policy: AttachmentPolicy) -> Attachment:
    media = _attachment_media_type(item)
    part = item.part
    if part is not None and part.filename is not None:
        filename = part.filename
    else:
        stem = item.content_id or f"content-{index}"
        filename = stem + _EXTENSIONS.get(media, ".xml" if is_xml_media_type(media) else ".bin")
    return check_attachment(  # refuses unsafe file names at f"{item.path}/filename"
        item.data,
        filename=filename,
        content_type=media,
        declared_size=None,
        policy=policy,
        attachment_id=part.content_id if part is not None else item.content_id,
        where=item.path,
    )


def _attachment_media_type(item: _Data) -> str:
    """The declared type, checked against the bytes; sniffed when nothing specific is declared."""
    sniffed = sniff_media_type(item.data)
    declared = item.part.media_type if item.part is not None else None
    if declared is None or declared in _GENERIC_TYPES:
        return sniffed or "application/octet-stream"
    if sniffed is not None and _family(sniffed) != _family(declared):
        raise Rejection(Reason.ATTACHMENT, f"{item.path}/contentType")
    return declared


def _family(media: str) -> str:
    return "xml" if is_xml_media_type(media) else media
