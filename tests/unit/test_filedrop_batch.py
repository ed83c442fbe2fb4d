"""The worker's file-drop batches (hub.stream.app._inbox_batch, hub.stream.osci_inbox.osci_batch)
on real inbox directories: every file is claimed before it is read, the batch hands back
claimed paths, and files it cannot claim are logged (errno only) and skipped.
"""

from __future__ import annotations

import errno

from structlog.testing import capture_logs

from connectors.filedrop.claims import CLAIM_DIRECTORY
from connectors.filedrop.inbound import FileDropInbox
from connectors.filedrop.osci import OsciInbox
from hub.core.pipeline import RECEIVED
from hub.core.records import Received, decode, submission_id
from hub.core.transport.osci_handover import OsciMetadata, render
from hub.stream.app import _inbox_batch
from hub.stream.osci_inbox import osci_batch
from tests import osci_builders as b

NAME = "urn:de:xta:messageid:sop:0b9c2a1e-7f3d-4c55-9e61-2d8f4a7b3c10.xml"


def drop(directory, name: str, data: bytes) -> None:
    temporary = directory / f".{name}.part"
    temporary.write_bytes(data)
    temporary.replace(directory / name)


def test_the_batch_works_on_claimed_files_under_their_names(tmp_path, hub_context):
    """The record is made from the claimed file and keeps the message id its name carries; the
    batch returns the claimed path; a file renamed over the name meanwhile waits in the inbox."""
    inbox = FileDropInbox(tmp_path / "inbox", tmp_path / "archive", 1 << 20)
    drop(inbox.inbox, NAME, b"<first/>")
    listed = inbox.pending()
    emits, taken, oversize = _inbox_batch(inbox, listed, hub_context)
    drop(inbox.inbox, NAME, b"<second/>")
    (record,) = [decode(e.value, Received) for e in emits if e.topic == RECEIVED]
    ((path, sid),) = taken
    expected = (NAME.removesuffix(".xml"), submission_id(b"<first/>"), sid, NAME, [], True)
    assert expected == (
        record.transport_message_id,
        record.submission_id,
        submission_id(b"<first/>"),
        path.name,
        oversize,
        inbox.claims.holds(path),
    )
    assert inbox.release(path, sid)
    assert ([inbox.inbox / NAME], b"<first/>") == (
        inbox.pending(),
        (inbox.archive / f"{sid}.xml").read_bytes(),
    )


def test_a_file_another_worker_claimed_is_skipped_quietly(tmp_path, hub_context):
    inbox = FileDropInbox(tmp_path / "inbox", tmp_path / "archive", 1 << 20)
    other = FileDropInbox(tmp_path / "inbox", tmp_path / "archive", 1 << 20)
    drop(inbox.inbox, "a.xml", b"<a/>")
    listed = inbox.pending()
    assert other.claim(listed[0]) is not None
    with capture_logs() as logs:
        assert ([], [], []) == _inbox_batch(inbox, listed, hub_context)
    assert [] == logs


def test_a_file_that_cannot_be_claimed_is_logged_without_its_name(tmp_path, hub_context):
    inbox = FileDropInbox(tmp_path / "inbox", tmp_path / "archive", 1 << 20)
    (inbox.inbox / CLAIM_DIRECTORY).symlink_to(tmp_path)
    drop(inbox.inbox, NAME, b"<a/>")
    with capture_logs() as logs:
        listed = inbox.pending()
        assert ([], [], []) == _inbox_batch(inbox, listed, hub_context)
    # Once looking for claims left at start, once for the file.
    assert ["filedrop.cannot_claim", "filedrop.cannot_claim"] == [e["event"] for e in logs]
    assert logs[-1]["errno"] in {errno.ELOOP, errno.ENOTDIR}
    assert "messageid" not in repr(logs)
    assert [] == inbox.pending()  # not tried again by this process


def test_an_osci_pair_that_cannot_be_claimed_is_logged_and_skipped(tmp_path, hub_context, now):
    (tmp_path / "inbox" / "osci").mkdir(parents=True)
    inbox = OsciInbox(tmp_path / "inbox", tmp_path / "archive", 1 << 20)
    (inbox.directory / CLAIM_DIRECTORY).write_bytes(b"")  # not a directory
    drop(inbox.directory, "4711.xml", b.inline_package())
    drop(inbox.directory, "4711.xml.json", render(OsciMetadata("sop:1", "jbc:2", "bWlk")))
    with capture_logs() as logs:
        listing = inbox.scan()
        assert ([], [], []) == osci_batch(inbox, listing.ready, hub_context, lambda: now)
    # Once looking for claims left at start, once for the pair.
    assert [("filedrop.cannot_claim", "osci", errno.ENOTDIR)] * 2 == [
        (e["event"], e["inbox"], e["errno"]) for e in logs
    ]
    assert ([], 0) == (inbox.scan().ready, inbox.scan().waiting)
