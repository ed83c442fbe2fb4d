"""XTA 2 version 3 (schema 2.1.1): unwrap a fetched message, build the client's requests.

Inbound, the hub is an XTA *reader*: a connector lists its mailbox
(``getStatusList``), fetches one message (``getMessage``), hands the response
over and only then acknowledges it (``close``). :func:`unwrap` turns the SOAP
1.2 envelope of a ``getMessage`` response into an :class:`Envelope`:

- header ``oscimeta:MessageMetaData``: message id (``wsa:MessageID`` in
  ``MsgIdentification``, ``urn:de:xta:messageid:<prefix>:<id>``), author
  (``Originators/Author/Identifier``), reader (``Destinations/Reader/Identifier``),
  service, business scenario, message type and ``payloadSchema``;
- body ``xta:GenericContentContainer`` with one ``ContentContainer``: exactly
  one ``Message`` (the XML payload, base64) and 0..n ``Attachment`` (base64,
  checked with :func:`hub.core.transport.check_attachment`); an
  ``xenc:EncryptedData`` body is :attr:`Reason.ENCRYPTED`.

A response may also be an MTOM/XOP package (``multipart/related``, root part
``application/xop+xml`` holding the SOAP 1.2 envelope, content in binary parts
referenced by ``xop:Include``): the connector keeps it as a MIME entity (the
HTTP ``Content-Type`` header line, a blank line, the body), and :func:`unwrap`
opens it with the bounded MIME reader, resolves every include back to inline
base64 (:mod:`hub.core.transport._xop`; only in ``Message``, ``Attachment`` and
the ``CipherValue`` of an encrypted container) and then runs the very same
checks as on an inline envelope.

The structure is checked here in code, not against the official XSDs (they are
not shipped): strict on everything that is read (exactly one of each element,
simple content without child nodes or comments, strict patterns, canonical
base64, declared sizes), tolerant of metadata elements it does not read.
Every rejection names a location (``MessageMetaData/MsgIdentification/MessageID``)
built from fixed names only, never a value or a name taken from the input.

Outbound, the pure builders make the SOAP 1.2 requests of the ``msgBoxPort``
(``getStatusList``, ``getMessage``, ``close``) and the hub's receipt for
``sendMessage``. Everything is built with lxml; no untrusted value is ever
concatenated into markup. The hub's own requests and receipts are always
inline base64.
"""

from __future__ import annotations

import base64
import datetime as dt
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

from lxml import etree

from hub.core import xmlsafe
from hub.core.errors import Reason, Rejection
from hub.core.model import Code
from hub.core.transport import (
    DEFAULT_ATTACHMENTS,
    Attachment,
    AttachmentPolicy,
    Envelope,
    _xop,
    check_all,
    check_attachment,
)
from hub.core.transport._codec import b64decode_strict
from hub.core.transport._multipart import MultipartLimits
from hub.core.transport._xmlenc import DecryptionKeys, decrypt

TRANSPORT = "xta2"

SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
XTA = "http://xoev.de/transport/xta/211"
OSCIMETA = "http://www.osci.eu/ws/2014/10/transport"
OSCI = "http://www.osci.eu/ws/2008/05/transport"
WSA = "http://www.w3.org/2005/08/addressing"
XENC = "http://www.w3.org/2001/04/xmlenc#"
XOP = _xop.XOP
SOAP_MEDIA_TYPE = "application/soap+xml"

# SOAP actions from the WSDL (XTA.wsdl, msgBoxHttpsBinding and sendXTAHttpsBinding).
_OSCI_ACTIONS = "http://www.osci.eu/ws/2008/05/transport/urn/messageTypes/"
ACTION_GET_STATUS_LIST = _OSCI_ACTIONS + "MsgBoxStatusListRequest"
ACTION_GET_MESSAGE = _OSCI_ACTIONS + "MsgBoxFetchRequest"
ACTION_CLOSE = _OSCI_ACTIONS + "MsgBoxCloseRequest"
ACTION_SEND_MESSAGE = "http://www.xta.de/XTA/SendMessage"

NO_MESSAGE_AVAILABLE = "http://www.osci.eu/ws/2008/05/transport/MsgBox/reasons/NoMatch"

# The payload is a business document: XML only. Attachments follow the AttachmentPolicy.
PAYLOAD_MEDIA_TYPES = frozenset({"application/xml", "text/xml"})

# The hub's receipt (sent back with sendMessage): its own small vocabulary.
RECEIPT_NAMESPACE = "urn:sozialhub:xta-receipt:1"
RECEIPT_MESSAGE_TYPE = Code(
    code="transportReceipt", list_uri="urn:sozialhub:xta:messagetype", list_version="1"
)
RECEIPT_BUSINESS_SCENARIO = "sozialhub-receipt"
RECEIPT_SERVICE = "urn:sozialhub:xta:receipt"
RECEIPT_OUTCOMES = frozenset({"accepted", "routed", "rejected"})
_RECEIPT_IDS = uuid.UUID("5b0c1f1e-8d0a-4f4e-9a53-0d2a6c1f7e01")  # namespace for uuid5 ids

MAX_STATUS_ITEMS = 200  # a status list of this many MessageMetaData stays below the element limit

# An MTOM package (HTTP response as a MIME entity): the message, its root and content parts.
MIME_MAX_HEADER_BYTES = 16 * 1024  # the message's and each part's header block
MIME_MAX_ID_LENGTH = 128  # Content-IDs
MIME_MIN_LINE_BREAKS = 65_536  # CR and LF in the body: at least this many, else max_bytes / 8

_IDENTIFIER_TYPE = "xoev"
_XML_WS = " \t\r\n"
_DELETE_WS = str.maketrans("", "", _XML_WS)
_WS_RUN = re.compile(r"[ \t\r\n]+")

# urn:de:xta:messageid:<prefix>:<id>; ASCII letters, digits, '.', '_' and '-' only.
MESSAGE_ID = re.compile(
    r"urn:de:xta:messageid:[A-Za-z0-9][A-Za-z0-9._-]{0,63}:[A-Za-z0-9][A-Za-z0-9._-]{0,127}",
    re.ASCII,
)
# DVDV-style party keys (wgb010540880000, sop:050000100099, dvdv:ags:05562000).
IDENTIFIER = re.compile(r"[A-Za-z0-9][A-Za-z0-9:._@-]{0,127}", re.ASCII)
_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]{0,31}:[!-~]{1,480}", re.ASCII)
_TOKEN = re.compile(r"[!-~]{1,128}", re.ASCII)
_VERSION = re.compile(r"[!-~]{1,64}", re.ASCII)
_TEXT = re.compile(r"[\w.:/()+-](?:[\w .:/()+-]{0,254}[\w.:/()+-])?")
_SIZE = re.compile(r"[1-9][0-9]{0,11}", re.ASCII)
_CONTENT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}", re.ASCII)
_FILENAME = re.compile(r"[^\x00-\x1f\x7f/\\:*?\"<>|]{1,200}")
_SUBMISSION_ID = re.compile(r"sub-[0-9a-f]{32}", re.ASCII)
_REQUEST_ID = re.compile(r"[A-Za-z][A-Za-z0-9+.-]{0,31}:[!-~]{1,200}", re.ASCII)

# Header blocks the hub reads or may safely ignore even when marked mustUnderstand.
_UNDERSTOOD_HEADERS = frozenset(
    {
        f"{{{OSCIMETA}}}MessageMetaData",
        f"{{{OSCI}}}MsgBoxResponse",
        *(f"{{{WSA}}}{name}" for name in ("Action", "MessageID", "To", "From", "ReplyTo")),
        f"{{{WSA}}}RelatesTo",
    }
)

# Paths: fixed names only. The body paths start at the body element, the header at MessageMetaData.
MMD = "MessageMetaData"
GCC = "GenericContentContainer"
CONTENT = f"{GCC}/ContentContainer"
MESSAGE = f"{CONTENT}/Message"
ENCRYPTED_DATA = f"{GCC}/EncryptedData"
CIPHER_VALUE = f"{ENCRYPTED_DATA}/CipherData/CipherValue"
# Where a listed message showed it is too large for the hub (see hub.core.xta_oversize).
DECLARED_SIZE = f"{MMD}/MsgSize"  # the status list's MsgSize
RESPONSE_SIZE = "getMessage/response"  # the getMessage response itself

# SOAP faults the XTA WSDL declares; anything else is reported as "unknown".
XTA_EXCEPTIONS = frozenset(
    {
        "PermissionDeniedException",
        "XTAWSTechnicalProblemException",
        "ParameterIsNotValidException",
        "MessageSchemaViolationException",
        "MessageVirusDetectionException",
        "SyncAsyncException",
        "InvalidMessageIDException",
        "CancelDeniedException",
    }
)
# XTA-WS Fehlernummer (code list urn:de:xta:webservice:codeliste:fehlernummer, version 1.0) of
# ParameterIsNotValidException: "MessageID ist bereits vergeben", the message id is taken.
MESSAGE_ID_TAKEN = "9024"
_ERROR_CODE = re.compile(r"[0-9]{4}")  # the list's codes; nothing else is passed on

# What a sendMessage fault says about the message sent (send_verdict):
SEND_PRESENT = "present"  # the server holds a message with this id: an earlier send got through
SEND_REFUSED = "refused"  # sending the same request again cannot succeed
SEND_TRANSIENT = "transient"  # the server failed; the same request may succeed later
# Declared exceptions that refuse the request itself, whatever the SOAP fault code says.
_REFUSING_EXCEPTIONS = XTA_EXCEPTIONS - {"XTAWSTechnicalProblemException"}


@dataclass(frozen=True, slots=True)
class XtaMetadata:
    """What the hub reads from ``MessageMetaData`` beyond the :class:`Envelope` fields.

    ``business_scenario`` is set for a ``Defined`` scenario (an XÖV code with its
    list), ``business_scenario_text`` for an ``Undefined`` one.
    """

    message_id: str
    author: str
    reader: str
    service: str
    message_type: Code
    payload_schema: str
    business_scenario: Code | None = None
    business_scenario_text: str | None = None
    test_message: bool = False


@dataclass(frozen=True, slots=True)
class Unwrapped:
    """The result of :func:`unwrap_message`: the transport envelope and the XTA metadata."""

    envelope: Envelope
    metadata: XtaMetadata


@dataclass(frozen=True, slots=True)
class StatusEntry:
    """One listed message: its id, its metadata and the size the server declares.

    ``metadata`` is set for a ``MessageMetaData`` entry that passes the checks
    :func:`unwrap` applies to metadata (else ``None``, e.g. the ``MsgAttributes``
    form); ``size`` is ``MsgSize`` (either form), ``None`` when absent or invalid.
    """

    message_id: str
    metadata: XtaMetadata | None = None
    size: int | None = None


@dataclass(frozen=True, slots=True)
class StatusList:
    """A parsed ``getStatusList`` response.

    ``skipped`` counts listed messages whose id does not match :data:`MESSAGE_ID`
    (they are never fetched); ``pending`` is the server's ``ItemsPending`` (0 when
    absent or ``NoMessageAvailable``); ``request_id`` its ``MsgBoxRequestID``.
    ``entries`` has one :class:`StatusEntry` per id in ``message_ids``.
    """

    message_ids: tuple[str, ...]
    skipped: int = 0
    pending: int = 0
    request_id: str | None = None
    entries: tuple[StatusEntry, ...] = ()


@dataclass(frozen=True, slots=True)
class Fault:
    """A SOAP 1.2 fault: its code (``Sender``/``Receiver``/...) and the XTA exception, if known.

    ``error_code`` is the exception's ``errorCode/code`` when it is a four-digit
    XTA-WS Fehlernummer (e.g. :data:`MESSAGE_ID_TAKEN`), else ``None``.
    """

    code: str
    exception: str | None
    error_code: str | None = None


@dataclass(frozen=True, slots=True)
class Content:
    """One piece of outbound content (the message or an attachment) before base64 encoding."""

    data: bytes = field(repr=False)
    content_type: str
    filename: str | None = None
    content_id: str | None = None


@dataclass(frozen=True, slots=True)
class OutboundMetadata:
    """``MessageMetaData`` for a message the hub (or the simulator) sends."""

    message_id: str
    author: str
    reader: str
    service: str
    message_type: Code
    payload_schema: str
    business_scenario: Code | str
    in_reply_to: str | None = None
    origin: dt.datetime | None = None
    test_message: bool = False
    msg_size: int | None = None  # MsgSize (a status list entry)


def _q(namespace: str, name: str) -> str:
    return f"{{{namespace}}}{name}"


# --- reading -------------------------------------------------------------------------------------


def _fail(path: str, reason: Reason = Reason.CONTAINER) -> Rejection:
    return Rejection(reason, path)


def _elements(parent: etree._Element) -> list[etree._Element]:
    return [child for child in parent if isinstance(child.tag, str)]


def _no_text(parent: etree._Element, path: str) -> None:
    """Element-only content: no character data between the children."""
    if (parent.text or "").strip(_XML_WS):
        raise _fail(path)
    if any((child.tail or "").strip(_XML_WS) for child in parent):
        raise _fail(path)


def _all(parent: etree._Element, tag: str) -> list[etree._Element]:
    return [child for child in parent if child.tag == tag]


def _one(parent: etree._Element, tag: str, path: str) -> etree._Element:
    found = _all(parent, tag)
    if len(found) != 1:
        raise _fail(path)
    return found[0]


def _at_most_one(parent: etree._Element, tag: str, path: str) -> etree._Element | None:
    found = _all(parent, tag)
    if len(found) > 1:
        raise _fail(path)
    return found[0] if found else None


def _simple(element: etree._Element, path: str) -> str:
    """Text of a simple-content element: no child elements and no comments (which split text)."""
    if len(element):
        raise _fail(path)
    return element.text or ""


def _matching(text: str, pattern: re.Pattern[str], path: str, *, collapse: bool = False) -> str:
    """``text`` if it matches; ``collapse`` strips XML whitespace first (anyURI, token types)."""
    value = text.strip(_XML_WS) if collapse else text
    if pattern.fullmatch(value) is None:
        raise _fail(path)
    return value


def _collapse(text: str) -> str:
    """XML Schema's ``collapse``: runs of XML whitespace become one space, none at the ends."""
    return _WS_RUN.sub(" ", text).strip(" ")


def _identifier(parent: etree._Element, role: str, path: str) -> str:
    party = _one(parent, _q(OSCIMETA, role), f"{path}/{role}")
    identifier = _one(party, _q(OSCIMETA, "Identifier"), f"{path}/{role}/Identifier")
    where = f"{path}/{role}/Identifier"
    if not (identifier.get("type") or "").strip(_XML_WS):
        raise _fail(f"{where}/type")
    return _matching(_simple(identifier, where), IDENTIFIER, where)


def _code(element: etree._Element, path: str) -> Code:
    """An XÖV code (``KeyCodeType``): unqualified ``code``/``name``, ``listURI``/``listVersionID``."""
    _no_text(element, path)
    code = _matching(
        _simple(_one(element, "code", f"{path}/code"), f"{path}/code"),
        _TOKEN,
        f"{path}/code",
        collapse=True,
    )
    name_element = _at_most_one(element, "name", f"{path}/name")
    name = None if name_element is None else _simple(name_element, f"{path}/name").strip(_XML_WS)
    list_uri = _matching(element.get("listURI") or "", _URI, f"{path}/listURI", collapse=True)
    version = _matching(
        element.get("listVersionID") or "", _VERSION, f"{path}/listVersionID", collapse=True
    )
    return Code(code=code, list_uri=list_uri, list_version=version, name=name or None)


def _boolean(value: str | None, path: str) -> bool:
    text = (value or "false").strip(_XML_WS)
    if text in ("true", "1"):
        return True
    if text in ("false", "0"):
        return False
    raise _fail(path)


def _metadata(meta: etree._Element) -> XtaMetadata:
    _no_text(meta, MMD)
    test_message = _boolean(meta.get("TestMsg"), f"{MMD}/TestMsg")
    _one(meta, _q(OSCIMETA, "DeliveryAttributes"), f"{MMD}/DeliveryAttributes")

    originators = _one(meta, _q(OSCIMETA, "Originators"), f"{MMD}/Originators")
    author = _identifier(originators, "Author", f"{MMD}/Originators")
    destinations = _one(meta, _q(OSCIMETA, "Destinations"), f"{MMD}/Destinations")
    reader = _identifier(destinations, "Reader", f"{MMD}/Destinations")

    path = f"{MMD}/MsgIdentification"
    identification = _one(meta, _q(OSCIMETA, "MsgIdentification"), path)
    message_id_element = _one(identification, _q(WSA, "MessageID"), f"{path}/MessageID")
    message_id = _matching(
        _simple(message_id_element, f"{path}/MessageID"),
        MESSAGE_ID,
        f"{path}/MessageID",
        collapse=True,
    )

    path = f"{MMD}/Qualifier"
    qualifier = _one(meta, _q(OSCIMETA, "Qualifier"), path)
    _no_text(qualifier, path)
    service_element = _one(qualifier, _q(OSCIMETA, "Service"), f"{path}/Service")
    service = _matching(
        _simple(service_element, f"{path}/Service"), _URI, f"{path}/Service", collapse=True
    )

    scenario_path = f"{path}/BusinessScenario"
    scenario = _one(qualifier, _q(OSCIMETA, "BusinessScenario"), scenario_path)
    _no_text(scenario, scenario_path)
    defined = _at_most_one(scenario, _q(OSCIMETA, "Defined"), f"{scenario_path}/Defined")
    undefined = _at_most_one(scenario, _q(OSCIMETA, "Undefined"), f"{scenario_path}/Undefined")
    if (defined is None) == (undefined is None) or len(_elements(scenario)) != 1:
        raise _fail(scenario_path)
    scenario_code = None if defined is None else _code(defined, f"{scenario_path}/Defined")
    scenario_text = (
        None
        if undefined is None
        else _matching(
            _collapse(_simple(undefined, f"{scenario_path}/Undefined")),
            _TEXT,
            f"{scenario_path}/Undefined",
        )
    )

    type_path = f"{path}/MessageType"
    message_type = _one(qualifier, _q(OSCIMETA, "MessageType"), type_path)
    payload_schema = _matching(
        message_type.get("payloadSchema") or "", _URI, f"{type_path}/payloadSchema", collapse=True
    )
    return XtaMetadata(
        message_id=message_id,
        author=author,
        reader=reader,
        service=service,
        message_type=_code(message_type, type_path),
        payload_schema=payload_schema,
        business_scenario=scenario_code,
        business_scenario_text=scenario_text,
        test_message=test_message,
    )


def _media_type(value: str | None) -> str:
    return (value or "").split(";", 1)[0].strip(_XML_WS).lower()


def _declared_size(element: etree._Element, reason: Reason, path: str) -> int | None:
    value = element.get("size")
    if value is None:
        return None
    if _SIZE.fullmatch(value.strip(_XML_WS)) is None:
        raise Rejection(reason, path)
    return int(value)


def _base64(
    element: etree._Element, *, max_bytes: int, path: str, size_reason: Reason, size_path: str
) -> bytes:
    """Strictly decode inline base64: XML whitespace allowed, canonical, bounded before decoding."""
    compact = _simple(element, path).translate(_DELETE_WS)
    if not compact or len(compact) % 4:
        raise _fail(path)
    padding = len(compact) - len(compact.rstrip("="))
    if len(compact) // 4 * 3 - padding > max_bytes:
        raise Rejection(size_reason, size_path)
    data = b64decode_strict(compact)  # canonical only: one spelling per value
    if data is None:
        raise _fail(path)
    return data


def _payload(message: etree._Element, limits: xmlsafe.Limits) -> tuple[bytes, str, str | None]:
    declared = _declared_size(message, Reason.CONTAINER, f"{MESSAGE}/size")
    if declared is not None and declared > limits.max_bytes:
        raise Rejection(Reason.SIZE, MESSAGE)
    media = _media_type(message.get("contentType"))
    if media not in PAYLOAD_MEDIA_TYPES:
        raise _fail(f"{MESSAGE}/contentType")
    filename = message.get("filename")
    if filename is not None and (
        _FILENAME.fullmatch(filename) is None
        or filename.startswith(".")
        or filename.strip() != filename
    ):
        raise _fail(f"{MESSAGE}/filename")
    data = _base64(
        message,
        max_bytes=limits.max_bytes,
        path=MESSAGE,
        size_reason=Reason.SIZE,
        size_path=MESSAGE,
    )
    if declared is not None and declared != len(data):
        raise _fail(f"{MESSAGE}/size")
    return data, media, filename


def _attachment(element: etree._Element, index: int, policy: AttachmentPolicy) -> Attachment:
    where = f"{CONTENT}/Attachment[{index}]"
    declared = _declared_size(element, Reason.ATTACHMENT, f"{where}/size")
    if declared is not None and declared > policy.max_bytes:
        raise Rejection(Reason.ATTACHMENT, f"{where}/size")
    content_id = element.get("id")
    if content_id is not None and _CONTENT_ID.fullmatch(content_id) is None:
        raise Rejection(Reason.ATTACHMENT, f"{where}/id")
    data = _base64(
        element,
        max_bytes=policy.max_bytes,
        path=where,
        size_reason=Reason.ATTACHMENT,
        size_path=f"{where}/size",
    )
    return check_attachment(
        data,
        filename=element.get("filename"),
        content_type=element.get("contentType"),
        declared_size=declared,
        policy=policy,
        attachment_id=content_id,
        where=where,
    )


def _soap_parts(root: etree._Element) -> tuple[etree._Element | None, etree._Element]:
    """(Header or None, Body) of a SOAP 1.2 envelope; anything else is ``CONTAINER``."""
    if root.tag != _q(SOAP12, "Envelope"):
        raise _fail("Envelope")
    _no_text(root, "Envelope")
    children = _elements(root)
    tags = [child.tag for child in children]
    if tags == [_q(SOAP12, "Body")]:
        return None, children[0]
    if tags == [_q(SOAP12, "Header"), _q(SOAP12, "Body")]:
        return children[0], children[1]
    raise _fail("Envelope")


def _body_element(body: etree._Element) -> etree._Element:
    _no_text(body, "Envelope/Body")
    children = _elements(body)
    if len(children) != 1:
        raise _fail("Envelope/Body")
    if children[0].tag == _q(SOAP12, "Fault"):
        raise _fail("Envelope/Body/Fault")
    return children[0]


def _check_header(header: etree._Element) -> None:
    _no_text(header, "Envelope/Header")
    for block in _elements(header):
        must = (block.get(_q(SOAP12, "mustUnderstand")) or "").strip(_XML_WS)
        if must in ("true", "1") and block.tag not in _UNDERSTOOD_HEADERS:
            raise _fail("Envelope/Header/mustUnderstand")


def mime_limits(
    limits: xmlsafe.Limits, attachments: AttachmentPolicy = DEFAULT_ATTACHMENTS
) -> MultipartLimits:
    """Bounds for an MTOM package: the whole entity as ``limits.max_bytes``; the root part,
    the message and every attachment part; the header blocks, Content-IDs and line breaks."""
    return MultipartLimits(
        max_bytes=limits.max_bytes,
        max_parts=attachments.max_count + 2,
        max_header_bytes=MIME_MAX_HEADER_BYTES,
        max_id_length=MIME_MAX_ID_LENGTH,
        max_line_breaks=max(MIME_MIN_LINE_BREAKS, limits.max_bytes // 8),
    )


def is_mime(original: bytes) -> bool:
    """True when ``original`` is a MIME entity (an MTOM package), not an XML document."""
    return _xop.is_mime(original)


def _region(element: etree._Element) -> str:
    """The fixed name of the part of the envelope ``element`` is in (for XOP refusals)."""
    for ancestor in element.iterancestors():
        if ancestor.tag == _q(SOAP12, "Header"):
            return "Envelope/Header"
        if ancestor.tag == _q(SOAP12, "Body"):
            return "Envelope/Body"
    return "Envelope"


def _in_body_container(element: etree._Element | None) -> bool:
    """``element`` is the body's ``GenericContentContainer`` of the root ``Envelope``."""
    if element is None or element.tag != _q(XTA, GCC):
        return False
    body = element.getparent()
    envelope = None if body is None else body.getparent()
    return (
        body is not None
        and body.tag == _q(SOAP12, "Body")
        and envelope is not None
        and envelope.tag == _q(SOAP12, "Envelope")
        and envelope.getparent() is None
    )


def _xop_location(parent: etree._Element) -> str | None:
    """Where an ``xop:Include`` may stand in for base64Binary content: its parent's path.

    ``Message`` and ``Attachment`` in the body's ``ContentContainer``, and the
    ``CipherValue`` of the body's ``EncryptedData`` (the encrypted container); nowhere else.
    """
    if parent.tag in (_q(XTA, "Message"), _q(XTA, "Attachment")):
        content = parent.getparent()
        if content is None or content.tag != _q(XTA, "ContentContainer"):
            return None
        if not _in_body_container(content.getparent()):
            return None
        if parent.tag == _q(XTA, "Message"):
            return MESSAGE
        index = 1 + sum(1 for s in parent.itersiblings(preceding=True) if s.tag == parent.tag)
        return f"{CONTENT}/Attachment[{index}]"
    if parent.tag == _q(XENC, "CipherValue"):
        cipher_data = parent.getparent()
        encrypted = None if cipher_data is None else cipher_data.getparent()
        if (
            cipher_data is not None
            and cipher_data.tag == _q(XENC, "CipherData")
            and encrypted is not None
            and encrypted.tag == _q(XENC, "EncryptedData")
            and _in_body_container(encrypted.getparent())
        ):
            return CIPHER_VALUE
    return None


def _document(
    original: bytes,
    limits: xmlsafe.Limits = xmlsafe.DEFAULT_LIMITS,
    attachments: AttachmentPolicy = DEFAULT_ATTACHMENTS,
    *,
    resolve: bool = True,
) -> etree._Element:
    """The SOAP document of a response: inline XML, or the root of an MTOM/XOP package.

    With ``resolve`` every ``xop:Include`` is replaced by the base64 of its part
    (the original infoset); without it the includes stay (metadata is never in a part).
    """
    if not _xop.is_mime(original):
        return xmlsafe.parse(original, limits)
    package = _xop.open_package(
        original,
        limits=mime_limits(limits, attachments),
        xml=limits,
        root_type=SOAP_MEDIA_TYPE,
    )
    if resolve:
        _xop.resolve(package, _xop_location, _region)
    return package.root


def resolved_envelope(
    original: bytes,
    limits: xmlsafe.Limits = xmlsafe.DEFAULT_LIMITS,
    attachments: AttachmentPolicy = DEFAULT_ATTACHMENTS,
) -> etree._Element:
    """The SOAP envelope as :func:`unwrap` reads it: an MTOM package with its includes resolved.

    Only the MIME and XOP rules are checked here (and the hardened parse), not the
    XTA structure; for tests and tools that look at the infoset (e.g. against the XSDs).
    """
    return _document(original, limits, attachments)


def _decrypted(
    encrypted: etree._Element, limits: xmlsafe.Limits, keys: DecryptionKeys | None
) -> etree._Element:
    """The ``ContentContainer`` an author encrypted end to end, decrypted with ``keys``.

    Without keys: ``ENCRYPTED``. Unsupported algorithms, no key that fits, content that
    does not decrypt: ``DECRYPT`` (:mod:`hub.core.transport._xmlenc`). The plaintext is
    parsed with the same limits as the original and must be one ``xta:ContentContainer``
    element (XML Encryption ``Type`` ``Element``); a plaintext that does not parse or is
    something else is ``DECRYPT`` too, at the EncryptedData's path, so that the answer
    never tells bad padding from bad content.
    """
    decrypted = decrypt(encrypted, keys, where=ENCRYPTED_DATA)
    try:
        inner = xmlsafe.parse(decrypted.plaintext, limits)
    except Rejection:
        # One code for anything wrong with the plaintext: telling a parse error apart from
        # bad padding would let whoever holds the ciphertext probe it (AES-CBC).
        raise Rejection(Reason.DECRYPT, ENCRYPTED_DATA) from None
    if inner.tag != _q(XTA, "ContentContainer"):
        raise _fail(ENCRYPTED_DATA, Reason.DECRYPT)
    return inner


def unwrap_message(
    original: bytes,
    limits: xmlsafe.Limits = xmlsafe.DEFAULT_LIMITS,
    attachments: AttachmentPolicy = DEFAULT_ATTACHMENTS,
    decryption_keys: DecryptionKeys | None = None,
) -> Unwrapped:
    """Unwrap a ``getMessage`` response into an :class:`Envelope` plus :class:`XtaMetadata`.

    ``limits`` bounds the original as it arrived: an envelope is parsed once with
    :func:`hub.core.xmlsafe.parse`; an MTOM package is read with
    :func:`mime_limits` and its root part parsed the same way, then its includes
    are resolved to inline base64. The decoded payload must also fit
    ``limits.max_bytes``, each attachment ``attachments.max_bytes``. Decoded
    content is at most three quarters of the envelope (at most the package), so
    the total is bounded by the original's limit. An ``xenc:EncryptedData`` instead
    of the ``ContentContainer`` is decrypted with ``decryption_keys`` (the office's
    reader keys by name, as for OSCI) and then checked like an inline container;
    without keys it is ``ENCRYPTED``. Raises :class:`Rejection`.
    """
    root = _document(original, limits, attachments)
    header, body = _soap_parts(root)
    if header is None:
        raise _fail(MMD)
    _check_header(header)
    metadata = _metadata(_one(header, _q(OSCIMETA, MMD), MMD))

    container = _body_element(body)
    if container.tag != _q(XTA, GCC):
        raise _fail(GCC)
    _no_text(container, GCC)
    choice = _elements(container)
    if len(choice) != 1:
        raise _fail(GCC)
    if choice[0].tag == _q(XENC, "EncryptedData"):
        content = _decrypted(choice[0], limits, decryption_keys)
    elif choice[0].tag == _q(XTA, "ContentContainer"):
        content = choice[0]
    else:
        raise _fail(GCC)
    _no_text(content, CONTENT)
    parts = _elements(content)
    if any(part.tag not in (_q(XTA, "Message"), _q(XTA, "Attachment")) for part in parts):
        raise _fail(CONTENT)
    if not parts or parts[0].tag != _q(XTA, "Message"):
        raise _fail(MESSAGE)
    if any(part.tag == _q(XTA, "Message") for part in parts[1:]):
        raise _fail(MESSAGE)
    attachment_elements = parts[1:]
    if len(attachment_elements) > attachments.max_count:
        raise Rejection(Reason.ATTACHMENT, f"{CONTENT}/Attachment")

    payload, media, filename = _payload(parts[0], limits)
    checked = check_all(
        (
            _attachment(element, index, attachments)
            for index, element in enumerate(attachment_elements, start=1)
        ),
        attachments,
    )
    envelope = _to_envelope(
        metadata,
        payload,
        payload_content_type=media,
        payload_filename=filename,
        attachments=checked,
    )
    return Unwrapped(envelope=envelope, metadata=metadata)


def _to_envelope(
    metadata: XtaMetadata,
    payload: bytes,
    *,
    payload_content_type: str = "application/xml",
    payload_filename: str | None = None,
    attachments: tuple[Attachment, ...] = (),
) -> Envelope:
    return Envelope(
        transport=TRANSPORT,
        payload=payload,
        payload_content_type=payload_content_type,
        message_id=metadata.message_id,
        author=metadata.author,
        reader=metadata.reader,
        service=metadata.service,
        business_scenario=(
            metadata.business_scenario.code
            if metadata.business_scenario is not None
            else metadata.business_scenario_text
        ),
        payload_filename=payload_filename,
        attachments=attachments,
        payload_schema=metadata.payload_schema,
    )


def peek(original: bytes, limits: xmlsafe.Limits = xmlsafe.DEFAULT_LIMITS) -> Envelope:
    """The outer identifiers of a message whose content cannot be opened (to answer the portal).

    Reads ``MessageMetaData`` with the same checks as :func:`unwrap` and ignores the
    body (it may be encrypted or malformed); the envelope's payload is empty.
    Raises :class:`Rejection` when the metadata itself is not readable.
    """
    root = _document(original, limits, resolve=False)
    header, _ = _soap_parts(root)
    if header is None:
        raise _fail(MMD)
    return _to_envelope(_metadata(_one(header, _q(OSCIMETA, MMD), MMD)), b"")


def envelope_of(metadata: XtaMetadata) -> Envelope:
    """The outer identifiers of a message known only by its metadata (e.g. a status list entry).

    Its payload is empty; enough to address a receipt to the message's author.
    """
    return _to_envelope(metadata, b"")


def unwrap(
    original: bytes,
    limits: xmlsafe.Limits = xmlsafe.DEFAULT_LIMITS,
    attachments: AttachmentPolicy = DEFAULT_ATTACHMENTS,
    decryption_keys: DecryptionKeys | None = None,
) -> Envelope:
    """The :class:`Envelope` of a ``getMessage`` response (see :func:`unwrap_message`)."""
    return unwrap_message(original, limits, attachments, decryption_keys).envelope


def status_list(response: bytes, limits: xmlsafe.Limits = xmlsafe.DEFAULT_LIMITS) -> StatusList:
    """Parse a ``getStatusList`` response: the listed message ids, in order, without repeats.

    Both list forms are read (``MsgAttributes`` and ``MessageMetaData``). Ids that
    do not match :data:`MESSAGE_ID` are counted in ``skipped``, never returned.
    Each entry also carries its metadata (``MessageMetaData`` form, when it passes
    the checks of :func:`unwrap`) and its declared ``MsgSize``. The response may be
    an MTOM package, as some servers answer every operation that way.
    """
    root = _document(response, limits, resolve=False)
    header, body = _soap_parts(root)
    listing = _body_element(body)
    if listing.tag != _q(OSCI, "MsgStatusList"):
        raise _fail("MsgStatusList")
    pending, request_id = 0, None
    if header is not None:
        _check_header(header)
        box = _at_most_one(header, _q(OSCI, "MsgBoxResponse"), "MsgBoxResponse")
        if box is not None:
            pending, request_id = _box_response(box)
    entries: dict[str, StatusEntry] = {}
    skipped = 0
    for item in _elements(listing):
        if item.tag == _q(OSCI, "MsgAttributes"):
            holder, path = item, "MsgStatusList/MsgAttributes"
            size_tag = _q(OSCI, "MsgSize")
        elif item.tag == _q(OSCIMETA, MMD):
            path = f"MsgStatusList/{MMD}/MsgIdentification"
            holder = _one(item, _q(OSCIMETA, "MsgIdentification"), path)
            size_tag = _q(OSCIMETA, "MsgSize")
        else:
            continue
        element = _one(holder, _q(WSA, "MessageID"), f"{path}/MessageID")
        candidate = _simple(element, f"{path}/MessageID").strip(_XML_WS)
        if MESSAGE_ID.fullmatch(candidate) is None:
            skipped += 1
        elif candidate not in entries:
            metadata = _listed_metadata(item) if item.tag == _q(OSCIMETA, MMD) else None
            entries[candidate] = StatusEntry(candidate, metadata, _listed_size(item, size_tag))
    return StatusList(
        tuple(entries),
        skipped=skipped,
        pending=pending,
        request_id=request_id,
        entries=tuple(entries.values()),
    )


def _listed_metadata(item: etree._Element) -> XtaMetadata | None:
    """A status list entry's metadata, if it passes unwrap's checks (never fails the list)."""
    try:
        return _metadata(item)
    except Rejection:
        return None


def _listed_size(item: etree._Element, tag: str) -> int | None:
    """``MsgSize`` of a status list entry: one positive integer, else unknown (``None``)."""
    found = _all(item, tag)
    if len(found) != 1 or len(found[0]):
        return None
    text = (found[0].text or "").strip(_XML_WS)
    return int(text) if _SIZE.fullmatch(text) else None


def _box_response(box: etree._Element) -> tuple[int, str | None]:
    request_id = (box.get("MsgBoxRequestID") or "").strip(_XML_WS)
    pending_element = _at_most_one(box, _q(OSCI, "ItemsPending"), "MsgBoxResponse/ItemsPending")
    pending = 0
    if pending_element is not None:
        text = _simple(pending_element, "MsgBoxResponse/ItemsPending").strip(_XML_WS)
        if not text.isascii() or not text.isdigit() or len(text) > 9:
            raise _fail("MsgBoxResponse/ItemsPending")
        pending = int(text)
    return pending, (request_id if _REQUEST_ID.fullmatch(request_id) else None)


def parse_status_list(response: bytes) -> list[str]:
    """The message ids of a ``getStatusList`` response (see :func:`status_list`)."""
    return list(status_list(response).message_ids)


def parse_fault(response: bytes) -> Fault | None:
    """The SOAP 1.2 fault in a response, or ``None`` if the body holds none.

    The exception name comes from :data:`XTA_EXCEPTIONS` (else ``None``), the
    code from the SOAP fault codes; no text of the response is returned.
    """
    root = _document(response, resolve=False)
    _, body = _soap_parts(root)
    children = _elements(body)
    if len(children) != 1 or children[0].tag != _q(SOAP12, "Fault"):
        return None
    fault = children[0]
    code = "unknown"
    value = fault.find(f"{{{SOAP12}}}Code/{{{SOAP12}}}Value")
    if value is not None and len(value) == 0:
        local = (value.text or "").strip(_XML_WS).rpartition(":")[2]
        if local in ("Sender", "Receiver", "MustUnderstand", "VersionMismatch"):
            code = local
    exception = error_code = None
    detail = fault.find(f"{{{SOAP12}}}Detail")
    if detail is not None:
        for child in _elements(detail):
            name = etree.QName(child).localname
            if etree.QName(child).namespace == XTA and name in XTA_EXCEPTIONS:
                exception = name
                error_code = _error_code(child)
                break
    return Fault(code=code, exception=exception, error_code=error_code)


def _error_code(exception: etree._Element) -> str | None:
    """The Fehlernummer in an XTA exception's ``errorCode/code``, if it has the list's shape.

    The schema qualifies ``errorCode`` (``xta:``) and leaves ``code`` unqualified;
    servers that leave ``errorCode`` unqualified too are read the same way.
    """
    for error in _elements(exception):
        if etree.QName(error).localname != "errorCode" or etree.QName(error).namespace not in (
            XTA,
            None,
        ):
            continue
        for item in _elements(error):
            if etree.QName(item).localname == "code" and len(item) == 0:
                text = (item.text or "").strip(_XML_WS)
                return text if _ERROR_CODE.fullmatch(text) else None
    return None


def send_verdict(fault: Fault) -> str:
    """What a ``sendMessage`` fault says about the message: ``SEND_PRESENT``, ``_REFUSED``, ``_TRANSIENT``.

    - ``ParameterIsNotValidException`` with Fehlernummer :data:`MESSAGE_ID_TAKEN`: the
      server already holds a message with this id. The hub derives a receipt's id from
      the original message's (:func:`receipt_message_id`), so an earlier send of this
      receipt got through and only its answer was lost: ``present``.
    - ``XTAWSTechnicalProblemException``: the server's own problem: ``transient``.
    - Any other exception the WSDL declares (permission denied, invalid parameter,
      schema violation, virus, sync/async): the request itself is refused: ``refused``.
    - No declared exception: the SOAP 1.2 fault code decides; ``Sender`` (and
      ``MustUnderstand``, ``VersionMismatch``) means the same request fails again
      (``refused``), ``Receiver`` or an unknown code ``transient``.
    """
    if fault.exception == "ParameterIsNotValidException" and fault.error_code == MESSAGE_ID_TAKEN:
        return SEND_PRESENT
    if fault.exception == "XTAWSTechnicalProblemException":
        return SEND_TRANSIENT
    if fault.exception in _REFUSING_EXCEPTIONS:
        return SEND_REFUSED
    if fault.code in ("Sender", "MustUnderstand", "VersionMismatch"):
        return SEND_REFUSED
    return SEND_TRANSIENT


# --- building ------------------------------------------------------------------------------------


def _require(value: str, pattern: re.Pattern[str], what: str) -> str:
    if not isinstance(value, str) or pattern.fullmatch(value) is None:
        raise ValueError(f"not a valid {what}")
    return value


def _envelope(action: str, request_id: str | None) -> tuple[etree._Element, etree._Element]:
    root = etree.Element(
        _q(SOAP12, "Envelope"),
        nsmap={"s12": SOAP12, "wsa": WSA, "xta": XTA, "oscimeta": OSCIMETA, "osci": OSCI},
    )
    header = etree.SubElement(root, _q(SOAP12, "Header"))
    etree.SubElement(header, _q(WSA, "Action")).text = action
    message_id = request_id if request_id is not None else f"urn:uuid:{uuid.uuid4()}"
    etree.SubElement(header, _q(WSA, "MessageID")).text = _require(
        message_id, _REQUEST_ID, "request id"
    )
    return root, header


def _serialize(root: etree._Element) -> bytes:
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def _party(parent: etree._Element, role: str, identifier: str) -> etree._Element:
    party = etree.SubElement(parent, _q(OSCIMETA, role))
    element = etree.SubElement(party, _q(OSCIMETA, "Identifier"), type=_IDENTIFIER_TYPE)
    element.text = _require(identifier, IDENTIFIER, f"{role.lower()} identifier")
    return party


def _mailbox_request(
    mailbox: str, action: str, request_id: str | None
) -> tuple[etree._Element, etree._Element]:
    """(envelope, body): the ``AuthorIdentifier`` header names the mailbox owner."""
    root, header = _envelope(action, request_id)
    _party(header, "Author", mailbox)
    return root, etree.SubElement(root, _q(SOAP12, "Body"))


def get_status_list_request(
    mailbox: str, max_items: int, *, request_id: str | None = None
) -> bytes:
    """``getStatusList``: up to ``max_items`` entries of the mailbox, as ``MessageMetaData``."""
    if not isinstance(max_items, int) or not 1 <= max_items <= MAX_STATUS_ITEMS:
        raise ValueError(f"max_items must be 1..{MAX_STATUS_ITEMS}")
    root, body = _mailbox_request(mailbox, ACTION_GET_STATUS_LIST, request_id)
    etree.SubElement(
        body,
        _q(OSCI, "MsgBoxStatusListRequest"),
        maxListItems=str(max_items),
        ListForm="MessageMetaData",
    )
    return _serialize(root)


def get_message_request(mailbox: str, message_id: str, *, request_id: str | None = None) -> bytes:
    """``getMessage``: fetch one message by its id (``MsgSelector/wsa:MessageID``)."""
    root, body = _mailbox_request(mailbox, ACTION_GET_MESSAGE, request_id)
    fetch = etree.SubElement(body, _q(OSCI, "MsgBoxFetchRequest"))
    selector = etree.SubElement(fetch, _q(OSCI, "MsgSelector"))
    etree.SubElement(selector, _q(WSA, "MessageID")).text = _require(
        message_id, MESSAGE_ID, "XTA message id"
    )
    return _serialize(root)


def close_request(
    mailbox: str,
    message_id: str,
    *,
    box_request_id: str | None = None,
    request_id: str | None = None,
) -> bytes:
    """``close``: acknowledge one fetched message (``LastMsgReceived``); it leaves the mailbox.

    ``MsgBoxRequestID`` is required by the schema: the ``MsgBoxRequestID`` of the
    status list when known, else the message id itself.
    """
    _require(message_id, MESSAGE_ID, "XTA message id")
    box_id = _require(box_request_id or message_id, _REQUEST_ID, "MsgBoxRequestID")
    root, body = _mailbox_request(mailbox, ACTION_CLOSE, request_id)
    close = etree.SubElement(body, _q(OSCI, "MsgBoxCloseRequest"), MsgBoxRequestID=box_id)
    etree.SubElement(close, _q(OSCI, "LastMsgReceived")).text = message_id
    return _serialize(root)


def _key_code(parent: etree._Element, tag: str, code: Code) -> etree._Element:
    element = etree.SubElement(
        parent,
        tag,
        listURI=_require(code.list_uri, _URI, "code list URI"),
        listVersionID=_require(code.list_version or "", _VERSION, "code list version"),
    )
    etree.SubElement(element, "code").text = _require(code.code, _TOKEN, "code")
    if code.name is not None:
        etree.SubElement(element, "name").text = code.name
    return element


def message_metadata(meta: OutboundMetadata) -> etree._Element:
    """A schema-valid ``oscimeta:MessageMetaData`` element for an outbound message."""
    root = etree.Element(_q(OSCIMETA, MMD), nsmap={"oscimeta": OSCIMETA, "wsa": WSA})
    if meta.test_message:
        root.set("TestMsg", "true")
    delivery = etree.SubElement(root, _q(OSCIMETA, "DeliveryAttributes"))
    if meta.origin is not None:
        if meta.origin.tzinfo is None:
            raise ValueError("origin must be timezone-aware")
        origin = meta.origin.astimezone(dt.UTC).isoformat(timespec="seconds")
        etree.SubElement(delivery, _q(OSCIMETA, "Origin")).text = origin
    _party(etree.SubElement(root, _q(OSCIMETA, "Originators")), "Author", meta.author)
    _party(etree.SubElement(root, _q(OSCIMETA, "Destinations")), "Reader", meta.reader)
    identification = etree.SubElement(root, _q(OSCIMETA, "MsgIdentification"))
    etree.SubElement(identification, _q(WSA, "MessageID")).text = _require(
        meta.message_id, MESSAGE_ID, "XTA message id"
    )
    if meta.in_reply_to is not None:
        etree.SubElement(identification, _q(OSCIMETA, "In-Reply-To")).text = _require(
            meta.in_reply_to, MESSAGE_ID, "XTA message id"
        )
    qualifier = etree.SubElement(root, _q(OSCIMETA, "Qualifier"))
    etree.SubElement(qualifier, _q(OSCIMETA, "Service")).text = _require(
        meta.service, _URI, "service URI"
    )
    scenario = etree.SubElement(qualifier, _q(OSCIMETA, "BusinessScenario"))
    if isinstance(meta.business_scenario, Code):
        _key_code(scenario, _q(OSCIMETA, "Defined"), meta.business_scenario)
    else:
        etree.SubElement(scenario, _q(OSCIMETA, "Undefined")).text = _require(
            meta.business_scenario, _TEXT, "business scenario"
        )
    message_type = _key_code(qualifier, _q(OSCIMETA, "MessageType"), meta.message_type)
    message_type.set("payloadSchema", _require(meta.payload_schema, _URI, "payload schema"))
    if meta.msg_size is not None:
        if not isinstance(meta.msg_size, int) or not _SIZE.fullmatch(str(meta.msg_size)):
            raise ValueError("msg_size must be a positive integer")
        etree.SubElement(root, _q(OSCIMETA, "MsgSize")).text = str(meta.msg_size)
    return root


def _content(parent: etree._Element, tag: str, content: Content) -> None:
    element = etree.SubElement(parent, _q(XTA, tag), contentType=content.content_type)
    if content.filename is not None:
        element.set("filename", content.filename)
    if content.content_id is not None:
        element.set("id", content.content_id)
    if content.data:
        element.set("size", str(len(content.data)))
    element.text = base64.b64encode(content.data).decode("ascii")


def content_container(message: Content, attachments: Sequence[Content] = ()) -> etree._Element:
    """A schema-valid ``xta:GenericContentContainer`` with inline base64 content."""
    root = etree.Element(_q(XTA, GCC), nsmap={"xta": XTA})
    container = etree.SubElement(root, _q(XTA, "ContentContainer"))
    _content(container, "Message", message)
    for attachment in attachments:
        _content(container, "Attachment", attachment)
    return root


def soap_message(
    metadata: etree._Element,
    container: etree._Element,
    *,
    action: str,
    request_id: str | None = None,
    headers: Sequence[etree._Element] = (),
) -> bytes:
    """A SOAP 1.2 envelope: ``wsa`` headers, ``MessageMetaData``, extra headers, the container."""
    root, header = _envelope(action, request_id)
    header.append(metadata)
    for extra in headers:
        header.append(extra)
    etree.SubElement(root, _q(SOAP12, "Body")).append(container)
    return _serialize(root)


def receipt_message_id(
    original_message_id: str,
    submission_id: str | None = None,
    prefix: str = "sozialhub",
    answer: str = "",
) -> str:
    """The receipt's XTA message id: deterministic, so a re-sent receipt has the same id.

    Derived from the original's message id, the hub's submission id and the answer
    (outcome and reason): another submission under the same message id (a replay the
    hub rejects as ``DUPLICATE``), or another answer for the same one (accepted after
    a ``dlq retry`` of a rejection), gets a receipt of its own, which the XTA server
    does not mistake for the first one.
    """
    _require(original_message_id, MESSAGE_ID, "XTA message id")
    name = (
        original_message_id
        if submission_id is None
        else f"{original_message_id} {submission_id}" + (f" {answer}" if answer else "")
    )
    identifier = uuid.uuid5(_RECEIPT_IDS, name)
    return _require(f"urn:de:xta:messageid:{prefix}:{identifier}", MESSAGE_ID, "message id prefix")


def _reason(outcome: str, reason: str | Reason | None) -> Reason | None:
    if outcome not in RECEIPT_OUTCOMES:
        raise ValueError(f"outcome must be one of {sorted(RECEIPT_OUTCOMES)}")
    if (outcome == "rejected") != (reason is not None):
        raise ValueError("a rejected receipt needs a reason, any other outcome must not have one")
    if reason is None:
        return None
    try:
        return Reason(reason)
    except ValueError:
        raise ValueError("reason must be a Reason code") from None


def receipt_payload(
    *,
    original_message_id: str,
    outcome: str,
    submission_id: str | None = None,
    reason: str | Reason | None = None,
) -> bytes:
    """The receipt document: which message, the outcome, the reason code, the hub's submission id.

    ``outcome`` is ``accepted``, ``routed`` or ``rejected`` (the pipeline's
    outcomes); ``reason`` is a :class:`Reason` code, given exactly for ``rejected``.
    Never any payload content, and no rejection path either: only the stable code.
    """
    code = _reason(outcome, reason)
    r = f"{{{RECEIPT_NAMESPACE}}}"
    root = etree.Element(f"{r}transportReceipt", nsmap={"r": RECEIPT_NAMESPACE})
    etree.SubElement(root, f"{r}messageId").text = _require(
        original_message_id, MESSAGE_ID, "XTA message id"
    )
    etree.SubElement(root, f"{r}status").text = outcome
    if code is not None:
        etree.SubElement(root, f"{r}reason").text = code.value
    if submission_id is not None:
        etree.SubElement(root, f"{r}submissionId").text = _require(
            submission_id, _SUBMISSION_ID, "submission id"
        )
    return _serialize(root)


def receipt_message(
    *,
    original_message_id: str,
    portal: str,
    hub: str,
    outcome: str,
    submission_id: str | None = None,
    reason: str | Reason | None = None,
    now: dt.datetime | None = None,
    service: str = RECEIPT_SERVICE,
    prefix: str = "sozialhub",
) -> bytes:
    """The ``sendMessage`` request carrying the hub's receipt for one fetched message.

    ``hub`` (the hub's or the office's party identifier) is the receipt's author,
    ``portal`` (the original's author) its reader. The message id is derived from
    the original's, the submission id and the answer (:func:`receipt_message_id`) and refers to it with
    ``In-Reply-To``; ``now`` becomes ``DeliveryAttributes/Origin``. The same
    inputs always give the same bytes. Raises ``ValueError`` on invalid input.
    """
    stated = _reason(outcome, reason)
    answer = outcome if stated is None else f"{outcome} {stated.value}"
    message_id = receipt_message_id(original_message_id, submission_id, prefix, answer)
    metadata = message_metadata(
        OutboundMetadata(
            message_id=message_id,
            author=hub,
            reader=portal,
            service=service,
            message_type=RECEIPT_MESSAGE_TYPE,
            payload_schema=RECEIPT_NAMESPACE,
            business_scenario=RECEIPT_BUSINESS_SCENARIO,
            in_reply_to=original_message_id,
            origin=now,
        )
    )
    document = receipt_payload(
        original_message_id=original_message_id,
        outcome=outcome,
        submission_id=submission_id,
        reason=reason,
    )
    container = content_container(
        Content(data=document, content_type="application/xml", filename="receipt.xml")
    )
    request_id = f"urn:uuid:{uuid.uuid5(_RECEIPT_IDS, message_id)}"
    return soap_message(metadata, container, action=ACTION_SEND_MESSAGE, request_id=request_id)


def receipt_outcome(request: bytes) -> tuple[str, str]:
    """(original message id, outcome) of a receipt ``sendMessage`` request (portal side, tests).

    The request is read like any XTA message (:func:`unwrap`); its payload must be
    a ``transportReceipt``, else ``CONTAINER``.
    """
    envelope = unwrap(request)
    root = xmlsafe.parse(envelope.payload)
    r = f"{{{RECEIPT_NAMESPACE}}}"
    if root.tag != f"{r}transportReceipt":
        raise _fail("transportReceipt")
    message_id, status = root.findtext(f"{r}messageId"), root.findtext(f"{r}status")
    if not message_id or not status:
        raise _fail("transportReceipt")
    return message_id, status
