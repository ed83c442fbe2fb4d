"""The XTA 2 mailbox poller: list, fetch, hand over, and only then close.

One pass (:meth:`XtaPoller.poll_once`) asks the XTA server for the mailbox's
status list, fetches each listed message with ``getMessage`` and awaits the
injected ``handover(original, message_id)`` (the hub produces the original
bytes to Kafka and awaits the broker's acknowledgement inside it). Only when
the handover returned does the poller ``close`` the message, which removes it
from the mailbox. A handover that raises leaves the message in the mailbox; the
next pass fetches it again (the hub deduplicates by the XTA message id). A
crash between handover and ``close`` has the same effect.

The original is the response as received: a SOAP envelope, or for an MTOM/XOP
response (``multipart/related``) a MIME entity made of the response's
``Content-Type`` header line, a blank line and the body (the boundary and the
root part's Content-ID live in that header). The hub opens both
(:func:`hub.core.transport.xta.unwrap`).

A message larger than ``max_message_bytes`` (declared by the status list's
``MsgSize``, or found while reading the response) is never read. With the
injected ``reject_oversize`` and ``oversize="reject"`` (the default) the poller
hands the message's status list metadata to it (the hub produces a ``SIZE``
dead letter and the portal's rejection receipt and awaits the broker's
acknowledgement, :mod:`hub.core.xta_oversize`) and closes the message only
after that; with ``oversize="keep"``, without ``reject_oversize`` or without
metadata to answer from (a ``MsgAttributes`` status list) it stays in the
mailbox and is logged on every pass.

:meth:`XtaPoller.run` repeats passes until :meth:`XtaPoller.stop`: at once while
the server reports more pending items, otherwise after ``poll_interval``; after
a failed pass (HTTP or TLS error, SOAP fault, failed handover) it backs off
exponentially from ``backoff_initial`` up to ``backoff_max``.

:meth:`XtaPoller.send_receipt` sends the hub's receipts with ``sendMessage`` and
classifies a SOAP fault (:func:`hub.core.transport.xta.send_verdict`): the
message id already taken means an earlier send got through (``present``); a
fault that refuses the request raises :class:`XtaSendRefusedError`, which is not
retriable; anything else (technical fault, connection, timeout, HTTP error
without a fault) stays a retriable :class:`XtaError`.

Logs carry message ids, sizes, operations, HTTP statuses, exception type names,
SOAP fault codes, XTA exception names and Fehlernummern, never payload bytes or
the text of a server response. Responses are read
with a byte limit and never decompressed.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Self
from urllib.parse import urlsplit

import aiohttp
import structlog

from hub.core.errors import Rejection
from hub.core.transport import xta
from hub.core.xta_oversize import Oversize

log = structlog.get_logger(__name__)

Handover = Callable[[bytes, str], Awaitable[None]]
# Records a too-large message's rejection (dead letter, receipt) and awaits the broker.
RejectOversize = Callable[[Oversize], Awaitable[None]]
OversizeAction = Literal["reject", "keep"]
# sendMessage: delivered now, or the server already held it (an earlier send got through).
SendResult = Literal["sent", "present"]

_SOAP = "application/soap+xml"
_MTOM = "multipart/related"
_ACCEPT = f"{_SOAP}, {_MTOM}"
_MAX_CONTENT_TYPE = 1024  # an MTOM response's Content-Type header, kept in the original
_EMPTY_OK = frozenset({200, 202, 204})  # close and sendMessage answer an empty body
# The largest body of an unsuccessful answer that is read (for its SOAP fault); XTA faults are
# a few kB. A larger one is dropped unread and the call fails with its HTTP status.
_ERROR_BODY_BYTES = 64 * 1024


class XtaError(Exception):
    """An XTA call failed. ``str()`` names the operation and the problem, never response content."""

    retriable = True

    def __init__(self, operation: str, problem: str) -> None:
        super().__init__(f"{operation}: {problem}")
        self.operation = operation
        self.problem = problem


class XtaFaultError(XtaError):
    """The server answered a SOAP fault (its XTA exception name, if one the WSDL declares)."""

    def __init__(self, operation: str, fault: xta.Fault) -> None:
        super().__init__(operation, f"fault {fault.code}/{fault.exception or 'unknown'}")
        self.fault = fault


class XtaSendRefusedError(XtaFaultError):
    """``sendMessage`` answered a fault that refuses the request itself (:func:`xta.send_verdict`).

    Sending the same bytes again cannot succeed (permission denied, an invalid
    parameter, a schema violation, ...), so it is not retried.
    """

    retriable = False


class XtaHttpRefusedError(XtaError):
    """An HTTP 4xx without a SOAP fault (other than 408 and 429): a gateway, proxy or firewall
    refused the request itself (401, 403, 413, ...). Sending it again as it is cannot succeed."""

    retriable = False


class XtaTooLargeError(XtaError):
    """The response is larger than ``max_message_bytes``; it was not read to the end.

    ``declared`` is the response's ``Content-Length`` when it sent one.
    """

    retriable = False

    def __init__(self, operation: str, problem: str, declared: int | None = None) -> None:
        super().__init__(operation, problem)
        self.declared = declared


@dataclass(frozen=True, slots=True)
class XtaSettings:
    """Where the XTA server is, whose mailbox to read, and how to behave. Never prints the TLS context.

    ``mailbox`` is the hub's (the office's) party identifier, sent as the
    ``oscimeta:Author`` of every request. ``ssl_context`` must verify the server
    (``CERT_REQUIRED``) and carry the client certificate (:func:`client_ssl_context`).
    """

    msgbox_url: str
    send_url: str
    mailbox: str
    ssl_context: ssl.SSLContext = field(repr=False)
    max_items: int = 50
    poll_interval: float = 30.0
    backoff_initial: float = 1.0
    backoff_max: float = 300.0
    timeout: float = 60.0
    max_message_bytes: int = 4 * 1024 * 1024
    # A message above max_message_bytes: "reject" (dead letter, rejection receipt, close) or
    # "keep" (leave it in the mailbox, log it on every pass).
    oversize: OversizeAction = "reject"

    def __post_init__(self) -> None:
        for url in (self.msgbox_url, self.send_url):
            parts = urlsplit(url)
            if parts.scheme != "https" or not parts.hostname:
                raise ValueError("XTA endpoints must be https:// URLs")
            if parts.username is not None or parts.password is not None:
                raise ValueError("XTA endpoint URLs must not carry credentials")
        if xta.IDENTIFIER.fullmatch(self.mailbox) is None:
            raise ValueError("mailbox is not a valid party identifier")
        if not 1 <= self.max_items <= xta.MAX_STATUS_ITEMS:
            raise ValueError(f"max_items must be 1..{xta.MAX_STATUS_ITEMS}")
        if not 0 < self.backoff_initial <= self.backoff_max:
            raise ValueError("need 0 < backoff_initial <= backoff_max")
        if self.poll_interval < 0 or self.timeout <= 0 or self.max_message_bytes <= 0:
            raise ValueError("poll_interval, timeout and max_message_bytes must be positive")
        if self.ssl_context.verify_mode != ssl.CERT_REQUIRED:
            raise ValueError("the TLS context must verify the XTA server (CERT_REQUIRED)")
        if self.oversize not in ("reject", "keep"):
            raise ValueError("oversize must be 'reject' or 'keep'")


def client_ssl_context(
    *,
    ca_file: Path | None,
    cert_file: Path | None,
    key_file: Path | None,
    key_password: str | None = None,
) -> ssl.SSLContext:
    """A TLS 1.2+ client context: trust ``ca_file`` only, present the client certificate.

    ``ca_file=None`` trusts the system store and ``cert_file=None`` presents no
    certificate (the HTTP delivery channel; XTA always passes both).
    """
    cafile = None if ca_file is None else str(ca_file)
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=cafile)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if cert_file is not None:
        keyfile = None if key_file is None else str(key_file)
        context.load_cert_chain(str(cert_file), keyfile, password=key_password)
    return context


@dataclass(frozen=True, slots=True)
class PollReport:
    """What one pass did. ``failed``: handover raised, message left in the mailbox."""

    listed: int = 0
    handed_over: int = 0
    closed: int = 0  # handed over or rejected as too large, then closed
    failed: int = 0
    skipped: int = 0  # malformed ids in the list, vanished or kept oversized messages
    more: bool = False  # the server has more messages than this pass listed
    rejected: int = 0  # too large: dead letter and receipt acknowledged, then closed


class XtaPoller:
    """Reads one XTA mailbox. Use ``async with XtaPoller(settings, handover) as poller``.

    ``reject_oversize`` records a too-large message's rejection (see the module
    docstring); without it such a message stays in the mailbox.
    """

    def __init__(
        self,
        settings: XtaSettings,
        handover: Handover,
        reject_oversize: RejectOversize | None = None,
    ) -> None:
        self.settings = settings
        self._handover = handover
        self._reject_oversize = reject_oversize
        # Oversized messages whose rejection the broker acknowledged but whose close failed:
        # the next pass only closes them (after a restart, the records repeat with the same ids).
        self._rejected: set[str] = set()
        self._stop = asyncio.Event()
        self._session: aiohttp.ClientSession | None = None

    def __repr__(self) -> str:
        return (
            f"XtaPoller(mailbox={self.settings.mailbox!r}, msgbox_url={self.settings.msgbox_url!r})"
        )

    async def __aenter__(self) -> Self:
        self._open()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=self.settings.ssl_context),
                timeout=aiohttp.ClientTimeout(total=self.settings.timeout),
                auto_decompress=False,
            )
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def stop(self) -> None:
        """Ask :meth:`run` to return; a message being handed over is finished (and closed) first."""
        self._stop.set()

    # --- one pass ------------------------------------------------------------------------------

    async def poll_once(self) -> PollReport:
        """List, fetch, hand over, close. Raises :class:`XtaError` when the server fails."""
        mailbox = self.settings.mailbox
        request = xta.get_status_list_request(mailbox, self.settings.max_items)
        response = await self._call("getStatusList", self.settings.msgbox_url, request)
        try:
            listing = xta.status_list(response)
        except Rejection:
            raise XtaError("getStatusList", "malformed response") from None
        if listing.skipped:
            log.warning("xta.status_list_skipped", mailbox=mailbox, count=listing.skipped)
        handed_over = closed = failed = rejected = 0
        skipped = listing.skipped
        limit = self.settings.max_message_bytes
        for entry in listing.entries:
            message_id = entry.message_id
            if self._stop.is_set():
                break
            if entry.size is not None and entry.size > limit:
                outcome = await self._too_large(entry, entry.size, xta.DECLARED_SIZE, listing)
            else:
                try:
                    original = await self._fetch(message_id)
                except XtaTooLargeError as exc:
                    declared = exc.declared if exc.declared is not None else entry.size
                    outcome = await self._too_large(entry, declared, xta.RESPONSE_SIZE, listing)
                else:
                    outcome = await self._hand_over(original, message_id, listing)
            if outcome == "skipped":
                skipped += 1
            elif outcome == "failed":
                failed += 1
            else:
                closed += 1
                handed_over += outcome == "closed"
                rejected += outcome == "rejected"
        more = listing.pending > 0 or len(listing.message_ids) >= self.settings.max_items
        return PollReport(
            listed=len(listing.message_ids),
            handed_over=handed_over,
            closed=closed,
            failed=failed,
            skipped=skipped,
            more=more,
            rejected=rejected,
        )

    async def _hand_over(
        self, original: bytes | None, message_id: str, listing: xta.StatusList
    ) -> str:
        """Hand over, then close: ``closed``; ``skipped`` (vanished) or ``failed`` (handover raised)."""
        if original is None:
            return "skipped"
        try:
            await self._handover(original, message_id)
        except Exception as exc:  # noqa: BLE001 - any handover failure leaves the message in the box
            log.warning("xta.handover_failed", message_id=message_id, error=type(exc).__name__)
            return "failed"
        await self._close(message_id, listing.request_id)
        return "closed"

    async def _too_large(
        self,
        entry: xta.StatusEntry,
        declared: int | None,
        path: str,
        listing: xta.StatusList,
    ) -> str:
        """Reject (records acknowledged, then close): ``rejected``; else ``skipped`` or ``failed``."""
        message_id, limit = entry.message_id, self.settings.max_message_bytes
        answerable = entry.metadata is not None
        if self.settings.oversize == "keep" or self._reject_oversize is None or not answerable:
            log.error(
                "xta.message_too_large",
                message_id=message_id,
                limit=limit,
                declared=declared,
                action="kept",
                answerable=answerable,
            )
            return "skipped"
        if message_id not in self._rejected:
            assert entry.metadata is not None  # noqa: S101 - answerable
            notice = Oversize(entry.metadata, limit, declared, path)
            try:
                await self._reject_oversize(notice)
            except Exception as exc:  # noqa: BLE001 - the message stays; the next pass tries again
                log.warning(
                    "xta.oversize_handover_failed",
                    message_id=message_id,
                    error=type(exc).__name__,
                )
                return "failed"
            self._rejected.add(message_id)
        log.warning(
            "xta.message_too_large",
            message_id=message_id,
            limit=limit,
            declared=declared,
            action="rejected",
            answerable=True,
        )
        await self._close(message_id, listing.request_id)
        self._rejected.discard(message_id)
        return "rejected"

    async def _fetch(self, message_id: str) -> bytes | None:
        """The getMessage response, or ``None`` when the message vanished.

        Raises :class:`XtaTooLargeError` when it is larger than ``max_message_bytes``.
        """
        request = xta.get_message_request(self.settings.mailbox, message_id)
        try:
            original = await self._call("getMessage", self.settings.msgbox_url, request)
        except XtaFaultError as exc:
            if exc.fault.exception != "InvalidMessageIDException":
                raise
            log.warning("xta.message_vanished", message_id=message_id)
            return None
        if not original:
            raise XtaError("getMessage", "empty response")
        mtom = xta.is_mime(original)
        log.info("xta.fetched", message_id=message_id, size=len(original), mtom=mtom)
        return original

    async def _close(self, message_id: str, box_request_id: str | None) -> None:
        request = xta.close_request(
            self.settings.mailbox, message_id, box_request_id=box_request_id
        )
        await self._call("close", self.settings.msgbox_url, request, empty_ok=True)
        log.info("xta.closed", message_id=message_id)

    async def send_receipt(self, receipt: bytes) -> SendResult:
        """Send a ``sendMessage`` request (e.g. :func:`hub.core.transport.xta.receipt_message`).

        Returns ``"sent"``, or ``"present"`` when the server answers that it holds a
        message with this id already (``ParameterIsNotValidException`` with
        Fehlernummer 9024): an earlier send of the same receipt (same derived message
        id) got through and only its answer was lost, e.g. before a crash. A fault that
        refuses the request itself raises :class:`XtaSendRefusedError`, an HTTP 4xx
        without a fault (but 408 and 429) :class:`XtaHttpRefusedError` (neither is
        retried); a technical fault, a connection error, a timeout, 408, 429 or a 5xx
        without a fault raises :class:`XtaError` (retriable).
        """
        try:
            await self._call("sendMessage", self.settings.send_url, receipt, empty_ok=True)
        except XtaFaultError as exc:
            fault = exc.fault
            verdict = xta.send_verdict(fault)
            if verdict == xta.SEND_PRESENT:
                log.info("xta.receipt_present", size=len(receipt), error_code=fault.error_code)
                return "present"
            if verdict == xta.SEND_REFUSED:
                log.error(  # noqa: TRY400 - no traceback: only the fault's names and codes
                    "xta.receipt_refused",
                    size=len(receipt),
                    fault=fault.code,
                    exception=fault.exception,
                    error_code=fault.error_code,
                )
                raise XtaSendRefusedError("sendMessage", fault) from None
            raise
        log.info("xta.receipt_sent", size=len(receipt))
        return "sent"

    # --- loop ----------------------------------------------------------------------------------

    def backoff(self, failures: int) -> float:
        """Delay after ``failures`` consecutive failed passes: doubling, capped at ``backoff_max``."""
        exponent = min(max(failures - 1, 0), 30)
        return min(self.settings.backoff_max, self.settings.backoff_initial * (1 << exponent))

    async def run(self) -> None:
        """Poll until :meth:`stop`; back off after failures, go on at once while more is pending."""
        failures = 0
        while not self._stop.is_set():
            try:
                report = await self.poll_once()
            except XtaError as exc:
                failures += 1
                delay = self.backoff(failures)
                log.warning(
                    "xta.poll_failed",
                    operation=exc.operation,
                    problem=exc.problem,
                    failures=failures,
                    retry_in=delay,
                )
            else:
                failures = failures + 1 if report.failed else 0
                if failures:
                    delay = self.backoff(failures)
                elif report.more and report.closed:
                    delay = 0.0
                else:
                    delay = self.settings.poll_interval
                log.info(
                    "xta.polled",
                    listed=report.listed,
                    closed=report.closed,
                    failed=report.failed,
                    skipped=report.skipped,
                    next_in=delay,
                )
            await self._sleep(delay)

    async def _sleep(self, delay: float) -> None:
        if delay <= 0:
            await asyncio.sleep(0)
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), timeout=delay)

    # --- HTTP ----------------------------------------------------------------------------------

    async def _call(
        self, operation: str, url: str, body: bytes, *, empty_ok: bool = False
    ) -> bytes:
        action = _ACTIONS[operation]
        headers = {
            "Content-Type": f'{_SOAP}; charset=utf-8; action="{action}"',
            "Accept": _ACCEPT,
            "Accept-Encoding": "identity",
        }
        session = self._open()
        try:
            async with session.post(url, data=body, headers=headers) as response:
                encoding = response.headers.get("Content-Encoding", "identity").strip().lower()
                if encoding != "identity":
                    raise XtaError(operation, "compressed response")
                content_type = response.content_type
                prefix = b""
                if content_type == _MTOM:
                    prefix = _mime_headers(operation, response.headers.get("Content-Type", ""))
                status = response.status
                if status in _EMPTY_OK:
                    limit = self.settings.max_message_bytes - len(prefix)
                    data = await _read_bounded(response, limit, operation)
                else:
                    # An answer that is not a success is at most a fault: a larger body (a proxy's
                    # error page) is a failure of the call, never a message too large to fetch.
                    data = await _read_error_body(response, operation, status)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise XtaError(operation, type(exc).__name__) from exc
        if content_type == _MTOM and data:
            # The MIME entity the hub keeps: the header carries the boundary and the root part.
            data, content_type = prefix + data, _SOAP
        soap = data if content_type == _SOAP else b""
        if soap and b"Fault" in soap and (fault := _fault_in(soap)) is not None:
            # A fault is a failure whatever the HTTP status (some servers answer faults with
            # 200): never a message to hand over and close, never a receipt taken as sent.
            raise XtaFaultError(operation, fault)
        if status == 200 and soap:
            return data
        if empty_ok and status in _EMPTY_OK and (not data or content_type == _SOAP):
            return data
        raise _failure(operation, status, soap)


def _fault_in(soap: bytes) -> xta.Fault | None:
    """The SOAP fault a response body holds, if it is one (unreadable bodies hold none)."""
    try:
        return xta.parse_fault(soap)
    except Rejection:
        return None


def _failure(operation: str, status: int, soap: bytes) -> XtaError:
    """What an unsuccessful answer means: the server's fault, a refusal, or a passing failure."""
    if soap and (fault := _fault_in(soap)) is not None:
        return XtaFaultError(operation, fault)
    if 400 <= status < 500 and status not in (408, 429):
        return XtaHttpRefusedError(operation, f"HTTP {status}")
    return XtaError(operation, f"HTTP {status}")


_ACTIONS = {
    "getStatusList": xta.ACTION_GET_STATUS_LIST,
    "getMessage": xta.ACTION_GET_MESSAGE,
    "close": xta.ACTION_CLOSE,
    "sendMessage": xta.ACTION_SEND_MESSAGE,
}


def _mime_headers(operation: str, content_type: str) -> bytes:
    """The header block that makes an MTOM response body a MIME entity of its own.

    The header value is kept verbatim: visible ASCII and spaces only, bounded (aiohttp
    never passes line breaks); anything else is a server failure, not a message.
    """
    if not 0 < len(content_type) <= _MAX_CONTENT_TYPE or not all(
        " " <= c <= "~" for c in content_type
    ):
        raise XtaError(operation, "malformed Content-Type")
    return b"Content-Type: " + content_type.encode("ascii") + b"\r\nMIME-Version: 1.0\r\n\r\n"


async def _read_error_body(response: aiohttp.ClientResponse, operation: str, status: int) -> bytes:
    """The body of an unsuccessful answer, for its SOAP fault; above :data:`_ERROR_BODY_BYTES`, no body."""
    try:
        return await _read_bounded(response, _ERROR_BODY_BYTES, operation)
    except XtaTooLargeError:
        log.warning("xta.error_body_too_large", operation=operation, status=status)
        return b""


async def _read_bounded(response: aiohttp.ClientResponse, limit: int, operation: str) -> bytes:
    declared = response.content_length
    if declared is not None and declared > limit:
        raise XtaTooLargeError(operation, "response too large", declared)
    buffer = bytearray()
    async for chunk in response.content.iter_chunked(1 << 16):
        buffer += chunk
        if len(buffer) > limit:
            raise XtaTooLargeError(operation, "response too large", declared)
    return bytes(buffer)
