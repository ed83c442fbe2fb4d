"""The claim directory of an inbox: files are renamed out of the writers' reach before reading.

Before a file of an inbox (or of its ``osci`` sub-inbox) is read, the hub renames
it into a claim of its own: ``<inbox>/.sozialhub-claimed/<claim>/<name>``, where
``<claim>`` is a new sub-directory (a creation-time stamp and a random part, so
claims sort oldest first and a name claimed twice never collides) and ``<name>``
is the file's own name, unchanged. A rename within one file system is atomic, so
the hub reads, sends and moves out exactly the file it claimed: whatever a writer
renames over the old name afterwards is a new file in the inbox, taken as what
it is on a later pass. An OSCI pair is claimed into one claim, under a name
ending in ``.claiming`` until both halves are in (:mod:`connectors.filedrop.osci`).

The claim directory is hidden (its name starts with ``.``, which writers use for
files being written and the inbox never lists). The hub creates it with mode
0700 and removes it again once it holds no claim; it must be a real directory
owned by the hub's user and not writable by group or others, or nothing is
claimed (``EPERM``; ``ENOTDIR`` for a symbolic link or a file under its name). All work in it goes through
a descriptor of that directory, so a symbolic link renamed over its name in the
writers' directory is never followed. Claims a process left behind (a crash
after the claim, before the file moved out) are listed by :meth:`ClaimDirectory.left`
for the next process to take again.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import secrets
import shutil
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

CLAIM_DIRECTORY = ".sozialhub-claimed"
CLAIMING_SUFFIX = ".claiming"  # a claim whose files are not all in yet (an OSCI pair)
_MODE = 0o700


Identity = tuple[int, int, int]


def identity(status: os.stat_result) -> Identity:
    """What tells one file from another under the same name: inode, modification time, size.

    A rename keeps all three, so they tell whether the file claimed is the one that
    was listed. The inode alone is not enough: a file deleted and another written
    later may get its number again; not also at the same nanosecond and size.
    """
    return status.st_ino, status.st_mtime_ns, status.st_size


@dataclass(frozen=True, slots=True)
class InboxFile:
    path: Path  # where it was read: its claimed path
    data: bytes | None  # None when the file is larger than the limit
    sha256: str  # of the whole file; of the bytes read only when read with digest_all=False


class Unreadable(OSError):  # noqa: N818 - reads as the condition it reports
    """The file cannot be read as a regular file (permissions, a symlink, a device...)."""


class CannotClaim(OSError):  # noqa: N818 - reads as the condition it reports
    """The file could not be renamed into the claim directory (not because it was gone)."""


class ClaimDirectory:
    """``<directory>/.sozialhub-claimed``: the claims of one inbox directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.path = directory / CLAIM_DIRECTORY

    def holds(self, path: Path) -> bool:
        """Whether ``path`` names a claimed file (``<claim directory>/<claim>/<name>``)."""
        return path.parent.parent == self.path

    # -- claiming ----------------------------------------------------------------------

    def claim(self, source: Path) -> Path:
        """Rename the inbox entry ``source`` into a new claim; its claimed path.

        Raises ``FileNotFoundError`` if it is gone (another worker claimed it, or its
        writer took it back), any other ``OSError`` if it cannot be claimed.
        """
        claim = self.new()
        try:
            return self.take(source, claim)
        except OSError:
            self.drop(claim)
            raise

    def new(self, *, claiming: bool = False, tag: str = "") -> Path:
        """A new, empty claim (creating the claim directory if need be).

        ``tag`` (letters, digits, ``.`` and ``-``) is kept in the claim's name, for whoever
        completes a ``….claiming`` claim (:mod:`connectors.filedrop.osci`).
        """
        suffix = (f"-{tag}" if tag else "") + (CLAIMING_SUFFIX if claiming else "")
        with self._opened(create=True) as fd:
            while True:
                name = f"{time.time_ns():016x}-{secrets.token_hex(4)}{suffix}"
                try:
                    os.mkdir(name, _MODE, dir_fd=fd)
                except FileExistsError:
                    continue
                return self.path / name

    def take(self, source: Path, claim: Path) -> Path:
        """Rename ``source`` (whatever entry now has that name) into ``claim``, keeping its name."""
        with self._opened() as fd:
            os.rename(source, f"{self._claim_name(claim)}/{source.name}", dst_dir_fd=fd)
        return claim / source.name

    @staticmethod
    def tag(claim: Path) -> str:
        """The ``tag`` a claim was made with (:meth:`new`); empty if none."""
        _stamp, _random, *tag = claim.name.removesuffix(CLAIMING_SUFFIX).split("-", 2)
        return tag[0] if tag else ""

    def finish(self, claim: Path) -> Path:
        """Rename a ``….claiming`` claim to its final name, once all its files are in."""
        final = claim.with_name(claim.name.removesuffix(CLAIMING_SUFFIX))
        with self._opened() as fd:
            os.rename(self._claim_name(claim), final.name, src_dir_fd=fd, dst_dir_fd=fd)
        return final

    def exists(self, path: Path) -> bool:
        """Whether the claimed entry ``path`` is there (as whatever it is)."""
        return self.identity(path) is not None

    def identity(self, path: Path) -> Identity | None:
        """The :func:`identity` of the claimed entry ``path`` (not followed); None if not there."""
        name = self._relative(path)
        try:
            with self._opened() as fd:
                return identity(os.stat(name, dir_fd=fd, follow_symlinks=False))
        except FileNotFoundError:
            return None

    def drop(self, claim: Path) -> None:
        """Remove ``claim`` once empty, and the claim directory once it holds no claim.

        Tidying only: a claim or directory that is not empty (another worker's claims)
        or already gone stays as it is.
        """
        name = self._claim_name(claim)
        with contextlib.suppress(OSError), self._opened() as fd:
            os.rmdir(name, dir_fd=fd)
        with contextlib.suppress(OSError):
            self.path.rmdir()

    def left(self) -> list[tuple[Path, list[str]]]:
        """The claims here (left by an earlier process), oldest first, with their entries' names.

        Empty claims (a crash between creating a claim and renaming into it, or after
        the last file moved out) are removed. Raises ``OSError`` if the claim directory
        exists but cannot be used.
        """
        found: list[tuple[Path, list[str]]] = []
        try:
            with self._opened() as fd:
                for name in sorted(os.listdir(fd)):  # noqa: PTH208 - a descriptor, not a path
                    names = _entries(fd, name)
                    if names:
                        found.append((self.path / name, names))
                    elif names is not None:
                        with contextlib.suppress(OSError):
                            os.rmdir(name, dir_fd=fd)
        except FileNotFoundError:
            return []
        if not found:
            with contextlib.suppress(OSError):
                self.path.rmdir()
        return found

    # -- claimed files -----------------------------------------------------------------

    def read(self, path: Path, max_bytes: int, *, digest_all: bool = True) -> InboxFile | None:
        """Read a claimed file without buffering more than ``max_bytes``; ``None`` if it is gone.

        It is opened without following symlinks and must be a regular file: a symlink
        (or anything else) renamed over an inbox name before the claim moved with it
        and is refused as :class:`Unreadable`, its target never read. A file over the
        limit is hashed to its end (the digest names it in the dead letter), unless
        ``digest_all`` is false: then reading stops at the first byte over the limit.
        """
        name = self._relative(path)
        # The claim directory itself failing (gone, replaced, no descriptors left) is not the
        # file's fault: that OSError propagates, the file is neither skipped nor quarantined.
        with self._opened() as dir_fd:
            try:
                fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dir_fd)
            except FileNotFoundError:
                return None
            except OSError as exc:
                raise Unreadable(exc.errno, "cannot open inbox file") from None
        if not stat.S_ISREG(os.fstat(fd).st_mode):  # checked before a file object is made of it
            os.close(fd)
            raise Unreadable(errno.EINVAL, "not a regular file")
        with os.fdopen(fd, "rb") as handle:
            digest = hashlib.sha256()
            chunks: list[bytes] = []
            size = 0
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
        return InboxFile(path, data, digest.hexdigest())

    def move_out(self, path: Path, target: Path | None) -> None:
        """Move a claimed entry to ``target`` (creating its directory), or delete it without one.

        An existing ``target`` is replaced. On another file system the entry is copied
        (a regular file, or a symbolic link as a link) under a temporary name beside
        ``target``, renamed into place, then deleted. Gone already is fine; any other
        failure raises ``OSError`` and leaves the entry claimed.
        """
        name = self._relative(path)
        try:
            with self._opened() as fd:
                if target is None:
                    os.unlink(name, dir_fd=fd)
                    return
                target.parent.mkdir(parents=True, exist_ok=True)
                try:
                    os.rename(name, target, src_dir_fd=fd)
                except FileNotFoundError:
                    # Gone already is fine; a target directory removed meanwhile is not.
                    if _there(fd, name):
                        raise
                    return
                except OSError as exc:
                    if exc.errno != errno.EXDEV:
                        raise
                    _copy(fd, name, target)
                    os.unlink(name, dir_fd=fd)
        except FileNotFoundError:
            if self.exists(path):
                raise
            return

    def moved(self, path: Path, target: Path | None) -> bool:
        """:meth:`move_out`; False (the entry stays claimed) if it cannot move."""
        try:
            self.move_out(path, target)
        except OSError:
            return False
        return True

    # -- internals ---------------------------------------------------------------------

    @contextlib.contextmanager
    def _opened(self, *, create: bool = False) -> Iterator[int]:
        """A descriptor of the claim directory, which must be the hub's own real directory."""
        if create:
            with contextlib.suppress(FileExistsError):
                self.path.mkdir(_MODE)
        fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        try:
            status = os.fstat(fd)
            if status.st_uid != os.geteuid() or status.st_mode & 0o022:
                raise OSError(errno.EPERM, "the claim directory is not the hub's own")
            yield fd
        finally:
            os.close(fd)

    def _claim_name(self, claim: Path) -> str:
        if claim.parent != self.path:
            raise ValueError("not a claim of this claim directory")
        return claim.name

    def _relative(self, path: Path) -> str:
        return f"{self._claim_name(path.parent)}/{path.name}"


def _entries(fd: int, name: str) -> list[str] | None:
    """The sorted entry names of the claim ``name``; None if it is not a claim (not a directory)."""
    try:
        claim = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
    except OSError:
        return None
    try:
        return sorted(os.listdir(claim))  # noqa: PTH208 - a descriptor, not a path
    finally:
        os.close(claim)


def _there(fd: int, name: str) -> bool:
    """Whether the entry ``name`` (relative to the directory ``fd``) exists (not followed)."""
    try:
        os.stat(name, dir_fd=fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return True


def _copy(fd: int, name: str, target: Path) -> None:
    """Copy the claimed entry ``name`` to ``target`` on another file system, atomically."""
    # A name of its own length: the target's name may be as long as a name can be.
    temporary = target.with_name(f".sozialhub-{secrets.token_hex(8)}.part")
    try:
        try:
            source = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=fd)
        except OSError as exc:
            if exc.errno != errno.ELOOP:
                raise
            temporary.symlink_to(os.readlink(name, dir_fd=fd))  # the link, never its target
        else:
            with os.fdopen(source, "rb") as reader:
                status = os.fstat(source)
                if not stat.S_ISREG(status.st_mode):
                    raise OSError(errno.EXDEV, "only files and links are moved across file systems")
                with temporary.open("xb") as writer:
                    shutil.copyfileobj(reader, writer, 1 << 20)
                    os.fchmod(writer.fileno(), stat.S_IMODE(status.st_mode))
                os.utime(temporary, ns=(status.st_atime_ns, status.st_mtime_ns))
        temporary.replace(target)
    except BaseException:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise
