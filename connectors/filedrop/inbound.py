"""Inbound file drop: a watched directory of submissions.

Writers put a file into the inbox atomically (write elsewhere or under a name
starting with ``.`` or ending in ``.part``/``.tmp``, then rename). The
connector buffers at most ``max_bytes`` of each file (a larger one is only hashed,
then set aside and dead-lettered as ``SIZE``); a file leaves the
inbox only after Kafka acknowledged the record made from it (:meth:`release`),
so a crash in between re-sends it, and the content-addressed submission id
lets everything downstream deduplicate.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path

import structlog

IGNORED_SUFFIXES = (".part", ".tmp", ".partial", ".swp")

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class InboxFile:
    path: Path
    data: bytes | None  # None when the file is larger than the limit
    sha256: str  # of the whole file; of the bytes read only when read with digest_all=False
    identity: tuple[int, int] = (0, 0)  # (device, inode) of the file that was read


class Unreadable(OSError):  # noqa: N818 - reads as the condition it reports
    """The file cannot be read as a regular file (permissions, a symlink, a device...)."""


def _move(source: Path, target: Path) -> None:
    """Rename, or copy and delete when the target is on another file system."""
    try:
        source.replace(target)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        shutil.move(str(source), str(target))


def read_file(path: Path, max_bytes: int, *, digest_all: bool = True) -> InboxFile | None:
    """Read a file without buffering more than ``max_bytes``; ``None`` if it vanished.

    The file is opened without following symlinks and must be a regular file, so a
    link swapped in after listing cannot make the hub ship another file. A file over
    the limit is hashed to its end (the digest names it in the dead letter), unless
    ``digest_all`` is false: then reading stops at the first byte over the limit.
    """
    digest = hashlib.sha256()
    chunks: list[bytes] = []
    size = 0
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise Unreadable(exc.errno, "cannot open inbox file") from None
    with os.fdopen(fd, "rb") as handle:
        status = os.fstat(fd)
        if not stat.S_ISREG(status.st_mode):
            raise Unreadable(errno.EINVAL, "not a regular file")
        try:
            while chunk := handle.read(1 << 16 if digest_all else max_bytes + 1 - size):
                digest.update(chunk)
                size += len(chunk)
                if size <= max_bytes:
                    chunks.append(chunk)
                elif digest_all:
                    chunks.clear()  # keep hashing, stop buffering
                else:
                    break
        except OSError as exc:
            raise Unreadable(exc.errno, "cannot read inbox file") from None
    data = b"".join(chunks) if size <= max_bytes else None
    return InboxFile(path, data, digest.hexdigest(), (status.st_dev, status.st_ino))


def same_file(path: Path, identity: tuple[int, int] | None) -> bool:
    """Whether ``path`` is still the file read as ``identity`` (True without one, or if gone).

    A client that renames a new file over one the hub has read but not yet moved
    would otherwise see its file archived (or set aside) under the first one's
    name, unread.
    """
    if identity is None:
        return True
    try:
        status = os.lstat(path)
    except FileNotFoundError:
        return True
    return (status.st_dev, status.st_ino) == identity


def move_out(path: Path, target: Path | None) -> None:
    """Move ``path`` to ``target`` (creating its directory), or delete it without a target.

    A file that is gone already is fine; any other failure raises ``OSError``.
    """
    try:
        if target is None:
            path.unlink()
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            _move(path, target)
    except FileNotFoundError:
        return


def move_or_remember(
    path: Path, target: Path | None, stuck: set[str], identity: tuple[int, int] | None = None
) -> bool:
    """:func:`move_out`; True, or on failure False with the name added to ``stuck``.

    With the ``identity`` of the file that was read, a file that has been replaced
    since (another file under the same name) is left in the inbox to be taken as
    what it is (True: nothing is stuck); the file that was read is gone already.
    """
    try:
        if not same_file(path, identity):
            log.warning("filedrop.replaced_before_move", file=path.name)
            return True
        move_out(path, target)
    except OSError:
        stuck.add(path.name)
        return False
    return True


class FileDropInbox:
    def __init__(self, inbox: Path, archive: Path | None, max_bytes: int) -> None:
        self.inbox = inbox
        self.archive = archive
        aside = archive or inbox.parent / "rejected"
        self.rejected = aside / "oversize"
        self.unreadable = aside / "unreadable"
        self.max_bytes = max_bytes
        self._stuck: set[str] = set()  # files this process could neither take nor set aside
        self._read_as: dict[str, tuple[int, int]] = {}  # name -> identity of the file read
        inbox.mkdir(parents=True, exist_ok=True)

    def pending(self, limit: int = 500) -> list[Path]:
        """Files ready to be taken, oldest name first."""
        names = sorted(
            entry.name
            for entry in os.scandir(self.inbox)
            if entry.is_file(follow_symlinks=False)
            and not entry.name.startswith(".")
            and not entry.name.lower().endswith(IGNORED_SUFFIXES)
            and entry.name not in self._stuck
        )
        return [self.inbox / name for name in names[:limit]]

    def read(self, path: Path) -> InboxFile | None:
        """Read a file without buffering more than the limit; ``None`` if it vanished.

        The file is opened without following symlinks and must be a regular file, so a
        link swapped in after listing cannot make the hub ship another file.
        """
        item = read_file(path, self.max_bytes)
        if item is not None:
            self._read_as[path.name] = item.identity
        return item

    def _out_of_inbox(self, path: Path, target: Path | None) -> bool:
        """Move (or, without a target, delete) ``path``; on failure remember it and say so.

        Only the file that was read moves: one renamed over it since stays (:func:`same_file`).
        """
        return move_or_remember(path, target, self._stuck, self._read_as.pop(path.name, None))

    def release(self, path: Path, submission_id: str) -> bool:
        """Kafka has the record: move the file out of the inbox (archive) or delete it."""
        target = None if self.archive is None else self.archive / f"{submission_id}.xml"
        return self._out_of_inbox(path, target)

    def set_aside(self, path: Path, sha256: str) -> bool:
        """An oversize file: keep it, out of the inbox, for an operator to look at."""
        return self._out_of_inbox(path, self.rejected / f"sha256-{sha256}")

    def quarantine(self, path: Path) -> bool:
        """An unreadable file: out of the inbox under its own name, for an operator."""
        return self._out_of_inbox(path, self.unreadable / path.name)
