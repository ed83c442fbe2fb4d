"""An XTA 2 (version 3, schema 2.1.1) server with one mailbox per reader, for tests and demos.

It speaks SOAP 1.2 over HTTPS and demands a TLS client certificate (the
``ssl.SSLContext`` it gets must have ``verify_mode=CERT_REQUIRED`` and the
clients' CA loaded). Two endpoints, as the WSDL's ports:

- ``/MsgBoxPort``: ``getStatusList`` (answers ``MessageMetaData`` entries with
  ``MsgSize``, the byte length of the ``getMessage`` response, and an
  ``osci:MsgBoxResponse`` header), ``getMessage`` (``MessageMetaData`` header,
  ``GenericContentContainer`` body; inline base64, or with ``mtom=True`` an
  MTOM/XOP ``multipart/related`` response whose content travels in binary parts),
  ``close`` (removes the message);
- ``/SendXtaPort``: ``sendMessage`` (records the request, e.g. the hub's receipt;
  a message id it has recorded before is answered as a real server does:
  ``ParameterIsNotValidException`` with Fehlernummer 9024, the id is taken).

The mailbox is chosen by the ``oscimeta:Author`` header of a request (the
identity a real XTA server takes from the client's account). Every response
gets a fresh ``wsa:MessageID``, as real servers do, so two fetches of the same
message are not byte-identical. :meth:`XtaSimulator.fail` makes the next calls
of an operation drop the connection, answer HTTP 503 or a SOAP fault (each
:data:`FailMode`); :meth:`XtaSimulator.fail_message` answers every
``sendMessage`` of one message id that way.

Not simulated: encryption, WS-Security, the management port, sync messages,
quotas, and binding client certificates to accounts.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal, Self

from aiohttp import web
from lxml import etree

from hub.core import xmlsafe
from hub.core.errors import Rejection
from hub.core.model import Code
from hub.core.transport import xta
from hub.sim import mime

Operation = Literal["getStatusList", "getMessage", "close", "sendMessage"]
# How a call fails: "drop" the connection; "unavailable": HTTP 503 without a SOAP body; or a
# SOAP fault: "fault" (XTAWSTechnicalProblemException 9030, the server's own problem),
# "duplicate" (ParameterIsNotValidException 9024: the message id is taken), "invalid"
# (ParameterIsNotValidException 9022), "denied" (PermissionDeniedException 9011: account locked);
# "error-page": HTTP 502 with a large HTML page, as a reverse proxy answers for a dead backend.
FailMode = Literal[
    "drop", "unavailable", "fault", "fault-200", "duplicate", "invalid", "denied", "error-page"
]
ERROR_PAGE_BYTES = 256 * 1024  # larger than any SOAP fault, and than the tests' message bound
# (SOAP fault code, XTA exception, Fehlernummer, reason text) per fault mode.
_FAULTS: dict[str, tuple[Literal["Sender", "Receiver"], str, str, str]] = {
    "fault": ("Receiver", "XTAWSTechnicalProblemException", "9030", "simulated failure"),
    "duplicate": ("Sender", "ParameterIsNotValidException", "9024", "message id is taken"),
    "invalid": ("Sender", "ParameterIsNotValidException", "9022", "invalid parameters"),
    "denied": ("Sender", "PermissionDeniedException", "9011", "account is locked"),
}

SOZIALPLATTFORM = "sop:050000100099"  # the NRW Sozialplattform's DVDV key (docs/domain.md)
XSOZIAL_NAMESPACE = "https://portalverbund.d-nrw.de/efa/XSozial-basis/Version_2_4_0"
# Illustrative defaults for simulated portal messages, not taken from a published code list.
DEFAULT_SERVICE = "urn:sozialhub:sim:xsozial-basis:2.4.0"
DEFAULT_MESSAGE_TYPE = Code(
    code="vorgang.transportieren.1000001",
    list_uri="urn:de:payloadSchema:elementName",
    list_version="1.0",
)
DEFAULT_BUSINESS_SCENARIO = Code(
    code="XSOZIAL_DATA", list_uri="urn:sozialhub:sim:business-scenario", list_version="1"
)

_OPERATIONS: dict[str, Operation] = {
    f"{{{xta.OSCI}}}MsgBoxStatusListRequest": "getStatusList",
    f"{{{xta.OSCI}}}MsgBoxFetchRequest": "getMessage",
    f"{{{xta.OSCI}}}MsgBoxCloseRequest": "close",
}
_ACTIONS: dict[Operation, str] = {
    "getStatusList": xta.ACTION_GET_STATUS_LIST,
    "getMessage": xta.ACTION_GET_MESSAGE,
    "close": xta.ACTION_CLOSE,
    "sendMessage": xta.ACTION_SEND_MESSAGE,
}
_SOAP_CONTENT_TYPE = "application/soap+xml"
_MTOM_HOST = "sozialhub.sim"


@dataclass(frozen=True, slots=True)
class _Entry:
    message_id: str
    metadata: xta.OutboundMetadata | None
    message: xta.Content | None
    attachments: tuple[xta.Content, ...] = ()
    raw: bytes | None = field(default=None, repr=False)  # a verbatim getMessage response
    raw_content_type: str = _SOAP_CONTENT_TYPE
    mtom: bool = False


def mtom_message(
    metadata: etree._Element,
    message: xta.Content,
    attachments: Sequence[xta.Content] = (),
    *,
    action: str = xta.ACTION_GET_MESSAGE,
    headers: Sequence[etree._Element] = (),
) -> tuple[str, bytes]:
    """(HTTP Content-Type, body) of an XTA message as MTOM/XOP (SOAP 1.2 MTOM, XOP 1.0).

    The envelope is the inline one with the base64 text of ``Message`` and every
    ``Attachment`` replaced by an ``xop:Include`` of a binary part; the root part
    is ``application/xop+xml`` (``type="application/soap+xml"``), named by ``start``.
    """
    container = xta.content_container(message, attachments)
    parts: list[tuple[str, bytes]] = []
    for index, (element, content) in enumerate(
        zip(
            container.iter(f"{{{xta.XTA}}}Message", f"{{{xta.XTA}}}Attachment"),
            (message, *attachments),
            strict=True,
        ),
        start=1,
    ):
        content_id = f"part{index}.{uuid.uuid4().hex}@{_MTOM_HOST}"
        element.text = None
        etree.SubElement(element, f"{{{xta.XOP}}}Include", nsmap={"xop": xta.XOP}).set(
            "href", f"cid:{content_id}"
        )
        parts.append((content_id, content.data))
    envelope = xta.soap_message(metadata, container, action=action, headers=headers)
    boundary = f"uuid:{uuid.uuid4()}"
    root_id = f"root.{uuid.uuid4().hex}@{_MTOM_HOST}"
    root_headers = [
        ("Content-Type", 'application/xop+xml; charset=UTF-8; type="application/soap+xml"'),
        ("Content-Transfer-Encoding", "binary"),
        ("Content-ID", f"<{root_id}>"),
    ]
    body = mime.multipart(
        boundary,
        [
            (root_headers, envelope),
            *(
                (
                    [
                        ("Content-Type", "application/octet-stream"),
                        ("Content-Transfer-Encoding", "binary"),
                        ("Content-ID", f"<{content_id}>"),
                    ],
                    data,
                )
                for content_id, data in parts
            ),
        ],
    )
    content_type = (
        f'multipart/related; type="application/xop+xml"; boundary="{boundary}"; '
        f'start="<{root_id}>"; start-info="application/soap+xml"'
    )
    return content_type, body


class XtaSimulator:
    """An in-process XTA server on 127.0.0.1; use ``async with`` or :meth:`start`/:meth:`stop`."""

    def __init__(
        self,
        ssl_context: ssl.SSLContext,
        *,
        host: str = "127.0.0.1",
        max_request_bytes: int = 16 * 1024 * 1024,
        mtom: bool = False,
    ) -> None:
        if ssl_context.verify_mode != ssl.CERT_REQUIRED:
            raise ValueError("the XTA simulator requires client certificates (CERT_REQUIRED)")
        self._ssl = ssl_context
        self._host = host
        self._max_request_bytes = max_request_bytes
        self.mtom = mtom  # answer getMessage with MTOM/XOP unless add_message says otherwise
        self._boxes: dict[str, dict[str, _Entry]] = {}
        self._failures: dict[Operation, list[FailMode]] = {}
        self._message_failures: dict[str, FailMode] = {}  # sendMessage by message id
        self._reply_failures: dict[str, FailMode] = {}  # receipts by the message they answer
        self._sent: set[str] = set()  # message ids of the recorded sendMessage requests
        self._send_holds: list[float] = []  # seconds the next sendMessage requests wait
        self._stopping = asyncio.Event()  # ends every hold: the simulator stops
        self._runner: web.AppRunner | None = None
        self._port: int | None = None
        self.closed: list[str] = []  # message ids, in the order they were closed
        self.fetched: list[str] = []  # message ids, once per successful getMessage
        self.receipts: list[bytes] = []  # sendMessage requests, verbatim
        self.requests: list[Operation] = []  # every SOAP operation that reached a handler

    def __repr__(self) -> str:
        return f"XtaSimulator(url={self.url if self._port else None!r})"

    # --- mailbox -------------------------------------------------------------------------------

    def add_message(
        self,
        payload: bytes,
        *,
        author: str,
        reader: str,
        service: str = DEFAULT_SERVICE,
        attachments: Sequence[xta.Content] = (),
        message_id: str | None = None,
        content_type: str = "application/xml",
        filename: str = "nachricht.xml",
        message_type: Code = DEFAULT_MESSAGE_TYPE,
        payload_schema: str = XSOZIAL_NAMESPACE,
        business_scenario: Code | str = DEFAULT_BUSINESS_SCENARIO,
        mtom: bool | None = None,
        msg_size: int | Literal["response"] | None = "response",
    ) -> str:
        """Put a message into ``reader``'s mailbox; returns its XTA message id.

        ``mtom`` overrides the simulator's default for this message. ``msg_size`` is
        what the status list declares as ``MsgSize``: the byte length of the
        ``getMessage`` response (``"response"``), a given number, or nothing (``None``).
        """
        identifier = message_id or f"urn:de:xta:messageid:sim:{uuid.uuid4()}"
        metadata = xta.OutboundMetadata(
            message_id=identifier,
            author=author,
            reader=reader,
            service=service,
            message_type=message_type,
            payload_schema=payload_schema,
            business_scenario=business_scenario,
        )
        xta.message_metadata(metadata)  # fail now, not at fetch time, on invalid arguments
        message = xta.Content(data=payload, content_type=content_type, filename=filename)
        entry = _Entry(
            identifier,
            metadata,
            message,
            tuple(attachments),
            mtom=self.mtom if mtom is None else mtom,
        )
        if msg_size == "response":
            msg_size = len(self._render(entry)[1])  # every rendering has the same length
        if msg_size is not None:
            sized = replace(metadata, msg_size=msg_size)
            xta.message_metadata(sized)  # a positive integer, or ValueError now
            entry = replace(entry, metadata=sized)
        self._box(reader)[identifier] = entry
        return identifier

    def add_raw(
        self,
        response: bytes,
        *,
        message_id: str,
        reader: str,
        content_type: str = _SOAP_CONTENT_TYPE,
    ) -> str:
        """Put a verbatim ``getMessage`` response into the mailbox (for malformed messages).

        ``content_type`` is the HTTP header it is served with (e.g. a ``multipart/related``
        value for a hand-made MTOM package).
        """
        self._box(reader)[message_id] = _Entry(
            message_id, None, None, raw=response, raw_content_type=content_type
        )
        return message_id

    def pending(self, reader: str) -> list[str]:
        """Message ids still in ``reader``'s mailbox, oldest first."""
        return list(self._boxes.get(reader, {}))

    def fail(self, operation: Operation, mode: FailMode = "drop", times: int = 1) -> None:
        """Make the next ``times`` calls of ``operation`` fail before they take effect."""
        self._failures.setdefault(operation, []).extend([mode] * times)

    def hold_sends(self, seconds: float, times: int = 1) -> None:
        """Make the next ``times`` ``sendMessage`` requests wait ``seconds`` before they are handled.

        A slow server: the request has arrived (it is in :attr:`requests`), and only
        after the wait is it recorded and answered, as it would have been at once, also
        when the client has gone meanwhile. Stopping the simulator ends the wait with an
        HTTP 503, the request unrecorded.
        """
        self._send_holds.extend([seconds] * times)

    def fail_message(self, message_id: str, mode: FailMode) -> None:
        """Answer every ``sendMessage`` carrying ``message_id`` with ``mode``; it is never recorded.

        ``"duplicate"`` stands for a message the server got before this simulator
        ran (e.g. a receipt sent just before the sender crashed).
        """
        self._message_failures[message_id] = mode

    def fail_reply(self, original_message_id: str, mode: FailMode) -> None:
        """Answer every receipt for ``original_message_id`` (its ``messageId``) with ``mode``.

        For tests through a worker, where the receipt's own message id depends on the
        submission id the hub derives from the bytes it fetched.
        """
        self._reply_failures[original_message_id] = mode

    def _box(self, reader: str) -> dict[str, _Entry]:
        return self._boxes.setdefault(reader, {})

    # --- server --------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        if self._port is None:
            raise RuntimeError("the simulator is not running")
        return f"https://{self._host}:{self._port}"

    @property
    def msgbox_url(self) -> str:
        return f"{self.url}/MsgBoxPort"

    @property
    def send_url(self) -> str:
        return f"{self.url}/SendXtaPort"

    async def start(self) -> None:
        self._stopping.clear()
        app = web.Application(client_max_size=self._max_request_bytes)
        app.router.add_post("/MsgBoxPort", self._msgbox)
        app.router.add_post("/SendXtaPort", self._send)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self._host, 0))
        self._port = sock.getsockname()[1]
        await web.SockSite(runner, sock, ssl_context=self._ssl).start()
        self._runner = runner

    async def stop(self) -> None:
        self._stopping.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        self._port = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.stop()

    # --- handlers ------------------------------------------------------------------------------

    async def _parse(self, request: web.Request) -> etree._Element | web.Response:
        if request.content_type != _SOAP_CONTENT_TYPE:
            return web.Response(status=415)
        try:
            return xmlsafe.parse(await request.read())
        except Rejection:
            return _fault(
                "Sender", "ParameterIsNotValidException", "request is not acceptable XML", "9022"
            )

    def _injected(self, operation: Operation, request: web.Request) -> web.Response | None:
        queue = self._failures.get(operation)
        if not queue:
            return None
        return _failure(queue.pop(0), request)

    async def _msgbox(self, request: web.Request) -> web.Response:
        root = await self._parse(request)
        if isinstance(root, web.Response):
            return root
        body = root.find(f"{{{xta.SOAP12}}}Body")
        operation_element = None if body is None or len(body) != 1 else body[0]
        operation = None if operation_element is None else _OPERATIONS.get(operation_element.tag)
        if operation_element is None or operation is None:
            return _fault("Sender", "ParameterIsNotValidException", "unknown operation", "9022")
        self.requests.append(operation)
        if (injected := self._injected(operation, request)) is not None:
            return injected
        mailbox = _author(root)
        if mailbox is None:
            return _fault("Sender", "PermissionDeniedException", "no author identifier", "9012")
        handler = {
            "getStatusList": self._status_list,
            "getMessage": self._get_message,
            "close": self._close,
        }[operation]
        return handler(mailbox, operation_element)

    def _status_list(self, mailbox: str, request: etree._Element) -> web.Response:
        limit_text = request.get("maxListItems") or str(xta.MAX_STATUS_ITEMS)
        limit = int(limit_text) if limit_text.isdigit() else xta.MAX_STATUS_ITEMS
        entries = list(self._boxes.get(mailbox, {}).values())
        listed, rest = entries[:limit], entries[limit:]
        root, header, body = _soap(xta.ACTION_GET_STATUS_LIST)
        header.append(_box_response(pending=len(rest), empty=not entries))
        status = etree.SubElement(body, f"{{{xta.OSCI}}}MsgStatusList")
        for entry in listed:
            if entry.metadata is not None:
                status.append(xta.message_metadata(entry.metadata))
            else:  # a raw entry: list it by id only
                attributes = etree.SubElement(status, f"{{{xta.OSCI}}}MsgAttributes")
                etree.SubElement(attributes, f"{{{xta.WSA}}}MessageID").text = entry.message_id
                etree.SubElement(
                    attributes, f"{{{xta.OSCI}}}TypeOfBusinessScenario"
                ).text = "urn:sozialhub:sim:raw"
                etree.SubElement(attributes, f"{{{xta.OSCI}}}MsgSize").text = str(
                    len(entry.raw or b"")
                )
                etree.SubElement(
                    attributes, f"{{{xta.OSCI}}}DeliveryTime"
                ).text = "2026-01-01T00:00:00Z"
        return _response(root)

    def _get_message(self, mailbox: str, request: etree._Element) -> web.Response:
        selected = request.find(f"{{{xta.OSCI}}}MsgSelector/{{{xta.WSA}}}MessageID")
        message_id = (selected.text or "").strip() if selected is not None else ""
        entry = self._boxes.get(mailbox, {}).get(message_id)
        if entry is None:
            return _fault("Sender", "InvalidMessageIDException", "no such message", "9070")
        self.fetched.append(message_id)
        content_type, data = self._render(entry)
        response = web.Response(body=data)
        response.headers["Content-Type"] = content_type  # verbatim: MTOM carries parameters
        return response

    def _render(self, entry: _Entry) -> tuple[str, bytes]:
        """(Content-Type, body) of the getMessage response for ``entry``."""
        if entry.raw is not None:
            return entry.raw_content_type, entry.raw
        if entry.metadata is None or entry.message is None:  # pragma: no cover - by construction
            raise RuntimeError("broken entry")
        metadata = xta.message_metadata(replace(entry.metadata, msg_size=None))
        headers = [_box_response(pending=0, empty=False)]
        if entry.mtom:
            return mtom_message(metadata, entry.message, entry.attachments, headers=headers)
        data = xta.soap_message(
            metadata,
            xta.content_container(entry.message, entry.attachments),
            action=xta.ACTION_GET_MESSAGE,
            headers=headers,
        )
        return _SOAP_CONTENT_TYPE, data

    def _close(self, mailbox: str, request: etree._Element) -> web.Response:
        ids = [
            (element.text or "").strip()
            for element in request.findall(f"{{{xta.OSCI}}}LastMsgReceived")
        ]
        box = self._boxes.get(mailbox, {})
        if not ids or any(message_id not in box for message_id in ids):
            return _fault("Sender", "InvalidMessageIDException", "no such message", "9070")
        for message_id in ids:
            del box[message_id]
            self.closed.append(message_id)
        root, _, _ = _soap(xta.ACTION_CLOSE)
        return _response(root)

    async def _send(self, request: web.Request) -> web.Response:
        if request.content_type != _SOAP_CONTENT_TYPE:
            return web.Response(status=415)
        data = await request.read()
        self.requests.append("sendMessage")
        injected = await self._held()
        if injected is None:
            injected = self._injected("sendMessage", request)
        if injected is not None:
            return injected
        try:
            envelope = xta.unwrap(data)
        except Rejection:
            return _fault(
                "Sender", "MessageSchemaViolationException", "not a valid XTA message", "9050"
            )
        message_id = envelope.message_id or ""
        mode = self._message_failures.get(message_id) or self._reply_mode(envelope.payload)
        if mode is not None:
            return _failure(mode, request)
        if message_id in self._sent:
            return _failure("duplicate", request)  # as a real server: the id is taken
        self._sent.add(message_id)
        self.receipts.append(data)
        root, _, _ = _soap(xta.ACTION_SEND_MESSAGE)
        return _response(root)

    async def _held(self) -> web.Response | None:
        """Wait out a hold (:meth:`hold_sends`); an HTTP 503 if the simulator stops meanwhile."""
        if not self._send_holds:
            return None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), self._send_holds.pop(0))
        return web.Response(status=503) if self._stopping.is_set() else None

    def _reply_mode(self, payload: bytes) -> FailMode | None:
        if not self._reply_failures:
            return None
        try:
            answered = xmlsafe.parse(payload).findtext(f"{{{xta.RECEIPT_NAMESPACE}}}messageId")
        except Rejection:
            return None
        return self._reply_failures.get((answered or "").strip())


def _author(root: etree._Element) -> str | None:
    header = root.find(f"{{{xta.SOAP12}}}Header")
    if header is None:
        return None
    identifier = header.find(f"{{{xta.OSCIMETA}}}Author/{{{xta.OSCIMETA}}}Identifier")
    if identifier is None:
        return None
    text = (identifier.text or "").strip()
    return text if xta.IDENTIFIER.fullmatch(text) else None


def _soap(action: str) -> tuple[etree._Element, etree._Element, etree._Element]:
    root = etree.Element(
        f"{{{xta.SOAP12}}}Envelope",
        nsmap={"s12": xta.SOAP12, "wsa": xta.WSA, "osci": xta.OSCI, "xta": xta.XTA},
    )
    header = etree.SubElement(root, f"{{{xta.SOAP12}}}Header")
    etree.SubElement(header, f"{{{xta.WSA}}}Action").text = action
    etree.SubElement(header, f"{{{xta.WSA}}}MessageID").text = f"urn:uuid:{uuid.uuid4()}"
    body = etree.SubElement(root, f"{{{xta.SOAP12}}}Body")
    return root, header, body


def _box_response(*, pending: int, empty: bool) -> etree._Element:
    box = etree.Element(
        f"{{{xta.OSCI}}}MsgBoxResponse",
        MsgBoxRequestID=f"urn:uuid:{uuid.uuid4()}",
        nsmap={"osci": xta.OSCI},
    )
    if empty:
        etree.SubElement(box, f"{{{xta.OSCI}}}NoMessageAvailable", reason=xta.NO_MESSAGE_AVAILABLE)
    else:
        etree.SubElement(box, f"{{{xta.OSCI}}}ItemsPending").text = str(pending)
    return box


def _response(root: etree._Element, status: int = 200) -> web.Response:
    body = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
    return web.Response(status=status, body=body, content_type=_SOAP_CONTENT_TYPE)


def _failure(mode: FailMode, request: web.Request) -> web.Response:
    """The response of a failing call (:data:`FailMode`)."""
    if mode == "drop":
        if request.transport is not None:
            request.transport.abort()
        return web.Response(status=500)  # never sent: the connection is gone
    if mode == "unavailable":
        return web.Response(status=503, text="service unavailable")
    if mode == "error-page":
        page = (
            b"<html><body>"
            + b"<p>502 Bad Gateway</p>" * (ERROR_PAGE_BYTES // 22)
            + b"</body></html>"
        )
        return web.Response(status=502, body=page, content_type="text/html")
    if mode == "fault-200":  # a technical fault, as some servers send it: with HTTP 200
        code, exception, error_code, text = _FAULTS["fault"]
        response = _fault(code, exception, text, error_code)
        response.set_status(200)
        return response
    code, exception, error_code, text = _FAULTS[mode]
    return _fault(code, exception, text, error_code)


def _fault(
    code: Literal["Sender", "Receiver"], exception: str, text: str, error_code: str = "9000"
) -> web.Response:
    """A SOAP 1.2 fault with an XTA exception in its detail (400 for Sender, 500 otherwise).

    The exception carries ``xta:errorCode`` with the Fehlernummer ``error_code``
    (9000: unspecified) as the XTA 2.1.1 schema lays it out.
    """
    root = etree.Element(f"{{{xta.SOAP12}}}Envelope", nsmap={"s12": xta.SOAP12, "xta": xta.XTA})
    body = etree.SubElement(root, f"{{{xta.SOAP12}}}Body")
    fault = etree.SubElement(body, f"{{{xta.SOAP12}}}Fault")
    value = etree.SubElement(
        etree.SubElement(fault, f"{{{xta.SOAP12}}}Code"), f"{{{xta.SOAP12}}}Value"
    )
    value.text = f"s12:{code}"
    reason = etree.SubElement(fault, f"{{{xta.SOAP12}}}Reason")
    reason_text = etree.SubElement(reason, f"{{{xta.SOAP12}}}Text")
    reason_text.set("{http://www.w3.org/XML/1998/namespace}lang", "en")
    reason_text.text = text
    detail = etree.SubElement(fault, f"{{{xta.SOAP12}}}Detail")
    error = etree.SubElement(
        etree.SubElement(detail, f"{{{xta.XTA}}}{exception}"), f"{{{xta.XTA}}}errorCode"
    )
    error.set("listURI", "urn:de:xta:webservice:codeliste:fehlernummer")
    error.set("listVersionID", "1.0")
    etree.SubElement(error, "code").text = error_code
    etree.SubElement(error, "name").text = text
    return _response(root, status=400 if code == "Sender" else 500)


def add_examples(
    simulator: XtaSimulator,
    payloads: Iterable[bytes],
    *,
    reader: str,
    author: str = SOZIALPLATTFORM,
) -> list[str]:
    """Demo helper: put each payload into ``reader``'s mailbox as a Sozialplattform message."""
    return [simulator.add_message(payload, author=author, reader=reader) for payload in payloads]


async def serve_forever(simulator: XtaSimulator) -> None:  # pragma: no cover - manual demo use
    """Run until cancelled (for a manual demo next to a running hub)."""
    async with simulator:
        await asyncio.Event().wait()
