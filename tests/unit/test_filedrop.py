"""File-drop connectors without Kafka: the inbox (what is claimed, read, released) and the outbox.

The inbox tests work on real files in a temporary directory: a "client" writes and
renames files the way a portal's client does, a "restart" is a new inbox object on
the same directories.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
import tracemalloc
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from connectors.filedrop.claims import CLAIM_DIRECTORY
from connectors.filedrop.inbound import CannotClaim, FileDropInbox, Unreadable
from connectors.filedrop.outbound import FileDropOutbox, UnsafeName

SID = "sub-" + "ab" * 16
SID2 = "sub-" + "ef" * 16
DID = "dlv-" + "cd" * 16


@pytest.fixture
def inbox(tmp_path) -> FileDropInbox:
    return FileDropInbox(tmp_path / "inbox", tmp_path / "archive", max_bytes=1024)


@pytest.fixture
def outbox(tmp_path) -> FileDropOutbox:
    return FileDropOutbox(tmp_path / "outbox")


def names(directory) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def leftovers(root) -> list[str]:
    """Every file under ``root`` whose name marks it as temporary or hidden (the delivery ledger aside)."""
    return sorted(
        str(p.relative_to(root))
        for p in root.rglob("*")
        if (p.name.startswith(".") or p.name.endswith((".part", ".tmp")))
        and p.relative_to(root).parts[0] != ".delivered"
    )


def drop(box: FileDropInbox, name: str, data: bytes) -> Path:
    """Atomically, as a client must: an ignored name first, then the rename (over any old file)."""
    temporary = box.inbox / f".{name}.part"
    temporary.write_bytes(data)
    temporary.replace(box.inbox / name)
    return box.inbox / name


def take(box: FileDropInbox, name: str) -> Path:
    """Claim the inbox file ``name``: its claimed path."""
    claimed = box.claim(box.inbox / name)
    assert claimed is not None
    return claimed


def claimed_files(box: FileDropInbox) -> list[str]:
    """``<claim>/<name>`` of every file in the claim directory."""
    root = box.inbox / CLAIM_DIRECTORY
    return sorted(str(p.relative_to(root)) for p in root.glob("*/*")) if root.exists() else []


class TestPending:
    def test_ready_files_sorted_by_name(self, inbox):
        """pending() returns the ready files, sorted by name."""
        for name in ("c.xml", "a.xml", "b.xml"):
            (inbox.inbox / name).write_bytes(b"<x/>")
        expected = ["a.xml", "b.xml", "c.xml"]
        assert expected == [p.name for p in inbox.pending()]

    @pytest.mark.parametrize(
        "name",
        [".hidden.xml", ".a", "upload.xml.part", "upload.xml.tmp", "x.partial", ".x.swp"],
    )
    def test_files_being_written_are_ignored(self, inbox, name):
        """Dotfiles and *.part/*.tmp (files still being written) are not taken."""
        (inbox.inbox / name).write_bytes(b"<x/>")
        (inbox.inbox / "ready.xml").write_bytes(b"<x/>")
        expected = ["ready.xml"]
        assert expected == [p.name for p in inbox.pending()]

    def test_directories_are_ignored(self, inbox):
        """A directory in the inbox is not a submission."""
        (inbox.inbox / "folder.xml").mkdir()
        (inbox.inbox / "ready.xml").write_bytes(b"<x/>")
        expected = ["ready.xml"]
        assert expected == [p.name for p in inbox.pending()]

    def test_symlinks_are_ignored(self, inbox, tmp_path):
        """A symlink (to a file or anywhere else) is never taken: /etc/passwd stays out."""
        outside = tmp_path / "outside.xml"
        outside.write_bytes(b"<secret/>")
        (inbox.inbox / "link.xml").symlink_to(outside)
        (inbox.inbox / "dangling.xml").symlink_to(tmp_path / "missing.xml")
        (inbox.inbox / "ready.xml").write_bytes(b"<x/>")
        expected = ["ready.xml"]
        assert expected == [p.name for p in inbox.pending()]

    def test_limit(self, inbox):
        """pending(limit) returns at most ``limit`` files, the first by name."""
        for i in range(5):
            (inbox.inbox / f"{i}.xml").write_bytes(b"<x/>")
        expected = ["0.xml", "1.xml"]
        assert expected == [p.name for p in inbox.pending(limit=2)]

    def test_paths_are_inside_the_inbox(self, inbox):
        """Returned paths point into the inbox directory."""
        (inbox.inbox / "a.xml").write_bytes(b"<x/>")
        expected = [inbox.inbox / "a.xml"]
        assert expected == inbox.pending()

    def test_inbox_is_created(self, tmp_path):
        """The inbox directory is created when missing."""
        FileDropInbox(tmp_path / "new" / "inbox", None, 10)
        assert (tmp_path / "new" / "inbox").is_dir()

    def test_the_claim_directory_and_claimed_files_are_never_listed(self, inbox):
        """While a file is claimed, neither it nor the claim directory is pending."""
        drop(inbox, "a.xml", b"<a/>")
        drop(inbox, "b.xml", b"<b/>")
        take(inbox, "a.xml")
        assert (inbox.inbox / CLAIM_DIRECTORY).is_dir()
        assert [inbox.inbox / "b.xml"] == inbox.pending()


class TestClaim:
    def test_claim_renames_the_file_into_a_claim_of_its_own_keeping_its_name(self, inbox):
        """The claimed file is <inbox>/.sozialhub-claimed/<claim>/<name>, the same file, out of the inbox."""
        path = drop(inbox, "urn-de-xta-messageid-1.xml", b"<a/>")
        inode = path.stat().st_ino
        claimed = inbox.claim(path)
        expected = (inbox.inbox / CLAIM_DIRECTORY, "urn-de-xta-messageid-1.xml", inode, False)
        assert expected == (
            claimed.parent.parent,
            claimed.name,
            claimed.stat().st_ino,
            path.exists(),
        )

    def test_the_claim_directory_is_the_hubs_own(self, inbox):
        """Created with mode 0700 (no group or other access), owned by the hub's user."""
        take(inbox, drop(inbox, "a.xml", b"<a/>").name)
        status = (inbox.inbox / CLAIM_DIRECTORY).stat()
        assert (0o700, os.geteuid()) == (stat.S_IMODE(status.st_mode), status.st_uid)

    def test_the_claim_directory_goes_once_nothing_is_claimed(self, inbox):
        """After the last release the inbox looks as before: no claim directory left."""
        drop(inbox, "a.xml", b"<a/>")
        drop(inbox, "b.xml", b"<b/>")
        first, second = take(inbox, "a.xml"), take(inbox, "b.xml")
        assert inbox.release(first, SID)
        assert [f"{second.parent.name}/b.xml"] == claimed_files(inbox)
        assert inbox.release(second, SID2)
        assert ([], [f"{SID}.xml", f"{SID2}.xml"]) == (names(inbox.inbox), names(inbox.archive))

    def test_a_file_renamed_over_the_name_after_the_claim_stays_to_be_taken_as_itself(self, inbox):
        """A client renames a new file over the name after the claim and before the release:
        the claimed file is read and archived; the new one stays in the inbox and is taken next."""
        path = drop(inbox, "urn-de-xta-messageid-1.xml", b"<first/>")
        claimed = inbox.claim(path)
        drop(inbox, path.name, b"<second/>")
        assert b"<first/>" == inbox.read(claimed).data
        assert inbox.release(claimed, SID)
        assert ([path], b"<first/>") == (
            inbox.pending(),
            (inbox.archive / f"{SID}.xml").read_bytes(),
        )
        again = inbox.claim(path)
        assert b"<second/>" == inbox.read(again).data
        assert inbox.release(again, SID2)
        assert ([], b"<second/>") == (inbox.pending(), (inbox.archive / f"{SID2}.xml").read_bytes())

    def test_a_file_renamed_over_the_name_before_the_read_is_not_read(self, inbox):
        """What a client renames over the name after the claim never replaces what is read."""
        path = drop(inbox, "a.xml", b"<first/>")
        claimed = inbox.claim(path)
        drop(inbox, "a.xml", b"<second/>")
        assert (b"<first/>", b"<second/>") == (inbox.read(claimed).data, path.read_bytes())

    def test_a_replaced_oversize_file_is_set_aside_and_the_new_one_stays(self, inbox):
        """The oversize file that was claimed is set aside; a small one renamed over its name stays."""
        path = drop(inbox, "big.xml", b"x" * 2048)
        claimed = inbox.claim(path)
        digest = inbox.read(claimed).sha256
        drop(inbox, "big.xml", b"<small/>")
        assert inbox.set_aside(claimed, digest)
        kept = inbox.rejected / f"sha256-{digest}"
        assert ([path], b"x" * 2048) == (inbox.pending(), kept.read_bytes())
        assert b"<small/>" == inbox.read(take(inbox, "big.xml")).data

    def test_a_name_reused_while_the_first_is_claimed_gets_a_claim_of_its_own(self, inbox):
        """a.xml claimed, another a.xml dropped and claimed before the first is released: two
        claims, neither overwrites the other, each read and archived as itself."""
        first = take(inbox, drop(inbox, "a.xml", b"<first/>").name)
        second = take(inbox, drop(inbox, "a.xml", b"<second/>").name)
        assert first != second
        assert (first.name, second.name) == ("a.xml", "a.xml")
        assert (b"<first/>", b"<second/>") == (inbox.read(first).data, inbox.read(second).data)
        assert inbox.release(second, SID2)
        assert inbox.release(first, SID)
        expected = (b"<first/>", b"<second/>", [], [])
        assert expected == (
            (inbox.archive / f"{SID}.xml").read_bytes(),
            (inbox.archive / f"{SID2}.xml").read_bytes(),
            names(inbox.inbox),
            inbox.pending(),
        )

    def test_two_inboxes_on_one_directory_only_one_claims_a_file(self, inbox, tmp_path):
        """A second worker listed the file too: its claim finds it gone (None, quietly) and it
        reads nothing; the file is not remembered as stuck there."""
        other = FileDropInbox(tmp_path / "inbox", tmp_path / "archive", max_bytes=1024)
        drop(inbox, "a.xml", b"<a/>")
        assert [p.name for p in inbox.pending()] == [p.name for p in other.pending()] == ["a.xml"]
        claimed = inbox.claim(inbox.inbox / "a.xml")
        assert other.claim(other.inbox / "a.xml") is None
        assert ([], b"<a/>") == (other.pending(), inbox.read(claimed).data)
        drop(inbox, "a.xml", b"<again/>")  # the name comes back: the second worker may take it
        assert [other.inbox / "a.xml"] == other.pending()

    def test_a_file_gone_before_the_claim_is_none(self, inbox):
        """A file that disappeared between pending() and claim() gives None."""
        assert inbox.claim(inbox.inbox / "gone.xml") is None
        assert not (inbox.inbox / CLAIM_DIRECTORY).exists()

    @pytest.mark.parametrize("kind", ["symlink", "file", "foreign-mode", "foreign-owner"])
    def test_a_claim_directory_that_is_not_the_hubs_own_claims_nothing(self, inbox, tmp_path, kind):
        """A symbolic link (or a file, or a directory others may write) planted as the claim
        directory: nothing is renamed into it or read through it; the file stays in the inbox,
        CannotClaim is raised once and the name is not tried again by this process."""
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir(mode=0o700)
        planted = inbox.inbox / CLAIM_DIRECTORY
        if kind == "symlink":
            planted.symlink_to(elsewhere)
        elif kind == "file":
            planted.write_bytes(b"")
        else:
            planted.mkdir()
            if kind == "foreign-mode":
                planted.chmod(0o777)
            elif os.geteuid() == 0:
                os.chown(planted, 4242, 4242)
            else:
                pytest.skip("needs root to give the directory to another user")
        path = drop(inbox, "a.xml", b"<a/>")
        with pytest.raises(CannotClaim) as caught:
            inbox.claim(path)
        expected = (True, [], [], True)
        assert expected == (
            caught.value.errno in {errno.ELOOP, errno.ENOTDIR, errno.EPERM},
            inbox.pending(),
            names(elsewhere),
            path.exists(),
        )


class TestRead:
    @pytest.mark.parametrize("size", [0, 1, 1023, 1024])
    def test_within_limit_returns_the_bytes(self, inbox, size):
        """A file up to max_bytes is read whole, with its SHA-256, from its claimed path."""
        body = os.urandom(size)
        claimed = take(inbox, drop(inbox, "a.xml", body).name)
        result = inbox.read(claimed)
        expected = (claimed, body, hashlib.sha256(body).hexdigest())
        assert expected == (result.path, result.data, result.sha256)

    @pytest.mark.parametrize("size", [1025, 65536, 65537, 200_000])
    def test_over_limit_returns_no_data_but_the_right_digest(self, inbox, size):
        """A file larger than max_bytes gives data None and the SHA-256 of the whole file."""
        body = os.urandom(size)
        result = inbox.read(take(inbox, drop(inbox, "big.xml", body).name))
        expected = (None, hashlib.sha256(body).hexdigest())
        assert expected == (result.data, result.sha256)

    def test_vanished_claimed_file_is_none(self, inbox):
        """A claimed file that is gone (another worker took it over after a restart) gives None."""
        claimed = take(inbox, drop(inbox, "a.xml", b"<a/>").name)
        claimed.unlink()
        assert inbox.read(claimed) is None

    def test_only_claimed_paths_are_read(self, inbox):
        """Reading in place in the inbox is a programming error: claim first."""
        path = drop(inbox, "a.xml", b"<a/>")
        with pytest.raises(ValueError, match="claim"):
            inbox.read(path)

    def test_over_limit_file_is_never_buffered(self, tmp_path):
        """Reading 16 MiB with a 1 MiB limit never holds much more than the limit in memory."""
        limit, chunk = 1 << 20, 1 << 16
        box = FileDropInbox(tmp_path / "inbox", None, max_bytes=limit)
        path = box.inbox / "huge.xml"
        digest = hashlib.sha256()
        with path.open("wb") as handle:
            for _ in range(256):
                block = os.urandom(chunk)
                digest.update(block)
                handle.write(block)
        claimed = take(box, "huge.xml")
        tracemalloc.start()
        try:
            result = box.read(claimed)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        # The limit, plus the chunk being read, plus interpreter overhead; far below 16 MiB.
        expected = (None, digest.hexdigest(), True)
        assert expected == (result.data, result.sha256, peak < limit + 4 * chunk), peak


class TestRelease:
    def test_moves_into_archive_named_by_submission_id(self, inbox):
        """release() moves the file to <archive>/<submission id>.xml, content unchanged."""
        claimed = take(inbox, drop(inbox, "upload-1.xml", b"<x/>").name)
        inbox.release(claimed, SID)
        expected = (False, b"<x/>", [], [])
        actual = (
            claimed.exists(),
            (inbox.archive / f"{SID}.xml").read_bytes(),
            inbox.pending(),
            names(inbox.inbox),
        )
        assert expected == actual

    def test_deletes_without_archive(self, tmp_path):
        """Without an archive directory release() deletes the file."""
        box = FileDropInbox(tmp_path / "inbox", None, max_bytes=1024)
        claimed = take(box, drop(box, "upload-1.xml", b"<x/>").name)
        assert box.release(claimed, SID)
        expected = (False, [], ["inbox"])
        assert expected == (claimed.exists(), names(tmp_path / "inbox"), names(tmp_path))

    def test_release_of_a_vanished_file_is_harmless(self, inbox, tmp_path):
        """Releasing a claimed file that is already gone (released by another worker) does not raise."""
        claimed = take(inbox, drop(inbox, "a.xml", b"<a/>").name)
        claimed.unlink()
        assert inbox.release(claimed, SID)
        box = FileDropInbox(tmp_path / "other", None, max_bytes=1024)
        gone = take(box, drop(box, "b.xml", b"<b/>").name)
        gone.unlink()
        assert box.release(gone, SID)

    def test_a_target_directory_gone_before_the_move_keeps_the_file_claimed(
        self, inbox, monkeypatch
    ):
        """The archive directory is removed between its creation and the rename (a clean-up
        job): the rename finds no target directory, which is not "gone already": the release
        fails and the file stays claimed, for the next process."""
        claimed = take(inbox, drop(inbox, "a.xml", b"<a/>").name)
        monkeypatch.setattr(Path, "mkdir", lambda *args, **kwargs: None)  # made, then removed
        assert not inbox.release(claimed, SID)
        monkeypatch.undo()
        assert (True, False) == (inbox.claims.exists(claimed), inbox.archive.exists())

    def test_a_claim_directory_that_fails_during_the_read_is_not_the_files_fault(self, inbox):
        """Claimed, then the claim directory is replaced (here: made writable by others): the
        read raises the directory's error, not Unreadable: the file is neither quarantined nor
        skipped; the poller stops the worker and the next start takes it again."""
        claimed = take(inbox, drop(inbox, "a.xml", b"<a/>").name)
        inbox.claims.path.chmod(0o777)
        with pytest.raises(OSError) as caught:
            inbox.read(claimed)
        inbox.claims.path.chmod(0o700)
        assert (False, errno.EPERM) == (isinstance(caught.value, Unreadable), caught.value.errno)
        assert inbox.read(claimed).data == b"<a/>"

    def test_same_submission_twice_keeps_one_archive_copy(self, inbox):
        """The same bytes dropped twice end up as one archived file (content-addressed name)."""
        for name in ("first.xml", "second.xml"):
            inbox.release(take(inbox, drop(inbox, name, b"<same/>").name), SID)
        expected = [f"{SID}.xml"]
        assert expected == names(inbox.archive)


@pytest.fixture
def elsewhere(tmp_path):
    """An archive directory on another file system than tmp_path (tmpfs), removed afterwards."""
    shm = Path("/dev/shm")
    if (
        not shm.is_dir()
        or not os.access(shm, os.W_OK)
        or shm.stat().st_dev == tmp_path.stat().st_dev
    ):
        pytest.skip("needs /dev/shm on another file system")
    archive = shm / f"sozialhub-test-{os.getpid()}-{tmp_path.name}"
    yield archive
    for leftover in sorted(archive.rglob("*"), reverse=True):
        if leftover.is_dir() and not leftover.is_symlink():
            leftover.rmdir()
        else:
            leftover.unlink()
    if archive.exists():
        archive.rmdir()


class TestArchiveOnAnotherFileSystem:
    def test_a_file_is_copied_into_place_then_deleted(self, tmp_path, elsewhere):
        """Copied under a temporary name, renamed into place, then the claimed file is deleted;
        bytes and mode kept, nothing temporary left, the inbox as before."""
        box = FileDropInbox(tmp_path / "inbox", elsewhere, max_bytes=1024)
        drop(box, "a.xml", b"<a/>").chmod(0o640)
        assert box.release(take(box, "a.xml"), SID)
        kept = elsewhere / f"{SID}.xml"
        expected = (b"<a/>", 0o640, [f"{SID}.xml"], [])
        assert expected == (
            kept.read_bytes(),
            stat.S_IMODE(kept.stat().st_mode),
            names(elsewhere),
            names(box.inbox),
        )

    def test_a_name_as_long_as_names_go_is_copied_under_a_short_temporary_name(
        self, tmp_path, elsewhere
    ):
        """An unreadable file keeps its name in quarantine: one of 255 bytes moves across too."""
        box = FileDropInbox(tmp_path / "inbox", elsewhere, max_bytes=1024)
        name = "a" * 251 + ".xml"
        (box.inbox / name).symlink_to(tmp_path / "nowhere")
        claimed = take(box, name)
        with pytest.raises(Unreadable):
            box.read(claimed)
        assert box.quarantine(claimed)
        assert [name] == names(elsewhere / "unreadable")

    def test_a_symlink_is_quarantined_as_a_link(self, tmp_path, elsewhere):
        """A symlink claimed in place of a file moves across as the link; its target is never read."""
        secret = tmp_path / "hub.key"
        secret.write_bytes(b"-----BEGIN PRIVATE KEY-----")
        box = FileDropInbox(tmp_path / "inbox", elsewhere, max_bytes=1024)
        (box.inbox / "a.xml").symlink_to(secret)
        claimed = take(box, "a.xml")
        with pytest.raises(Unreadable):
            box.read(claimed)
        assert box.quarantine(claimed)
        kept = elsewhere / "unreadable" / "a.xml"
        assert (True, secret, ["a.xml"], []) == (
            kept.is_symlink(),
            kept.readlink(),
            names(elsewhere / "unreadable"),
            names(box.inbox),
        )

    def test_a_directory_cannot_be_quarantined_and_stays_claimed(self, tmp_path, elsewhere):
        """Only files and links are copied across: a claimed directory stays in its claim
        (quarantined: false), nothing half-copied is left beside the target."""
        box = FileDropInbox(tmp_path / "inbox", elsewhere, max_bytes=1024)
        (box.inbox / "a.xml").mkdir()
        claimed = take(box, "a.xml")
        assert not box.quarantine(claimed)
        assert (True, []) == (claimed.is_dir(), names(elsewhere / "unreadable"))


class TestRestart:
    def test_files_left_claimed_are_taken_first_after_a_restart(self, tmp_path):
        """A crash after the claim (maybe after the send), before the release: a new process
        lists the claimed file first, with its name, reads the same bytes and releases it."""
        first = FileDropInbox(tmp_path / "inbox", tmp_path / "archive", max_bytes=1024)
        drop(first, "urn-de-xta-messageid-1.xml", b"<left/>")
        claimed = take(first, "urn-de-xta-messageid-1.xml")
        drop(first, "a.xml", b"<new/>")
        del first  # the crash
        restarted = FileDropInbox(tmp_path / "inbox", tmp_path / "archive", max_bytes=1024)
        with capture_logs() as logs:
            listed = restarted.pending()
        assert [claimed, restarted.inbox / "a.xml"] == listed
        assert [{"event": "filedrop.retaken", "files": 1, "log_level": "warning"}] == logs
        assert claimed == restarted.claim(claimed)  # claimed already: as it is
        assert b"<left/>" == restarted.read(claimed).data
        assert restarted.release(claimed, SID)
        assert ([restarted.inbox / "a.xml"], ["a.xml"]) == (
            restarted.pending(),
            names(restarted.inbox),
        )

    def test_left_files_stay_pending_until_taken(self, tmp_path):
        """More left claims than one batch: those not taken yet are listed again next time."""
        first = FileDropInbox(tmp_path / "inbox", tmp_path / "archive", max_bytes=1024)
        left = [take(first, drop(first, f"{n}.xml", b"<x/>").name) for n in "abc"]
        restarted = FileDropInbox(tmp_path / "inbox", tmp_path / "archive", max_bytes=1024)
        assert left[:2] == restarted.pending(limit=2)
        restarted.claim(left[0])
        assert left[1:] == restarted.pending()

    def test_a_left_file_the_restarted_process_cannot_release_is_taken_by_the_next(self, tmp_path):
        """When the archive cannot be written, release() reports it, the file stays claimed,
        this process does not list it again, and the next process takes it again."""
        archive = tmp_path / "archive"
        archive.write_bytes(b"not a directory")
        box = FileDropInbox(tmp_path / "inbox", archive, 1000)
        claimed = take(box, drop(box, "a.xml", b"x").name)
        assert not box.release(claimed, "sub-" + "0" * 32)
        assert ([], True) == (box.pending(), claimed.exists())
        assert [claimed] == FileDropInbox(tmp_path / "inbox", archive, 1000).pending()

    def test_empty_claims_left_by_a_crash_are_removed(self, tmp_path):
        """A crash between creating a claim and renaming into it (or after the last file left)
        leaves an empty claim: removed at the next start, with the claim directory."""
        box = FileDropInbox(tmp_path / "inbox", tmp_path / "archive", max_bytes=1024)
        box.claims.new()
        with capture_logs() as logs:
            listed = FileDropInbox(tmp_path / "inbox", tmp_path / "archive", 1024).pending()
        assert ([], [], []) == (listed, names(box.inbox), logs)

    def test_a_planted_claim_directory_is_never_read_at_start(self, tmp_path):
        """A symbolic link named like the claim directory (to the hub's keys, say) is not
        followed: nothing in it is listed; the refusal is logged with its errno only."""
        keys = tmp_path / "keys" / "0000"
        keys.mkdir(parents=True)
        (keys / "hub.key").write_bytes(b"-----BEGIN PRIVATE KEY-----")
        (tmp_path / "inbox").mkdir()
        (tmp_path / "inbox" / CLAIM_DIRECTORY).symlink_to(tmp_path / "keys")
        box = FileDropInbox(tmp_path / "inbox", tmp_path / "archive", max_bytes=1024)
        with capture_logs() as logs:
            assert [] == box.pending()
        assert [("filedrop.cannot_claim", "error")] == [(e["event"], e["log_level"]) for e in logs]
        assert "hub.key" not in repr(logs)


class TestSetAside:
    def test_moves_oversize_file_out_of_the_inbox(self, inbox):
        """set_aside() moves the file to the oversize directory named by its SHA-256."""
        body = b"x" * 2048
        claimed = take(inbox, drop(inbox, "big.xml", body).name)
        digest = inbox.read(claimed).sha256
        inbox.set_aside(claimed, digest)
        kept = inbox.rejected / f"sha256-{digest}"
        expected = ([], body, [])
        assert expected == (inbox.pending(), kept.read_bytes(), names(inbox.inbox))

    def test_oversize_directory_without_archive(self, tmp_path):
        """Without an archive, oversize files go next to the inbox under rejected/oversize."""
        box = FileDropInbox(tmp_path / "inbox", None, max_bytes=1)
        claimed = take(box, drop(box, "big.xml", b"too big").name)
        box.set_aside(claimed, "00" * 32)
        assert (tmp_path / "rejected" / "oversize" / f"sha256-{'00' * 32}").is_file()

    def test_set_aside_of_a_vanished_file_is_harmless(self, inbox):
        """A claimed file that is already gone does not make set_aside() raise."""
        claimed = take(inbox, drop(inbox, "gone.xml", b"<x/>").name)
        claimed.unlink()
        assert inbox.set_aside(claimed, "00" * 32)


class TestOutboxTarget:
    def test_layout(self, outbox):
        """target() is <outbox>/<vendor>/<office>/<delivery id><suffix>."""
        expected = outbox.root / "akdn" / "jc-re-recklinghausen" / f"{DID}.xml"
        assert expected == outbox.target("akdn", "jc-re-recklinghausen", DID, ".xml")

    @pytest.mark.parametrize(
        "component",
        [
            "..",
            ".",
            "",
            "/",
            "a/b",
            "../etc",
            "Akdn",
            "AKDN",
            "-lead",
            "a b",
            "a\x00b",
            "ä",
            "a" * 64,
        ],
    )
    @pytest.mark.parametrize("position", [0, 1, 2], ids=["vendor", "office", "delivery"])
    def test_unsafe_component_is_rejected(self, outbox, component, position):
        """'..', '/', uppercase, empty and other unsafe vendor/office/id values raise UnsafeName."""
        parts = ["akdn", "jc-re-recklinghausen", DID]
        parts[position] = component
        with pytest.raises(UnsafeName):
            outbox.target(*parts, ".xml")

    @pytest.mark.parametrize(
        "suffix", ["", "xml", ".XML", "./x", "/.xml", ".x/y", "..", ".xml.", ".toolongsfx", ". x"]
    )
    def test_unsafe_suffix_is_rejected(self, outbox, suffix):
        """A suffix must be a dot and 1-8 lowercase letters or digits."""
        with pytest.raises(UnsafeName):
            outbox.target("akdn", "jc-re-recklinghausen", DID, suffix)

    def test_error_does_not_echo_the_value(self, outbox):
        """The UnsafeName message does not repeat the offending value."""
        with pytest.raises(UnsafeName) as caught:
            outbox.target("akdn", "../../etc/canary", DID, ".xml")
        assert "canary" not in str(caught.value)


class TestOutboxWrite:
    def test_writes_exact_content(self, outbox):
        """write() creates the file with exactly the body and reports True."""
        target = outbox.target("akdn", "jc-re-recklinghausen", DID, ".xml")
        body = os.urandom(100_000)
        expected = (True, body)
        actual = (outbox.write(target, body), target.read_bytes())
        assert expected == actual

    def test_leaves_no_temporary_files(self, outbox):
        """After write() only the delivery file exists: no hidden '.part' temporaries are left."""
        target = outbox.target("akdn", "jc-re-recklinghausen", DID, ".xml")
        outbox.write(target, b"<x/>")
        expected = ([], [f"{DID}.xml"])
        assert expected == (leftovers(outbox.root), names(target.parent))

    def test_existing_delivery_is_a_duplicate_and_untouched(self, outbox):
        """A second write of the same delivery returns False and leaves the first file as it was."""
        target = outbox.target("akdn", "jc-re-recklinghausen", DID, ".xml")
        outbox.write(target, b"<first/>")
        before = target.stat()
        expected = (False, b"<first/>", before.st_mtime_ns, before.st_ino, [])
        actual = (
            outbox.write(target, b"<second/>"),
            target.read_bytes(),
            target.stat().st_mtime_ns,
            target.stat().st_ino,
            leftovers(outbox.root),
        )
        assert expected == actual

    def test_failed_write_leaves_nothing(self, outbox, monkeypatch):
        """If linking into place fails, the error propagates and neither target nor temporary remains."""
        target = outbox.target("akdn", "jc-re-recklinghausen", DID, ".xml")

        def fail(*_args, **_kwargs):
            raise OSError("disk full")

        monkeypatch.setattr(os, "link", fail)
        with pytest.raises(OSError, match="disk full"):
            outbox.write(target, b"<x/>")
        monkeypatch.undo()
        expected = (False, [])
        assert expected == (target.exists(), leftovers(outbox.root))

    def test_different_offices_do_not_collide(self, outbox):
        """Deliveries for two offices of one submission land in two directories."""
        first = outbox.target("lammkom", "wgs-marl", DID, ".xml")
        second = outbox.target("openprosoz", "soa-marl", DID, ".xml")
        expected = (True, True, b"1", b"2")
        actual = (
            outbox.write(first, b"1"),
            outbox.write(second, b"2"),
            first.read_bytes(),
            second.read_bytes(),
        )
        assert expected == actual


class TestOutboxLedger:
    def test_redelivery_after_the_file_was_taken_is_still_a_duplicate(self, outbox):
        """The import job moved the file away; a redelivery must not book the case again."""
        target = outbox.target("akdn", "jc-re-recklinghausen", DID, ".xml")
        assert outbox.write(target, b"<first/>")
        target.unlink()  # the Fachverfahren import job took it
        assert not outbox.write(target, b"<first/>")
        assert not target.exists()

    def test_file_written_before_a_crash_without_ledger_entry_is_recognised(self, outbox):
        """A file from a crash between link and ledger entry counts as delivered and gets its entry."""
        target = outbox.target("akdn", "jc-re-recklinghausen", DID, ".xml")
        target.parent.mkdir(parents=True)
        target.write_bytes(b"<first/>")
        assert not outbox.write(target, b"<first/>")
        target.unlink()
        assert not outbox.write(target, b"<first/>")

    def test_symlinked_office_directory_leading_out_is_refused(self, outbox, tmp_path):
        """An office directory that is a symlink out of the outbox is UnsafeName, never written through."""
        outside = tmp_path / "elsewhere"
        outside.mkdir()
        (outbox.root / "akdn").mkdir()
        (outbox.root / "akdn" / "jc-re-recklinghausen").symlink_to(outside)
        with pytest.raises(UnsafeName):
            outbox.target("akdn", "jc-re-recklinghausen", DID, ".xml")


class TestInboxHardening:
    def test_symlink_swapped_in_is_not_followed(self, tmp_path):
        """A symlink renamed over a listed name (e.g. to the signing key) is claimed as a link:
        refused as Unreadable, its target never read, quarantined as the link itself."""
        secret = tmp_path / "hub.key"
        secret.write_bytes(b"-----BEGIN PRIVATE KEY-----")
        inbox = FileDropInbox(tmp_path / "inbox", tmp_path / "archive", 1000)
        drop(inbox, "a.xml", b"<a/>")
        assert [inbox.inbox / "a.xml"] == inbox.pending()
        link = inbox.inbox / ".a.xml.part"
        link.symlink_to(secret)
        link.replace(inbox.inbox / "a.xml")  # after listing, before the claim
        claimed = inbox.claim(inbox.inbox / "a.xml")
        with pytest.raises(Unreadable):
            inbox.read(claimed)
        assert inbox.quarantine(claimed)
        kept = tmp_path / "archive" / "unreadable" / "a.xml"
        expected = (True, secret, b"-----BEGIN PRIVATE KEY-----", [])
        assert expected == (
            kept.is_symlink(),
            kept.readlink(),
            secret.read_bytes(),
            names(inbox.inbox),
        )

    def test_a_directory_swapped_in_is_unreadable_and_quarantined(self, tmp_path):
        """A directory put under a listed name is claimed as it is, refused, quarantined whole."""
        inbox = FileDropInbox(tmp_path / "inbox", tmp_path / "archive", 1000)
        path = drop(inbox, "a.xml", b"<a/>")
        assert [path] == inbox.pending()
        path.unlink()
        path.mkdir()
        (path / "inner.xml").write_bytes(b"<inner/>")
        claimed = inbox.claim(path)
        with pytest.raises(Unreadable):
            inbox.read(claimed)
        assert inbox.quarantine(claimed)
        kept = tmp_path / "archive" / "unreadable" / "a.xml"
        assert (["inner.xml"], []) == (names(kept), names(inbox.inbox))

    def test_unreadable_file_is_quarantined_under_its_name(self, tmp_path):
        """quarantine() moves a claimed file into <archive>/unreadable/ under its own name."""
        inbox = FileDropInbox(tmp_path / "inbox", tmp_path / "archive", 1000)
        claimed = take(inbox, drop(inbox, "a.xml", b"x").name)
        assert inbox.quarantine(claimed)
        assert (b"x", [], []) == (
            (tmp_path / "archive" / "unreadable" / "a.xml").read_bytes(),
            inbox.pending(),
            names(inbox.inbox),
        )

    def test_symlinked_vendor_directory_is_refused_before_the_office_exists(self, outbox, tmp_path):
        """A vendor directory symlinked out of the outbox is refused even for a new office directory."""
        outside = tmp_path / "elsewhere-vendor"
        outside.mkdir()
        (outbox.root / "akdn").symlink_to(outside)
        with pytest.raises(UnsafeName):
            outbox.target("akdn", "jc-new-office", DID, ".xml")
