"""The file drop's osci sub-inbox without Kafka: pairing, waiting, claiming, reading, moving, the records made.

The worker's loop (hub.stream.osci_inbox.osci_drop_task) claims the pairs of a
batch, sends their records and only then moves the pairs out of their claims;
here the pieces are checked one by one on real files (a "restart" is a new inbox
object on the same directories), the whole loop through the broker in
tests/integration/test_osci_inbox.py.
"""

from __future__ import annotations

import errno
import hashlib
import os

import pytest
from structlog.testing import capture_logs

from connectors.filedrop.claims import CLAIM_DIRECTORY, CLAIMING_SUFFIX
from connectors.filedrop.inbound import CannotClaim, Unreadable
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


def restarted(inbox: OsciInbox) -> OsciInbox:
    """A new process on the same directories (what the old one kept in memory is gone)."""
    return OsciInbox(
        inbox.directory.parent, inbox.archive, inbox.max_bytes, pair_seconds=60, clock=inbox._clock
    )


def claimed(inbox: OsciInbox) -> list[list[str]]:
    """The names in each claim of the claim directory, claims oldest first."""
    root = inbox.directory / CLAIM_DIRECTORY
    return [names(claim) for claim in sorted(root.iterdir())] if root.exists() else []


def claim_pair(inbox: OsciInbox, stem: str = "a.xml") -> OsciHandover:
    """List and claim the pair ``stem``."""
    (handover,) = [h for h in inbox.scan().ready if h.package.name == stem]
    taken = inbox.claim(handover)
    assert taken is not None
    return taken


def stopped_after_the_sidecar(inbox: OsciInbox, monkeypatch, package: bytes) -> None:
    """Hand over a.xml and its sidecar, list them, and claim them as far as the sidecar: the
    package's rename fails (as a stop of the process there would leave it)."""
    put(inbox, "a.xml", package)
    put(inbox, "a.xml.json", METADATA)
    (handover,) = inbox.scan().ready
    take = inbox.claims.take

    def the_process_stops_after_the_sidecar(source, claim):
        if source.name == "a.xml":
            raise PermissionError(errno.EPERM, "the process stopped here")
        return take(source, claim)

    monkeypatch.setattr(inbox.claims, "take", the_process_stops_after_the_sidecar)
    with pytest.raises(CannotClaim):
        inbox.claim(handover)
    monkeypatch.undo()


def package_replaced_at_its_claim(inbox: OsciInbox, monkeypatch, package: bytes) -> None:
    """From now on, the client renames ``package`` over a.xml just before the hub claims it."""
    take = inbox.claims.take

    def the_client_replaces_the_package_first(source, claim):
        if source.name == "a.xml":
            put(inbox, "a.xml", package)
        return take(source, claim)

    monkeypatch.setattr(inbox.claims, "take", the_client_replaces_the_package_first)


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

    def test_the_claim_directory_and_claimed_pairs_are_never_listed(self, inbox):
        """A claimed pair is out of the listing; the claim directory is neither a package nor a sidecar."""
        put(inbox, "a.xml", b"package")
        put(inbox, "a.xml.json", METADATA)
        put(inbox, "b.xml", b"package b")
        claim_pair(inbox)
        listing = inbox.scan()
        assert ([], 1, []) == (listing.ready, listing.waiting, listing.orphans)
        assert (inbox.directory / CLAIM_DIRECTORY).is_dir()

    def test_no_sub_inbox_is_no_work_and_is_not_created(self, tmp_path):
        """Without ``<inbox>/osci`` the scan finds nothing and creates nothing."""
        inbox = OsciInbox(tmp_path / "inbox", tmp_path / "archive", 4096)
        listing = inbox.scan()
        assert ([], 0, []) == (listing.ready, listing.waiting, listing.orphans)
        assert not (tmp_path / "inbox").exists()


class TestClaim:
    def test_a_pair_is_claimed_into_one_claim_under_its_names(self, inbox):
        """Both files leave the inbox into one final claim (no longer ``.claiming``), names kept."""
        put(inbox, "a.xml", b"package")
        put(inbox, "a.xml.json", METADATA)
        handover = claim_pair(inbox)
        claim = handover.package.parent
        expected = (
            inbox.directory / CLAIM_DIRECTORY,
            claim,
            "a.xml",
            "a.xml.json",
            False,
            [["a.xml", "a.xml.json"]],
            [CLAIM_DIRECTORY],
        )
        assert expected == (
            claim.parent,
            handover.metadata.parent,
            handover.package.name,
            handover.metadata.name,
            claim.name.endswith(CLAIMING_SUFFIX),
            claimed(inbox),
            names(inbox.directory),
        )

    def test_a_sidecar_replaced_after_the_claim_does_not_mix_into_the_pair(
        self, inbox, hub_context, now
    ):
        """The client hands over a new sidecar under the name after the claim: the pair read is the
        claimed one (its metadata, its submission id); the new sidecar stays in the inbox."""
        package = b.inline_package()
        put(inbox, "a.xml", package)
        put(inbox, "a.xml.json", METADATA)
        handover = claim_pair(inbox)
        other = render(OsciMetadata(AUTHOR, READER, "b3RoZXItbWVzc2FnZQ=="))
        put(inbox, "a.xml.json", other)
        files = inbox.read(handover)
        (record,) = emitted(records_for(files, hub_context, now), RECEIVED, Received)
        sid = received_submission_id(
            hashlib.sha256(package).hexdigest(), "osci", MESSAGE_ID, AUTHOR, READER
        )
        assert (METADATA, MESSAGE_ID, sid) == (
            files.metadata,
            record.transport_message_id,
            record.submission_id,
        )
        assert inbox.release(handover, sid)
        assert (["a.xml.json"], other) == (
            names(inbox.directory),
            (inbox.directory / "a.xml.json").read_bytes(),
        )

    def test_a_package_replaced_after_the_claim_does_not_mix_into_the_pair(self, inbox, tmp_path):
        """A new package under the name after the claim: the claimed pair is read and archived
        as it was; the new package waits in the inbox for its own sidecar."""
        put(inbox, "a.xml", b"package")
        put(inbox, "a.xml.json", METADATA)
        handover = claim_pair(inbox)
        put(inbox, "a.xml", b"another package")
        files = inbox.read(handover)
        assert (b"package", METADATA) == (files.package.data, files.metadata)
        sid = submission_id(b"package")
        assert inbox.release(handover, sid)
        listing = inbox.scan()
        archive = tmp_path / "archive"
        assert ([], 1, ["a.xml"]) == (listing.ready, listing.waiting, names(inbox.directory))
        assert (b"package", METADATA) == (
            (archive / f"{sid}.osci").read_bytes(),
            (archive / f"{sid}.osci.json").read_bytes(),
        )

    def test_a_package_renamed_over_the_name_during_the_claim_is_never_paired(
        self, inbox, monkeypatch
    ):
        """The client replaces its package after the sidecar was claimed and before the package
        is: the new package is not the listed one, so it stays in the inbox (a new handover, its
        own sidecar to come) and the claimed sidecar is an orphan: never the new package with the
        old sidecar."""
        put(inbox, "a.xml", b"package 1")
        put(inbox, "a.xml.json", METADATA)
        (handover,) = inbox.scan().ready
        take = inbox.claims.take

        def then_the_client_replaces_the_package(source, claim):
            claimed = take(source, claim)
            if source.name == "a.xml.json":
                put(inbox, "a.xml", b"package 2")
            return claimed

        monkeypatch.setattr(inbox.claims, "take", then_the_client_replaces_the_package)
        assert inbox.claim(handover) is None
        monkeypatch.undo()
        orphaned = inbox.archive / "orphaned"
        assert (["a.xml.json"], METADATA, b"package 2") == (
            names(orphaned),
            (orphaned / "a.xml.json").read_bytes(),
            (inbox.directory / "a.xml").read_bytes(),
        )
        assert [] == claimed(inbox)

    def test_a_package_renamed_over_the_name_at_the_last_moment_goes_alone(
        self, inbox, monkeypatch
    ):
        """Replaced between the check and the package's rename: the claimed package is not the
        listed one, so it is taken alone (METADATA: refused, kept) and the sidecar is an orphan."""
        put(inbox, "a.xml", b"package 1")
        put(inbox, "a.xml.json", METADATA)
        (handover,) = inbox.scan().ready
        package_replaced_at_its_claim(inbox, monkeypatch, b"package 2")
        taken = inbox.claim(handover)
        monkeypatch.undo()
        files = inbox.read(taken)
        assert (None, b"package 2", None) == (taken.metadata, files.package.data, files.metadata)
        assert ["a.xml.json"] == names(inbox.archive / "orphaned")

    def test_a_mixed_pair_whose_sidecar_cannot_be_set_aside_is_never_finished(
        self, inbox, monkeypatch
    ):
        """If the listed sidecar of a mixed claim cannot move to orphaned/, the claim stays
        ``.claiming`` (CannotClaim): a final claim holding both would be taken as a pair after a
        crash. Once the sidecar can move, the next process takes the package alone."""
        put(inbox, "a.xml", b"package 1")
        put(inbox, "a.xml.json", METADATA)
        (handover,) = inbox.scan().ready
        inbox.archive.mkdir()
        (inbox.archive / "orphaned").write_bytes(b"")  # a file where the directory would go
        package_replaced_at_its_claim(inbox, monkeypatch, b"package 2")
        with pytest.raises(CannotClaim):
            inbox.claim(handover)
        monkeypatch.undo()
        (claim,) = (inbox.directory / CLAIM_DIRECTORY).iterdir()
        assert (True, ["a.xml", "a.xml.json"]) == (
            claim.name.endswith(CLAIMING_SUFFIX),
            names(claim),
        )
        (inbox.archive / "orphaned").unlink()
        again = restarted(inbox)
        (left,) = [h for h in again.scan().ready if again.claims.holds(h.package)]
        taken = again.claim(left)
        assert (None, b"package 2") == (taken.metadata, again.read(taken).package.data)
        assert ["a.xml.json"] == names(inbox.archive / "orphaned")

    def test_a_sidecar_renamed_over_the_name_after_the_scan_is_not_paired(self, inbox):
        """The sidecar claimed is not the listed one: an orphan (kept); the package stays."""
        put(inbox, "a.xml", b"package 1")
        put(inbox, "a.xml.json", METADATA)
        (handover,) = inbox.scan().ready
        newer = render(OsciMetadata(AUTHOR, READER, "bmV1ZS1uYWNocmljaHQ="))
        put(inbox, "a.xml.json", newer)
        assert inbox.claim(handover) is None
        assert ([newer], ["a.xml"]) == (
            [(inbox.archive / "orphaned" / "a.xml.json").read_bytes()],
            [n for n in names(inbox.directory) if n != CLAIM_DIRECTORY],
        )

    def test_a_crash_between_the_renames_then_a_new_package_does_not_complete_the_pair(
        self, inbox, monkeypatch
    ):
        """The claim's name carries the listed identities: after the process stopped between
        the two renames (here: the package's rename failed), a package the client put under
        the name meanwhile is not the listed one; it stays in the inbox and the claimed
        sidecar is an orphan. A deleted file's inode number may be given to the next file:
        the modification time and size tell them apart too."""
        stopped_after_the_sidecar(inbox, monkeypatch, b"package 1")
        first = (inbox.directory / "a.xml").stat()
        (inbox.directory / "a.xml").unlink()  # the client takes its package back
        put(inbox, "a.xml", b"package 2")  # and later hands over another under the name
        later = first.st_mtime_ns + 1_000_000_000
        os.utime(inbox.directory / "a.xml", ns=(later, later))
        again = restarted(inbox)
        left = [h for h in again.scan().ready if again.claims.holds(h.package)]
        assert [None] == [again.claim(h) for h in left]
        assert (["a.xml.json"], b"package 2") == (
            names(inbox.archive / "orphaned"),
            (inbox.directory / "a.xml").read_bytes(),
        )

    def test_a_crash_between_the_renames_completes_with_the_listed_package(
        self, inbox, monkeypatch
    ):
        """The same stop, the package unchanged: the next process completes the pair."""
        stopped_after_the_sidecar(inbox, monkeypatch, b"package 1")
        again = restarted(inbox)
        (left,) = [h for h in again.scan().ready if again.claims.holds(h.package)]
        files = again.read(again.claim(left))
        assert (b"package 1", METADATA) == (files.package.data, files.metadata)

    def test_a_name_reused_while_the_first_pair_is_claimed_gets_a_claim_of_its_own(self, inbox):
        """a.xml and its sidecar claimed, the client hands over another a.xml pair before the
        first is released: two claims, each read as its own pair."""
        put(inbox, "a.xml", b"first")
        put(inbox, "a.xml.json", METADATA)
        first = claim_pair(inbox)
        second_metadata = render(OsciMetadata(AUTHOR, READER, "c2Vjb25k"))
        put(inbox, "a.xml", b"second")
        put(inbox, "a.xml.json", second_metadata)
        second = claim_pair(inbox)
        assert first.package.parent != second.package.parent
        one, two = inbox.read(first), inbox.read(second)
        expected = ((b"first", METADATA), (b"second", second_metadata))
        assert expected == ((one.package.data, one.metadata), (two.package.data, two.metadata))

    def test_two_inboxes_on_one_directory_only_one_claims_a_pair(self, inbox):
        """A second worker listed the pair too: its claim finds the sidecar gone (None, quietly),
        claims nothing, and does not skip the names from then on."""
        other = restarted(inbox)
        put(inbox, "a.xml", b"package")
        put(inbox, "a.xml.json", METADATA)
        (mine,), (theirs,) = inbox.scan().ready, other.scan().ready
        taken = inbox.claim(mine)
        assert other.claim(theirs) is None
        assert ([["a.xml", "a.xml.json"]], []) == (claimed(inbox), other.scan().ready)
        assert b"package" == inbox.read(taken).package.data
        put(inbox, "a.xml", b"again")
        put(inbox, "a.xml.json", METADATA)
        assert ["a.xml"] == [h.package.name for h in other.scan().ready]

    def test_a_lone_package_is_claimed_alone(self, inbox, clock):
        put(inbox, "a.xml", b"package")
        inbox.scan()
        clock.now += 60
        (handover,) = inbox.scan().ready
        taken = inbox.claim(handover)
        files = inbox.read(taken)
        assert (None, b"package", None) == (taken.metadata, files.package.data, files.metadata)

    def test_a_vanished_package_is_none(self, inbox):
        assert inbox.claim(OsciHandover(inbox.directory / "gone", None)) is None
        assert (
            inbox.claim(OsciHandover(inbox.directory / "gone", inbox.directory / "gone.json"))
            is None
        )
        assert [] == names(inbox.directory)

    def test_a_package_gone_before_the_claim_leaves_its_sidecar_an_orphan(self, inbox):
        """The package went before the claim (the client took it back): the sidecar is claimed
        first, then set aside as an orphan at once, never read as a pair."""
        put(inbox, "a.xml", b"package")
        put(inbox, "a.xml.json", METADATA)
        (handover,) = inbox.scan().ready
        (inbox.directory / "a.xml").unlink()
        with capture_logs() as logs:
            assert inbox.claim(handover) is None
        assert [{"event": "filedrop.osci_orphan", "moved": True, "log_level": "warning"}] == logs
        assert (["a.xml.json"], []) == (names(inbox.archive / "orphaned"), names(inbox.directory))

    def test_a_package_that_cannot_be_claimed_keeps_its_sidecar_claimed(self, inbox, monkeypatch):
        """The sidecar is claimed, the package's rename fails (as in a sticky inbox whose files
        belong to the client): CannotClaim, the package stays in the inbox and is skipped by this
        process (never taken alone, never METADATA), the sidecar waits in its ``.claiming``
        claim; the next process completes the pair. (os.rename is wrapped: as root no
        permission can make only the second rename fail.)"""
        put(inbox, "a.xml", b"package")
        put(inbox, "a.xml.json", METADATA)
        (handover,) = inbox.scan().ready
        rename = os.rename

        def refuse_the_package(source, target, **kwargs):
            if str(source) == str(inbox.directory / "a.xml"):
                raise PermissionError(errno.EPERM, "Operation not permitted")
            return rename(source, target, **kwargs)

        monkeypatch.setattr(os, "rename", refuse_the_package)
        with pytest.raises(CannotClaim) as caught:
            inbox.claim(handover)
        monkeypatch.undo()
        (claim,) = (inbox.directory / CLAIM_DIRECTORY).iterdir()
        listing = inbox.scan()
        expected = (errno.EPERM, True, ["a.xml.json"], [CLAIM_DIRECTORY, "a.xml"], [], 0)
        assert expected == (
            caught.value.errno,
            claim.name.endswith(CLAIMING_SUFFIX),
            names(claim),
            names(inbox.directory),
            listing.ready,
            listing.waiting,
        )
        again = restarted(inbox)
        (left,) = again.scan().ready
        files = again.read(again.claim(left))
        assert (b"package", METADATA) == (files.package.data, files.metadata)

    def test_a_symlinked_sidecar_is_unreadable(self, inbox, tmp_path):
        """A sidecar swapped for a symlink (e.g. to a key file) is claimed as the link, never followed."""
        secret = tmp_path / "hub.key"
        secret.write_bytes(b"-----BEGIN PRIVATE KEY-----")
        put(inbox, "a.xml", b"package")
        (inbox.directory / "a.xml.json").symlink_to(secret)
        handover = inbox.claim(
            OsciHandover(inbox.directory / "a.xml", inbox.directory / "a.xml.json")
        )
        with pytest.raises(Unreadable):
            inbox.read(handover)
        assert inbox.quarantine(handover)
        kept = tmp_path / "archive" / "unreadable"
        assert (["a.xml", "a.xml.json"], True) == (names(kept), (kept / "a.xml.json").is_symlink())
        assert (b"-----BEGIN PRIVATE KEY-----", []) == (secret.read_bytes(), names(inbox.directory))

    def test_a_directory_as_package_is_unreadable(self, inbox, tmp_path):
        """A directory under a package name is claimed as it is, refused, quarantined."""
        put(inbox, "a.xml.json", METADATA)
        (inbox.directory / "a.xml").mkdir()
        taken = inbox.claim(OsciHandover(inbox.directory / "a.xml", inbox.directory / "a.xml.json"))
        with pytest.raises(Unreadable):
            inbox.read(taken)
        assert inbox.quarantine(taken)
        kept = tmp_path / "archive" / "unreadable"
        assert (["a.xml", "a.xml.json"], True, []) == (
            names(kept),
            (kept / "a.xml").is_dir(),
            names(inbox.directory),
        )

    def test_a_directory_put_under_a_listed_package_name_is_not_claimed(self, inbox):
        """Not the listed package: left where it is (never listed: not a file); the sidecar is
        an orphan, kept."""
        put(inbox, "a.xml", b"package")
        put(inbox, "a.xml.json", METADATA)
        (handover,) = inbox.scan().ready
        (inbox.directory / "a.xml").unlink()
        (inbox.directory / "a.xml").mkdir()
        assert inbox.claim(handover) is None
        assert (["a.xml.json"], True, []) == (
            names(inbox.archive / "orphaned"),
            (inbox.directory / "a.xml").is_dir(),
            inbox.scan().ready,
        )


class TestRead:
    def test_reads_both_files(self, inbox):
        put(inbox, "a.xml", b"package")
        put(inbox, "a.xml.json", METADATA)
        files = inbox.read(claim_pair(inbox))
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
        files = inbox.read(claim_pair(inbox))
        assert (None, True) == (files.metadata, files.metadata_too_large)

    @pytest.mark.timeout(20)
    def test_an_oversized_sidecar_is_not_read_to_its_end(self, inbox):
        """A sidecar of 64 GiB (sparse): reading stops after the limit; hashing it to its end
        would take minutes."""
        put(inbox, "a.xml", b"package")
        with (inbox.directory / "a.xml.json").open("wb") as sidecar:
            sidecar.truncate(64 * 1024**3)
        files = inbox.read(claim_pair(inbox))
        assert (None, True) == (files.metadata, files.metadata_too_large)

    def test_a_pair_whose_sidecar_left_its_claim_is_none(self, inbox):
        """A pair leaves its claim package first; a claimed pair without its sidecar was taken by
        another worker: None, never a package read without its metadata."""
        put(inbox, "a.xml", b"package")
        put(inbox, "a.xml.json", METADATA)
        handover = claim_pair(inbox)
        handover.metadata.unlink()
        assert inbox.read(handover) is None


class TestRestart:
    def test_a_pair_left_claimed_is_taken_first_with_the_same_submission_id(
        self, inbox, hub_context, now
    ):
        """A crash after the claim (maybe after the send), before the release: the next process
        lists the claimed pair first and reads it again: the same records, the same submission id."""
        package = b.inline_package()
        put(inbox, "a.xml", package)
        put(inbox, "a.xml.json", METADATA)
        handover = claim_pair(inbox)
        (before,) = emitted(records_for(inbox.read(handover), hub_context, now), RECEIVED, Received)
        put(inbox, "b.xml", b"package b")
        put(inbox, "b.xml.json", METADATA)
        again = restarted(inbox)
        with capture_logs() as logs:
            ready = again.scan().ready
        assert [handover, "b.xml"] == [ready[0], ready[1].package.name]
        assert [
            {"event": "filedrop.retaken", "inbox": "osci", "files": 2, "log_level": "warning"}
        ] == logs
        assert handover == again.claim(ready[0])
        (after,) = emitted(records_for(again.read(handover), hub_context, now), RECEIVED, Received)
        assert before == after
        assert again.release(handover, after.submission_id)
        assert ([], ["b.xml", "b.xml.json"]) == (claimed(again), names(again.directory))

    def test_a_crash_between_the_claim_renames_is_completed_with_the_package(self, inbox):
        """The sidecar was claimed, the package not yet (a ``.claiming`` claim): the next process
        completes the pair from the inbox and takes it as a pair; nothing is refused METADATA."""
        put(inbox, "a.xml", b"package")
        put(inbox, "a.xml.json", METADATA)
        claim = inbox.claims.new(claiming=True)
        inbox.claims.take(inbox.directory / "a.xml.json", claim)  # then the crash
        again = restarted(inbox)
        listing = again.scan()
        assert ([OsciHandover(claim / "a.xml", claim / "a.xml.json")], 1) == (
            listing.ready,
            listing.waiting,  # the package, alone in the inbox for now
        )
        handover = again.claim(listing.ready[0])
        files = again.read(handover)
        final = claim.with_name(claim.name.removesuffix(CLAIMING_SUFFIX))
        assert (final, b"package", METADATA) == (
            handover.package.parent,
            files.package.data,
            files.metadata,
        )
        assert ([], 0, [CLAIM_DIRECTORY]) == (
            again.scan().ready,
            again.scan().waiting,
            names(again.directory),
        )

    def test_a_crash_between_the_claim_renames_without_the_package_leaves_an_orphan(self, inbox):
        """The half-claimed pair's package is gone by the restart: its sidecar is an orphan."""
        put(inbox, "a.xml.json", METADATA)
        claim = inbox.claims.new(claiming=True)
        inbox.claims.take(inbox.directory / "a.xml.json", claim)
        again = restarted(inbox)
        (left,) = again.scan().ready
        assert again.claim(left) is None
        assert (["a.xml.json"], []) == (names(inbox.archive / "orphaned"), names(inbox.directory))

    def test_a_sidecar_left_alone_in_a_claim_is_an_orphan_at_once(self, inbox, tmp_path):
        """A crash between the two moves of a release leaves the sidecar alone in its claim: the
        next process lists it as an orphan (no waiting) and sets it aside."""
        put(inbox, "a.xml", b"package")
        put(inbox, "a.xml.json", METADATA)
        handover = claim_pair(inbox)
        sid = submission_id(b"package")
        inbox.claims.move_out(handover.package, tmp_path / "archive" / f"{sid}.osci")  # the crash
        again = restarted(inbox)
        listing = again.scan()
        assert ([], [handover.metadata]) == (listing.ready, listing.orphans)
        assert again.set_orphan_aside(handover.metadata)
        assert (["a.xml.json"], [], []) == (
            names(tmp_path / "archive" / "orphaned"),
            names(again.directory),
            again.scan().orphans,
        )

    def test_a_lone_package_left_claimed_is_taken_alone(self, inbox, clock):
        put(inbox, "a.xml", b"package")
        inbox.scan()
        clock.now += 60
        taken = inbox.claim(inbox.scan().ready[0])
        again = restarted(inbox)
        assert [taken] == again.scan().ready
        files = again.read(again.claim(taken))
        assert (b"package", None) == (files.package.data, files.metadata)


class TestMoves:
    def test_release_archives_the_pair_by_submission_id(self, inbox, tmp_path):
        put(inbox, "a.xml", b"package")
        put(inbox, "a.xml.json", METADATA)
        sid = submission_id(b"package")
        assert inbox.release(claim_pair(inbox), sid)
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
        assert inbox.release(claim_pair(inbox), submission_id(b"package"))
        assert [] == names(inbox.directory)

    @pytest.mark.parametrize(
        ("reason", "directory"), [("SIZE", "oversize"), ("METADATA", "metadata")]
    )
    def test_set_aside_keeps_the_pair_by_digest(self, inbox, tmp_path, reason, directory):
        put(inbox, "a.xml", b"package")
        put(inbox, "a.xml.json", b"{broken")
        digest = hashlib.sha256(b"package").hexdigest()
        assert inbox.set_aside(claim_pair(inbox), digest, reason)
        target = tmp_path / "archive" / directory
        assert [f"sha256-{digest}", f"sha256-{digest}.json"] == names(target)
        assert [] == names(inbox.directory)

    def test_the_package_moves_first_and_its_sidecar_stays_if_it_cannot(self, inbox, tmp_path):
        """A package that cannot leave its claim keeps its sidecar there: never a package without
        metadata; this process lists neither again, the next one takes the pair again."""
        put(inbox, "a.xml", b"package")
        put(inbox, "a.xml.json", METADATA)
        handover = claim_pair(inbox)
        sid = submission_id(b"package")
        blocker = tmp_path / "archive" / f"{sid}.osci"
        blocker.mkdir(parents=True)
        (blocker / "occupied").write_bytes(b"")  # a non-empty directory cannot be renamed over
        assert not inbox.release(handover, sid)
        listing = inbox.scan()
        expected = (["a.xml", "a.xml.json"], [], [], [f"{sid}.osci"])
        assert expected == (
            names(handover.package.parent),
            listing.ready,
            listing.orphans,
            names(tmp_path / "archive"),
        )
        assert [handover] == restarted(inbox).scan().ready

    def test_quarantine_and_orphans_keep_their_names(self, inbox, tmp_path):
        put(inbox, "a.xml", b"package")
        put(inbox, "a.xml.json", METADATA)
        put(inbox, "lonely.json", METADATA)
        assert inbox.quarantine(
            inbox.claim(OsciHandover(inbox.directory / "a.xml", inbox.directory / "a.xml.json"))
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
        result = records_for(inbox.read(inbox.claim(inbox.scan().ready[0])), hub_context, now)
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
        result = records_for(inbox.read(inbox.claim(handover)), hub_context, now)
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
        result = records_for(inbox.read(inbox.claim(inbox.scan().ready[0])), hub_context, now)
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
