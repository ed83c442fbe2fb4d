"""The receipt senders' sending rule: retry transient failures, give up on a permanent refusal;
and which records a channel's sender answers."""

from __future__ import annotations

import asyncio

import pytest

from hub.core.records import PortalReceipt
from hub.stream import receipts

RECEIPT = PortalReceipt(
    receipt_id="rcp-" + "0" * 32,
    submission_id="sub-" + "1" * 32,
    transport="fitconnect",
    channel="fitconnect",
    outcome="accepted",
    at="2026-11-02T10:00:00.000Z",
    case_id="c",
)


class Refused(Exception):  # noqa: N818
    retriable = False


@pytest.fixture(autouse=True)
def no_sleep(monkeypatch):  # type: ignore[no-untyped-def]
    async def instant(_: float) -> None:
        return None

    monkeypatch.setattr(receipts.asyncio, "sleep", instant)


def test_transient_failures_are_retried_until_the_portal_has_it() -> None:
    calls = []

    async def send(_: PortalReceipt) -> None:
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionError

    assert asyncio.run(receipts.send_receipt(send, RECEIPT)) is True
    assert len(calls) == 3


def test_a_permanent_refusal_is_not_retried() -> None:
    calls = []

    async def send(_: PortalReceipt) -> None:
        calls.append(1)
        raise Refused

    assert asyncio.run(receipts.send_receipt(send, RECEIPT)) is False
    assert len(calls) == 1


def test_the_audit_event_tells_sent_from_refused() -> None:
    import datetime as dt

    from hub.core.pipeline import receipt_sent
    from hub.core.records import AuditEvent, decode

    now = dt.datetime(2026, 11, 2, tzinfo=dt.UTC)
    sent = decode(receipt_sent(RECEIPT, now).value, AuditEvent)
    refused = decode(receipt_sent(RECEIPT, now, sent=False).value, AuditEvent)
    assert (sent.stage, sent.decision, refused.decision) == ("receipt", "sent", "refused")
    assert sent.event_id != refused.event_id


class Audits:
    def __init__(self) -> None:
        self.emits: list[bytes] = []

    async def send_all(self, emits) -> None:  # type: ignore[no-untyped-def]
        self.emits.extend(e.value for e in emits)


def test_a_sender_answers_only_its_own_channel() -> None:
    """Each channel's group reads every receipt record: its own are sent and audited, the
    others (another portal channel, ``none``, a record that is no receipt) are passed over."""
    import dataclasses

    from hub.core.records import AuditEvent, decode, encode

    sent: list[str] = []

    async def send(receipt: PortalReceipt) -> str:
        sent.append(receipt.submission_id)
        return "sent"

    xta = dataclasses.replace(RECEIPT, submission_id="sub-" + "2" * 32, channel="xta2")
    none = dataclasses.replace(RECEIPT, submission_id="sub-" + "3" * 32, channel="none")
    audits = Audits()
    found = [
        receipts.receipt_of(value, "fitconnect")
        for value in (encode(RECEIPT), encode(xta), encode(none), b"{}", None)
    ]
    assert [RECEIPT, None, None, None, None] == found
    assert "sent" == asyncio.run(receipts.answer(RECEIPT, send, audits))
    assert [RECEIPT.submission_id] == sent
    (event,) = [decode(v, AuditEvent) for v in audits.emits]
    assert (event.submission_id, event.stage, event.decision) == (
        RECEIPT.submission_id,
        "receipt",
        "sent",
    )
