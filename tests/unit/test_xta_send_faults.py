"""What a sendMessage fault means for a receipt, and how the XTA receipt sender acts on it.

XTA 2 v3 declares no exception of its own for a message id that is taken: the
server answers ``ParameterIsNotValidException`` with Fehlernummer 9024
("MessageID ist bereits vergeben", XTA-Webservice-Datentypen.xsd). The hub derives
a receipt's message id from the original's, so that answer means an earlier send
of the same receipt got through (a crash before it was audited): ``present``,
audited ``receipt``/``sent``. Faults that refuse the request itself are not
retried (``receipt``/``refused``); the server's technical faults, connection
errors and HTTP errors without a fault keep the backoff.
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import replace
from typing import Any

import pytest

from connectors.xta import XtaError, XtaFaultError, XtaPoller, XtaSendRefusedError, XtaSettings
from hub.core import pipeline
from hub.core.records import AuditEvent, PortalReceipt, b64, decode
from hub.core.transport import xta
from hub.stream import app, receipts

ENVELOPE = (
    '<s12:Envelope xmlns:s12="http://www.w3.org/2003/05/soap-envelope" '
    'xmlns:xta="http://xoev.de/transport/xta/211"><s12:Body><s12:Fault>'
    "<s12:Code><s12:Value>s12:{code}</s12:Value></s12:Code>"
    '<s12:Reason><s12:Text xml:lang="de">Erika Mustermann</s12:Text></s12:Reason>'
    "<s12:Detail>{detail}</s12:Detail></s12:Fault></s12:Body></s12:Envelope>"
)


def fault(code: str, exception: str | None, error: str | None, *, qualified: bool = True) -> bytes:
    """A SOAP 1.2 fault as an XTA server writes it (``xta:errorCode`` with an unqualified code)."""
    tag = "xta:errorCode" if qualified else "errorCode"
    inner = "" if error is None else f"<{tag}><code>{error}</code><name>x</name></{tag}>"
    detail = "" if exception is None else f"<xta:{exception}>{inner}</xta:{exception}>"
    return ENVELOPE.format(code=code, detail=detail).encode()


class TestErrorCode:
    def test_the_fehlernummer_is_read(self):
        """The exception's errorCode/code is read, qualified as the schema says or not."""
        expected = [
            xta.Fault("Sender", "ParameterIsNotValidException", "9024"),
            xta.Fault("Sender", "ParameterIsNotValidException", "9024"),
        ]
        actual = [
            xta.parse_fault(fault("Sender", "ParameterIsNotValidException", "9024")),
            xta.parse_fault(
                fault("Sender", "ParameterIsNotValidException", "9024", qualified=False)
            ),
        ]
        assert expected == actual

    @pytest.mark.parametrize("code", ["1", "SIM", "90241", "Erika Mustermann", ""])
    def test_anything_but_a_list_code_is_dropped(self, code):
        """Only four digits are passed on (they go into logs); anything else is None."""
        parsed = xta.parse_fault(fault("Sender", "ParameterIsNotValidException", code))
        assert xta.Fault("Sender", "ParameterIsNotValidException", None) == parsed

    def test_no_error_code(self):
        """An exception without errorCode, or no declared exception: no error code."""
        assert [
            xta.Fault("Receiver", "XTAWSTechnicalProblemException", None),
            xta.Fault("Sender", None, None),
        ] == [
            xta.parse_fault(fault("Receiver", "XTAWSTechnicalProblemException", None)),
            xta.parse_fault(fault("Sender", "MustermannException", "9024")),
        ]


VERDICTS = [
    # (fault code, exception, Fehlernummer, verdict)
    ("Sender", "ParameterIsNotValidException", "9024", xta.SEND_PRESENT),
    ("Receiver", "ParameterIsNotValidException", "9024", xta.SEND_PRESENT),
    ("Sender", "ParameterIsNotValidException", "9022", xta.SEND_REFUSED),
    ("Sender", "ParameterIsNotValidException", None, xta.SEND_REFUSED),
    ("Sender", "PermissionDeniedException", "9011", xta.SEND_REFUSED),
    ("Receiver", "PermissionDeniedException", "9010", xta.SEND_REFUSED),
    ("Sender", "MessageSchemaViolationException", "9050", xta.SEND_REFUSED),
    ("Sender", "MessageVirusDetectionException", "9060", xta.SEND_REFUSED),
    ("Sender", "SyncAsyncException", "9080", xta.SEND_REFUSED),
    ("Sender", "PermissionDeniedException", "9024", xta.SEND_REFUSED),  # 9024 is not its code
    ("Receiver", "XTAWSTechnicalProblemException", "9030", xta.SEND_TRANSIENT),
    ("Sender", "XTAWSTechnicalProblemException", None, xta.SEND_TRANSIENT),
    ("Sender", None, None, xta.SEND_REFUSED),
    ("MustUnderstand", None, None, xta.SEND_REFUSED),
    ("VersionMismatch", None, None, xta.SEND_REFUSED),
    ("Receiver", None, None, xta.SEND_TRANSIENT),
    ("unknown", None, None, xta.SEND_TRANSIENT),
]


@pytest.mark.parametrize(("code", "exception", "error", "verdict"), VERDICTS)
def test_send_verdict(code, exception, error, verdict):
    """Taken id: present; refusing exceptions and Sender faults: refused; the rest transient."""
    assert verdict == xta.send_verdict(xta.Fault(code, exception, error))


# --- the poller's send_receipt --------------------------------------------------------------------


def poller_answering(error: Exception | None) -> XtaPoller:
    """A poller whose sendMessage call raises ``error`` (or succeeds), without a network."""
    settings = XtaSettings(
        msgbox_url="https://xta.invalid/MsgBoxPort",
        send_url="https://xta.invalid/SendXtaPort",
        mailbox="wgb010540880000",
        ssl_context=ssl.create_default_context(),
    )
    poller = XtaPoller(settings, handover=lambda *_: asyncio.sleep(0))

    async def call(operation: str, *_: Any, **__: Any) -> bytes:
        assert operation == "sendMessage"
        if error is not None:
            raise error
        return b""

    poller._call = call  # type: ignore[method-assign]
    return poller


@pytest.mark.parametrize(("code", "exception", "error", "verdict"), VERDICTS)
def test_send_receipt_acts_on_the_verdict(code, exception, error, verdict):
    """present: returned; refused: XtaSendRefusedError (not retriable); transient: re-raised."""
    raised = XtaFaultError("sendMessage", xta.Fault(code, exception, error))
    poller = poller_answering(raised)
    if verdict == xta.SEND_PRESENT:
        assert "present" == asyncio.run(poller.send_receipt(b"<receipt/>"))
        return
    with pytest.raises(XtaFaultError) as caught:
        asyncio.run(poller.send_receipt(b"<receipt/>"))
    if verdict == xta.SEND_REFUSED:
        expected = (XtaSendRefusedError, False, raised.fault)
        assert expected == (type(caught.value), caught.value.retriable, caught.value.fault)
    else:
        assert (caught.value, caught.value.retriable) == (raised, True)


def test_send_receipt_without_a_fault():
    """A success is "sent"; connection errors and HTTP errors without a fault stay retriable."""
    assert "sent" == asyncio.run(poller_answering(None).send_receipt(b"<receipt/>"))
    for error in (
        XtaError("sendMessage", "ClientConnectorError"),
        XtaError("sendMessage", "HTTP 503"),
    ):
        with pytest.raises(XtaError) as caught:
            asyncio.run(poller_answering(error).send_receipt(b"<receipt/>"))
        assert (caught.value, caught.value.retriable) == (error, True)


# --- the receipt sender -----------------------------------------------------------------------------


def receipt(number: int) -> PortalReceipt:
    return PortalReceipt(
        receipt_id=f"rcp-{number:032x}",
        submission_id=f"sub-{number:032x}",
        transport="xta2",
        channel="xta2",
        outcome="accepted",
        at="2026-11-02T10:00:00.000Z",
        portal="sozialplattform-nrw",
        transport_message_id=f"urn:de:xta:messageid:sop:{number}",
        body_b64=b64(b"<receipt/>"),
    )


class Sender:
    """Records what the agent sends, and what the channel had been asked before each send."""

    def __init__(self, calls: list[str]) -> None:
        self.calls = calls
        self.audits: list[tuple[str, str, int]] = []

    def channel(self, name: str) -> str:
        return name

    async def send_all(self, emits: list[pipeline.Emit]) -> None:
        for emit in emits:
            event = decode(emit.value, AuditEvent)
            self.audits.append((event.submission_id, event.decision, len(self.calls)))


@pytest.fixture
def no_sleep(monkeypatch):  # type: ignore[no-untyped-def]
    slept: list[float] = []

    async def instant(delay: float) -> None:
        slept.append(delay)

    monkeypatch.setattr(receipts.asyncio, "sleep", instant)
    return slept


def test_a_taken_id_or_a_refusal_does_not_block_later_receipts(no_sleep):
    """Receipt 1's id is taken (sent before a crash), receipt 2 is refused for good, receipt 3
    meets a technical fault once: each is tried once (3: twice), audited in order, and the
    audit of each is sent before the next receipt is tried."""
    answers: dict[str, list[Exception | str]] = {
        "urn:de:xta:messageid:sop:1": [
            XtaFaultError(
                "sendMessage", xta.Fault("Sender", "ParameterIsNotValidException", "9024")
            )
        ],
        "urn:de:xta:messageid:sop:2": [
            XtaFaultError("sendMessage", xta.Fault("Sender", "PermissionDeniedException", "9011"))
        ],
        "urn:de:xta:messageid:sop:3": [
            XtaFaultError(
                "sendMessage", xta.Fault("Receiver", "XTAWSTechnicalProblemException", "9030")
            ),
            "sent",
        ],
    }
    calls: list[str] = []
    poller = poller_answering(None)

    async def call(operation: str, *_: Any, **__: Any) -> bytes:
        message_id = calls[-1]
        answer = answers[message_id].pop(0)
        if isinstance(answer, Exception):
            raise answer
        return b""

    poller._call = call  # type: ignore[method-assign]

    async def send_xta(receipt: PortalReceipt) -> str:
        calls.append(receipt.transport_message_id or "")
        return await poller.send_receipt(app._receipt_body(receipt))

    sender = Sender(calls)

    async def answer_all() -> None:
        for number in (1, 2, 3):
            await receipts.answer(receipt(number), send_xta, sender)

    asyncio.run(answer_all())
    assert [
        (f"sub-{1:032x}", "sent", 1),
        (f"sub-{2:032x}", "refused", 2),
        (f"sub-{3:032x}", "sent", 4),
    ] == sender.audits
    assert ([1.0], {k: [] for k in answers}) == (no_sleep, answers)


def test_a_receipt_without_a_body_is_refused_not_retried(no_sleep):
    """A receipt record that cannot be sent at all is refused at once, never retried."""
    attempts: list[int] = []

    async def send_xta(receipt: PortalReceipt) -> str:
        attempts.append(1)
        app._receipt_body(receipt)
        return "sent"

    for body in (None, "", "not base64!"):
        attempts.clear()
        sent = asyncio.run(receipts.send_receipt(send_xta, replace(receipt(1), body_b64=body)))
        assert (sent, attempts, no_sleep) == (False, [1], [])


@pytest.mark.parametrize(
    ("status", "retriable"),
    [(400, False), (401, False), (403, False), (413, False), (408, True), (429, True), (503, True)],
)
def test_an_http_error_without_a_fault_is_refused_only_for_a_4xx(status, retriable):
    """A gateway's 4xx cannot succeed when sent again; 408, 429 and 5xx can."""
    from connectors.xta import poller

    error = poller._failure("sendMessage", status, b"")
    assert (error.retriable, type(error) is poller.XtaHttpRefusedError) == (
        retriable,
        not retriable,
    )
    assert str(status) in str(error)
