"""The file drop's osci sub-inbox without Kafka: pairing, waiting, reading, moving, the records made.

The worker's loop (hub.stream.osci_inbox.osci_drop_task) sends the records of a
batch and only then moves the pairs; here the pieces are checked one by one,
the whole loop through the broker in tests/integration/test_osci_inbox.py.
"""

from __future__ import annotations

import hashlib

import pytest

from connectors.filedrop import inbound
from connectors.filedrop.inbound import Unreadable
from connectors.filedrop.osci import OsciHandover, OsciInbox
from hub.core.pipeline import AUDIT, DEAD_LETTER, RECEIVED
from hub.core.records import (
    AuditEvent,
    DeadLetter,
    Received,
    decode,
    received_submission_id,
    submission_id,
    unb64,
)
from hub.core.transport.osci_handover import MAX_METADATA_BYTES, OsciMetadata, render
from hub.stream.osci_inbox import osci_batch, records_for
from tests import osci_builders as b

AUTHOR = "sop:050000100099"
READER = "jbc:055620000000"
MESSAGE_ID = "b3NjaS1tZXNzYWdlLTQ3MTE="
METADATA = render(OsciMetadata(AUTHOR, READER, MESSAGE_ID))


class Clock:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def inbox(tmp_path, clock) -> OsciInbox:
    (tmp_path / "inbox" / "osci").mkdir(parents=True)
    return OsciInbox(tmp_path / "inbox", tmp_path / "archive", 4096, pair_seconds=60, clock=clock)


def put(inbox: OsciInbox, name: str, data: bytes) -> None:
    """Atomically, as an OSCI client must: an ignored name first, then the rename."""
    temporary = inbox.directory / f".{name}.part"
    temporary.write_bytes(data)
    temporary.replace(inbox.directory / name)


def names(directory) -> list[str]:
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


class TestScan:
    def test_pairs_are_ready_in_name_order(self, inbox):
        """A package and ``<package>.json`` are one handover; name order across pairs."""
        for stem in ("b.mime", "a.xml"):
            put(inbox, stem, b"package")
            put(inbox, f"{stem}.json", METADATA)
        listing = inbox.scan()
        expected = [("a.xml", "a.xml.json"), ("b.mime", "b.mime.json")]
        assert expected == [(h.package.name, h.metadata.name) for h in listing.ready]
        assert (0, []) == (listing.waiting, listing.orphans)

    def test_a_package_waits_for_its_sidecar_then_goes_alone(self, inbox, clock):
        """Without its sidecar a package waits pair_seconds (from first sight), then is taken alone."""
        put(inbox, "a.xml", b"package")
        first = inbox.scan()
        clock.now += 59
        second = inbox.scan()
        clock.now += 1
        third = inbox.scan()
        assert ([], 1) == (first.ready, first.waiting)
        assert ([], 1) == (second.ready, second.waiting)
        assert [OsciHandover(inbox.directory / "a.xml", None)] == third.ready

    def test_a_sidecar_arriving_in_time_completes_the_pair(self, inbox, clock):
        put(inbox, "a.xml", b"package")
        inbox.scan()
        clock.now += 30
        put(inbox, "a.xml.json", METADATA)
        clock.now += 60
        ready = inbox.scan().ready
        assert [("a.xml", "a.xml.json")] == [(h.package.name, h.metadata.name) for h in ready]

    def test_a_sidecar_alone_becomes_an_orphan(self, inbox, clock):
        """A sidecar whose package does not arrive is reported once overdue, never as ready."""
        put(inbox, "a.xml.json", METADATA)
        early = inbox.scan()
        clock.now += 60
        late = inbox.scan()
        assert ([], []) == (early.ready, early.orphans)
        assert ([], [inbox.directory / "a.xml.json"]) == (late.ready, late.orphans)

    def test_files_being_written_directories_and_symlinks_are_not_listed(self, inbox, tmp_path):
        for name in (".a.xml", "a.xml.part", "a.xml.json.tmp", "b.XML.PARTIAL"):
            (inbox.directory / name).write_bytes(b"x")
        (inbox.directory / "sub").mkdir()
        (inbox.directory / "link").symlink_to(tmp_path)
        listing = inbox.scan()
        assert ([], 0, []) == (listing.ready, listing.waiting, listing.orphans)

    def test_no_sub_inbox_is_no_work_and_is_not_created(self, tmp_path):
        """Without ``<inbox>/osci`` the scan finds nothing and creates nothing."""
        inbox = OsciInbox(tmp_path / "inbox", tmp_path / "archive", 4096)
        listing = inbox.scan()
        assert ([], 0, []) == (listing.ready, listing.waiting, listing.orphans)
        assert not (tmp_path / "inbox").exists()


class TestRead:
    def test_reads_both_files(self, inbox):
        put(inbox, "a.xml", b"package")
        put(inbox, "a.xml.json", METADATA)
        files = inbox.read(inbox.scan().ready[0])
        expected = (b"package", hashlib.sha256(b"package").hexdigest(), METADATA, False)
        assert expected == (
            files.package.data,
            files.package.sha256,
            files.metadata,
            files.metadata_too_large,
        )

    def test_an_oversized_sidecar_is_not_buffered(self, inbox):
        put(inbox, "a.xml", b"package")
        put(inbox, "a.xml.json", b" " * (MAX_METADATA_BYTES + 1))
        files = inbox.read(inbox.scan().ready[0])
        assert (None, True) == (files.metadata, files.metadata_too_large)

    @pytest.mark.timeout(20)
    def test_an_oversized_sidecar_is_not_read_to_its_end(self, inbox):
        """A sidecar of 64 GiB (sparse): reading stops after the limit; hashing it to its end
        would take minutes."""
        put(inbox, "a.xml", b"package")
        with (inbox.directory / "a.xml.json").open("wb") as sidecar:
            sidecar.truncate(64 * 1024**3)
        files = inbox.read(inbox.scan().ready[0])
        assert (None, True) == (files.metadata, files.metadata_too_large)

    def test_a_symlinked_sidecar_is_unreadable(self, inbox, tmp_path):
        """A sidecar swapped for a symlink (e.g. to a key file) is never followed."""
        secret = tmp_path / "hub.key"
        secret.write_bytes(b"-----BEGIN PRIVATE KEY-----")
        put(inbox, "a.xml", b"package")
        handover = OsciHandover(inbox.directory / "a.xml", inbox.directory / "a.xml.json")
        handover.metadata.symlink_to(secret)
        with pytest.raises(Unreadable):
            inbox.read(handover)

    def test_a_vanished_package_is_none(self, inbox):
        assert inbox.read(OsciHandover(inbox.directory / "gone", None)) is None


class TestMoves:
    def test_release_archives_the_pair_by_submission_id(self, inbox, tmp_path):
        put(inbox, "a.xml", b"package")
        put(inbox, "a.xml.json", METADATA)
        sid = submission_id(b"package")
        assert inbox.release(inbox.scan().ready[0], sid)
        archive = tmp_path / "archive"
        expected = ([], b"package", METADATA)
        assert expected == (
            names(inbox.directory),
            (archive / f"{sid}.osci").read_bytes(),
            (archive / f"{sid}.osci.json").read_bytes(),
        )

    def test_release_without_archive_deletes_the_pair(self, tmp_path, clock):
        (tmp_path / "inbox" / "osci").mkdir(parents=True)
        inbox = OsciInbox(tmp_path / "inbox", None, 4096, clock=clock)
        put(inbox, "a.xml", b"package")
        put(inbox, "a.xml.json", METADATA)
        assert inbox.release(inbox.scan().ready[0], submission_id(b"package"))
        assert [] == names(inbox.directory)

    @pytest.mark.parametrize(
        ("reason", "directory"), [("SIZE", "oversize"), ("METADATA", "metadata")]
    )
    def test_set_aside_keeps_the_pair_by_digest(self, inbox, tmp_path, reason, directory):
        put(inbox, "a.xml", b"package")
        put(inbox, "a.xml.json", b"{broken")
        digest = hashlib.sha256(b"package").hexdigest()
        assert inbox.set_aside(inbox.scan().ready[0], digest, reason)
        target = tmp_path / "archive" / directory
        assert [f"sha256-{digest}", f"sha256-{digest}.json"] == names(target)
        assert [] == names(inbox.directory)

    def test_the_package_moves_first_and_its_sidecar_stays_if_it_cannot(self, inbox, monkeypatch):
        """A package that cannot leave keeps its sidecar: never a package without metadata."""
        put(inbox, "a.xml", b"package")
        put(inbox, "a.xml.json", METADATA)
        handover = inbox.scan().ready[0]
        moved: list[str] = []

        def move_out(path, target):
            if path.name == "a.xml":
                raise PermissionError
            moved.append(path.name)

        monkeypatch.setattr(inbound, "move_out", move_out)
        assert not inbox.release(handover, submission_id(b"package"))
        listing = inbox.scan()
        expected = ([], ["a.xml", "a.xml.json"], [], [])
        assert expected == (moved, names(inbox.directory), listing.ready, listing.orphans)

    def test_a_pair_renamed_over_after_reading_stays_to_be_taken_as_itself(self, inbox, tmp_path):
        """The client hands over a new pair under the same names after the hub read the first
        and before it moved it: the new pair stays in the inbox, never archived under the
        first one's submission id."""
        put(inbox, "a.xml", b"package")
        put(inbox, "a.xml.json", METADATA)
        handover = inbox.scan().ready[0]
        assert b"package" == inbox.read(handover).package.data
        put(inbox, "a.xml", b"another package")
        put(inbox, "a.xml.json", METADATA)
        assert inbox.release(handover, submission_id(b"package"))  # nothing stuck
        expected = (["a.xml", "a.xml.json"], [], b"another package")
        again = inbox.read(inbox.scan().ready[0])
        assert expected == (names(inbox.directory), names(tmp_path / "archive"), again.package.data)

    def test_quarantine_and_orphans_keep_their_names(self, inbox, tmp_path):
        put(inbox, "a.xml", b"package")
        put(inbox, "a.xml.json", METADATA)
        put(inbox, "lonely.json", METADATA)
        assert inbox.quarantine(
            OsciHandover(inbox.directory / "a.xml", inbox.directory / "a.xml.json")
        )
        assert inbox.set_orphan_aside(inbox.directory / "lonely.json")
        archive = tmp_path / "archive"
        expected = (["a.xml", "a.xml.json"], ["lonely.json"], [])
        assert expected == (
            names(archive / "unreadable"),
            names(archive / "orphaned"),
            names(inbox.directory),
        )


def emitted(result, topic, cls):
    return [decode(e.value, cls) for e in result.emits if e.topic == topic]


class TestRecords:
    def test_a_valid_pair_is_a_received_record_with_the_clients_metadata(
        self, inbox, hub_context, now
    ):
        """transport osci, source filedrop, the sidecar's author, reader and message id; the bytes unchanged."""
        package = b.inline_package()
        put(inbox, "a.xml", package)
        put(inbox, "a.xml.json", METADATA)
        result = records_for(inbox.read(inbox.scan().ready[0]), hub_context, now)
        (record,) = emitted(result, RECEIVED, Received)
        sid = received_submission_id(
            hashlib.sha256(package).hexdigest(), "osci", MESSAGE_ID, AUTHOR, READER
        )
        expected = ("filedrop", "osci", AUTHOR, READER, MESSAGE_ID, package, sid)
        assert expected == (
            record.source,
            record.transport,
            record.transport_author,
            record.transport_reader,
            record.transport_message_id,
            unb64(record.payload_b64),
            record.submission_id,
        )
        assert ["received"] == [e.decision for e in emitted(result, AUDIT, AuditEvent)]

    @pytest.mark.parametrize(
        ("metadata", "path"),
        [
            (None, "osci/metadata"),
            (b"{broken", "osci/metadata"),
            (METADATA.replace(b"sop:050000100099", b"sop 0500"), "osci/metadata/author"),
            (b" " * (MAX_METADATA_BYTES + 1), "osci/metadata"),
        ],
        ids=["missing", "not-json", "bad-author", "oversized"],
    )
    def test_a_package_without_valid_metadata_is_an_ingest_dead_letter(
        self, inbox, hub_context, now, metadata, path
    ):
        """METADATA at stage ingest, no received record; the dead letter names the package digest."""
        package = b.inline_package()
        put(inbox, "a.xml", package)
        if metadata is not None:
            put(inbox, "a.xml.json", metadata)
        handover = OsciHandover(
            inbox.directory / "a.xml", None if metadata is None else inbox.directory / "a.xml.json"
        )
        result = records_for(inbox.read(handover), hub_context, now)
        (letter,) = emitted(result, DEAD_LETTER, DeadLetter)
        expected = ("rejected", "ingest", "METADATA", path, hashlib.sha256(package).hexdigest(), [])
        assert expected == (
            result.outcome,
            letter.stage,
            letter.reason,
            letter.path,
            letter.payload_sha256,
            emitted(result, RECEIVED, Received),
        )

    def test_an_oversized_package_is_size(self, tmp_path, hub_context, now):
        (tmp_path / "inbox" / "osci").mkdir(parents=True)
        inbox = OsciInbox(tmp_path / "inbox", tmp_path / "archive", 10)
        put(inbox, "a.xml", b"x" * 11)
        put(inbox, "a.xml.json", METADATA)
        result = records_for(inbox.read(inbox.scan().ready[0]), hub_context, now)
        assert ("rejected", "SIZE") == (result.outcome, result.reason)


class TestBatch:
    def test_taken_refused_and_unreadable_pairs(self, inbox, tmp_path, hub_context, now, clock):
        """One batch: a good pair is taken, a late package refused, an unreadable pair quarantined."""
        put(inbox, "a.xml", b.inline_package())
        put(inbox, "a.xml.json", METADATA)
        put(inbox, "b.xml", b"late package")
        (inbox.directory / "c.xml").symlink_to(tmp_path)  # not listed: a symlink
        inbox.scan()
        clock.now += 60
        ready = inbox.scan().ready
        unreadable = OsciHandover(inbox.directory / "c.xml", None)
        emits, taken, aside = osci_batch(inbox, [*ready, unreadable], hub_context, lambda: now)
        topics = sorted(e.topic for e in emits)
        assert [AUDIT, AUDIT, DEAD_LETTER, RECEIVED] == topics
        digest = hashlib.sha256(b.inline_package()).hexdigest()
        sid = received_submission_id(digest, "osci", MESSAGE_ID, AUTHOR, READER)
        assert [("a.xml", sid)] == [(h.package.name, sid) for h, sid in taken]
        digest = hashlib.sha256(b"late package").hexdigest()
        assert [("b.xml", digest, "METADATA")] == [(h.package.name, d, r) for h, d, r in aside]
        assert ["c.xml"] == names(tmp_path / "archive" / "unreadable")


def test_settings_name_the_pair_timeout(settings):
    """The grace period is a setting (SOZIALHUB_OSCI_PAIR_SECONDS), five minutes by default."""
    from hub.config import load

    assert (300.0, 5.0) == (
        settings.osci_pair_seconds,
        load({"SOZIALHUB_OSCI_PAIR_SECONDS": "5"}).osci_pair_seconds,
    )


def test_a_directory_the_hub_cannot_list_is_reported_not_fatal(inbox, monkeypatch):
    """A permission error while listing is an empty listing with its errno, polled again."""

    def refuse(_path):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("connectors.filedrop.osci.os.scandir", refuse)
    listing = inbox.scan()
    assert (listing.ready, listing.waiting, listing.orphans, listing.error) == ([], 0, [], 13)
