"""File-drop connectors without Kafka: the inbox (what is taken, read, released) and the outbox."""

from __future__ import annotations

import hashlib
import os
import tracemalloc

import pytest

from connectors.filedrop.inbound import FileDropInbox
from connectors.filedrop.outbound import FileDropOutbox, UnsafeName

SID = "sub-" + "ab" * 16
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


class TestRead:
    @pytest.mark.parametrize("size", [0, 1, 1023, 1024])
    def test_within_limit_returns_the_bytes(self, inbox, size):
        """A file up to max_bytes is read whole, with its SHA-256."""
        body = os.urandom(size)
        path = inbox.inbox / "a.xml"
        path.write_bytes(body)
        result = inbox.read(path)
        expected = (path, body, hashlib.sha256(body).hexdigest())
        assert expected == (result.path, result.data, result.sha256)

    @pytest.mark.parametrize("size", [1025, 65536, 65537, 200_000])
    def test_over_limit_returns_no_data_but_the_right_digest(self, inbox, size):
        """A file larger than max_bytes gives data None and the SHA-256 of the whole file."""
        body = os.urandom(size)
        path = inbox.inbox / "big.xml"
        path.write_bytes(body)
        result = inbox.read(path)
        expected = (None, hashlib.sha256(body).hexdigest())
        assert expected == (result.data, result.sha256)

    def test_vanished_file_is_none(self, inbox):
        """A file that disappeared between pending() and read() gives None."""
        assert inbox.read(inbox.inbox / "gone.xml") is None

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
        tracemalloc.start()
        try:
            result = box.read(path)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        # The limit, plus the chunk being read, plus interpreter overhead; far below 16 MiB.
        expected = (None, digest.hexdigest(), True)
        assert expected == (result.data, result.sha256, peak < limit + 4 * chunk), peak


class TestRelease:
    def test_moves_into_archive_named_by_submission_id(self, inbox):
        """release() moves the file to <archive>/<submission id>.xml, content unchanged."""
        path = inbox.inbox / "upload-1.xml"
        path.write_bytes(b"<x/>")
        inbox.release(path, SID)
        expected = (False, b"<x/>", [])
        actual = (path.exists(), (inbox.archive / f"{SID}.xml").read_bytes(), inbox.pending())
        assert expected == actual

    def test_deletes_without_archive(self, tmp_path):
        """Without an archive directory release() deletes the file."""
        box = FileDropInbox(tmp_path / "inbox", None, max_bytes=1024)
        path = box.inbox / "upload-1.xml"
        path.write_bytes(b"<x/>")
        box.release(path, SID)
        expected = (False, [])
        assert expected == (path.exists(), names(tmp_path / "inbox"))

    def test_release_of_a_vanished_file_is_harmless(self, inbox, tmp_path):
        """Releasing a file that is already gone (released before a crash) does not raise."""
        inbox.release(inbox.inbox / "gone.xml", SID)
        box = FileDropInbox(tmp_path / "other", None, max_bytes=1024)
        box.release(box.inbox / "gone.xml", SID)

    def test_same_submission_twice_keeps_one_archive_copy(self, inbox):
        """The same bytes dropped twice end up as one archived file (content-addressed name)."""
        for name in ("first.xml", "second.xml"):
            (inbox.inbox / name).write_bytes(b"<same/>")
            inbox.release(inbox.inbox / name, SID)
        expected = [f"{SID}.xml"]
        assert expected == names(inbox.archive)

    def test_a_file_renamed_over_the_one_read_stays_to_be_taken_as_itself(self, inbox):
        """A client writes a new file under the same name after the hub read the first and
        before it moved it: the new file stays in the inbox (and reads as itself next);
        it is never archived under the first one's submission id."""
        path = inbox.inbox / "urn-de-xta-messageid-1.xml"
        path.write_bytes(b"<first/>")
        assert b"<first/>" == inbox.read(path).data
        replacement = inbox.inbox / ".next.part"
        replacement.write_bytes(b"<second/>")
        replacement.replace(path)
        assert inbox.release(path, SID)  # nothing stuck
        archived = inbox.archive / f"{SID}.xml"
        expected = ([path], b"<second/>", False)
        assert expected == (inbox.pending(), inbox.read(path).data, archived.exists())
        assert inbox.release(path, SID)  # the file read now moves
        assert ([], b"<second/>") == (inbox.pending(), archived.read_bytes())

    def test_a_replaced_oversize_file_is_not_set_aside(self, inbox):
        path = inbox.inbox / "big.xml"
        path.write_bytes(b"x" * 2048)
        digest = inbox.read(path).sha256
        replacement = inbox.inbox / ".big.part"
        replacement.write_bytes(b"<small/>")
        replacement.replace(path)
        assert inbox.set_aside(path, digest)
        assert ([path], False) == (inbox.pending(), (inbox.rejected / f"sha256-{digest}").exists())


class TestSetAside:
    def test_moves_oversize_file_out_of_the_inbox(self, inbox):
        """set_aside() moves the file to the oversize directory named by its SHA-256."""
        body = b"x" * 2048
        path = inbox.inbox / "big.xml"
        path.write_bytes(body)
        digest = inbox.read(path).sha256
        inbox.set_aside(path, digest)
        kept = inbox.rejected / f"sha256-{digest}"
        expected = ([], body)
        assert expected == (inbox.pending(), kept.read_bytes())

    def test_oversize_directory_without_archive(self, tmp_path):
        """Without an archive, oversize files go next to the inbox under rejected/oversize."""
        box = FileDropInbox(tmp_path / "inbox", None, max_bytes=1)
        path = box.inbox / "big.xml"
        path.write_bytes(b"too big")
        box.set_aside(path, "00" * 32)
        assert (tmp_path / "rejected" / "oversize" / f"sha256-{'00' * 32}").is_file()

    def test_set_aside_of_a_vanished_file_is_harmless(self, inbox):
        """A file that is already gone does not make set_aside() raise."""
        inbox.set_aside(inbox.inbox / "gone.xml", "00" * 32)


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
        """A symlink in the inbox (e.g. to the signing key) is refused as Unreadable, its target never read."""
        from connectors.filedrop.inbound import Unreadable

        secret = tmp_path / "hub.key"
        secret.write_bytes(b"-----BEGIN PRIVATE KEY-----")
        inbox = FileDropInbox(tmp_path / "inbox", tmp_path / "archive", 1000)
        link = inbox.inbox / "a.xml"
        link.symlink_to(secret)
        with pytest.raises(Unreadable):
            inbox.read(link)

    def test_unreadable_file_is_quarantined_under_its_name(self, tmp_path):
        """quarantine() moves a file out of the inbox into <archive>/unreadable/ and it is no longer pending."""
        inbox = FileDropInbox(tmp_path / "inbox", tmp_path / "archive", 1000)
        (inbox.inbox / "a.xml").write_bytes(b"x")
        assert inbox.quarantine(inbox.inbox / "a.xml")
        assert (b"x", []) == (
            (tmp_path / "archive" / "unreadable" / "a.xml").read_bytes(),
            inbox.pending(),
        )

    def test_file_that_cannot_leave_the_inbox_is_skipped_not_retaken(self, tmp_path):
        """When the archive cannot be written, release() reports it and pending() skips the file from then on."""
        archive = tmp_path / "archive"
        archive.write_bytes(b"not a directory")
        inbox = FileDropInbox(tmp_path / "inbox", archive, 1000)
        (inbox.inbox / "a.xml").write_bytes(b"x")
        assert not inbox.release(inbox.inbox / "a.xml", "sub-" + "0" * 32)
        assert [] == inbox.pending()
        assert (inbox.inbox / "a.xml").exists()

    def test_symlinked_vendor_directory_is_refused_before_the_office_exists(self, outbox, tmp_path):
        """A vendor directory symlinked out of the outbox is refused even for a new office directory."""
        outside = tmp_path / "elsewhere-vendor"
        outside.mkdir()
        (outbox.root / "akdn").symlink_to(outside)
        with pytest.raises(UnsafeName):
            outbox.target("akdn", "jc-new-office", DID, ".xml")
