"""`sozialhub receipts resend` refuses what it cannot do before it talks to the cluster."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from hub import cli
from hub.core import receipt_resend
from hub.core.records import AuditEvent, PortalReceipt, SourceRef
from tests import clitools

SID = "sub-" + "1" * 32


@pytest.fixture(autouse=True)
def isolated(monkeypatch):
    with clitools.isolated(monkeypatch):
        yield


def run(capsys, *argv: str) -> tuple[int, str]:
    status = cli.main(["receipts", "resend", *argv])
    return status, capsys.readouterr().err


def test_without_a_cluster_it_refuses(capsys):
    status, err = run(capsys, SID, "--yes")
    assert (2, True) == (status, "KAFKA_BOOTSTRAP_SERVERS" in err)


@pytest.mark.parametrize("text", ["sub-XYZ", "dlq-" + "1" * 32, "sub-" + "1" * 31, "Erika"])
def test_a_malformed_submission_id_is_a_usage_error(capsys, monkeypatch, text):
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")
    status, err = run(capsys, text, "--yes")
    assert (2, True, False) == (status, "submission id" in err, text in err)


def test_without_a_terminal_it_needs_yes(capsys, monkeypatch):
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    status, err = run(capsys, SID)
    assert (2, True) == (status, "--yes" in err)


def found(number: int, channel: str) -> receipt_resend.Found:
    receipt = PortalReceipt(
        receipt_id=f"rcp-{number:032x}",
        submission_id=SID,
        transport="xta2",
        channel=channel,
        outcome="rejected",
        at="2026-11-22T10:00:00.000Z",
    )
    return receipt_resend.Found(receipt, SID.encode(), b"{}", SourceRef("t", 0, number))


def test_the_newest_receipt_of_a_portal_channel_is_resent():
    """Channel `none` is the record itself: never resent; of the others the newest is."""
    assert receipt_resend.resendable([found(1, "none")]) is None
    newest = found(3, "fitconnect")
    assert receipt_resend.resendable([found(1, "xta2"), newest, found(4, "none")]) == newest


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        ((), "SUBMISSION_ID, or --refused"),
        ((SID, "--refused"), "SUBMISSION_ID, or --refused"),
        ((SID, "--since", "2026-11-01"), "go with --refused"),
        ((SID, "--channel", "xta2"), "go with --refused"),
    ],
)
def test_one_submission_or_every_refused_one(capsys, monkeypatch, argv, words):
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")
    status, err = run(capsys, *argv, "--yes")
    assert (2, True) == (status, words in err)


def event(number: int, decision: str, at: str, submission: int | None = None) -> AuditEvent:
    return AuditEvent(
        event_id=f"evt-{number:032x}",
        submission_id=f"sub-{submission if submission is not None else number:032x}",
        stage="receipt",
        decision=decision,
        at=at,
    )


def test_still_refused_is_the_last_receipt_decision_of_each_submission():
    """A later `sent` answers a refusal; a later `resent` is a resend on its way; a refusal
    after either counts again. Other stages and decisions do not count."""
    events = [
        event(1, "refused", "2026-11-22T10:00:00.000Z", submission=1),  # still refused
        event(2, "refused", "2026-11-22T09:00:00.000Z", submission=2),
        event(3, "sent", "2026-11-22T09:05:00.000Z", submission=2),  # answered
        event(4, "refused", "2026-11-22T08:00:00.000Z", submission=3),
        event(5, "resent", "2026-11-22T08:30:00.000Z", submission=3),  # on its way
        event(6, "refused", "2026-11-22T07:00:00.000Z", submission=4),
        event(7, "resent", "2026-11-22T07:30:00.000Z", submission=4),
        event(8, "refused", "2026-11-22T07:45:00.000Z", submission=4),  # refused again
        dataclasses.replace(event(9, "refused", "2026-11-22T06:00:00.000Z"), stage="deliver"),
        event(10, "sent", "2026-11-22T11:00:00.000Z", submission=5),
        event(11, "duplicate", "2026-11-22T11:30:00.000Z", submission=5),  # not a receipt word
    ]
    refused = receipt_resend.still_refused(events)
    assert [8, 1] == [int(e.event_id[4:], 16) for e in refused]  # oldest refusal first
    since = dt.datetime(2026, 11, 22, 9, 0, tzinfo=dt.UTC)
    assert [1] == [int(e.event_id[4:], 16) for e in receipt_resend.still_refused(events, since)]


def test_an_unreadable_or_naive_time_still_sorts():
    """A time without an offset is UTC; an unreadable one counts as long ago (never lost)."""
    events = [
        event(1, "refused", "2026-11-22T10:00:00"),
        event(2, "refused", "yesterday"),
        event(3, "refused", "2026-11-22T09:00:00+00:00"),
    ]
    assert [2, 3, 1] == [int(e.event_id[4:], 16) for e in receipt_resend.still_refused(events)]
    since = dt.datetime(2026, 11, 22, 9, 30, tzinfo=dt.UTC)
    assert [1] == [int(e.event_id[4:], 16) for e in receipt_resend.still_refused(events, since)]
