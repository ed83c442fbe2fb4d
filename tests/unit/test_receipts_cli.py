"""`sozialhub receipts resend` refuses what it cannot do before it talks to the cluster."""

from __future__ import annotations

import pytest

from hub import cli
from hub.core import receipt_resend
from hub.core.records import PortalReceipt, SourceRef
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
