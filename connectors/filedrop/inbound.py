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

import contextlib
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

IGNORED_SUFFIXES = (".part", ".tmp", ".partial", ".swp")


@dataclass(frozen=True, slots=True)
class InboxFile:
    path: Path
    data: bytes | None  # None when the file is larger than the limit
    sha256: str


class FileDropInbox:
    def __init__(self, inbox: Path, archive: Path | None, max_bytes: int) -> None:
        self.inbox = inbox
        self.archive = archive
        self.rejected = (archive or inbox.parent / "rejected") / "oversize"
        self.max_bytes = max_bytes
        inbox.mkdir(parents=True, exist_ok=True)

    def pending(self, limit: int = 500) -> list[Path]:
        """Files ready to be taken, oldest name first."""
        names = sorted(
            entry.name
            for entry in os.scandir(self.inbox)
            if entry.is_file(follow_symlinks=False)
            and not entry.name.startswith(".")
            and not entry.name.lower().endswith(IGNORED_SUFFIXES)
        )
        return [self.inbox / name for name in names[:limit]]

    def read(self, path: Path) -> InboxFile | None:
        """Read a file without buffering more than the limit; ``None`` if it vanished."""
        digest = hashlib.sha256()
        chunks: list[bytes] = []
        size = 0
        try:
            with path.open("rb") as handle:
                while chunk := handle.read(1 << 16):
                    digest.update(chunk)
                    size += len(chunk)
                    if size <= self.max_bytes:
                        chunks.append(chunk)
                    else:
                        chunks.clear()  # keep hashing, stop buffering
        except FileNotFoundError:
            return None
        data = b"".join(chunks) if size <= self.max_bytes else None
        return InboxFile(path, data, digest.hexdigest())

    def release(self, path: Path, submission_id: str) -> None:
        """Kafka has the record: move the file out of the inbox (archive) or delete it."""
        if self.archive is None:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            return
        self.archive.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            path.replace(self.archive / f"{submission_id}.xml")

    def set_aside(self, path: Path, sha256: str) -> None:
        """An oversize file: keep it, out of the inbox, for an operator to look at."""
        self.rejected.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            path.replace(self.rejected / f"sha256-{sha256}")
