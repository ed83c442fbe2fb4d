"""The XTA 2 mailbox poller: list, fetch, hand over, and only then close.

One pass (:meth:`XtaPoller.poll_once`) asks the XTA server for the mailbox's
status list, fetches each listed message with ``getMessage`` and awaits the
injected ``handover(original, message_id)`` (the hub produces the original
bytes to Kafka and awaits the broker's acknowledgement inside it). Only when
the handover returned does the poller ``close`` the message, which removes it
from the mailbox. A handover that raises leaves the message in the mailbox; the
next pass fetches it again (the hub deduplicates by the XTA message id). A
crash between handover and ``close`` has the same effect.

:meth:`XtaPoller.run` repeats passes until :meth:`XtaPoller.stop`: at once while
the server reports more pending items, otherwise after ``poll_interval``; after
a failed pass (HTTP or TLS error, SOAP fault, failed handover) it backs off
exponentially from ``backoff_initial`` up to ``backoff_max``.

Logs carry message ids, sizes, operations, HTTP statuses and exception type
names, never payload bytes or the text of a server response. Responses are read
with a byte limit and never decompressed.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self
from urllib.parse import urlsplit

import aiohttp
import structlog

from hub.core.errors import Rejection
from hub.core.transport import xta

log = structlog.get_logger(__name__)

Handover = Callable[[bytes, str], Awaitable[None]]

_SOAP = "application/soap+xml"
_EMPTY_OK = frozenset({200, 202, 204})  # close and sendMessage answer an empty body


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


class XtaTooLargeError(XtaError):
    """The response is larger than ``max_message_bytes``; it was not read to the end."""

    retriable = False


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
    closed: int = 0
    failed: int = 0
    skipped: int = 0  # malformed ids in the list, vanished or oversized messages
    more: bool = False  # the server has more messages than this pass listed


class XtaPoller:
    """Reads one XTA mailbox. Use ``async with XtaPoller(settings, handover) as poller``."""

    def __init__(self, settings: XtaSettings, handover: Handover) -> None:
        self.settings = settings
        self._handover = handover
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
        handed_over = closed = failed = 0
        skipped = listing.skipped
        for message_id in listing.message_ids:
            if self._stop.is_set():
                break
            original = await self._fetch(message_id)
            if original is None:
                skipped += 1
                continue
            try:
                await self._handover(original, message_id)
            except Exception as exc:  # noqa: BLE001 - any handover failure leaves the message in the box
                failed += 1
                log.warning("xta.handover_failed", message_id=message_id, error=type(exc).__name__)
                continue
            handed_over += 1
            await self._close(message_id, listing.request_id)
            closed += 1
        more = listing.pending > 0 or len(listing.message_ids) >= self.settings.max_items
        return PollReport(
            listed=len(listing.message_ids),
            handed_over=handed_over,
            closed=closed,
            failed=failed,
            skipped=skipped,
            more=more,
        )

    async def _fetch(self, message_id: str) -> bytes | None:
        """The getMessage response, or ``None`` when the message vanished or is too large."""
        request = xta.get_message_request(self.settings.mailbox, message_id)
        try:
            original = await self._call("getMessage", self.settings.msgbox_url, request)
        except XtaTooLargeError:
            original = None
        except XtaFaultError as exc:
            if exc.fault.exception != "InvalidMessageIDException":
                raise
            log.warning("xta.message_vanished", message_id=message_id)
            return None
        if original is None:
            limit = self.settings.max_message_bytes
            log.error("xta.message_too_large", message_id=message_id, limit=limit)
            return None
        if not original:
            raise XtaError("getMessage", "empty response")
        log.info("xta.fetched", message_id=message_id, size=len(original))
        return original

    async def _close(self, message_id: str, box_request_id: str | None) -> None:
        request = xta.close_request(
            self.settings.mailbox, message_id, box_request_id=box_request_id
        )
        await self._call("close", self.settings.msgbox_url, request, empty_ok=True)
        log.info("xta.closed", message_id=message_id)

    async def send_receipt(self, receipt: bytes) -> None:
        """Send a ``sendMessage`` request (e.g. :func:`hub.core.transport.xta.receipt_message`)."""
        await self._call("sendMessage", self.settings.send_url, receipt, empty_ok=True)
        log.info("xta.receipt_sent", size=len(receipt))

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
            "Accept": _SOAP,
            "Accept-Encoding": "identity",
        }
        session = self._open()
        try:
            async with session.post(url, data=body, headers=headers) as response:
                encoding = response.headers.get("Content-Encoding", "identity").strip().lower()
                if encoding != "identity":
                    raise XtaError(operation, "compressed response")
                data = await _read_bounded(response, self.settings.max_message_bytes, operation)
                status, content_type = response.status, response.content_type
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise XtaError(operation, type(exc).__name__) from exc
        if status == 200 and content_type == _SOAP and data:
            return data
        if empty_ok and status in _EMPTY_OK and (not data or content_type == _SOAP):
            return data
        if content_type == _SOAP and data:
            try:
                fault = xta.parse_fault(data)
            except Rejection:
                fault = None
            if fault is not None:
                raise XtaFaultError(operation, fault)
        raise XtaError(operation, f"HTTP {status}")


_ACTIONS = {
    "getStatusList": xta.ACTION_GET_STATUS_LIST,
    "getMessage": xta.ACTION_GET_MESSAGE,
    "close": xta.ACTION_CLOSE,
    "sendMessage": xta.ACTION_SEND_MESSAGE,
}


async def _read_bounded(response: aiohttp.ClientResponse, limit: int, operation: str) -> bytes:
    if response.content_length is not None and response.content_length > limit:
        raise XtaTooLargeError(operation, "response too large")
    buffer = bytearray()
    async for chunk in response.content.iter_chunked(1 << 16):
        buffer += chunk
        if len(buffer) > limit:
            raise XtaTooLargeError(operation, "response too large")
    return bytes(buffer)
